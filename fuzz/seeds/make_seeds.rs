//! Writes seed inputs for every fuzz target, made by the crates' own encoders and
//! cores: datagrams captured from a forming and working ring, a three-node Stack's
//! traffic, qdevice and votequorum messages, CPG, DLM and CIB traffic between real
//! cores, fencing peer messages, CIB requests, patches and documents, flight
//! recorder images. Inputs of the targets that read records (`phalanx_fuzz::records`)
//! are written in that format with the control bytes each target documents.
//!
//! Usage: `make_seeds <corpus dir>` (one sub-directory per target; `fuzz/corpus`
//! for cargo-fuzz). Deterministic: the same build writes the same files.

use bytes::Bytes;
// Built with the targets' coverage instrumentation, the program needs libFuzzer's
// coverage callbacks; linking the crate brings them (its `main` stays ours).
use libfuzzer_sys as _;
use phalanx::admin::Request;
use phalanx::crypto::Cipher;
use phalanx::logsys::Logger;
use phalanx::quorum::qdevice::Heuristics;
use phalanx::quorum::qdevice::proto::{Decision, ErrorCode, Msg, Status, encode_frame_body};
use phalanx::quorum::wire::{Message as VqMessage, NodeInfo, Reconfigure};
use phalanx::quorum::{Algorithm, TieBreaker};
use phalanx::stack::{Input, Output, Stack, StackConfig};
use phalanx::totem::{Config, Guarantee, RingId, Time};
use phalanx_cib::ops::{CallOptions, CibOp, OpContext, Scope, empty_cib, wire as cib_wire};
use phalanx_cib::patch::{DiffOptions, diff};
use phalanx_cib::service::{CibService, CibServiceConfig};
use phalanx_cib::xml::{Escaping, Style, parse, to_string};
use phalanx_cpg::{Cpg, CpgConfig};
use phalanx_dlm::cluster::{DlmConfig, DlmNode, Input as DlmInput, Output as DlmOutput};
use phalanx_dlm::{LockRequest, Mode, Owner};
use phalanx_fence::Action;
use phalanx_fence::core::{
    Delegate, HistoryEntry, OpId, OpState, PeerMessage, encode_peer_message,
};
use phalanx_fuzz::push_record;
use phalanx_logsys::record;
use phalanx_totem::testing::MemNet;
use phalanx_totem::wire::{self as totem_wire, Message as TotemMessage};
use phalanx_totem::{ConfigChange, ConfigKind};
use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

struct Out {
    root: PathBuf,
    written: usize,
}

impl Out {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
        self.written += 1;
    }
}

fn main() {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("corpus"));
    let mut out = Out { root, written: 0 };
    totem(&mut out);
    stack(&mut out);
    quorum(&mut out);
    crypto(&mut out);
    cpg(&mut out);
    dlm(&mut out);
    fence(&mut out);
    cib(&mut out);
    admin(&mut out);
    logsys(&mut out);
    qb(&mut out);
    println!("{} seeds written under {}", out.written, out.root.display());
}

