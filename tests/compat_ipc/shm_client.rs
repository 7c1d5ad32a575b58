//! A hand-rolled client of libqb's shared-memory transport, so the tests can
//! misbehave on purpose in ways the real libraries never do (scribble on the
//! rings, write oversized chunks, truncate the files, never read callbacks).
//! Layouts as in libqb 2.0 on x86-64 Linux (docs/compat.md).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

const HEADER_LEN: usize = 8252;
const OFF_WRITE_PT: usize = 0;
const OFF_READ_PT: usize = 4;
const OFF_WORD_SIZE: usize = 8;
const OFF_DATA_PATH: usize = 4108;
const OFF_REF_COUNT: usize = 8204;
const OFF_SEM: usize = 8208;
const MAGIC: u32 = 0xA1A1_A1A1;

/// One ring mapped as a client maps it (data mapped once: chunks that cross
/// the end are copied in two parts).
pub struct ClientRing {
    header: *mut u8,
    data: *mut u8,
    words: u32,
    /// The data file, for truncating it.
    pub data_file: File,
}

// SAFETY: the mappings belong to this value alone; the tests use each client
// from one thread at a time.
unsafe impl Send for ClientRing {}

impl Drop for ClientRing {
    fn drop(&mut self) {
        // SAFETY: exactly the mappings made in `open`, unused from now on.
        unsafe {
            libc::munmap(self.header.cast(), HEADER_LEN);
            libc::munmap(self.data.cast(), self.words as usize * 4);
        }
    }
}

fn map(file: &File, len: usize) -> *mut u8 {
    // SAFETY: a shared read-write mapping of a file we opened read-write.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(
        p,
        libc::MAP_FAILED,
        "mmap: {}",
        std::io::Error::last_os_error()
    );
    p.cast()
}

impl ClientRing {
    fn open(name: &str) -> ClientRing {
        let rw = |p: &str| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .unwrap_or_else(|e| panic!("{p}: {e}"))
        };
        let hfile = rw(&format!("{name}-header"));
        let header = map(&hfile, HEADER_LEN);
        // SAFETY: the data path field is inside the header mapping and
        // NUL-terminated by the server.
        let data_path = unsafe {
            std::ffi::CStr::from_ptr(header.add(OFF_DATA_PATH).cast())
                .to_str()
                .unwrap()
                .to_string()
        };
        let data_file = rw(&data_path);
        let mut ring = ClientRing {
            header,
            data: std::ptr::null_mut(),
            words: 0,
            data_file,
        };
        ring.words = ring.word(OFF_WORD_SIZE).load(Ordering::Acquire);
        ring.data = map(&ring.data_file, ring.words as usize * 4);
        // SAFETY: the reference count field, inside the header mapping.
        let refs = unsafe { &*header.add(OFF_REF_COUNT).cast::<AtomicI32>() };
        refs.fetch_add(1, Ordering::AcqRel);
        ring
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: a 4-aligned u32 field inside the header mapping.
        unsafe { &*self.header.add(off).cast::<AtomicU32>() }
    }

    fn data_word(&self, i: u32) -> &AtomicU32 {
        // SAFETY: index reduced modulo the ring's words, inside the mapping.
        unsafe {
            &*self
                .data
                .add(4 * (i % self.words) as usize)
                .cast::<AtomicU32>()
        }
    }

    fn sem(&self) -> *mut libc::sem_t {
        // SAFETY: the semaphore field, inside the header mapping.
        unsafe { self.header.add(OFF_SEM).cast() }
    }

    fn copy_in(&self, word: u32, bytes: &[u8]) {
        for (k, b) in bytes.iter().enumerate() {
            let at = (word as usize * 4 + k) % (self.words as usize * 4);
            // SAFETY: `at` is inside the data mapping.
            unsafe { *self.data.add(at) = *b };
        }
    }

    fn copy_out(&self, word: u32, len: usize) -> Vec<u8> {
        (0..len)
            .map(|k| {
                let at = (word as usize * 4 + k) % (self.words as usize * 4);
                // SAFETY: `at` is inside the data mapping.
                unsafe { *self.data.add(at) }
            })
            .collect()
    }

    /// Writes one chunk claiming `size` bytes but carrying `bytes` (equal for
    /// an honest chunk), as libqb's writer does, and posts the semaphore.
    pub fn write_chunk(&self, bytes: &[u8], size: u32) {
        let w = self.word(OFF_WRITE_PT).load(Ordering::Acquire);
        self.copy_in(w + 2, bytes);
        self.data_word(w).store(size, Ordering::Release);
        let next = (w + 2 + (bytes.len() as u32).div_ceil(4)) % self.words;
        self.word(OFF_WRITE_PT).store(next, Ordering::Release);
        self.data_word(w + 1).store(MAGIC, Ordering::Release);
        // SAFETY: the server initialised the process-shared semaphore.
        unsafe { libc::sem_post(self.sem()) };
    }

    /// Waits (at most `limit`) for the semaphore, then takes one chunk.
    pub fn read_chunk(&self, limit: Duration) -> Option<Vec<u8>> {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into `now`.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
        let deadline = libc::timespec {
            tv_sec: now.tv_sec + limit.as_secs() as libc::time_t,
            tv_nsec: now.tv_nsec,
        };
        // SAFETY: as above; sem_timedwait reads `deadline`.
        if unsafe { libc::sem_timedwait(self.sem(), &deadline) } != 0 {
            return None;
        }
        let r = self.word(OFF_READ_PT).load(Ordering::Acquire);
        assert_eq!(self.data_word(r + 1).load(Ordering::Acquire), MAGIC);
        let size = self.data_word(r).load(Ordering::Acquire) as usize;
        let out = self.copy_out(r + 2, size);
        self.data_word(r).store(0, Ordering::Release);
        self.data_word(r + 1).store(0xD0D0_D0D0, Ordering::Release);
        let next = (r + 2 + (size as u32).div_ceil(4)) % self.words;
        self.word(OFF_READ_PT).store(next, Ordering::Release);
        Some(out)
    }

    /// Overwrites the write pointer (corruption on purpose).
    pub fn set_write_pt(&self, v: u32) {
        self.word(OFF_WRITE_PT).store(v, Ordering::Release);
    }
}

