//! `phalanx-dlm-tool` against two running `phalanxd` nodes: join, lock (granted
//! on one node, refused with NOQUEUE on the other while held — exit 11), `ls`,
//! `lockdump`, unlock, then the other node gets the lock; bad usage is refused.

mod common;

use common::conf::{TestDir, corosync_conf, loopback_addrs, one_link};
use common::recorder::{admin_tool, start_quorate};

fn tool(dir: &TestDir, node: u32, args: &[&str]) -> (i32, String) {
    let (code, text) = admin_tool(
        env!("CARGO_BIN_EXE_phalanx-dlm-tool"),
        &dir.admin_socket(node),
        args,
    );
    assert!(!text.contains("panicked"), "{text}");
    (code, text)
}

#[test]
fn the_tool_joins_locks_dumps_and_unlocks_through_the_admin_socket() {
    let tag = "dlm-tool";
    let dir = TestDir::new(tag);
    let addrs = loopback_addrs(2);
    let conf = dir.write_conf(&corosync_conf(
        &dir,
        tag,
        "",
        &one_link(&addrs),
        "quorum {\n    provider: corosync_votequorum\n    two_node: 1\n}\n",
    ));
    let (mut cluster, mut log) = start_quorate(&conf, 2, None);
    for n in [1, 2] {
        let (code, text) = tool(&dir, n, &["join", "ls"]);
        assert_eq!(code, 0, "node {n}: {text}");
    }
    let (code, id) = tool(&dir, 1, &["lock", "ls", "res", "EX"]);
    assert_eq!(code, 0, "{id}");
    let id = id.trim().to_string();
    assert!(id.parse::<u32>().is_ok(), "a lock id: {id:?}");
    let (code, text) = tool(&dir, 2, &["lock", "ls", "res", "PR", "--noqueue"]);
    assert_eq!(code, 11, "EAGAIN while node 1 holds EX: {text}");

    let (code, text) = tool(&dir, 1, &["ls"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ls members 1,2 running"), "{text}");
    let (code, dump) = tool(&dir, 1, &["lockdump"]);
    assert_eq!(code, 0, "{dump}");
    assert!(
        dump.contains("own ls res") && dump.contains("granted EX"),
        "{dump}"
    );

    let (code, text) = tool(&dir, 1, &["unlock", "ls", &id]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = tool(&dir, 2, &["lock", "ls", "res", "PR", "--noqueue"]);
    assert_eq!(code, 0, "granted once released: {text}");

    let (code, text) = tool(&dir, 1, &["lock", "ls", "res", "XX"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("unknown mode"), "{text}");
    let (code, text) = tool(&dir, 1, &["unlock", "ls", "999999"]);
    assert_eq!(code, 1, "no such lock: {text}");
    cluster.leave(&mut log, &[1, 2]);
}
