//! The ring: on-disk/in-memory layout and the lock-free writer.
//!
//! Layout (all integers little-endian; see `docs/logsys.md`):
//!
//! ```text
//! header (HEADER_LEN = 4096 bytes, data starts page aligned)
//!   0  magic  b"PHXFLREC"
//!   8  version u32 | header_len u32
//!  16  capacity u64           data bytes, a power of two
//!  24  cursor u64             total bytes ever reserved (atomic, monotonic)
//!  32  created_wall_ns u64
//!  40  pid u32 | flags u32
//!  48  reserved u32 | header_crc u32  (crc32c of bytes 0..24 ++ 32..52)
//! data (capacity bytes), records at absolute position p live at p % capacity
//! ```
//!
//! A record ("frame") is a multiple of 8 bytes:
//!
//! ```text
//!  0 len u32 | crc u32       crc32c(len ++ bytes 8..len)
//!  8 pos u64                 absolute position of this frame (detects stale laps)
//! 16 mono_ns u64
//! 24 wall_ns u64
//! 32 node u32 | thread u32
//! 40 line u32 | level u8 | nargs u8 | subsystem_len u8 | 0u8
//! 48 file_len u16 | format_len u16 | 0u32
//! 56 subsystem, file, format bytes, then args, zero padded to 8
//! ```
//!
//! Args: a tag byte then the value: 0 U64 (8), 1 I64 (8), 2 F64 (8), 3 Bool (1),
//! 4 Str (u16 length + bytes).

use crate::{Arg, Level};
use std::sync::atomic::{AtomicU64, Ordering};

/// File magic.
pub(crate) const MAGIC: [u8; 8] = *b"PHXFLREC";
/// Format version.
pub(crate) const VERSION: u32 = 1;
/// Header length; data starts here.
pub(crate) const HEADER_LEN: usize = 4096;
/// Fixed frame header length.
pub(crate) const FRAME_HDR: usize = 56;
/// Smallest data capacity.
pub(crate) const MIN_CAPACITY: u64 = 16 * 1024;
/// Largest data capacity accepted (1 TiB).
pub(crate) const MAX_CAPACITY: u64 = 1 << 40;
/// Byte offset of the cursor in the header.
pub(crate) const CURSOR_OFF: usize = 24;

/// Limits that bound a frame (strings are truncated, extra args dropped).
pub(crate) const MAX_SUBSYSTEM: usize = 64;
pub(crate) const MAX_FILE: usize = 256;
pub(crate) const MAX_FORMAT: usize = 1024;
pub(crate) const MAX_ARGS: usize = 16;
pub(crate) const MAX_STR_ARG: usize = 256;
/// Upper bound of a frame produced by the writer with the limits above.
pub(crate) const MAX_FRAME: usize =
    FRAME_HDR + MAX_SUBSYSTEM + MAX_FILE + MAX_FORMAT + MAX_ARGS * (3 + MAX_STR_ARG) + 8;

pub(crate) const TAG_U64: u8 = 0;
pub(crate) const TAG_I64: u8 = 1;
pub(crate) const TAG_F64: u8 = 2;
pub(crate) const TAG_BOOL: u8 = 3;
pub(crate) const TAG_STR: u8 = 4;

/// Rounds a requested size to a valid data capacity (power of two, clamped).
pub(crate) fn capacity_for(requested: usize) -> u64 {
    let r = (requested as u64).clamp(MIN_CAPACITY, MAX_CAPACITY);
    if r.is_power_of_two() {
        r
    } else {
        // Round down so the file never exceeds what was asked (unless below the minimum).
        (r.next_power_of_two() / 2).max(MIN_CAPACITY)
    }
}

/// crc32c of the immutable header fields.
pub(crate) fn header_crc(h: &[u8]) -> u32 {
    let c = crc32c::crc32c(&h[0..24]);
    crc32c::crc32c_append(c, &h[32..52])
}

/// Builds the header bytes (cursor included).
pub(crate) fn build_header(capacity: u64, cursor: u64, created_wall_ns: u64) -> [u8; 56] {
    let mut h = [0u8; 56];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    h[16..24].copy_from_slice(&capacity.to_le_bytes());
    h[24..32].copy_from_slice(&cursor.to_le_bytes());
    h[32..40].copy_from_slice(&created_wall_ns.to_le_bytes());
    h[40..44].copy_from_slice(&std::process::id().to_le_bytes());
    let crc = header_crc(&h);
    h[52..56].copy_from_slice(&crc.to_le_bytes());
    h
}

