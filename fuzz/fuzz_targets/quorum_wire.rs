//! Quorum decoders: votequorum messages and qdevice/qnetd frame bodies never panic,
//! and whatever decodes re-encodes byte for byte. The same bytes are also fed to an
//! arbitrator core (as a raw stream, framed and unframed) and a votequorum core.
//!
//! Then the input is read as records (`phalanx_fuzz::records`) that get past the
//! gates random bytes never pass: the arbitrator has two authenticated connections
//! (nodes 1 and 2, after a genuine challenge/response with the cluster key) and a
//! qdevice client is authenticated to a test arbitrator; a record is a frame body
//! that the harness seals with the right session (so the HMAC tag verifies) and
//! hands to the arbitrator (`ctl & 3` = 0, 1) or the client (2), or a votequorum
//! message from member `1 + (ctl >> 2) % 3` (3). Bit 7 of `ctl` first advances the
//! clock by `(ctl >> 2) & 15` quarter seconds and runs every timer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx::quorum::fuzzing;
use phalanx::quorum::qdevice::Heuristics;
use phalanx::quorum::qdevice::auth::{self, LEN, Role, Session};
use phalanx::quorum::qdevice::client::{ClientConfig, QdeviceClient};
use phalanx::quorum::qdevice::proto::{self, Msg};
use phalanx::quorum::qdevice::server::{ConnId, Qnetd, ServerConfig};
use phalanx::quorum::{Algorithm, QuorumConfig, TieBreaker, Votequorum};
use phalanx::totem::{ConfigChange, ConfigKind, RingId, Time};
use phalanx_fuzz::records;
use std::time::Duration;

const KEY: [u8; 32] = [7; 32];
const CLUSTER: &[u8] = b"c";
const RING: RingId = RingId { seq: 4, rep: 1 };

fn plain(m: &Msg) -> Vec<u8> {
    proto::frame(&proto::encode_frame_body(m), None)
}

/// Connects `node` to the arbitrator on `conn` with a genuine handshake; returns
/// the client side of the session.
fn authenticate(s: &mut Qnetd, conn: ConnId, node: u32) -> Session {
    let sn = [conn as u8; LEN];
    let cn = [0xC0 | node as u8; LEN];
    s.accept(Time::ZERO, conn, sn);
    let hello = Msg::Hello {
        cluster: CLUSTER.to_vec(),
        node,
        nonce: cn,
    };
    s.handle_bytes(Time::ZERO, conn, &plain(&hello));
    let proof = auth::proof(&KEY, Role::Client, CLUSTER, node, &cn, &sn);
    s.handle_bytes(Time::ZERO, conn, &plain(&Msg::Auth { proof }));
    Session::new(&KEY, Role::Client, CLUSTER, node, &cn, &sn)
}

/// A qdevice client of node 3 authenticated to a test arbitrator; returns the
/// arbitrator side of the session.
fn connect_client(c: &mut QdeviceClient) -> Session {
    let (cn, sn) = ([0x33; LEN], [0x44; LEN]);
    c.connected(Time::ZERO, cn);
    let proof = auth::proof(&KEY, Role::Server, CLUSTER, 3, &cn, &sn);
    c.handle_bytes(Time::ZERO, &plain(&Msg::Challenge { nonce: sn, proof }));
    let mut session = Session::new(&KEY, Role::Server, CLUSTER, 3, &cn, &sn);
    let welcome = proto::encode_frame_body(&Msg::Welcome {
        lease_ms: 4000,
        heartbeat_ms: 1000,
    });
    let tag = session.seal(&welcome);
    c.handle_bytes(Time::ZERO, &proto::frame(&welcome, Some(&tag)));
    assert!(
        c.is_connected(),
        "the genuine handshake must connect the client"
    );
    session
}

fn votequorum() -> Votequorum {
    let mut q = Votequorum::new(QuorumConfig::new(1, &[1, 2, 3])).unwrap();
    q.handle_config(
        Time::ZERO,
        &ConfigChange {
            kind: ConfigKind::Regular,
            ring: RING,
            previous: None,
            members: vec![1, 2, 3],
            left: vec![],
            joined: vec![1, 2, 3],
        },
    );
    q
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = fuzzing::decode(data) {
        assert_eq!(fuzzing::encode(&m), data);
    }
    if let Ok(m) = fuzzing::decode_frame_body(data) {
        assert_eq!(fuzzing::encode_frame_body(&m), data);
    }
    let mut s = Qnetd::new(
        ServerConfig::new([(CLUSTER.to_vec(), KEY.to_vec())].into()),
        Time::ZERO,
    );
    // Two authenticated nodes first (conns 3 and 4).
    let mut sessions = [authenticate(&mut s, 3, 1), authenticate(&mut s, 4, 2)];
    assert_eq!(s.stats().auth_failures, 0);
    assert!(s.poll_close().is_none(), "a genuine handshake was refused");
    // The bytes as raw streams (framed and unframed).
    s.accept(Time::ZERO, 1, [0; 32]);
    s.handle_bytes(Time::ZERO, 1, data);
    let mut framed = (data.len() as u32).to_le_bytes().to_vec();
    framed.extend_from_slice(data);
    s.accept(Time::ZERO, 2, [0; 32]);
    s.handle_bytes(Time::ZERO, 2, &framed);
    while s.poll_transmit().is_some() {}
    // A votequorum member receiving the bytes from a peer.
    let mut q = votequorum();
    let _ = q.handle_message(Time::ZERO, 2, data);
    let _ = q.info();

    let mut client = QdeviceClient::new(ClientConfig {
        cluster: CLUSTER.to_vec(),
        node: 3,
        key: KEY.to_vec(),
        algorithm: Algorithm::Ffsplit,
        tie_breaker: TieBreaker::Lowest,
        config_nodes: vec![1, 2, 3],
        confirm_release: false,
    });
    let mut arbitrator = connect_client(&mut client);
    client.set_membership(Time::ZERO, RING, &[1, 2, 3]);
    client.set_heuristics(Time::ZERO, Heuristics::Pass);
    let mut q = votequorum();
    let mut now = Time::ZERO;
    for r in records(data, 64) {
        if r.ctl & 0x80 != 0 {
            now = now + Duration::from_millis(250 * u64::from((r.ctl >> 2) & 15));
            s.handle_timeout(now);
            client.handle_timeout(now);
            q.handle_timeout(now);
        }
        match r.ctl & 3 {
            k @ (0 | 1) => {
                let tag = sessions[usize::from(k)].seal(r.bytes);
                s.handle_bytes(now, 3 + ConnId::from(k), &proto::frame(r.bytes, Some(&tag)));
            }
            2 => {
                let tag = arbitrator.seal(r.bytes);
                client.handle_bytes(now, &proto::frame(r.bytes, Some(&tag)));
            }
            _ => {
                let from = 1 + u32::from(r.ctl >> 2) % 3;
                let _ = q.handle_message(now, from, r.bytes);
            }
        }
        while s.poll_transmit().is_some() {}
        while s.poll_close().is_some() {}
        while client.poll_transmit().is_some() {}
        while client.poll_event().is_some() {}
    }
    let _ = q.info();
    let _ = s.holders(now, CLUSTER);
});