/// Datagrams of a 3-node ring: formation, ordered traffic of many sizes (fragmented
/// too), a node crash and the re-formation. For `totem_wire`, `totem_frame` (the
/// MCAST payloads) and `totem_node` (records replaying them into the formed ring
/// the target clones, which is the same ring as here: same config, deterministic).
fn totem(out: &mut Out) {
    let mut net = MemNet::new(3, Config::new);
    let mut formation = MemNet::new(3, Config::new);
    formation.capture = true;
    assert!(formation.run_until_formed(100_000));
    assert!(net.run_until_formed(100_000));
    net.capture = true;
    for (k, size) in [1usize, 17, 200, 1400, 5000, 70_000]
        .into_iter()
        .enumerate()
    {
        let g = if k % 2 == 0 {
            Guarantee::Agreed
        } else {
            Guarantee::Safe
        };
        let _ = net.nodes[k % 3].mcast(net.now, g, &vec![k as u8; size]);
        for _ in 0..40 {
            net.step();
        }
    }
    let steady = net.captured.len();
    net.crash(2);
    for _ in 0..3000 {
        net.step();
    }
    let all: Vec<Vec<u8>> = formation
        .captured
        .iter()
        .chain(net.captured.iter())
        .cloned()
        .collect();
    // One seed per (type, size class) for the codec.
    let mut seen = BTreeSet::new();
    let mut frames = BTreeSet::new();
    for d in &all {
        let class = (d.get(3).copied(), d.len().ilog2());
        if seen.insert(class) {
            out.put(
                "totem_wire",
                &format!("t{}-{}", class.0.unwrap_or(0), d.len()),
                d,
            );
        }
        if let Ok(dg) = totem_wire::decode(d) {
            if let TotemMessage::Mcast(m) = dg.message {
                if frames.len() < 12
                    && frames.insert((m.payload.len().max(1).ilog2(), m.encapsulated.is_some()))
                {
                    out.put(
                        "totem_frame",
                        &format!("frame-{}", frames.len()),
                        &m.payload,
                    );
                }
            }
        }
    }
    // Replays of the steady-state traffic, eight datagrams at a time, to the three
    // nodes in turn, checksum fix-up on and a few steps after each.
    let steady_traffic = &net.captured[..steady];
    for (w, window) in steady_traffic.chunks(8).take(24).enumerate() {
        let mut rec = Vec::new();
        for (k, d) in window.iter().enumerate() {
            push_record(&mut rec, 0x80 | (2 << 2) | (k % 3) as u8, d);
        }
        out.put("totem_node", &format!("steady-{w}"), &rec);
    }
    let mut rec = Vec::new();
    for (k, d) in net.captured[steady..].iter().take(24).enumerate() {
        push_record(&mut rec, 0x80 | (4 << 2) | (k % 3) as u8, d);
    }
    out.put("totem_node", "reform", &rec);
}

fn addr(n: u32) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5400 + n as u16))
}

/// Three Stacks over a lossless virtual network; every datagram node 1 receives is
/// recorded, with its sender, for `stack_input` (plain, and as records the target
/// seals with the sender's key when crypto is on) and `link_wire` (pings, pongs).
fn stack(out: &mut Out) {
    let addrs: std::collections::BTreeMap<u32, SocketAddr> =
        (1..=3).map(|n| (n, addr(n))).collect();
    let mut stacks: Vec<Stack> = (1..=3)
        .map(|n| {
            let cfg = StackConfig::new(Config::new(n, vec![1, 2, 3]), addrs.clone());
            Stack::new(cfg, None, Time::ZERO, Logger::discard()).expect("stack")
        })
        .collect();
    let mut deadlines: Vec<Option<Time>> = vec![None; 3];
    let mut wire: VecDeque<(u32, u8, SocketAddr, Bytes)> = VecDeque::new();
    let mut now = Time::ZERO;
    let mut to_node1: Vec<(u32, u8, Vec<u8>)> = Vec::new();
    let drain = |i: usize,
                 s: &mut Stack,
                 now: Time,
                 wire: &mut VecDeque<(u32, u8, SocketAddr, Bytes)>,
                 deadlines: &mut Vec<Option<Time>>| {
        loop {
            let mut persisted = Vec::new();
            loop {
                match s.poll_output() {
                    Output::Transmit(t) => wire.push_back((i as u32 + 1, t.link, t.to, t.data)),
                    Output::Persist(p) => persisted.push(p.id),
                    Output::Timeout(t) => {
                        deadlines[i] = t;
                        break;
                    }
                    _ => {}
                }
            }
            if persisted.is_empty() {
                break;
            }
            for id in persisted {
                let _ = s.handle_input(now, Input::Persisted { id, result: Ok(()) });
            }
        }
    };
    for i in 0..3 {
        drain(i, &mut stacks[i], now, &mut wire, &mut deadlines);
    }
    for _ in 0..20_000 {
        if now > Time::ZERO + Duration::from_secs(20) || to_node1.len() >= 400 {
            break;
        }
        if let Some((from, link, to, data)) = wire.pop_front() {
            let Some(j) = (1..=3).position(|n| addr(n) == to) else {
                continue;
            };
            if j == 0 {
                to_node1.push((from, link, data.to_vec()));
            }
            let _ = stacks[j].handle_input(
                now,
                Input::Datagram {
                    link,
                    from: addr(from),
                    data: &data,
                },
            );
            drain(j, &mut stacks[j], now, &mut wire, &mut deadlines);
            continue;
        }
        let Some(next) = deadlines.iter().flatten().min().copied() else {
            break;
        };
        now = now.max(next);
        for i in 0..3 {
            if deadlines[i].is_some_and(|d| d <= now) {
                let _ = stacks[i].handle_input(now, Input::Timeout);
                drain(i, &mut stacks[i], now, &mut wire, &mut deadlines);
            }
        }
    }
    let mut links = 0;
    for (w, window) in to_node1.chunks(12).take(30).enumerate() {
        for (mode, seal) in [(0u8, 0u8), (1, 16)] {
            let mut rec = vec![mode];
            for (from, link, d) in window {
                let ctl = seal | 8 | ((*from as u8) << 1) | (link & 1);
                push_record(&mut rec, ctl, d);
            }
            out.put("stack_input", &format!("w{w}-m{mode}"), &rec);
        }
    }
    for (from, _, d) in &to_node1 {
        if d.starts_with(b"PL") && links < 12 {
            links += 1;
            out.put("link_wire", &format!("captured-{links}"), d);
            let mut rec = Vec::new();
            push_record(&mut rec, 0x80 | (*from as u8), d);
            push_record(&mut rec, 0x80 | (1 << 2) | (*from as u8), d);
            out.put("link_wire", &format!("monitor-{links}"), &rec);
        }
    }
}

