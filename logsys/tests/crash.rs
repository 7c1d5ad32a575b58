//! Crash survival: a real child process writes records until it is `SIGKILL`ed; every
//! record it wrote, except possibly the one in flight, is read back from the file.
//!
//! The child is this test binary re-executed with an environment variable that turns
//! `crash_child_writer` into an endless writer (the same loop as the
//! `flight_recorder` example).

use phalanx_logsys::{Logger, Snapshot, read_file, record};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_FILE: &str = "PHALANX_LOGSYS_CRASH_CHILD_FILE";
const CHILD_THREADS: &str = "PHALANX_LOGSYS_CRASH_CHILD_THREADS";
const SIZE: usize = 1 << 20;

/// Not a test on its own: does nothing unless spawned as the child by the tests below.
#[test]
fn crash_child_writer() {
    let Ok(path) = std::env::var(CHILD_FILE) else {
        return;
    };
    let threads: u32 = std::env::var(CHILD_THREADS).map_or(1, |v| v.parse().unwrap());
    let log = Logger::file(&path, SIZE).unwrap();
    let writers: Vec<_> = (0..threads)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                loop {
                    record!(log, n, t, Info, "example", "tick {}", n);
                    n += 1;
                }
            })
        })
        .collect();
    for w in writers {
        let _ = w.join();
    }
}

fn ticks_of(snap: &Snapshot, node: u32) -> Vec<u64> {
    snap.records
        .iter()
        .filter(|r| r.node == node)
        .map(|r| r.message.strip_prefix("tick ").unwrap().parse().unwrap())
        .collect()
}

/// Spawns the child writer on `path`, waits (polling the file, bounded) until every
/// writer thread has written at least `min_ticks` records, then `kill -9`s it.
fn write_then_sigkill(path: &Path, threads: u32, min_ticks: u64) -> Snapshot {
    let _ = std::fs::remove_file(path);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_FILE, path)
        .env(CHILD_THREADS, threads.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let progress = read_file(path).ok().map(|s| {
            (0..threads)
                .map(|t| ticks_of(&s, t).last().copied().unwrap_or(0))
                .min()
                .unwrap_or(0)
        });
        if progress.is_some_and(|p| p >= min_ticks) {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("child made no progress: {progress:?}");
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("child exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(2)); // poll interval, not synchronisation
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
    }
    read_file(path).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("phalanx-crash-{}-{name}", std::process::id()))
}

/// Frames of `tick <n>` records are at most this long.
const MAX_TICK_FRAME: u64 = 160;

#[test]
fn sigkilled_writer_leaves_every_record_but_the_one_in_flight() {
    let path = tmp("one");
    let snap = write_then_sigkill(&path, 1, 50_000);
    let t = ticks_of(&snap, 0);
    let k = *t.last().unwrap();
    assert!(k >= 50_000, "k = {k}");
    // Exactly 0..=k, or (the ring wrapped) a contiguous suffix ending at k.
    assert!(t.windows(2).all(|w| w[1] == w[0] + 1), "gap in the ticks");
    if t[0] != 0 {
        // Wrapped: the records fill the ring but for the oldest partly overwritten one.
        let span = snap.valid_end - (snap.cursor - snap.capacity);
        assert!(span + MAX_TICK_FRAME >= snap.capacity, "span {span}");
    }
    assert_eq!(snap.damaged, 0);
    // Nothing after the newest intact record but (possibly) the one in flight.
    assert!(snap.cursor - snap.valid_end <= MAX_TICK_FRAME);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn sigkilled_two_thread_writer_loses_at_most_the_records_in_flight_or_lapped() {
    let path = tmp("two");
    let snap = write_then_sigkill(&path, 2, 20_000);
    // Both threads passed 20 000 before the kill; a thread descheduled since then may
    // have had all its records overwritten by the other, so only the newest must be there.
    let mut newest = 0;
    let mut missing = 0;
    for node in 0..2 {
        let t = ticks_of(&snap, node);
        newest = newest.max(t.last().copied().unwrap_or(0));
        assert!(
            t.windows(2).all(|w| w[1] > w[0]),
            "thread {node}'s records out of order"
        );
        missing += t.windows(2).map(|w| w[1] - w[0] - 1).sum::<u64>();
    }
    assert!(newest >= 20_000);
    // Each thread had at most one record in flight at the kill (a torn frame), and
    // at most one stall long enough to be lapped while storing can have overwritten
    // newer records: at most two damaged regions per thread. A record lost inside the
    // window is always inside such a region: a stale write spans one tick frame, so it
    // destroys at most two of the other thread's records and loses its own.
    assert!(snap.damaged <= 4, "damaged {}", snap.damaged);
    assert!(
        missing <= 3 * snap.damaged,
        "{missing} records missing between intact ones, {} damaged regions",
        snap.damaged
    );
    assert!(snap.cursor - snap.valid_end <= 2 * MAX_TICK_FRAME);
    std::fs::remove_file(&path).unwrap();
}
