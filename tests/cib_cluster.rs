//! The replicated CIB with real processes: three `phalanxd` nodes on loopback with
//! `cib { }`, changed concurrently from all three with `phalanx-cibadmin -M`
//! through their admin sockets; node 3 killed with SIGKILL, the others go on
//! changing it, node 3 restarts from its files and is synced. At every step all
//! running nodes answer `-Q` with the same CIB, and no acknowledged change is
//! missing. With quorum, the same in one run with a partition and a restart
//! while cut off (`concurrent_writes_a_kill_and_a_partition_end_in_one_cib`).

mod common;

use common::conf::{TestDir, corosync_conf, loopback_addrs, one_link};
use common::recorder::{admin_tool, start_quorate};
use std::time::Duration;

fn cibadmin(dir: &TestDir, node: u32, args: &[&str]) -> (i32, String) {
    admin_tool(
        env!("CARGO_BIN_EXE_phalanx-cibadmin"),
        &dir.admin_socket(node),
        args,
    )
}

/// `-M` adding nvpair `id` (value `v`) to property set `cps`, retried while the
/// node answers that a configuration change interrupted it (safe to resend).
fn add_pair(dir: &TestDir, node: u32, id: &str, v: &str) {
    let xml = format!(
        r#"<cluster_property_set id="cps"><nvpair id="{id}" name="{id}" value="{v}"/></cluster_property_set>"#
    );
    // With quorum the CIB takes writes once the ring's quorum verdict has been
    // delivered to it, which may trail votequorum's by a moment (after a start
    // or a split): until then a write is refused with the no-quorum status
    // (106), so that is waited out — for at most 10 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut interrupted = 0;
    loop {
        let (code, text) = cibadmin(dir, node, &["-M", "-o", "crm_config", "-X", &xml]);
        if code == 0 {
            return;
        }
        if text.contains("interrupted") {
            interrupted += 1;
            assert!(
                interrupted < 20,
                "node {node}: -M {id} interrupted 20 times"
            );
            continue;
        }
        assert!(
            code == 106 && std::time::Instant::now() < deadline,
            "node {node}: -M {id} exited {code}: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates property set `cps` (where [`add_pair`] writes) through `node`. The
/// CIB takes writes once the ring's quorum verdict has been delivered to it,
/// which may trail votequorum's by a moment: until then the create is refused
/// with the no-quorum status, which is waited out for at most 10 s.
fn create_property_set(dir: &TestDir, node: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, text) = cibadmin(
            dir,
            node,
            &[
                "-C",
                "-o",
                "crm_config",
                "-X",
                r#"<cluster_property_set id="cps"/>"#,
            ],
        );
        if code == 0 {
            return;
        }
        assert!(
            (code == 106 || text.contains("interrupted")) && std::time::Instant::now() < deadline,
            "node {node}: creating the property set exited {code}: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `-M` from each of `nodes` at once, `count` changes each, ids `{prefix}-{node}-{k}`;
/// returns the ids.
fn concurrent_pairs(dir: &TestDir, nodes: &[u32], prefix: &str, count: u32) -> Vec<String> {
    std::thread::scope(|s| {
        for &node in nodes {
            s.spawn(move || {
                for k in 0..count {
                    add_pair(dir, node, &format!("{prefix}-{node}-{k}"), &k.to_string());
                }
            });
        }
    });
    nodes
        .iter()
        .flat_map(|node| (0..count).map(move |k| format!("{prefix}-{node}-{k}")))
        .collect()
}

/// Waits until `node`'s own copy holds a match for `xpath`. A change is
/// acknowledged once the node that took it has applied it; the others apply it
/// when totem delivers it to them, which may be a moment later.
fn until_node_has(dir: &TestDir, node: u32, xpath: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, text) = cibadmin(dir, node, &["-Q", "-A", xpath]);
        match code {
            0 => return,
            105 => assert!(
                std::time::Instant::now() < deadline,
                "node {node} has no {xpath} after 10 s"
            ),
            _ => panic!("node {node}: -Q -A {xpath} exited {code}: {text}"),
        }
    }
}

/// Every listed node's `-Q` output, which must become one and the same CIB: a
/// change acknowledged by one node reaches the others when totem delivers it
/// to them, so copies may differ for a moment, never for 10 s.
fn same_cib(dir: &TestDir, nodes: &[u32]) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let outs: Vec<String> = nodes
            .iter()
            .map(|&n| {
                let (code, text) = cibadmin(dir, n, &["-Q"]);
                assert_eq!(code, 0, "node {n}: {text}");
                text
            })
            .collect();
        let differing = nodes
            .iter()
            .zip(&outs)
            .skip(1)
            .find(|(_, o)| *o != &outs[0]);
        match differing {
            None => return outs[0].clone(),
            Some((n, o)) if std::time::Instant::now() >= deadline => assert_eq!(
                o, &outs[0],
                "node {n}'s CIB still differs from node {}'s after 10 s",
                nodes[0]
            ),
            Some(_) => {}
        }
    }
}