const RING: RingId = RingId { seq: 4, rep: 1 };

fn status(seq: u64, members: Vec<u32>, holding: Option<RingId>) -> Vec<u8> {
    encode_frame_body(&Msg::Status(Status {
        seq,
        algorithm: Algorithm::Ffsplit,
        tie_breaker: TieBreaker::Lowest,
        config_nodes: vec![1, 2, 3],
        ring: RING,
        members,
        heuristics: Heuristics::Pass,
        holding,
    }))
}

/// Votequorum messages and qdevice frame bodies: raw (for the decoders), and as
/// records for the authenticated arbitrator connections, the client and the
/// votequorum core of `quorum_wire`.
fn quorum(out: &mut Out) {
    let vq = [
        VqMessage::NodeInfo(NodeInfo {
            ring: RING,
            votes: 1,
            expected: 3,
            flags: 0,
            prev_members: vec![1, 2, 3],
        }),
        VqMessage::NodeInfo(NodeInfo {
            ring: RING,
            votes: 2,
            expected: 4,
            flags: 8,
            prev_members: vec![1, 2],
        }),
        VqMessage::Reconfigure(Reconfigure::SetExpected(2)),
        VqMessage::Reconfigure(Reconfigure::SetVotes { node: 3, votes: 2 }),
        VqMessage::Reconfigure(Reconfigure::CancelWaitForAll),
        VqMessage::DeviceVote {
            ring: RING,
            cast: true,
        },
        VqMessage::LmsExpired { ring: RING },
        VqMessage::Leaving,
    ];
    let vq: Vec<Vec<u8>> = vq.iter().map(phalanx::quorum::wire::encode).collect();
    for (k, m) in vq.iter().enumerate() {
        out.put("quorum_wire", &format!("vq-{k}"), m);
    }
    let bodies = [
        status(1, vec![1, 2], None),
        encode_frame_body(&Msg::Vote {
            seq: 1,
            ring: RING,
            decision: Decision::Ack,
        }),
        encode_frame_body(&Msg::Welcome {
            lease_ms: 4000,
            heartbeat_ms: 1000,
        }),
        encode_frame_body(&Msg::Error(ErrorCode::ConfigMismatch)),
        encode_frame_body(&Msg::Hello {
            cluster: b"c".to_vec(),
            node: 1,
            nonce: [1; 32],
        }),
    ];
    for (k, b) in bodies.iter().enumerate() {
        out.put("quorum_wire", &format!("qn-{k}"), b);
    }
    // Two nodes report the same partition, time passes, they report again holding
    // the vote; the client gets votes and errors; votequorum messages from members.
    let mut rec = Vec::new();
    push_record(&mut rec, 0, &status(1, vec![1, 2], None));
    push_record(&mut rec, 1, &status(1, vec![1, 2], None));
    push_record(
        &mut rec,
        0x80 | (8 << 2),
        &status(2, vec![1, 2], Some(RING)),
    );
    push_record(&mut rec, 1, &status(2, vec![1, 2], Some(RING)));
    push_record(&mut rec, 0, &status(3, vec![1], Some(RING)));
    out.put("quorum_wire", "server", &rec);
    let mut rec = Vec::new();
    for (k, d) in [Decision::Ack, Decision::Wait, Decision::Nack]
        .into_iter()
        .enumerate()
    {
        let body = encode_frame_body(&Msg::Vote {
            seq: 1 + k as u64,
            ring: RING,
            decision: d,
        });
        push_record(
            &mut rec,
            2 | if k == 1 { 0x80 | (4 << 2) } else { 0 },
            &body,
        );
    }
    push_record(
        &mut rec,
        2,
        &encode_frame_body(&Msg::Error(ErrorCode::Protocol)),
    );
    out.put("quorum_wire", "client", &rec);
    let mut rec = Vec::new();
    for (k, m) in vq.iter().enumerate() {
        push_record(&mut rec, 3 | (((k % 3) as u8) << 2), m);
    }
    out.put("quorum_wire", "votequorum", &rec);
}

