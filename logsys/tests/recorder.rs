//! Recorder behaviour: memory and file rings, wrap, concurrency, outputs, panic hook.

use phalanx_logsys::{Filter, Level, Logger, Output, read_file, record};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("phalanx-logsys-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn ticks(recs: &[phalanx_logsys::Record]) -> Vec<u64> {
    recs.iter()
        .map(|r| r.message.strip_prefix("tick ").unwrap().parse().unwrap())
        .collect()
}

#[test]
fn memory_logger_keeps_all_fields_and_is_deterministic() {
    let first_line = line!() + 3;
    let run = || {
        let log = Logger::memory(1 << 16);
        record!(
            log,
            5,
            9,
            Trace,
            "totem",
            "a={} b={} c={} d={} e={}",
            1u8,
            -2i32,
            0.5f64,
            true,
            "x"
        );
        record!(log, 6, 9, Error, "cpg", "no args");
        log.records()
    };
    let a = run();
    assert_eq!(a, run());
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].message, "a=1 b=-2 c=0.5 d=true e=x");
    assert_eq!((a[0].mono_ns, a[0].node, a[0].level), (5, 9, Level::Trace));
    assert_eq!((a[0].wall_ns, a[0].thread), (0, 0));
    assert_eq!(a[0].subsystem, "totem");
    assert!(a[0].file.ends_with("recorder.rs"));
    assert_eq!(a[1].message, "no args");
    assert_eq!(a[0].line, first_line);
}

#[test]
fn discard_logger_records_nothing() {
    let log = Logger::discard();
    record!(log, 1, 1, Info, "x", "y {}", 1u64);
    assert!(!log.is_enabled());
    assert!(log.records().is_empty());
    assert!(log.snapshot().is_none());
}