#[test]
fn concurrent_changes_kill_and_restart_leave_identical_cibs() {
    let tag = "cib-cluster";
    let dir = TestDir::new(tag);
    let addrs = loopback_addrs(3);
    let rest = "quorum {\n    provider: corosync_votequorum\n}\ncib {\n    enabled: yes\n}\n";
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), rest));
    let (mut cluster, mut log) = start_quorate(&conf, 3, None);
    let (code, text) = cibadmin(
        &dir,
        1,
        &[
            "-C",
            "-o",
            "crm_config",
            "-X",
            r#"<cluster_property_set id="cps"/>"#,
        ],
    );
    assert_eq!(code, 0, "{text}");
    // Creating it again is refused everywhere alike (cibadmin's EEXIST status).
    let (code, _) = cibadmin(
        &dir,
        2,
        &[
            "-C",
            "-o",
            "crm_config",
            "-X",
            r#"<cluster_property_set id="cps"/>"#,
        ],
    );
    assert_eq!(code, 108);

    // Three writers at once, five changes each.
    let mut written = concurrent_pairs(&dir, &[1, 2, 3], "a", 5);
    let cib = same_cib(&dir, &[1, 2, 3]);
    for id in &written {
        assert!(
            cib.contains(&format!("id=\"{id}\"")),
            "{id} missing:\n{cib}"
        );
    }

    // Node 3 dies; the others keep changing the CIB.
    cluster.kill9(3);
    cluster.until(&mut log, "{1,2} quorate", Duration::from_secs(10), |l| {
        l.quorate_with(1, &[1, 2]) && l.quorate_with(2, &[1, 2])
    });
    for k in 0..3 {
        let id = format!("b-{k}");
        add_pair(&dir, 1 + k % 2, &id, "x");
        written.push(id);
    }
    // It comes back from its files and is synced to the others' newer copy.
    assert!(
        dir.path.join("cib-3/cib.xml").exists(),
        "node 3 wrote no cib.xml"
    );
    let restarted = cluster.spawn(3);
    // Node 3's new process must say so itself: the others see it join before
    // it serves its admin socket.
    cluster.until(
        &mut log,
        "all three quorate again",
        Duration::from_secs(20),
        |l| {
            l.quorate_with(1, &[1, 2, 3])
                && l.quorate_with(2, &[1, 2, 3])
                && l.incarnation_quorate_with(3, restarted, &[1, 2, 3])
        },
    );
    // A change through node 3 waits for the sync, then is applied everywhere.
    add_pair(&dir, 3, "c-3", "y");
    written.push("c-3".into());
    let cib = same_cib(&dir, &[1, 2, 3]);
    for id in &written {
        assert!(
            cib.contains(&format!("id=\"{id}\"")),
            "{id} missing:\n{cib}"
        );
    }
    let (code, text) = cibadmin(&dir, 2, &["-Q", "-A", "//nvpair[@id='c-3']"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("value=\"y\""), "{text}");
    let (code, _) = cibadmin(&dir, 2, &["-Q", "-A", "//nvpair[@id='nope']"]);
    assert_eq!(code, 105, "no match is cibadmin's ENXIO status");
    cluster.leave(&mut log, &[1, 2, 3]);
}

