//! `phalanxd` itself: its command line (`--help` names every flag, a bad flag is
//! refused) and its controller protocol on one node (loopback): bad commands
//! get an error line and change nothing, a text survives the round trip through
//! the escapes, `status` reports the order hash of exactly the deliveries before
//! it, and `leave` ends the process with success.

mod common;

use common::cluster::{Cluster, Observed, Observer};
use common::conf::{TestDir, corosync_conf, loopback_addrs, one_link};
use common::events::{Deliver, Event};
use std::process::Command;
use std::time::Duration;

#[test]
fn help_names_every_flag_and_a_bad_flag_is_refused() {
    let exe = env!("CARGO_BIN_EXE_phalanxd");
    let out = Command::new(exe).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--node-id",
        "--chat",
        "--control",
        "--incarnation",
        "--no-realtime",
    ] {
        assert!(help.contains(flag), "--help does not name {flag}:\n{help}");
    }
    let out = Command::new(exe)
        .args(["--config", "x.conf", "--chat", "--control"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--chat with --control");
    let out = Command::new(exe).arg("--frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frobnicate"));
}

/// Configurations and deliveries of the one node.
#[derive(Default)]
struct Seen {
    regular: Option<Vec<u32>>,
    delivered: Vec<Deliver>,
    left: bool,
}

impl Observer for Seen {
    fn observe(&mut self, o: &Observed) {
        match &o.event {
            Event::Config(c) if c.regular => self.regular = Some(c.members.clone()),
            Event::Deliver(d) => self.delivered.push(d.clone()),
            Event::Left => self.left = true,
            _ => {}
        }
    }

    fn describe(&self) -> String {
        format!(
            "ring {:?}, {} delivered",
            self.regular,
            self.delivered.len()
        )
    }
}

#[test]
fn the_controller_protocol_on_one_node() {
    let dir = TestDir::new("control");
    let addrs = one_link(&loopback_addrs(1));
    let conf = dir.write_conf(&corosync_conf(&dir, "control", "", &addrs, ""));
    let mut c = Cluster::start(&conf, [1], None);
    let mut s = Seen::default();
    let limit = Duration::from_secs(10);
    c.until(&mut s, "a ring of node 1", limit, |s| {
        s.regular.as_deref() == Some(&[1])
    });

    // Bad lines: an error each, with the reason; the node carries on.
    for (line, reason) in [
        ("fly", "unknown command"),
        ("mcast loud x", "bad agreed or safe: \"loud\""),
        ("mcast agreed", "missing text"),
        ("status now", "unexpected \"now\""),
        ("poll 0", "bad interval in ms (1..=1000): \"0\""),
        ("cpg-join 9 g", "no member 9"),
        ("load-stop", "no load running"),
        ("quorum", "quorum is not configured on this node"),
    ] {
        let r = c.request(&mut s, 1, line);
        assert!(!r.ok, "`{line}` succeeded: {r:?}");
        assert_eq!(r.get("reason"), reason, "`{line}`");
    }

    // A text with the characters the protocol escapes comes back whole.
    let text = "hello, world=100% -";
    let r = c.request(&mut s, 1, &format!("mcast safe {text}"));
    assert!(r.ok, "{r:?}");
    assert_eq!(r.get("seq"), "0");
    c.until(&mut s, "the delivery", limit, |s| !s.delivered.is_empty());
    let d = s.delivered[0].clone();
    assert_eq!(d.text.as_deref(), Some(text));
    assert!(d.safe && d.intact && d.from == 1 && d.msg == Some((0, 0)) && d.count == 1);
    let st = c.request(&mut s, 1, "status");
    assert!(st.ok);
    assert_eq!(st.get("count"), "1");
    assert_eq!(st.get("order"), format!("{:016x}", d.order));
    assert_eq!((st.get("operational"), st.get("members")), ("1", "1"));

    // Members: ids from 1, dropped ones gone.
    let m = c.request(&mut s, 1, "cpg-member");
    assert_eq!((m.ok, m.get("member")), (true, "1"));
    assert!(c.request(&mut s, 1, "cpg-drop 1").ok);
    assert!(!c.request(&mut s, 1, "cpg-drop 1").ok);

    c.leave(&mut s, &[1]);
    assert!(s.left, "no `left` line before the end");
}
