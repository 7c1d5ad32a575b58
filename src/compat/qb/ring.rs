//! One libqb shared-memory ring buffer (the `QB_IPC_SHM` transport), server side.
//!
//! A ring is two files the server creates and the client maps too:
//!
//! - `<name>-header`: libqb's `struct qb_ringbuffer_shared_s` — `write_pt`,
//!   `read_pt` and `word_size` (u32 words), the absolute paths of both files
//!   (`PATH_MAX` each), a reference count, a process-shared POSIX semaphore
//!   (`sem_t`, posted once per chunk written) and 4 bytes of user data (on the
//!   request ring: the flow-control value the client checks before sending);
//! - `<name>-data`: `word_size` u32 words, mapped twice back to back so that a
//!   chunk crossing the end is contiguous in memory.
//!
//! A chunk is `{size, magic}` (two words) then `size` bytes, padded to a word;
//! the magic is written last by the writer (`0xA1A1A1A1` = ready) and set to
//! `0xD0D0D0D0` by the reader before it moves `read_pt` past the chunk.
//!
//! The client can write anything into these pages at any time, so every value
//! read from them is checked before use (pointers below `word_size`, which the
//! server keeps its own copy of; sizes within the negotiated maximum and the
//! space written) and only copies leave this module.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use super::sigbus;

/// `PATH_MAX` of the path fields in the header.
const PATH_MAX: usize = 4096;
const OFF_WRITE_PT: usize = 0;
const OFF_READ_PT: usize = 4;
const OFF_WORD_SIZE: usize = 8;
const OFF_HDR_PATH: usize = 12;
const OFF_DATA_PATH: usize = OFF_HDR_PATH + PATH_MAX;
const OFF_REF_COUNT: usize = OFF_DATA_PATH + PATH_MAX;
const OFF_SEM: usize = OFF_REF_COUNT + 4;
const OFF_USER_DATA: usize = OFF_SEM + std::mem::size_of::<libc::sem_t>();
/// `sizeof(struct qb_ringbuffer_shared_s)` (aligned to 8) plus the 4 bytes of
/// user data libqb's IPC asks for.
const HEADER_LEN: usize = ((OFF_USER_DATA + 1 + 7) & !7) + 4;

/// A chunk is ready to read.
const MAGIC: u32 = 0xA1A1_A1A1;
/// A chunk was read.
const MAGIC_DEAD: u32 = 0xD0D0_D0D0;
/// A chunk is being written.
const MAGIC_ALLOC: u32 = 0xA110_CED0;
/// The two header words of a chunk.
const CHUNK_HEADER_WORDS: u32 = 2;
/// Space a writer keeps free beyond the chunk (header + one word of padding).
const CHUNK_MARGIN: usize = 4 * 3;

/// Why a ring cannot be used any more: the client broke its invariants.
#[derive(Debug, PartialEq, Eq)]
pub enum RingError {
    /// A pointer, size or magic in the shared pages is impossible.
    Corrupt(&'static str),
}

impl std::fmt::Display for RingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RingError::Corrupt(what) => write!(f, "shared-memory ring corrupted: {what}"),
        }
    }
}

/// A mapping released on drop.
struct Mapping {
    addr: *mut u8,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `addr`/`len` are exactly what mmap returned (or reserved) for
        // this mapping, and nothing refers to it once the ring is dropped.
        unsafe {
            libc::munmap(self.addr.cast(), self.len);
        }
    }
}

/// One ring the server created; the files are removed on drop.
pub struct Ring {
    /// SIGBUS protection of both mappings; dropped (unregistered) before the
    /// mappings are unmapped.
    guards: Vec<sigbus::Guard>,
    header: Mapping,
    data: Mapping,
    /// Words in the data file (the server's own copy: the header's can be
    /// rewritten by the client).
    words: u32,
    /// Largest chunk accepted or written.
    max_chunk: usize,
    header_path: PathBuf,
    data_path: PathBuf,
}

// SAFETY: the mappings are plain shared memory owned by this value; the raw
// pointers are only dereferenced through `&self`/`&mut self` methods, and the
// server uses each ring from one thread at a time.
unsafe impl Send for Ring {}

/// The data file size libqb derives from a maximum message size: room for the
/// message, the margin and one word, rounded up to whole pages.
pub fn data_len(max_msg_size: usize) -> usize {
    let page = page_size();
    (max_msg_size + CHUNK_MARGIN + 1).div_ceil(page) * page
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

fn create_file(path: &Path, len: usize, owner: Option<(u32, u32)>) -> io::Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.set_len(len as u64)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    Ok(f.into())
}