/// Scripts for `totem_crypto_open`'s script reader: op codes 0 seal, 1 open, 2 flip
/// a bit, 3 cut or extend, 4 skip counters, 5 restart, 6 change the node list.
fn crypto(out: &mut Out) {
    for (k, c) in Cipher::ALL.into_iter().enumerate() {
        let sel = k as u8;
        let mut s = vec![sel];
        // seal by sender 0 (node 1) "hello"; open it; open it again (replay).
        s.extend_from_slice(&[0, 0, 5]);
        s.extend_from_slice(b"hello");
        s.extend_from_slice(&[1, 0, 1, 0]);
        // seal by sender 1 (node 3), open, flip a bit of it, cut it, extend it.
        s.extend_from_slice(&[0, 1, 3]);
        s.extend_from_slice(b"abc");
        s.extend_from_slice(&[1, 1, 2, 1, 7, 0, 0x40, 3, 1, 4, 1, 3, 1, 9, 0]);
        // skip 1500 counters of node 1, seal, open; restart node 1, seal, open; the
        // unknown node 9 seals; the node list changes to include it; open again.
        s.extend_from_slice(&[4, 0, 0xDC, 0x05, 0, 0, 2, b'x', b'y', 1, 2]);
        s.extend_from_slice(&[5, 0, 0, 0, 1, b'z', 1, 3]);
        s.extend_from_slice(&[0, 2, 1, b'q', 1, 4, 6, 2, 1, 4, 1, 0]);
        out.put("totem_crypto_open", &format!("script-{}", c.name()), &s);
    }
}

/// CPG traffic between two real cores: joins, state exchange, multicasts.
fn cpg(out: &mut Out) {
    let mut a = Cpg::new(1, CpgConfig::default());
    let mut b = Cpg::new(2, CpgConfig::default());
    let change = ConfigChange {
        kind: ConfigKind::Regular,
        ring: RingId { seq: 1, rep: 1 },
        previous: None,
        members: vec![1, 2],
        left: Vec::new(),
        joined: vec![1, 2],
    };
    let _ = a.join(5, b"g");
    let _ = b.join(7, b"g");
    let _ = b.join(8, b"other");
    a.handle_config(&change);
    b.handle_config(&change);
    let mut messages: Vec<(u32, Vec<u8>)> = Vec::new();
    for round in 0..6 {
        if round == 2 {
            let _ = a.mcast(5, b"g", Guarantee::Agreed, b"hello group");
            let _ = b.mcast(7, b"g", Guarantee::Safe, &[0x42; 300]);
        }
        if round == 4 {
            let _ = b.leave(8, b"other");
        }
        let mut batch = Vec::new();
        while let Some((_, m)) = a.poll_send() {
            batch.push((1, m));
        }
        while let Some((_, m)) = b.poll_send() {
            batch.push((2, m));
        }
        for (from, m) in batch {
            a.handle_deliver(from, Guarantee::Agreed, Bytes::from(m.clone()));
            b.handle_deliver(from, Guarantee::Agreed, Bytes::from(m.clone()));
            messages.push((from, m.to_vec()));
        }
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
    }
    let mut joined = Vec::new();
    for (k, (_, m)) in messages.iter().enumerate().take(24) {
        out.put("cpg_wire", &format!("msg-{k}"), m);
        if !m.contains(&0xff) {
            if !joined.is_empty() {
                joined.push(0xff);
            }
            joined.extend_from_slice(m);
        }
    }
    out.put("cpg_wire", "sequence", &joined);
}