/// A shared-memory connection to one service.
pub struct ShmClient {
    /// The setup socket: notifications both ways, EOF = disconnected.
    pub setup: UnixStream,
    /// Requests.
    pub request: ClientRing,
    /// Replies.
    pub response: ClientRing,
    /// Callbacks (a misbehaving client may never read them).
    pub event: ClientRing,
}

fn abstract_addr(name: &str) -> SocketAddr {
    let mut padded = [0u8; 107];
    padded[..name.len()].copy_from_slice(name.as_bytes());
    SocketAddr::from_abstract_name(padded).unwrap()
}

fn name_at(answer: &[u8], i: usize) -> String {
    let field = &answer[40 + i * 4096..40 + (i + 1) * 4096];
    let end = field.iter().position(|&b| b == 0).unwrap();
    std::str::from_utf8(&field[..end]).unwrap().to_string()
}

impl ShmClient {
    /// Connects to `service` (current network namespace) as libqb does.
    pub fn connect(service: &str) -> ShmClient {
        let setup = UnixStream::connect_addr(&abstract_addr(service)).unwrap();
        let mut hello = vec![0u8; 24];
        hello[0..4].copy_from_slice(&(-1i32).to_ne_bytes());
        hello[8..12].copy_from_slice(&24i32.to_ne_bytes());
        hello[16..20].copy_from_slice(&(1u32 << 20).to_ne_bytes());
        (&setup).write_all(&hello).unwrap();
        let mut answer = vec![0u8; 12328];
        (&setup).read_exact(&mut answer).unwrap();
        let field = |at: usize| i32::from_ne_bytes(answer[at..at + 4].try_into().unwrap());
        assert_eq!(field(16), 0, "refused");
        assert_eq!(field(24), 1, "QB_IPC_SHM");
        setup
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        ShmClient {
            request: ClientRing::open(&name_at(&answer, 0)),
            response: ClientRing::open(&name_at(&answer, 1)),
            event: ClientRing::open(&name_at(&answer, 2)),
            setup,
        }
    }

    /// Puts `bytes` in the request ring and announces it with one byte.
    pub fn send(&self, bytes: &[u8]) {
        self.request.write_chunk(bytes, bytes.len() as u32);
        self.notify();
    }

    /// The one-byte request notification.
    pub fn notify(&self) {
        let _ = (&self.setup).write_all(&[0]);
    }

    /// Sends `bytes`, returns the reply's error field.
    pub fn call(&self, bytes: &[u8]) -> i32 {
        self.send(bytes);
        let reply = self
            .response
            .read_chunk(Duration::from_secs(10))
            .expect("no reply within 10 s");
        assert!(reply.len() >= 24, "reply of {} bytes", reply.len());
        i32::from_ne_bytes(reply[16..20].try_into().unwrap())
    }

    /// Waits until the server closes the connection (EOF on the setup socket;
    /// callback notification bytes before it are skipped).
    pub fn closed_by_server(&self) -> bool {
        let mut b = [0u8; 4096];
        loop {
            match (&self.setup).read(&mut b) {
                Ok(0) => return true,
                Ok(_) => {}
                // The server closed before reading this client's last notification
                // byte: Linux reports that close as a reset, not an end of file.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}
