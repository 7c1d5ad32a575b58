//! Reading a recorder back: from a file (live or after a crash), from bytes, or from a
//! live [`Logger`](crate::Logger).
//!
//! The reader is total: any byte string yields a [`Snapshot`] or an [`Error`], never a
//! panic, and never allocates more than the input's size plus the records it returns.

use crate::ring::{
    FRAME_HDR, HEADER_LEN, MAGIC, MAX_ARGS, MAX_CAPACITY, MAX_FRAME, MIN_CAPACITY, TAG_BOOL,
    TAG_F64, TAG_I64, TAG_STR, TAG_U64, VERSION, header_crc,
};
use crate::{Arg, Error, Level, Record, format_args_deferred};
use std::path::Path;

/// Everything a reader recovered from one recorder.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Data capacity of the ring, in bytes.
    pub capacity: u64,
    /// The write cursor: total bytes ever reserved by writers.
    pub cursor: u64,
    /// Wall time when the recorder was created (0 for in-memory recorders).
    pub created_wall_ns: u64,
    /// Process id of the creator.
    pub pid: u32,
    /// The intact records, oldest first.
    pub records: Vec<Record>,
    /// Absolute position just past the last intact record (`cursor` when the newest
    /// record is intact; less when records were in flight or torn at the end).
    pub valid_end: u64,
    /// Number of damaged regions skipped between intact records (torn or overwritten
    /// frames; the partially overwritten oldest frame is not counted).
    pub damaged: u64,
    /// Bytes that did not belong to any intact record, including the oldest partial one.
    pub skipped_bytes: u64,
    /// The data region was shorter than the header says (the missing part reads as
    /// empty).
    pub truncated: bool,
}

/// Reads a recorder file. The file may be live (being written by another process) or
/// left behind by a crash.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; the header errors of [`read_bytes`].
pub fn read_file(path: impl AsRef<Path>) -> Result<Snapshot, Error> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_bytes(&bytes)
}

/// Decodes a recorder image (a file's bytes or a [`Logger::snapshot_bytes`] result).
///
/// Damaged records are skipped and counted; a damaged header is an error.
///
/// [`Logger::snapshot_bytes`]: crate::Logger::snapshot_bytes
///
/// # Errors
/// [`Error::Truncated`], [`Error::NotARecorder`], [`Error::UnsupportedVersion`],
/// [`Error::CorruptHeader`].
pub fn read_bytes(bytes: &[u8]) -> Result<Snapshot, Error> {
    if bytes.len() < 56 {
        if bytes.len() >= 8 && bytes[..8] != MAGIC {
            return Err(Error::NotARecorder);
        }
        return Err(Error::Truncated {
            len: bytes.len(),
            need: HEADER_LEN,
        });
    }
    if bytes[..8] != MAGIC {
        return Err(Error::NotARecorder);
    }
    let u32_at =
        |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
    let version = u32_at(8);
    if version != VERSION {
        return Err(Error::UnsupportedVersion(version));
    }
    if u32_at(52) != header_crc(&bytes[..56]) {
        return Err(Error::CorruptHeader("header checksum mismatch"));
    }
    if u32_at(12) as usize != HEADER_LEN {
        return Err(Error::CorruptHeader("unexpected header length"));
    }
    let capacity = u64_at(16);
    if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        return Err(Error::CorruptHeader(
            "capacity is not a power of two in range",
        ));
    }
    if bytes.len() < HEADER_LEN {
        return Err(Error::Truncated {
            len: bytes.len(),
            need: HEADER_LEN,
        });
    }
    let data = &bytes[HEADER_LEN..];
    let mut snap = Snapshot {
        capacity,
        cursor: u64_at(24),
        created_wall_ns: u64_at(32),
        pid: u32_at(40),
        truncated: (data.len() as u64) < capacity,
        ..Snapshot::default()
    };
    let data = &data[..data.len().min(capacity as usize)];
    scan(data, &mut snap);
    Ok(snap)
}