#[test]
fn a_partitions_discarded_changes_are_reported_at_heal() {
    use common::events::Event;
    let tag = "cib-split";
    let dir = TestDir::new(tag);
    let (net, addrs) = common::netns::star("cibsplit", 3, 84);
    // Pacemaker's plain rule: every partition writes, the highest version wins.
    let rest = "quorum {\n    provider: corosync_votequorum\n}\ncib {\n    require_quorum: no\n}\n";
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), rest));
    let (mut cluster, mut log) = start_quorate(&conf, 3, Some(&net));
    let (code, text) = cibadmin(
        &dir,
        1,
        &[
            "-C",
            "-o",
            "crm_config",
            "-X",
            r#"<cluster_property_set id="cps"/>"#,
        ],
    );
    assert_eq!(code, 0, "{text}");
    // Node 3 must hold the set before it is cut off, or its own change fails.
    until_node_has(&dir, 3, "//cluster_property_set[@id='cps']");
    net.set_hub_link("h3", false);
    cluster.until(&mut log, "the split", Duration::from_secs(10), |l| {
        l.quorate_with(1, &[1, 2]) && l.quorate_with(2, &[1, 2])
    });
    // Both sides change their copy: two changes on {1,2}, one on {3}.
    add_pair(&dir, 1, "p-1", "a");
    add_pair(&dir, 2, "p-2", "b");
    add_pair(&dir, 3, "p-3", "c");
    net.set_hub_link("h3", true);
    cluster.until(&mut log, "the heal", Duration::from_secs(30), |l| {
        (1..=3).all(|n| l.quorate_with(n, &[1, 2, 3]))
    });
    // The higher version ({1,2}'s) wins; node 3 reports what it lost, as a patch.
    cluster.until(
        &mut log,
        "node 3 to report its discarded change",
        Duration::from_secs(10),
        |l| {
            l.events.iter().any(|o| {
                o.node == 3
                    && matches!(&o.event, Event::Service { kind, fields }
                        if kind == "cib_divergence" && fields["patch"].contains("p-3"))
            })
        },
    );
    let cib = same_cib(&dir, &[1, 2, 3]);
    assert!(
        cib.contains("id=\"p-1\"") && cib.contains("id=\"p-2\""),
        "{cib}"
    );
    assert!(
        !cib.contains("id=\"p-3\""),
        "the losing side's change was kept:\n{cib}"
    );
    cluster.leave(&mut log, &[1, 2, 3]);
}