/// DLM messages between two real nodes: remote locks, conversions, blocking,
/// unlocks and a membership change.
fn dlm(out: &mut Out) {
    let mut nodes = [
        DlmNode::new(1, DlmConfig::default()).unwrap(),
        DlmNode::new(2, DlmConfig::default()).unwrap(),
    ];
    let mut to_1: Vec<Vec<u8>> = Vec::new();
    for n in nodes.iter_mut() {
        let _ = n.handle_input(DlmInput::Members {
            lockspace: 1,
            epoch: 1,
            members: vec![1, 2],
            failed: vec![],
        });
    }
    let names: [&[u8]; 4] = [b"alpha", b"beta", b"gamma", b"delta"];
    for (k, name) in names.iter().enumerate() {
        let who = k % 2;
        let owner = Owner::new(who as u32 + 1, 100 + k as u32);
        let _ = nodes[who].lock(1, LockRequest::new(owner, *name, Mode::Ex));
        let other = Owner::new(2 - who as u32, 200 + k as u32);
        let _ = nodes[1 - who].lock(1, LockRequest::new(other, *name, Mode::Pr));
        // Deliver until quiet.
        for _ in 0..50 {
            let mut sent = false;
            for i in 0..2 {
                while let Some(o) = nodes[i].poll_output() {
                    if let DlmOutput::Send { to, bytes } = o {
                        sent = true;
                        if to == 1 {
                            to_1.push(bytes.clone());
                        }
                        let _ = nodes[to as usize - 1].handle_input(DlmInput::Message {
                            from: i as u32 + 1,
                            bytes,
                        });
                    }
                }
            }
            if !sent {
                break;
            }
        }
    }
    let mut conversation = Vec::new();
    for m in to_1.iter().take(40) {
        push_record(&mut conversation, 0, m);
    }
    out.put("dlm_message", "conversation", &conversation);
    dlm_channel_seeds(out);
    let mut seen = BTreeSet::new();
    for (k, m) in to_1.iter().enumerate() {
        if seen.insert(m.first().copied().zip(m.get(1).copied())) || k < 8 {
            out.put("dlm_message", &format!("msg-{k}"), m);
        }
    }
}

fn entry(seq: u64, state: OpState) -> HistoryEntry {
    HistoryEntry {
        id: OpId {
            origin: 3,
            incarnation: 9,
            seq,
        },
        target: "node-2".into(),
        action: Action::Reboot,
        origin: 3,
        delegate: Some(Delegate::Node(4)),
        client: "stonith_admin.42".into(),
        state,
        completed: (state != OpState::Pending).then(|| Time::from_nanos(12_345)),
        exit_reason: (state == OpState::Failed).then(|| "device pdu off: timed out".into()),
        target_joined: (seq % 2 == 1).then_some(RingId { seq: 96, rep: 2 }),
    }
}

/// Fencing peer messages and the texts agents and operators hand the fencer.
fn fence(out: &mut Out) {
    let msgs = [
        PeerMessage::Started {
            id: OpId {
                origin: 1,
                incarnation: 2,
                seq: 3,
            },
            target: "node3".into(),
            action: Action::Off,
            client: "stonith_admin.123".into(),
            total_timeout_s: 120,
            target_joined: Some(RingId { seq: 96, rep: 2 }),
        },
        PeerMessage::Result(entry(1, OpState::Done)),
        PeerMessage::Result(HistoryEntry {
            delegate: Some(Delegate::Manual),
            ..entry(2, OpState::Failed)
        }),
        PeerMessage::History(vec![
            entry(4, OpState::Pending),
            entry(5, OpState::Done),
            entry(6, OpState::Failed),
        ]),
        PeerMessage::Present {
            unclean: true,
            first_ring: Some(RingId { seq: 8, rep: 2 }),
        },
    ];
    for (k, m) in msgs.iter().enumerate() {
        out.put(
            "fence_peer_message",
            &format!("msg-{k}"),
            &encode_peer_message(m),
        );
    }
    for (k, t) in [
        "node1:port1;node2:port2,node3:3",
        "node1=10s node2=0",
        "node1 node2,node3",
        "5s",
        "1500ms",
        "2min",
        "action=off\nport=node2\nexit=0\n",
    ]
    .iter()
    .enumerate()
    {
        out.put("fence_agent_text", &format!("text-{k}"), t.as_bytes());
    }
}

