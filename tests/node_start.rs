//! Every way `Node::start` refuses reaches the caller as its typed `NodeError`
//! variant (not a string inside an `io::Error`), and a refused start leaves nothing
//! bound: the node's address can be bound again at once.

mod common;

use phalanx::crypto::{Cipher, CryptoError};
use phalanx::link::{LinkConfigError, LinkTiming};
use phalanx::node::{CryptoOptions, ExtraLink, LinkParams, Node, NodeError, NodeOptions};
use phalanx::stack::StackConfigError;
use phalanx::totem::{Config, NodeId};
use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

/// Loopback addresses for nodes 1 and 2, free when returned.
fn addrs() -> BTreeMap<NodeId, SocketAddr> {
    common::conf::loopback_node_addrs(2)
}

/// Options for node 1 of nodes 1 and 2.
fn options() -> NodeOptions {
    NodeOptions::new(Config::new(1, vec![1, 2]), addrs())
}

/// Starts node 1 with `opts`, expects a refusal, and checks its address is free.
fn refused(opts: NodeOptions) -> NodeError {
    let addr = opts.addrs[&1];
    let err = Node::start(opts).err().expect("the node must not start");
    UdpSocket::bind(addr).expect("a refused start leaves the address free");
    err
}

/// A fresh directory under the system's temporary directory.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("phalanx-node-start-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn an_invalid_totem_configuration_is_a_stack_error() {
    let mut o = options();
    o.totem.node_id = 3; // not in the node list
    match refused(o) {
        NodeError::Stack(StackConfigError::Totem(e)) => {
            assert!(e.to_string().contains("node_id"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_quorum_configuration_for_another_node_is_a_stack_error() {
    let mut o = options();
    o.quorum = Some(phalanx::quorum::QuorumConfig::new(2, &[1, 2]));
    match refused(o) {
        NodeError::Stack(StackConfigError::QuorumNodeMismatch { totem, quorum }) => {
            assert_eq!((totem, quorum), (1, 2))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ping_timeout_not_above_the_interval_is_a_link_error() {
    let mut o = options();
    o.links.link0.timing = Some(LinkTiming {
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(200),
        pong_count: 2,
    });
    let err = refused(o);
    assert!(
        matches!(err, NodeError::Link(LinkConfigError::Timing)),
        "{err:?}"
    );
}

#[test]
fn a_link_with_other_nodes_than_link_0_is_refused() {
    let mut o = options();
    let only_me = [(1, o.addrs[&1])].into();
    o.links.extra.push(ExtraLink {
        number: 1,
        addrs: only_me,
        params: LinkParams::default(),
    });
    let err = refused(o);
    assert!(matches!(err, NodeError::LinkNodes { link: 1 }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "link 1 does not list the same nodes as link 0"
    );
}

#[test]
fn a_short_cluster_key_is_a_crypto_error() {
    let mut o = options();
    o.crypto = Some(CryptoOptions {
        key: vec![7; 5],
        cluster_name: "c".into(),
        cipher: Cipher::Aes256Gcm,
    });
    let err = refused(o);
    assert!(
        matches!(err, NodeError::Crypto(CryptoError::KeyTooShort { len: 5 })),
        "{err:?}"
    );
}

#[test]
fn an_address_in_use_is_an_io_error_with_its_kind() {
    let o = options();
    let _holder = UdpSocket::bind(o.addrs[&1]).unwrap();
    match Node::start(o) {
        Err(NodeError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("started on an address in use"),
    }
}

#[test]
fn a_corrupt_persisted_ring_sequence_is_an_io_error() {
    let dir = temp_dir("ringseq");
    std::fs::write(dir.join("ringseq_1"), b"bad").unwrap();
    let mut o = options();
    o.state_dir = Some(dir.clone());
    match refused(o) {
        NodeError::Io(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}"),
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_admin_socket_that_cannot_be_served_names_its_path() {
    let dir = temp_dir("admin");
    let file = dir.join("a-file");
    std::fs::write(&file, b"").unwrap();
    // A regular file where the socket's directory should be.
    let path = file.join("node.sock");
    let mut o = options();
    o.admin_socket = Some(path.clone());
    match refused(o) {
        NodeError::AdminSocket { path: p, source } => {
            assert_eq!(p, path);
            let shown = NodeError::AdminSocket { path: p, source }.to_string();
            assert!(shown.starts_with("admin socket "), "{shown}");
            assert!(shown.contains("node.sock"), "{shown}");
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// `?` turns a configuration error into `NodeError::Config`, so loading options
/// and starting chain in one function.
#[test]
fn options_from_a_configuration_and_start_chain_with_question_mark() {
    fn start(cfg: &phalanx::config::ClusterConfig, id: u32) -> Result<Node, NodeError> {
        Node::start(NodeOptions::from_config(cfg, id)?)
    }
    let text = "totem {
    cluster_name: c
    crypto_cipher: none
    crypto_hash: none
}
nodelist {
    node {
        nodeid: 1
        ring0_addr: 127.0.0.1
    }
}
";
    let cfg = phalanx::config::from_corosync_str(text, "corosync.conf")
        .unwrap()
        .config;
    match start(&cfg, 9) {
        Err(NodeError::Config(e)) => {
            assert!(e.to_string().contains("node id 9"), "{e}")
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("node 9 is not in the node list"),
    }
}