#[test]
fn with_quorum_a_minority_refuses_writes_and_the_majoritys_are_kept() {
    let tag = "cib-quorate";
    let dir = TestDir::new(tag);
    let (net, addrs) = common::netns::star("cibquor", 3, 85);
    // Quorum runs, so the CIB takes writes only with quorum (the default).
    let rest = "quorum {\n    provider: corosync_votequorum\n}\ncib {\n}\n";
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), rest));
    let (mut cluster, mut log) = start_quorate(&conf, 3, Some(&net));
    create_property_set(&dir, 1);
    add_pair(&dir, 1, "q-0", "a");
    until_node_has(&dir, 3, "//nvpair[@id='q-0']");
    net.set_hub_link("h3", false);
    cluster.until(&mut log, "the split", Duration::from_secs(10), |l| {
        l.quorate_with(1, &[1, 2]) && l.quorate_with(2, &[1, 2])
    });
    add_pair(&dir, 1, "q-1", "a");
    add_pair(&dir, 2, "q-2", "b");
    // Node 3 alone has no quorum: its write is refused with cibadmin's status for
    // "quorum required" (once its votequorum has seen the split), its reads work.
    let xml = r#"<cluster_property_set id="cps"><nvpair id="q-3" name="q-3" value="c"/></cluster_property_set>"#;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, text) = cibadmin(&dir, 3, &["-M", "-o", "crm_config", "-X", xml]);
        assert_ne!(code, 0, "a minority took a write: {text}");
        if code == 106 {
            assert!(text.contains("quorum"), "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node 3 never refused for want of quorum: {code} {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, text) = cibadmin(&dir, 3, &["-Q", "-A", "//nvpair[@id='q-0']"]);
    assert_eq!(code, 0, "reads still work without quorum: {text}");
    net.set_hub_link("h3", true);
    cluster.until(&mut log, "the heal", Duration::from_secs(30), |l| {
        (1..=3).all(|n| l.quorate_with(n, &[1, 2, 3]))
    });
    let cib = same_cib(&dir, &[1, 2, 3]);
    for id in ["q-0", "q-1", "q-2"] {
        assert!(cib.contains(&format!("id=\"{id}\"")), "{id} lost:\n{cib}");
    }
    assert!(!cib.contains("id=\"q-3\""), "{cib}");
    cluster.leave(&mut log, &[1, 2, 3]);
}

/// The issue's scenario in one run, with quorum: concurrent `-M` from all three
/// nodes; node 3 cut off, the majority {1,2} writes concurrently; node 3 killed
/// with SIGKILL and restarted while still cut off — it serves the changes it had
/// from its own disk (reads work without quorum) and none of the majority's;
/// then the heal: node 3 is synced, and all three answer `-Q` with one CIB
/// holding every acknowledged change.
#[test]
fn concurrent_writes_a_kill_and_a_partition_end_in_one_cib() {
    use common::events::Event;
    let tag = "cib-all";
    let dir = TestDir::new(tag);
    let (net, addrs) = common::netns::star("ciball", 3, 86);
    let rest = "quorum {\n    provider: corosync_votequorum\n}\ncib {\n}\n";
    let conf = dir.write_conf(&corosync_conf(&dir, tag, "", &one_link(&addrs), rest));
    let (mut cluster, mut log) = start_quorate(&conf, 3, Some(&net));
    create_property_set(&dir, 1);
    let mut written = concurrent_pairs(&dir, &[1, 2, 3], "a", 4);
    let cib = same_cib(&dir, &[1, 2, 3]);
    for id in &written {
        assert!(
            cib.contains(&format!("id=\"{id}\"")),
            "{id} missing:\n{cib}"
        );
    }

    net.set_hub_link("h3", false);
    cluster.until(&mut log, "the split", Duration::from_secs(10), |l| {
        l.quorate_with(1, &[1, 2]) && l.quorate_with(2, &[1, 2])
    });
    let majority = concurrent_pairs(&dir, &[1, 2], "p", 3);
    same_cib(&dir, &[1, 2]);

    // Node 3 dies and restarts alone: its copy comes from its own files.
    cluster.kill9(3);
    let restarted = cluster.spawn(3);
    // It serves its admin socket once it reports `ready`.
    cluster.until(
        &mut log,
        "node 3's new process",
        Duration::from_secs(10),
        |l| {
            l.events.iter().any(|o| {
                o.node == 3 && o.incarnation == restarted && matches!(o.event, Event::Ready { .. })
            })
        },
    );
    for id in &written {
        let (code, text) = cibadmin(&dir, 3, &["-Q", "-A", &format!("//nvpair[@id='{id}']")]);
        assert_eq!(code, 0, "node 3 restarted without {id}: {text}");
    }
    for id in &majority {
        let (code, _) = cibadmin(&dir, 3, &["-Q", "-A", &format!("//nvpair[@id='{id}']")]);
        assert_eq!(code, 105, "node 3 has the majority's {id} before the heal");
    }

    net.set_hub_link("h3", true);
    cluster.until(&mut log, "the heal", Duration::from_secs(30), |l| {
        l.quorate_with(1, &[1, 2, 3])
            && l.quorate_with(2, &[1, 2, 3])
            && l.incarnation_quorate_with(3, restarted, &[1, 2, 3])
    });
    written.extend(majority);
    let cib = same_cib(&dir, &[1, 2, 3]);
    for id in &written {
        assert!(cib.contains(&format!("id=\"{id}\"")), "{id} lost:\n{cib}");
    }
    cluster.leave(&mut log, &[1, 2, 3]);
}