/// The data file `fd` of `len` bytes mapped twice, back to back, in one `2 * len`
/// reservation: a chunk that runs past the end of the ring reads on contiguously
/// into the start (libqb's layout).
fn map_twice(fd: &OwnedFd, len: usize) -> io::Result<Mapping> {
    // SAFETY: an anonymous PROT_NONE reservation; no memory is touched.
    let reserved = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            2 * len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if reserved == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // Owned from here: dropped (unmapped) on the error paths below.
    let data = Mapping {
        addr: reserved.cast(),
        len: 2 * len,
    };
    map_shared(fd, len, Some(data.addr))?;
    // SAFETY: `len` is within the 2 * len reservation.
    map_shared(fd, len, Some(unsafe { data.addr.add(len) }))?;
    Ok(data)
}

fn map_shared(fd: &OwnedFd, len: usize, at: Option<*mut u8>) -> io::Result<*mut u8> {
    let (hint, flags) = match at {
        Some(a) => (a.cast(), libc::MAP_SHARED | libc::MAP_FIXED),
        None => (std::ptr::null_mut(), libc::MAP_SHARED),
    };
    // SAFETY: maps `len` bytes of a file we own; with MAP_FIXED the target
    // range lies inside a reservation made by `Ring::create` for exactly this.
    let p = unsafe {
        libc::mmap(
            hint,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

impl Ring {
    /// Creates `<name>-header` and `<name>-data` for messages up to
    /// `max_msg_size` bytes, handed to `owner` (uid, gid) when given.
    pub fn create(name: &str, max_msg_size: usize, owner: Option<(u32, u32)>) -> io::Result<Ring> {
        let header_path = PathBuf::from(format!("{name}-header"));
        let data_path = PathBuf::from(format!("{name}-data"));
        for p in [&header_path, &data_path] {
            if p.as_os_str().len() >= PATH_MAX {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "ring name too long",
                ));
            }
        }
        let len = data_len(max_msg_size);
        let words = u32::try_from(len / 4)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ring too large"))?;
        // From here, a failure removes what was created.
        let mut guard = FilesGuard(vec![]);
        let hfd = create_file(&header_path, HEADER_LEN, owner)?;
        guard.0.push(header_path.clone());
        let dfd = create_file(&data_path, len, owner)?;
        guard.0.push(data_path.clone());
        let header = Mapping {
            addr: map_shared(&hfd, HEADER_LEN, None)?,
            len: HEADER_LEN,
        };
        let data = map_twice(&dfd, len)?;
        let guards = vec![
            sigbus::register(header.addr, header.len)?,
            sigbus::register(data.addr, data.len)?,
        ];
        let ring = Ring {
            guards,
            header,
            data,
            words,
            max_chunk: max_msg_size,
            header_path,
            data_path,
        };
        ring.init_header()?;
        guard.0.clear();
        Ok(ring)
    }

    /// Fills the header as libqb's creator does: pointers 0, the word size,
    /// both paths, one reference (the client's open makes it 2), an empty
    /// process-shared semaphore, flow control off.
    fn init_header(&self) -> io::Result<()> {
        self.word(OFF_WRITE_PT).store(0, Ordering::Release);
        self.word(OFF_READ_PT).store(0, Ordering::Release);
        self.word(OFF_WORD_SIZE)
            .store(self.words, Ordering::Release);
        for (off, path) in [
            (OFF_HDR_PATH, &self.header_path),
            (OFF_DATA_PATH, &self.data_path),
        ] {
            let b = path.as_os_str().as_encoded_bytes();
            // SAFETY: `off + b.len() < off + PATH_MAX` lies inside the header
            // mapping (checked in `create`); the file is fresh, zero-filled,
            // so the path stays NUL-terminated.
            unsafe {
                std::ptr::copy_nonoverlapping(b.as_ptr(), self.header.addr.add(off), b.len());
            }
        }
        self.ref_count().store(1, Ordering::Release);
        self.user_data().store(0, Ordering::Release);
        // SAFETY: the semaphore field is inside the header mapping and aligned
        // (offset 8208 of a page-aligned mapping); pshared = 1 because client
        // and server are different processes mapping the same file.
        let r = unsafe { libc::sem_init(self.sem(), 1, 0) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off + 4 <= HEADER_LEN && off % 4 == 0);
        // SAFETY: `off` is one of the header's u32 field offsets (4-aligned,
        // inside the mapping, which lives as long as `self`); the client
        // writes them concurrently, hence atomics.
        unsafe { &*self.header.addr.add(off).cast::<AtomicU32>() }
    }

    fn ref_count(&self) -> &AtomicI32 {
        // SAFETY: as in `word`: the i32 reference count field.
        unsafe { &*self.header.addr.add(OFF_REF_COUNT).cast::<AtomicI32>() }
    }

    fn user_data(&self) -> &AtomicI32 {
        // SAFETY: as in `word`: the first 4 bytes of user data (offset 8240,
        // 4-aligned, inside HEADER_LEN).
        unsafe { &*self.header.addr.add(OFF_USER_DATA).cast::<AtomicI32>() }
    }

    fn sem(&self) -> *mut libc::sem_t {
        // SAFETY: the semaphore field lies inside the header mapping.
        unsafe { self.header.addr.add(OFF_SEM).cast() }
    }

    /// The data word at `index` (taken modulo the ring size).
    fn data_word(&self, index: u32) -> &AtomicU32 {
        let i = (index % self.words) as usize;
        // SAFETY: `i < words`, so the word lies in the first copy of the data
        // mapping, which lives as long as `self`.
        unsafe { &*self.data.addr.add(4 * i).cast::<AtomicU32>() }
    }

    /// Words a chunk of `size` bytes occupies, header included.
    fn chunk_words(size: usize) -> u32 {
        CHUNK_HEADER_WORDS + size.div_ceil(4) as u32
    }

    /// Takes the next chunk (a request) into `out`; `None` when the ring is
    /// empty. The chunk is reclaimed: its space goes back to the client.
    pub fn read(&self, out: &mut Vec<u8>) -> Result<Option<usize>, RingError> {
        let read = self.word(OFF_READ_PT).load(Ordering::Acquire);
        let write = self.word(OFF_WRITE_PT).load(Ordering::Acquire);
        if read >= self.words || write >= self.words {
            return Err(RingError::Corrupt("pointer beyond the ring"));
        }
        if read == write {
            return Ok(None);
        }
        match self.data_word(read + 1).load(Ordering::Acquire) {
            MAGIC => {}
            // Written but not committed yet: the notification comes later.
            MAGIC_ALLOC => return Ok(None),
            _ => return Err(RingError::Corrupt("bad chunk magic")),
        }
        // Take the chunk's semaphore post first, as libqb's reader does. The
        // writer posts after committing, so a committed chunk may not be
        // posted yet: then leave it (its notification byte follows the post).
        // Consuming it before the post would leave the count one above the
        // chunks in the ring, and libqb's writer takes an empty ring with a
        // positive count for a full one: the client would get
        // CS_ERR_TRY_AGAIN forever.
        // SAFETY: the semaphore was initialised by `init_header`.
        if unsafe { libc::sem_trywait(self.sem()) } != 0 {
            return Ok(None);
        }
        let size = self.data_word(read).load(Ordering::Acquire) as usize;
        let used = (write + self.words - read) % self.words;
        if size > self.max_chunk || Self::chunk_words(size) > used {
            return Err(RingError::Corrupt("chunk size"));
        }
        out.clear();
        out.resize(size, 0);
        let start = ((read + CHUNK_HEADER_WORDS) % self.words) as usize * 4;
        // SAFETY: `start < 4 * words` and `size <= max_chunk < 4 * words`, so
        // the range is inside the doubled mapping (2 * 4 * words bytes); the
        // bytes are copied out and then treated as untrusted input.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data.addr.add(start), out.as_mut_ptr(), size);
        }
        // Reclaim: clear the header, then move the read pointer (libqb's
        // order, so a fast writer never sees a stale header as valid).
        self.data_word(read).store(0, Ordering::Release);
        self.data_word(read + 1)
            .store(MAGIC_DEAD, Ordering::Release);
        let next = (read + Self::chunk_words(size)) % self.words;
        self.word(OFF_READ_PT).store(next, Ordering::Release);
        Ok(Some(size))
    }

    /// Appends one chunk (a reply or callback) and posts the semaphore.
    /// `Ok(false)` when the client has not made room yet.
    pub fn write(&self, bytes: &[u8]) -> Result<bool, RingError> {
        self.write_chunk(bytes, true)
    }

    /// The semaphore's count (chunks posted and not yet taken).
    #[cfg(test)]
    fn posted(&self) -> i32 {
        let mut v: libc::c_int = 0;
        // SAFETY: the semaphore was initialised by `init_header`; `v` outlives the call.
        unsafe { libc::sem_getvalue(self.sem(), &mut v) };
        v
    }

    fn write_chunk(&self, bytes: &[u8], post: bool) -> Result<bool, RingError> {
        if bytes.len() > self.max_chunk {
            return Err(RingError::Corrupt("message above the ring's maximum"));
        }
        let read = self.word(OFF_READ_PT).load(Ordering::Acquire);
        let write = self.word(OFF_WRITE_PT).load(Ordering::Acquire);
        if read >= self.words || write >= self.words {
            return Err(RingError::Corrupt("pointer beyond the ring"));
        }
        let free_words = if write >= read {
            read + self.words - write - 1
        } else {
            read - write - 1
        };
        if (free_words as usize) * 4 < bytes.len() + CHUNK_MARGIN {
            return Ok(false);
        }
        self.data_word(write).store(0, Ordering::Release);
        self.data_word(write + 1)
            .store(MAGIC_ALLOC, Ordering::Release);
        let start = ((write + CHUNK_HEADER_WORDS) % self.words) as usize * 4;
        // SAFETY: as in `read`: the range fits the doubled mapping; the space
        // is free (between the write and read pointers).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data.addr.add(start), bytes.len());
        }
        self.data_word(write)
            .store(bytes.len() as u32, Ordering::Release);
        let next = (write + Self::chunk_words(bytes.len())) % self.words;
        self.word(OFF_WRITE_PT).store(next, Ordering::Release);
        self.data_word(write + 1).store(MAGIC, Ordering::Release);
        if post {
            // SAFETY: the semaphore was initialised by `init_header`.
            unsafe {
                libc::sem_post(self.sem());
            }
        }
        Ok(true)
    }

    /// Whether the client truncated a file under us (a SIGBUS was caught in
    /// one of the mappings): nothing read from the ring can be trusted now.
    pub fn damaged(&self) -> bool {
        self.guards.iter().any(sigbus::Guard::damaged)
    }

    /// Sets the flow-control value the client reads before each send (0 =
    /// send; 1 or 2 = `CS_ERR_TRY_AGAIN` for the calls that check it).
    pub fn set_flow_control(&self, value: i32) {
        self.user_data().store(value, Ordering::Release);
    }

    /// The flow-control value (for tests).
    #[cfg(test)]
    pub fn flow_control(&self) -> i32 {
        self.user_data().load(Ordering::Acquire)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // A client still mapping it sees the connection gone (libqb checks the
        // count before each send), and the files disappear now; its mapping
        // stays valid until it unmaps.
        self.ref_count().store(0, Ordering::Release);
        // SAFETY: initialised in `init_header`; glibc's sem_destroy only
        // checks the value, waking nobody.
        unsafe {
            libc::sem_destroy(self.sem());
        }
        let _ = std::fs::remove_file(&self.header_path);
        let _ = std::fs::remove_file(&self.data_path);
    }
}

