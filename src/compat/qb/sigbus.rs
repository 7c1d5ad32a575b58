//! Survives a client truncating a shared-memory file under the server.
//!
//! A libqb client owns its connection's ring files (it must open them
//! read-write), so it can shrink them with `ftruncate` at any time; the
//! server's next access to a page past the new end raises SIGBUS, which would
//! kill the daemon. Each ring registers its mappings here; a process-wide
//! SIGBUS handler that finds the faulting address inside a registered
//! mapping puts a private zero page over that page (the access then completes,
//! reading zeros), and marks the mapping damaged: the server drops that
//! connection at its next look. A fault anywhere else goes to the handler
//! that was there before (Rust's, or the default: the process dies as it
//! would have).

use std::io;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// Registered mappings at most (six per connection: three rings, each a
/// header and a data mapping; 1024 connections by default).
const SLOTS: usize = 8192;

struct Slot {
    used: AtomicBool,
    start: AtomicUsize,
    len: AtomicUsize,
    hit: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    used: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    hit: AtomicBool::new(false),
};
static REGIONS: [Slot; SLOTS] = [EMPTY; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();
/// The handler that was installed before ours (a `sigaction` we own).
static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());

/// One registered mapping; unregistered on drop.
#[derive(Debug)]
pub struct Guard {
    slot: usize,
}

impl Guard {
    /// Whether a SIGBUS hit this mapping (the client truncated its file).
    pub fn damaged(&self) -> bool {
        REGIONS[self.slot].hit.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let s = &REGIONS[self.slot];
        s.start.store(0, Ordering::Release);
        s.len.store(0, Ordering::Release);
        s.hit.store(false, Ordering::Release);
        s.used.store(false, Ordering::Release);
    }
}

/// Registers `len` bytes at `start` (installing the handler on first use).
/// `None` when every slot is taken (the connection is then refused).
pub fn register(start: *mut u8, len: usize) -> io::Result<Guard> {
    install()?;
    for (i, s) in REGIONS.iter().enumerate() {
        if s.used
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            s.hit.store(false, Ordering::Release);
            s.len.store(len, Ordering::Release);
            s.start.store(start as usize, Ordering::Release);
            return Ok(Guard { slot: i });
        }
    }
    Err(io::Error::other("too many shared-memory mappings"))
}

fn install() -> io::Result<()> {
    let mut result = Ok(());
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE.store(page as usize, Ordering::Release);
        }
        // SAFETY: sigaction is plain data (all zeroes valid); we fill the
        // handler, flags and an empty mask, and keep the previous action in a
        // leaked box the handler reads.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
            libc::sigemptyset(&mut action.sa_mask);
            let previous = Box::into_raw(Box::new(std::mem::zeroed::<libc::sigaction>()));
            if libc::sigaction(libc::SIGBUS, &action, previous) != 0 {
                result = Err(io::Error::last_os_error());
                drop(Box::from_raw(previous));
                return;
            }
            PREVIOUS.store(previous, Ordering::Release);
        }
    });
    result
}

/// The SIGBUS handler. Only atomics, mmap(2) and sigaction(2) run here.
extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Acquire);
    for s in &REGIONS {
        let start = s.start.load(Ordering::Acquire);
        let len = s.len.load(Ordering::Acquire);
        if start != 0 && addr >= start && addr < start + len {
            let at = addr & !(page - 1);
            // SAFETY: replaces one page inside a mapping this process made
            // and registered (it is still mapped: unregistering happens
            // before munmap); the zero page makes the faulting access complete.
            let r = unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    page,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if r != libc::MAP_FAILED {
                s.hit.store(true, Ordering::Release);
                return;
            }
            break;
        }
    }
    // Not ours: the previous handler takes the fault again on return.
    let previous = PREVIOUS.load(Ordering::Acquire);
    // SAFETY: `previous` is the action saved at install (never freed), or
    // null; with null the default action is restored.
    unsafe {
        if previous.is_null() {
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
        } else {
            libc::sigaction(libc::SIGBUS, previous, std::ptr::null_mut());
        }
    }
}