/// The data region viewed as a ring of `capacity` bytes of which `data` is present.
struct View<'a> {
    data: &'a [u8],
    mask: u64,
}

impl View<'_> {
    /// The 8-byte word at absolute position `p` (8-aligned); missing bytes read 0.
    #[inline]
    fn word(&self, p: u64) -> u64 {
        let off = (p & self.mask) as usize;
        match self.data.get(off..off + 8) {
            Some(w) => u64::from_le_bytes(w.try_into().unwrap_or([0; 8])),
            None => {
                let mut w = [0u8; 8];
                if let Some(rest) = self.data.get(off..) {
                    w[..rest.len().min(8)].copy_from_slice(&rest[..rest.len().min(8)]);
                }
                u64::from_le_bytes(w)
            }
        }
    }
}

fn scan(data: &[u8], snap: &mut Snapshot) {
    let cap = snap.capacity;
    let view = View {
        data,
        mask: cap - 1,
    };
    let present = (data.len() as u64) & !7;
    // Writers never get near 2^62 bytes; clamping keeps the arithmetic below overflow
    // for any cursor a damaged file may hold.
    let cursor = snap.cursor.min(1 << 62);
    let end = cursor & !7;
    let mut p = (cursor.saturating_sub(cap) + 7) & !7;
    snap.valid_end = p;
    let mut frame = Vec::with_capacity(1024);
    let mut in_gap = false;
    let mut seen_valid = false;
    while p + FRAME_HDR as u64 <= end {
        let off = p & (cap - 1);
        if off >= present {
            // Missing (truncated) part of the data: jump to the ring's start.
            let step = (cap - off).min(end - p);
            snap.skipped_bytes += step;
            p += step;
            in_gap = true;
            continue;
        }
        if let Some((len, rec)) = frame_at(&view, p, end, &mut frame) {
            if in_gap && seen_valid {
                snap.damaged += 1;
            }
            in_gap = false;
            seen_valid = true;
            snap.records.push(rec);
            p += len;
            snap.valid_end = p;
            continue;
        }
        in_gap = true;
        snap.skipped_bytes += 8;
        p += 8;
    }
    snap.skipped_bytes += end.saturating_sub(p);
}

/// Validates and decodes the frame at `p`, returning its length and record.
fn frame_at(view: &View<'_>, p: u64, end: u64, frame: &mut Vec<u8>) -> Option<(u64, Record)> {
    let w0 = view.word(p);
    if view.word(p + 8) != p {
        return None;
    }
    let len = w0 as u32 as u64;
    let crc = (w0 >> 32) as u32;
    if len < FRAME_HDR as u64 || len % 8 != 0 || len > MAX_FRAME as u64 || p + len > end {
        return None;
    }
    frame.clear();
    let mut q = p;
    while q < p + len {
        frame.extend_from_slice(&view.word(q).to_le_bytes());
        q += 8;
    }
    let want = crc32c::crc32c_append(crc32c::crc32c(&(len as u32).to_le_bytes()), &frame[8..]);
    if want != crc {
        return None;
    }
    Some((len, decode_frame(frame)?))
}