/// Removes half-created ring files.
struct FilesGuard(Vec<PathBuf>);

impl Drop for FilesGuard {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "phalanx-ring-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A second mapping of the same files, standing in for the client side
    /// (the real client is libqb, in tests/compat_ipc.rs).
    fn peer(ring: &Ring) -> Ring {
        let hfd: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&ring.header_path)
            .unwrap()
            .into();
        let dfd: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&ring.data_path)
            .unwrap()
            .into();
        let len = ring.words as usize * 4;
        let header = Mapping {
            addr: map_shared(&hfd, HEADER_LEN, None).unwrap(),
            len: HEADER_LEN,
        };
        let data = map_twice(&dfd, len).unwrap();
        Ring {
            guards: Vec::new(),
            header,
            data,
            words: ring.words,
            max_chunk: ring.max_chunk,
            // Paths of a scratch name, so dropping the peer leaves the files.
            header_path: PathBuf::from("/nonexistent/peer-h"),
            data_path: PathBuf::from("/nonexistent/peer-d"),
        }
    }

    #[test]
    fn header_layout_matches_libqb_on_this_platform() {
        assert_eq!(OFF_REF_COUNT, 8204);
        assert_eq!(OFF_SEM, 8208);
        assert_eq!(OFF_USER_DATA, 8240);
        assert_eq!(HEADER_LEN, 8252);
        assert_eq!(data_len(65536) % page_size(), 0);
        assert!(data_len(65536) > 65536 + CHUNK_MARGIN);
    }

    #[test]
    fn chunks_cross_the_end_of_the_ring_intact_and_in_order() {
        let d = dir();
        let server = Ring::create(&format!("{}/qb-request-cpg", d.display()), 5000, None).unwrap();
        let client = peer(&server);
        let mut out = Vec::new();
        let mut next_in = 0u32;
        // Messages of odd sizes so chunks wrap at every offset.
        for i in 0..2000u32 {
            let msg: Vec<u8> = (0..(i % 1500 + 1)).map(|b| (b ^ i) as u8).collect();
            while !client.write(&msg).unwrap() {
                let n = server
                    .read(&mut out)
                    .unwrap()
                    .expect("full ring has chunks");
                let want = next_in % 1500 + 1;
                assert_eq!(n as u32, want);
                assert!(
                    out.iter()
                        .enumerate()
                        .all(|(b, v)| *v == (b as u32 ^ next_in) as u8)
                );
                next_in += 1;
            }
        }
        while let Some(n) = server.read(&mut out).unwrap() {
            assert_eq!(n as u32, next_in % 1500 + 1);
            next_in += 1;
        }
        assert_eq!(next_in, 2000);
        drop(client);
        let h = server.header_path.clone();
        drop(server);
        assert!(!h.exists(), "files removed on drop");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_chunk_committed_but_not_yet_posted_is_left_for_later() {
        let d = dir();
        let server = Ring::create(&format!("{}/qb-request-cpg", d.display()), 5000, None).unwrap();
        let client = peer(&server);
        let mut out = Vec::new();
        // The client's writer commits, then posts: between the two the
        // chunk is complete but must not be taken.
        assert!(client.write_chunk(b"early", false).unwrap());
        assert_eq!(server.read(&mut out), Ok(None));
        // SAFETY: the semaphore was initialised by `init_header`.
        unsafe { libc::sem_post(client.sem()) };
        assert_eq!(server.read(&mut out), Ok(Some(5)));
        assert_eq!(out, b"early");
        // Count and chunks agree again: an empty ring with a zero count
        // (libqb's writer would take a positive count for a full ring).
        assert_eq!(server.posted(), 0);
        assert_eq!(server.read(&mut out), Ok(None));
        drop(client);
        drop(server);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn corrupt_pointers_sizes_and_magic_are_errors_not_crashes() {
        let d = dir();
        let server = Ring::create(&format!("{}/qb-request-cpg", d.display()), 5000, None).unwrap();
        let client = peer(&server);
        let mut out = Vec::new();
        client.word(OFF_WRITE_PT).store(u32::MAX, Ordering::Release);
        assert!(server.read(&mut out).is_err());
        assert!(server.write(b"x").is_err());
        client.word(OFF_WRITE_PT).store(0, Ordering::Release);
        assert!(client.write(b"hello").unwrap());
        client.data_word(0).store(1 << 30, Ordering::Release);
        assert_eq!(server.read(&mut out), Err(RingError::Corrupt("chunk size")));
        client.data_word(1).store(0x1234, Ordering::Release);
        assert_eq!(
            server.read(&mut out),
            Err(RingError::Corrupt("bad chunk magic"))
        );
        assert!(server.write(&vec![0u8; 5001]).is_err(), "above the maximum");
        drop(client);
        drop(server);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_client_truncating_the_files_damages_the_ring_without_crashing() {
        let d = dir();
        let server = Ring::create(&format!("{}/qb-request-cpg", d.display()), 5000, None).unwrap();
        let client = peer(&server);
        assert!(client.write(b"before").unwrap());
        assert!(!server.damaged());
        // (The stand-in's own mappings are not guarded: gone before the cut.)
        drop(client);
        for p in [&server.data_path, &server.header_path] {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(0)
                .unwrap();
        }
        // Every access now faults: caught, zeros read, the ring marked damaged.
        let mut out = Vec::new();
        let _ = server.read(&mut out);
        let _ = server.write(b"after");
        assert!(server.damaged());
        drop(server);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn flow_control_is_the_first_user_data_word() {
        let d = dir();
        let server = Ring::create(&format!("{}/qb-x", d.display()), 4096, None).unwrap();
        assert_eq!(server.ref_count().load(Ordering::Acquire), 1);
        server.set_flow_control(2);
        let client = peer(&server);
        assert_eq!(client.flow_control(), 2);
        drop(client);
        drop(server);
        let _ = std::fs::remove_dir_all(d);
    }
}