const CIB: &str = r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="3" num_updates="1" admin_epoch="0"><configuration><crm_config><cluster_property_set id="o"><nvpair id="o-acl" name="enable-acl" value="true"/></cluster_property_set></crm_config><nodes><node id="1" uname="n1"/></nodes><resources><primitive id="p" class="ocf" provider="heartbeat" type="Dummy"><meta_attributes id="p-m"><nvpair id="p-m-t" name="target-role" value="Started"/></meta_attributes></primitive></resources><constraints/><acls><acl_target id="u"><role id="r"/></acl_target><acl_role id="r"><acl_permission id="r1" kind="read" xpath="/cib"/><acl_permission id="r2" kind="write" object-type="primitive"/><acl_permission id="r3" kind="deny" reference="p-m"/></acl_role></acls></configuration><status/></cib>"#;

const CIB_CHANGED: &str = r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="4" num_updates="0" admin_epoch="0"><configuration><crm_config><cluster_property_set id="o"><nvpair id="o-acl" name="enable-acl" value="false"/><nvpair id="o-s" name="stonith-enabled" value="true"/></cluster_property_set></crm_config><nodes><node id="1" uname="n1"/><node id="2" uname="n2"/></nodes><resources><group id="g"><primitive id="p" class="ocf" provider="heartbeat" type="Dummy"/><primitive id="q" class="stonith" type="fence_xvm"/></group></resources><constraints><rsc_location id="l" rsc="g" node="n1" score="INFINITY"/></constraints></configuration><status><node_state id="1" uname="n1" crmd="online"/></status></cib>"#;