/// Decodes a checksummed frame; `None` if its fields are inconsistent.
fn decode_frame(b: &[u8]) -> Option<Record> {
    let u64_at =
        |o: usize| -> Option<u64> { Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?)) };
    let mono_ns = u64_at(16)?;
    let wall_ns = u64_at(24)?;
    let w4 = u64_at(32)?;
    let w5 = u64_at(40)?;
    let w6 = u64_at(48)?;
    let level = Level::from_u8((w5 >> 32) as u8)?;
    let nargs = (w5 >> 40) as u8 as usize;
    let sub_len = (w5 >> 48) as u8 as usize;
    let file_len = w6 as u16 as usize;
    let fmt_len = (w6 >> 16) as u16 as usize;
    if nargs > MAX_ARGS {
        return None;
    }
    let mut o = FRAME_HDR;
    let take = |n: usize, o: &mut usize| -> Option<&[u8]> {
        let s = b.get(*o..o.checked_add(n)?)?;
        *o += n;
        Some(s)
    };
    let subsystem = String::from_utf8_lossy(take(sub_len, &mut o)?).into_owned();
    let file = String::from_utf8_lossy(take(file_len, &mut o)?).into_owned();
    let format = String::from_utf8_lossy(take(fmt_len, &mut o)?);
    let mut strs: Vec<std::borrow::Cow<'_, str>> = Vec::new();
    let mut raw: Vec<(u8, u64, usize)> = Vec::with_capacity(nargs);
    for _ in 0..nargs {
        let tag = *take(1, &mut o)?.first()?;
        match tag {
            TAG_U64 | TAG_I64 | TAG_F64 => {
                let v = u64::from_le_bytes(take(8, &mut o)?.try_into().ok()?);
                raw.push((tag, v, 0));
            }
            TAG_BOOL => {
                let v = *take(1, &mut o)?.first()?;
                raw.push((tag, u64::from(v != 0), 0));
            }
            TAG_STR => {
                let l = take(2, &mut o)?;
                let l = u16::from_le_bytes([l[0], l[1]]) as usize;
                strs.push(String::from_utf8_lossy(take(l, &mut o)?));
                raw.push((tag, 0, strs.len() - 1));
            }
            _ => return None,
        }
    }
    let args: Vec<Arg<'_>> = raw
        .iter()
        .map(|&(tag, v, si)| match tag {
            TAG_U64 => Arg::U64(v),
            TAG_I64 => Arg::I64(v as i64),
            TAG_F64 => Arg::F64(f64::from_bits(v)),
            TAG_BOOL => Arg::Bool(v != 0),
            _ => Arg::Str(strs.get(si).map(|s| s.as_ref()).unwrap_or("")),
        })
        .collect();
    Some(Record {
        mono_ns,
        wall_ns,
        level,
        subsystem,
        node: w4 as u32,
        thread: (w4 >> 32) as u32,
        file,
        line: w5 as u32,
        message: format_args_deferred(&format, &args),
    })
}

/// Whether `head` (the first 56 bytes) is a valid header of a ring of `capacity`.
pub(crate) fn header_ok(head: &[u8; 56], capacity: u64) -> bool {
    head[..8] == MAGIC
        && head[8..12] == VERSION.to_le_bytes()
        && head[12..16] == (HEADER_LEN as u32).to_le_bytes()
        && head[16..24] == capacity.to_le_bytes()
        && head[52..56] == header_crc(head).to_le_bytes()
}

/// Helpers for the fuzz target and robustness tests (not a stable API).
#[doc(hidden)]
pub mod fuzzing {
    use crate::ring::{HEADER_LEN, MIN_CAPACITY, build_header};

    /// An image with a valid header of the smallest capacity whose cursor is taken from
    /// the first 8 bytes of `data` and whose data region is the rest of `data`, so that
    /// fuzzing reaches the frame decoder.
    pub fn image_with_valid_header(data: &[u8]) -> Vec<u8> {
        let mut c = [0u8; 8];
        let n = data.len().min(8);
        c[..n].copy_from_slice(&data[..n]);
        let mut img = vec![0u8; HEADER_LEN];
        img[..56].copy_from_slice(&build_header(MIN_CAPACITY, u64::from_le_bytes(c), 0));
        img.extend_from_slice(&data[n..]);
        img
    }

    /// Recomputes the header checksum of `image` after a test edited header fields.
    pub fn fix_header_crc(image: &mut [u8]) {
        if image.len() >= 56 {
            let crc = crate::ring::header_crc(&image[..56]);
            image[52..56].copy_from_slice(&crc.to_le_bytes());
        }
    }
}