/// What keeps the ring's memory alive.
pub(crate) enum Storage {
    /// A shared file mapping.
    Map(memmap2::MmapRaw),
    /// Heap words (the in-memory recorder).
    Heap(#[allow(dead_code)] Box<[AtomicU64]>),
}

/// A ring of frames over `HEADER_LEN + capacity` bytes of 8-aligned memory.
///
/// All accesses to the memory go through `AtomicU64` (relaxed stores compile to plain
/// moves), so concurrent writers and an in-process reader never race in the Rust
/// memory-model sense; other processes see the same bytes through the shared mapping.
pub(crate) struct Ring {
    words: *const AtomicU64,
    /// Data capacity in bytes (power of two).
    pub(crate) capacity: u64,
    word_mask: u64,
    pub(crate) storage: Storage,
}

// SAFETY: `words` points into memory owned by `storage` (kept alive by `Ring`) and is
// only accessed through atomics.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// A heap ring of the given data capacity (already validated).
    pub(crate) fn heap(capacity: u64) -> Self {
        let n = ((HEADER_LEN as u64 + capacity) / 8) as usize;
        let b = zeroed_words(n);
        let words = b.as_ptr();
        let r = Ring {
            words,
            capacity,
            word_mask: capacity / 8 - 1,
            storage: Storage::Heap(b),
        };
        r.store_header(&build_header(capacity, 0, 0));
        r
    }

    /// A ring over a mapping of `HEADER_LEN + capacity` bytes whose header is valid.
    pub(crate) fn from_map(map: memmap2::MmapRaw, capacity: u64) -> Self {
        let words = map.as_mut_ptr() as *const AtomicU64;
        Ring {
            words,
            capacity,
            word_mask: capacity / 8 - 1,
            storage: Storage::Map(map),
        }
    }

    #[inline]
    fn word(&self, i: usize) -> &AtomicU64 {
        // SAFETY: callers keep `i < (HEADER_LEN + capacity) / 8`; memory is 8-aligned
        // (page-aligned mapping or a `Box<[AtomicU64]>`) and outlives `self`.
        unsafe { &*self.words.add(i) }
    }

    pub(crate) fn store_header(&self, h: &[u8; 56]) {
        for (i, c) in h.chunks_exact(8).enumerate() {
            let w = u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
            self.word(i).store(w, Ordering::Relaxed);
        }
    }

    #[inline]
    pub(crate) fn cursor(&self) -> &AtomicU64 {
        self.word(CURSOR_OFF / 8)
    }

    /// Copies the whole region (header + data) with relaxed loads.
    pub(crate) fn snapshot(&self) -> Vec<u8> {
        let n = (HEADER_LEN as u64 + self.capacity) as usize / 8;
        let mut out = Vec::with_capacity(n * 8);
        for i in 0..n {
            out.extend_from_slice(&self.word(i).load(Ordering::Relaxed).to_ne_bytes());
        }
        out
    }

    /// Writes one frame. `buf` holds the frame words with word 1 (pos) and the crc
    /// still to be filled in; `len` is its length in bytes (multiple of 8).
    #[inline]
    pub(crate) fn commit(&self, buf: &mut [u64], len: usize) {
        let pos = self.cursor().fetch_add(len as u64, Ordering::Relaxed);
        buf[1] = pos.to_le();
        let bytes = words_as_bytes(&buf[..len / 8]);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&(len as u32).to_le_bytes()), &bytes[8..]);
        let w0 = (len as u64) | ((crc as u64) << 32);
        // A writer stalled since its reservation may have been lapped: once the
        // cursor passed `pos + capacity`, others own these bytes for a newer lap,
        // and writing now would destroy their records. The record is dropped (the
        // reader sees a gap it does not count as damage, because no byte of the
        // newer lap was touched). A stall that starts after this check can still
        // overwrite newer records; the reader then reports one damaged region.
        if self.cursor().load(Ordering::Relaxed) > pos + self.capacity {
            return;
        }
        let base = HEADER_LEN as u64 / 8;
        let first = pos / 8;
        for (i, w) in buf[1..len / 8].iter().enumerate() {
            let idx = base + ((first + 1 + i as u64) & self.word_mask);
            self.word(idx as usize).store(*w, Ordering::Relaxed);
        }
        // The first word (length + crc) is the commit marker: stored last, release.
        let idx = base + (first & self.word_mask);
        self.word(idx as usize).store(w0.to_le(), Ordering::Release);
    }
}

/// `n` zeroed atomic words from `alloc_zeroed`: large rings get lazily zeroed pages
/// from the OS, so creating a ring costs O(1) instead of a pass over its memory (the
/// simulator creates one per node per run).
fn zeroed_words(n: usize) -> Box<[AtomicU64]> {
    // Rings are at most 1 GiB + a header, so the layout always exists and n > 0; an
    // impossible layout is treated as an allocation failure (abort, as `Vec` does).
    let layout = std::alloc::Layout::array::<AtomicU64>(n.max(1))
        .unwrap_or_else(|_| std::alloc::handle_alloc_error(std::alloc::Layout::new::<u64>()));
    let n = layout.size() / std::mem::size_of::<AtomicU64>();
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) } as *mut AtomicU64;
    if ptr.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `ptr` is a fresh allocation of `layout` (the global allocator, as `Box`
    // uses) holding `n` zeroed, and so valid, `AtomicU64`s.
    unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, n)) }
}

