//! `phalanx-report` on a real 3-node cluster after a `kill -9`: one report whose
//! timeline shows, from all nodes and in order, the kill (the operator's note),
//! the survivors' token loss, their new 2-node ring, the killed node's restart
//! and the 3-node ring it rejoins — with the killed process's own records from
//! before the kill still in it (its flight recorder is appended to, not replaced).

mod common;

use common::conf::{TestDir, corosync_conf, loopback_addrs, one_link};
use common::recorder::start_quorate;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A key-event line of `report.txt`: node tag, boot tag, ring, kind, rest.
#[derive(Debug)]
struct KeyLine {
    node: String,
    boot: String,
    kind: String,
    text: String,
}

fn key_lines(report: &str) -> Vec<KeyLine> {
    let section = report
        .split("== Key events ==")
        .nth(1)
        .expect("a key-events section")
        .split("\n== ")
        .next()
        .unwrap();
    section
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            let (boot, at) = if t[2].starts_with('#') {
                (t[2], 3)
            } else {
                ("", 2)
            };
            assert_eq!(t[at], "ring", "layout of {l:?}");
            KeyLine {
                node: t[1].to_string(),
                boot: boot.to_string(),
                kind: t[at + 2].to_string(),
                text: t[at + 3..].join(" "),
            }
        })
        .collect()
}

/// The first line at or after `from` that `want` accepts; its index.
#[track_caller]
fn find(lines: &[KeyLine], from: usize, what: &str, want: impl Fn(&KeyLine) -> bool) -> usize {
    lines[from..]
        .iter()
        .position(want)
        .map(|i| from + i)
        .unwrap_or_else(|| panic!("no {what} after key line {from}: {lines:#?}"))
}

#[test]
fn a_report_after_a_kill_shows_loss_new_ring_and_rejoin_in_order_from_all_nodes() {
    let dir = TestDir::new("report");
    let addrs = loopback_addrs(3);
    let conf = dir.write_conf(&corosync_conf(
        &dir,
        "report",
        "",
        &one_link(&addrs),
        "quorum {\n    provider: corosync_votequorum\n}\n",
    ));
    let (mut cluster, mut log) = start_quorate(&conf, 3, None);

    let killed_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    cluster.kill9(3);
    cluster.until(
        &mut log,
        "1 and 2 quorate alone",
        Duration::from_secs(20),
        |l| l.quorate_with(1, &[1, 2]) && l.quorate_with(2, &[1, 2]),
    );
    let inc = cluster.spawn(3);
    cluster.until(
        &mut log,
        "all three quorate again",
        Duration::from_secs(20),
        |l| {
            l.incarnation_quorate_with(3, inc, &[1, 2, 3])
                && l.quorate_with(1, &[1, 2, 3])
                && l.quorate_with(2, &[1, 2, 3])
        },
    );

    let events = dir.path.join("events");
    std::fs::write(
        &events,
        format!(
            "# what the operator did\n{}.{:09} n3 kill -9 of node 3\n",
            killed_at.as_secs(),
            killed_at.subsec_nanos()
        ),
    )
    .unwrap();
    let dest = dir.path.join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_phalanx-report"))
        .arg("-c")
        .arg(&conf)
        .arg("--events")
        .arg(&events)
        .arg("-o")
        .arg(&dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "phalanx-report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        dest.display().to_string()
    );
    let report = std::fs::read_to_string(dest.join("report.txt")).unwrap();
    // Shown with --nocapture, and when an assertion below fails.
    eprintln!("{}", report.split("\n== Node 1 ==").next().unwrap());
    let keys = key_lines(&report);

    // The killed process's own records from before the kill are still there.
    let first_boot = find(&keys, 0, "node 3's first ring", |k| {
        k.node == "n3" && k.boot == "#1" && k.kind == "RING" && k.text.contains("3 members")
    });
    let kill = find(&keys, first_boot, "the kill", |k| {
        k.node == "n3" && k.kind == "EXTERNAL"
    });
    let loss = find(&keys, kill, "a survivor's token loss", |k| {
        (k.node == "n1" || k.node == "n2") && k.kind == "TOKEN-LOSS"
    });
    let mut after_loss = loss;
    for n in ["n1", "n2"] {
        let i = find(&keys, loss, &format!("{n}'s 2-node ring"), |k| {
            k.node == n && k.kind == "RING" && k.text.contains("with 2 members")
        });
        after_loss = after_loss.max(i);
    }
    let restart = find(&keys, kill, "node 3's restart", |k| {
        k.node == "n3" && k.boot == "#2" && k.kind == "START"
    });
    for n in ["n1", "n2", "n3"] {
        find(
            &keys,
            restart.max(after_loss),
            &format!("{n}'s 3-node ring"),
            |k| k.node == n && k.kind == "RING" && k.text.contains("with 3 members"),
        );
    }
    // No record of node 3's second process precedes its start.
    assert!(
        keys[..restart]
            .iter()
            .all(|k| !(k.node == "n3" && k.boot == "#2")),
        "{keys:#?}"
    );

    // The live nodes answered: their state is in the report; the full timeline and
    // the HTML page are there, the recorders copied.
    for n in 1..=3 {
        let section = report
            .split(&format!("== Node {n} ==\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no section for node {n}"));
        assert!(
            section.starts_with("-- status --\n"),
            "node {n}: {section:.200}"
        );
        assert!(
            section.contains("quorate, expected votes 3"),
            "node {n}: {section:.400}"
        );
    }
    assert!(report.contains("== Timeline ("));
    let html = std::fs::read_to_string(dest.join("report.html")).unwrap();
    assert!(html.contains("<th>node 1</th><th>node 2</th><th>node 3</th>"));
    assert!(html.contains("kill -9 of node 3"));
    for n in 1..=3 {
        assert!(dest.join(format!("recorders/blackbox-{n}")).is_file());
    }
}

#[test]
fn nothing_readable_is_an_error_and_bad_usage_is_status_2() {
    let dir = TestDir::new("report-empty");
    std::fs::write(dir.path.join("blackbox-4"), b"not a recorder").unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_phalanx-report"))
            .args(args)
            .output()
            .unwrap()
    };
    let state = dir.path.display().to_string();
    let out_dir = dir.path.join("out").display().to_string();
    let out = run(&["--state-dir", &state, "-o", &out_dir]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to report"));
    let empty = dir.path.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = run(&["--state-dir", &empty.display().to_string()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = run(&["--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