#[test]
fn wrapped_ring_keeps_a_contiguous_newest_suffix() {
    let log = Logger::memory(16 * 1024);
    for n in 0..10_000u64 {
        record!(log, n, 1, Debug, "t", "tick {}", n);
    }
    let snap = log.snapshot().unwrap();
    let t = ticks(&snap.records);
    assert!(t.len() > 100, "{}", t.len());
    assert_eq!(*t.last().unwrap(), 9_999);
    assert!(t.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(snap.damaged, 0);
    assert_eq!(snap.valid_end, snap.cursor);
}

#[test]
fn oversized_strings_and_args_are_cut_not_lost() {
    let log = Logger::memory(1 << 16);
    let big = "é".repeat(1000);
    let s = big.as_str();
    record!(
        log,
        1,
        1,
        Info,
        "t",
        "{} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
        s,
        s,
        s,
        s,
        s,
        s,
        s,
        s,
        s,
        s,
        s,
        s,
        s,
        s,
        s,
        s,
        s,
        s
    );
    let r = &log.records()[0];
    // 16 arguments kept, each cut to 256 bytes on a char boundary; the rest shows {?}.
    assert!(r.message.ends_with("{?} {?}"));
    assert_eq!(r.message.matches('é').count(), 16 * 128);
}

#[test]
fn concurrent_writers_lose_nothing() {
    let log = Logger::memory(4 << 20);
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for n in 0..5_000u64 {
                    record!(log, n, t, Info, "t", "tick {}", n);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let snap = log.snapshot().unwrap();
    assert_eq!(snap.records.len(), 20_000);
    assert_eq!(snap.damaged, 0);
    for node in 0..4 {
        let mine: Vec<_> = snap
            .records
            .iter()
            .filter(|r| r.node == node)
            .cloned()
            .collect();
        assert_eq!(ticks(&mine), (0..5_000).collect::<Vec<_>>());
    }
}

#[test]
fn file_logger_round_trips_and_appends_across_restarts() {
    let path = tmp("roundtrip");
    {
        let log = Logger::file(&path, 64 * 1024).unwrap();
        for n in 0..10u64 {
            record!(log, n, 2, Notice, "quorum", "tick {}", n);
        }
        log.flush().unwrap();
        assert_eq!(log.path(), Some(path.as_path()));
    }
    let snap = read_file(&path).unwrap();
    assert_eq!(ticks(&snap.records), (0..10).collect::<Vec<_>>());
    assert!(snap.records.iter().all(|r| r.wall_ns > 0 && r.thread > 0));
    assert_eq!(snap.pid, std::process::id());
    // A restarted process continues the ring with `append`.
    let log = Logger::builder()
        .file(&path, 64 * 1024)
        .append(true)
        .build()
        .unwrap();
    record!(log, 10, 2, Notice, "quorum", "tick {}", 10u64);
    assert_eq!(ticks(&log.records()), (0..=10).collect::<Vec<_>>());
    // Without `append` the file starts afresh.
    let log = Logger::file(&path, 64 * 1024).unwrap();
    record!(log, 0, 2, Notice, "quorum", "tick {}", 0u64);
    assert_eq!(ticks(&read_file(&path).unwrap().records), [0]);
}

#[test]
fn memory_dump_on_demand_is_readable_as_a_file() {
    let log = Logger::memory(1 << 16);
    record!(log, 42, 5, Warn, "dlm", "lock {} granted", "res1");
    let path = tmp("memdump");
    log.dump_to_file(&path).unwrap();
    let snap = read_file(&path).unwrap();
    assert_eq!(snap.records, log.records());
    assert_eq!(snap.records[0].message, "lock res1 granted");
}

#[test]
fn outputs_apply_per_subsystem_filters_and_reopen() {
    let path = tmp("out.log");
    let _ = std::fs::remove_file(&path);
    let sock_path = tmp("syslog.sock");
    let _ = std::fs::remove_file(&sock_path);
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    let log = Logger::builder()
        .memory(1 << 16)
        .output(
            Output::file(
                &path,
                Filter::new(Level::Notice).subsystem("totem", Level::Debug),
            )
            .unwrap(),
        )
        .output(
            Output::syslog_at(
                &sock_path,
                "phx",
                Filter::off().subsystem("cib", Level::Warn),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    record!(log, 1, 1, Debug, "totem", "shown {}", 1u64);
    record!(log, 2, 1, Debug, "cpg", "hidden");
    record!(log, 3, 1, Error, "cib", "to syslog");
    record!(log, 4, 1, Trace, "totem", "hidden too");
    // The ring has everything regardless of filters.
    assert_eq!(log.records().len(), 4);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains(" node=1 tid="), "{}", lines[0]);
    assert!(lines[0].contains(" DEBUG  totem ") && lines[0].contains("tests/recorder.rs:"));
    assert!(lines[0].ends_with(" shown 1"), "{}", lines[0]);
    assert!(lines[1].ends_with("to syslog"));
    // High-resolution wall timestamp first.
    assert_eq!(lines[0].as_bytes()[10], b'T');
    assert_eq!(lines[0].split_whitespace().next().unwrap().len(), 30);
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).unwrap();
    let msg = std::str::from_utf8(&buf[..n]).unwrap();
    assert_eq!(
        msg,
        format!("<27>phx[{}]: [cib] to syslog", std::process::id())
    );
    // Rotation: rename, reopen, write: the new record lands in a new file.
    let rotated = tmp("out.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    log.reopen_outputs().unwrap();
    record!(log, 5, 1, Notice, "cpg", "after rotation");
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .ends_with("after rotation\n")
    );
    assert_eq!(std::fs::read_to_string(&rotated).unwrap(), text);
}

#[test]
fn panic_hook_writes_a_final_record() {
    let path = tmp("panic");
    let dump = tmp("panic.dump");
    let log = Logger::file(&path, 64 * 1024).unwrap();
    phalanx_logsys::install_panic_hook_with_dump(log.clone(), &dump);
    let r = std::thread::Builder::new()
        .name("doomed".into())
        .spawn(|| panic!("boom {}", 7))
        .unwrap()
        .join();
    assert!(r.is_err());
    let _ = std::panic::take_hook();
    for snap in [read_file(&path).unwrap(), read_file(&dump).unwrap()] {
        let last = snap
            .records
            .iter()
            .rfind(|r| r.subsystem == "panic")
            .unwrap();
        assert_eq!(last.level, Level::Error);
        assert_eq!(last.message, "thread 'doomed' panicked: boom 7");
        assert!(last.file.ends_with("recorder.rs"));
    }
}

#[test]
fn logger_is_send_sync_clone_default_debug() {
    fn check<T: Send + Sync + Clone + Default + std::fmt::Debug>() {}
    check::<Logger>();
    assert!(!Logger::default().is_enabled());
}

#[cfg(feature = "log")]
#[test]
fn log_bridge_installed_globally_feeds_the_recorder() {
    let log = Logger::memory(1 << 16);
    phalanx_logsys::bridge_log::LogBridge::new(log.clone(), 4)
        .install()
        .unwrap();
    log::trace!(target: "app", "plain literal {{}}");
    log::warn!(target: "app", "disk {}% full", 91);
    let recs = log.records();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].message, "plain literal {}");
    assert_eq!((recs[0].level, recs[0].node), (Level::Trace, 4));
    assert_eq!(
        (recs[1].level, recs[1].message.as_str()),
        (Level::Warn, "disk 91% full")
    );
    assert!(recs[1].mono_ns > 0 && recs[1].file.ends_with("recorder.rs"));
}