/// CIB documents, patches (diffs between real documents), requests (the wire
/// encoder) and replication frames between two real services.
fn cib(out: &mut Out) {
    let a = parse(CIB).expect("CIB parses");
    let b = parse(CIB_CHANGED).expect("changed CIB parses");
    let empty = empty_cib(1);
    for (k, doc) in [&a, &b, &empty].into_iter().enumerate() {
        for (s, style) in [Style::Compact, Style::Pretty].into_iter().enumerate() {
            out.put(
                "cib_xml_parse",
                &format!("doc-{k}-{s}"),
                to_string(doc, style, Escaping::Xml).as_bytes(),
            );
        }
    }
    const BASE: &str = "<cib admin_epoch=\"0\" epoch=\"3\" num_updates=\"1\" crm_feature_set=\"3.16.1\">\
<configuration><crm_config><cluster_property_set id=\"o\"><nvpair id=\"n1\" name=\"a\" value=\"1\"/>\
</cluster_property_set></crm_config><nodes><node id=\"1\" uname=\"n1\"/><!--c--></nodes>\
<resources><primitive id=\"p\" class=\"ocf\" type=\"Dummy\"/><group id=\"g\"><primitive id=\"q\"/></group></resources>\
<constraints/></configuration><status/></cib>";
    const BASE_CHANGED: &str = "<cib admin_epoch=\"0\" epoch=\"3\" num_updates=\"2\" crm_feature_set=\"3.16.1\">\
<configuration><crm_config><cluster_property_set id=\"o\"><nvpair id=\"n1\" name=\"a\" value=\"2\"/>\
</cluster_property_set></crm_config><nodes><node id=\"1\" uname=\"n1\"/><node id=\"2\" uname=\"n2\"/></nodes>\
<resources><group id=\"g\"><primitive id=\"q\"/><primitive id=\"p\" class=\"ocf\" type=\"Dummy\"/></group></resources>\
<constraints/></configuration><status/></cib>";
    let base = parse(BASE).expect("base parses");
    let base_changed = parse(BASE_CHANGED).expect("changed base parses");
    if let Some(p) = diff(&base, &base_changed, &DiffOptions::default()) {
        out.put(
            "cib_patch_apply",
            "base",
            to_string(&p, Style::Pretty, Escaping::Xml).as_bytes(),
        );
    }
    for (k, (x, y)) in [(&a, &b), (&b, &a)].into_iter().enumerate() {
        if let Some(p) = diff(x, y, &DiffOptions::default()) {
            let mut s = to_string(x, Style::Compact, Escaping::Xml);
            s.push('\0');
            s.push_str(&to_string(&p, Style::Compact, Escaping::Xml));
            out.put("cib_patch_apply", &format!("doc-{k}"), s.as_bytes());
        }
    }
    let p = parse(r#"<primitive id="d1" class="ocf" provider="heartbeat" type="Dummy"/>"#).unwrap();
    let ops = [
        CibOp::Query {
            scope: Scope::xpath("//primitive[@id='p']"),
            options: CallOptions::default(),
        },
        CibOp::Query {
            scope: Scope::section("resources"),
            options: CallOptions {
                no_children: true,
                ..Default::default()
            },
        },
        CibOp::Create {
            scope: Scope::section("resources"),
            input: p.clone(),
            options: CallOptions::default(),
        },
        CibOp::Modify {
            scope: Scope::section("resources"),
            input: p.clone(),
            options: CallOptions {
                can_create: true,
                ..Default::default()
            },
        },
        CibOp::Replace {
            scope: Scope::Whole,
            input: b.clone(),
            digest: None,
            options: CallOptions::default(),
        },
        CibOp::Delete {
            scope: Scope::xpath("//nvpair[@id='p-m-t']"),
            input: None,
            options: CallOptions::default(),
        },
        CibOp::Transaction(vec![
            CibOp::Bump,
            CibOp::Create {
                scope: Scope::section("resources"),
                input: p,
                options: CallOptions::default(),
            },
        ]),
        CibOp::Erase,
    ];
    let ctx = OpContext {
        user: Some("u".into()),
        client_name: Some("cibadmin".into()),
        origin: Some("n1".into()),
        now: Some("Sun Dec  6 04:00:00 2026".into()),
        check_acls: true,
        user_groups: vec!["haclient".into()],
        keep_versions: false,
    };
    for (k, op) in ops.iter().enumerate() {
        out.put(
            "cib_op_decode",
            &format!("op-{k}"),
            cib_wire::encode(op, &ctx).as_bytes(),
        );
        let admin = Request::Cib {
            command: cib_wire::encode(op, &OpContext::default()),
        };
        if k < 3 {
            out.put(
                "admin_request",
                &format!("cib-{k}"),
                serde_json::to_string(&admin).unwrap().as_bytes(),
            );
        }
    }
    // Two services: a join sync, then a modification made on node 1.
    let mut cfg = CibServiceConfig::new(1);
    cfg.frame_size = 64;
    let mut s1 = CibService::new(cfg, a.clone());
    let mut cfg = CibServiceConfig::new(2);
    cfg.frame_size = 64;
    let mut s2 = CibService::new(cfg, empty_cib(1));
    s1.handle_config(&[1, 2], &[2], &[], RingId { seq: 4, rep: 1 });
    s2.handle_config(&[1, 2], &[2], &[], RingId { seq: 4, rep: 1 });
    let mut from_2 = Vec::new();
    let mut all = Vec::new();
    for round in 0..40 {
        if round == 10 {
            let _ = s1.request(1, 1, ops[3].clone(), ctx.clone());
        }
        let mut batch = Vec::new();
        while let Some(f) = s1.poll_send() {
            batch.push((1, f));
        }
        while let Some(f) = s2.poll_send() {
            batch.push((2, f));
        }
        if batch.is_empty() && round > 12 {
            break;
        }
        for (from, f) in batch {
            let _ = s1.handle_message(from, &f);
            let _ = s2.handle_message(from, &f);
            if from == 2 {
                from_2.push(f.clone());
            }
            all.push(f);
        }
        while s1.poll_event().is_some() {}
        while s2.poll_event().is_some() {}
    }
    for (k, f) in all.iter().enumerate().take(20) {
        out.put("cib_service_message", &format!("frame-{k}"), f);
    }
    let joined: Vec<u8> = from_2.concat();
    out.put("cib_service_message", "from-2", &joined);
}

fn admin(out: &mut Out) {
    let reqs = [
        Request::Status,
        Request::CpgGroups,
        Request::Quorum,
        Request::SetExpectedVotes { votes: 3 },
        Request::SetVotes { node: 2, votes: 1 },
        Request::CancelWaitForAll,
        Request::Stats,
        Request::FenceStatus,
        Request::Fence {
            target: "n2".into(),
            action: "reboot".into(),
            timeout_ms: Some(60_000),
        },
        Request::FenceConfirm {
            target: "n3".into(),
        },
        Request::FenceHistoryCleanup { target: None },
    ];
    for (k, r) in reqs.iter().enumerate() {
        out.put(
            "admin_request",
            &format!("req-{k}"),
            serde_json::to_string(r).unwrap().as_bytes(),
        );
    }
}

/// A memory recorder with records of every level and argument kind, as a file image.
fn logsys(out: &mut Out) {
    let log = Logger::memory(16 << 10);
    for i in 0..40u64 {
        record!(
            log,
            i * 1000,
            1,
            Notice,
            "totem",
            "node {} entered {} at {}",
            1u32,
            "GATHER",
            i
        );
        record!(
            log,
            i * 1000 + 1,
            2,
            Warn,
            "cpg",
            "group {} has {} members",
            "g",
            i as u32
        );
        record!(
            log,
            i * 1000 + 2,
            3,
            Debug,
            "quorum",
            "votes {} expected {} ok {}",
            2u32,
            3u32,
            true
        );
    }
    if let Some(img) = log.snapshot_bytes() {
        out.put("logsys_reader", "memory", &img);
    }
    // Wrapped: more records than the ring holds.
    let log = Logger::memory(16 << 10);
    for i in 0..2000u64 {
        record!(
            log,
            i,
            1,
            Info,
            "link",
            "link {} to node {} up, rtt {} us",
            0u32,
            2u32,
            i
        );
    }
    if let Some(img) = log.snapshot_bytes() {
        out.put("logsys_reader", "wrapped", &img);
    }
}

/// libqb request datagrams: a connection request and, for every service, each
/// request id with a header whose size is the datagram's length.
fn qb(out: &mut Out) {
    let mut conn = vec![0u8; 24];
    conn[0..4].copy_from_slice(&(-1i32).to_ne_bytes());
    conn[8..12].copy_from_slice(&24i32.to_ne_bytes());
    conn[16..20].copy_from_slice(&(1u32 << 20).to_ne_bytes());
    out.put("qb_ipc_request", "connect", &conn);
    for id in 0..14i32 {
        for body in [0usize, 8, 144, 160] {
            let mut d = vec![0u8; 16 + body];
            d[0..4].copy_from_slice(&id.to_ne_bytes());
            let n = d.len() as i32;
            d[8..12].copy_from_slice(&n.to_ne_bytes());
            if body >= 144 {
                // A group name: length, then the bytes.
                d[16..20].copy_from_slice(&1u32.to_ne_bytes());
                d[20] = b'g';
            }
            out.put("qb_ipc_request", &format!("id{id}-{body}"), &d);
        }
    }
}

/// Channel datagrams of two genuine channels (records, acks, a retransmission)
/// as `dlm_channel` records: ctl 0 (from the network) for the peer's datagrams,
/// 1 and 3 for records sent, 2 for time passing.
fn dlm_channel_seeds(out: &mut Out) {
    use phalanx_dlm::channel::{ChannelConfig, ChannelOutput, PeerChannel};
    let mut a = PeerChannel::new(5, ChannelConfig::default());
    let mut b = PeerChannel::new(7, ChannelConfig::default());
    let mut conversation = Vec::new();
    let mut from_b = Vec::new();
    for (k, rec) in [&b"request"[..], b"ast", b"bast", b""].iter().enumerate() {
        push_record(&mut conversation, 1, rec);
        let _ = a.send(k as u64, rec.to_vec());
        let _ = b.send(k as u64, rec.to_vec());
        while let Some(o) = b.poll_output() {
            if let ChannelOutput::Transmit(d) = o {
                push_record(&mut conversation, 0, &d);
                from_b.push(d);
            }
        }
        while a.poll_output().is_some() {}
    }
    push_record(&mut conversation, 2, &[0x01, 0x00]);
    b.tick(10_000_000);
    while let Some(o) = b.poll_output() {
        if let ChannelOutput::Transmit(d) = o {
            push_record(&mut conversation, 0, &d);
            from_b.push(d);
        }
    }
    out.put("dlm_channel", "conversation", &conversation);
    for (k, d) in from_b.iter().enumerate() {
        let mut one = Vec::new();
        push_record(&mut one, 0, d);
        out.put("dlm_channel", &format!("datagram-{k}"), &one);
    }
}