/// Views words as bytes (the words are byte containers: values are stored `to_le`).
#[inline]
pub(crate) fn words_as_bytes(w: &[u64]) -> &[u8] {
    // SAFETY: u64 has no padding; u8 alignment is 1; length in bytes is exact.
    unsafe { std::slice::from_raw_parts(w.as_ptr() as *const u8, w.len() * 8) }
}

#[inline]
fn words_as_bytes_mut(w: &mut [u64]) -> &mut [u8] {
    // SAFETY: as `words_as_bytes`; every byte pattern is a valid u64.
    unsafe { std::slice::from_raw_parts_mut(w.as_mut_ptr() as *mut u8, w.len() * 8) }
}

/// Truncates `s` to at most `max` bytes on a char boundary.
#[inline]
fn clip(s: &str, max: usize) -> &[u8] {
    if s.len() <= max {
        return s.as_bytes();
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s.as_bytes()[..end]
}

/// The non-static parts of a record being written.
pub(crate) struct Fields<'a> {
    pub level: Level,
    pub subsystem: &'a str,
    pub file: &'a str,
    pub line: u32,
    pub format: &'a str,
    pub node: u32,
    pub thread: u32,
    pub mono_ns: u64,
    pub wall_ns: u64,
}

/// Encodes `f` and `args` into a frame and commits it to `ring`.
#[inline]
pub(crate) fn write(ring: &Ring, f: &Fields<'_>, args: &[Arg<'_>]) {
    let sub = clip(f.subsystem, MAX_SUBSYSTEM);
    let file = clip(f.file, MAX_FILE);
    let fmt = clip(f.format, MAX_FORMAT);
    let args = &args[..args.len().min(MAX_ARGS)];
    let mut len = FRAME_HDR + sub.len() + file.len() + fmt.len();
    for a in args {
        len += match a {
            Arg::Bool(_) => 2,
            Arg::Str(s) => 3 + s.len().min(MAX_STR_ARG),
            _ => 9,
        };
    }
    let len = (len + 7) & !7;
    // Common records fit a small stack buffer; larger ones take a heap buffer.
    const STACK_WORDS: usize = 48;
    if len <= STACK_WORDS * 8 {
        let mut buf = [0u64; STACK_WORDS];
        encode(&mut buf, len, sub, file, fmt, f, args);
        ring.commit(&mut buf, len);
    } else {
        let mut buf = vec![0u64; len / 8];
        encode(&mut buf, len, sub, file, fmt, f, args);
        ring.commit(&mut buf, len);
    }
}

#[inline]
fn encode(
    buf: &mut [u64],
    len: usize,
    sub: &[u8],
    file: &[u8],
    fmt: &[u8],
    f: &Fields<'_>,
    args: &[Arg<'_>],
) {
    buf[2] = f.mono_ns.to_le();
    buf[3] = f.wall_ns.to_le();
    buf[4] = (f.node as u64 | ((f.thread as u64) << 32)).to_le();
    buf[5] = (f.line as u64
        | ((f.level as u64) << 32)
        | ((args.len() as u64) << 40)
        | ((sub.len() as u64) << 48))
        .to_le();
    buf[6] = (file.len() as u64 | ((fmt.len() as u64) << 16)).to_le();
    let b = &mut words_as_bytes_mut(buf)[..len];
    let mut o = FRAME_HDR;
    for s in [sub, file, fmt] {
        b[o..o + s.len()].copy_from_slice(s);
        o += s.len();
    }
    for a in args {
        match *a {
            Arg::U64(v) => {
                b[o] = TAG_U64;
                b[o + 1..o + 9].copy_from_slice(&v.to_le_bytes());
                o += 9;
            }
            Arg::I64(v) => {
                b[o] = TAG_I64;
                b[o + 1..o + 9].copy_from_slice(&v.to_le_bytes());
                o += 9;
            }
            Arg::F64(v) => {
                b[o] = TAG_F64;
                b[o + 1..o + 9].copy_from_slice(&v.to_bits().to_le_bytes());
                o += 9;
            }
            Arg::Bool(v) => {
                b[o] = TAG_BOOL;
                b[o + 1] = v as u8;
                o += 2;
            }
            Arg::Str(s) => {
                let s = clip(s, MAX_STR_ARG);
                b[o] = TAG_STR;
                b[o + 1..o + 3].copy_from_slice(&(s.len() as u16).to_le_bytes());
                b[o + 3..o + 3 + s.len()].copy_from_slice(s);
                o += 3 + s.len();
            }
        }
    }
}
