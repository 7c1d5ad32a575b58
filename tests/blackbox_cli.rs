//! `phalanx-blackbox` end to end: filters, JSON, merging nodes' files, bad files.

use phalanx_logsys::{Logger, record};
use std::path::PathBuf;
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("phalanx-cli-{}-{name}", std::process::id()))
}

fn blackbox(args: &[&str]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_phalanx-blackbox"))
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.code().unwrap(),
    )
}

/// Two nodes' recorders with interleaved virtual times (memory rings dumped on demand,
/// so no wall time: the timeline uses the monotonic time).
fn two_nodes(tag: &str) -> (PathBuf, PathBuf) {
    let (a, b) = (Logger::memory(1 << 16), Logger::memory(1 << 16));
    for t in 0..5u64 {
        record!(a, t * 10, 1, Info, "totem", "a{}", t);
        record!(b, t * 10 + 5, 2, Debug, "cpg", "b{}", t);
    }
    record!(a, 100, 1, Error, "quorum", "lost quorum\nsecond line");
    let (pa, pb) = (tmp(&format!("{tag}-a")), tmp(&format!("{tag}-b")));
    a.dump_to_file(&pa).unwrap();
    b.dump_to_file(&pb).unwrap();
    (pa, pb)
}

fn messages(out: &str) -> Vec<&str> {
    out.lines().map(|l| l.rsplit(' ').next().unwrap()).collect()
}

#[test]
fn prints_merges_and_filters() {
    let (a, b) = two_nodes("merge");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let (out, _, code) = blackbox(&[a]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 6);
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with("- 0.000000000 node=1 tid=0 INFO   totem "),
        "{first}"
    );
    assert!(first.contains("tests/blackbox_cli.rs:") && first.ends_with(" a0"));
    assert!(out.ends_with("lost quorum\\nsecond line\n"), "{out}");
    let (out, _, _) = blackbox(&[a, b]);
    assert_eq!(
        messages(&out)[..10],
        ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3", "a4", "b4"]
    );
    let (out, _, _) = blackbox(&["--level", "info", a, b]);
    assert!(!out.contains("cpg"));
    let range = ["--since", "0.000000015", "--until", "0.000000035"];
    let (out, _, _) = blackbox(&[&["-s", "cpg"][..], &range, &[a, b]].concat());
    assert_eq!(messages(&out), ["b1", "b2", "b3"]);
    let (out, _, _) = blackbox(&["--json", "-l", "error", a, b]);
    assert_eq!(out.lines().count(), 1);
    let head =
        format!("{{\"source\":\"{a}\",\"mono_ns\":100,\"wall_ns\":0,\"time\":null,\"node\":1,");
    assert!(out.starts_with(&head), "{out}");
    assert!(
        out.ends_with("\"message\":\"lost quorum\\nsecond line\"}\n"),
        "{out}"
    );
}

#[test]
fn reads_a_live_file_logger_with_wall_times() {
    let path = tmp("live");
    let log = Logger::file(&path, 64 * 1024).unwrap();
    record!(log, 1, 4, Notice, "cib", "epoch {}", 3u64);
    let (out, _, code) = blackbox(&["--stats", path.to_str().unwrap()]);
    assert_eq!(code, 0);
    let line = out.lines().next().unwrap();
    // RFC 3339 wall time with nanoseconds leads the line.
    assert_eq!(line.split(' ').next().unwrap().len(), 30, "{line}");
    assert!(line.ends_with(" epoch 3"));
    let now = phalanx_logsys::wall_ns() / 1_000_000_000;
    let since = (now - 60).to_string();
    let (out, _, _) = blackbox(&["--since", &since, path.to_str().unwrap()]);
    assert_eq!(out.lines().count(), 1);
    let until = (now - 60).to_string();
    let (out, _, _) = blackbox(&["--until", &until, path.to_str().unwrap()]);
    assert_eq!(out, "");
}

#[test]
fn bad_files_and_usage_errors_exit_nonzero() {
    let (a, _) = two_nodes("bad");
    let junk = tmp("junk");
    std::fs::write(&junk, b"not a recorder at all").unwrap();
    let (out, err, code) = blackbox(&[junk.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("not a flight-recorder file"), "{err}");
    assert_eq!(out.lines().count(), 6, "the good file is still printed");
    assert_eq!(blackbox(&["--level", "loud", "x"]).2, 2);
    assert_eq!(blackbox(&[]).2, 2);
}
