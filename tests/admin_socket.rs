//! The admin socket answers well-formed requests, refuses bad ones with an error
//! line (and stays up), and will not steal the socket of a running node.

mod common;

use common::wait::Deadline;
use phalanx::admin::{AdminClient, AdminProvider, AdminServer, Request, Response};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

struct Fixed;
impl AdminProvider for Fixed {
    fn answer(&self, req: Request) -> Response {
        match req {
            Request::SetExpectedVotes { votes } if votes > 0 => Response::Done,
            _ => Response::error("refused"),
        }
    }
}

fn socket_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir()
        .join(format!("phalanx-admin-test-{}", std::process::id()))
        .join(name)
}

#[test]
fn bad_requests_get_an_error_line_and_the_server_stays_up() {
    let server = AdminServer::start(&socket_path("a.sock"), Arc::new(Fixed)).unwrap();
    let s = UnixStream::connect(server.path()).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut line = String::new();
    for bad in ["not json", "{\"request\":\"nope\"}", "{}"] {
        writeln!(w, "{bad}").unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        assert!(line.contains("\"response\":\"error\""), "{bad} -> {line}");
    }
    // An oversized line: error, then the connection closes. The server stops
    // reading at its limit, so it may close before the rest of our line is written
    // (a broken pipe here, never anything else); its answer is queued either way.
    let big = "x".repeat(10_000);
    if let Err(e) = writeln!(w, "{big}") {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.contains("longer than"), "{line}");
    // A fresh client still gets answers.
    let mut c = AdminClient::connect(server.path()).unwrap();
    assert_eq!(
        c.request(&Request::SetExpectedVotes { votes: 3 }).unwrap(),
        Response::Done
    );
}

#[test]
fn a_live_socket_is_not_replaced_but_a_stale_one_is() {
    let path = socket_path("b.sock");
    let first = AdminServer::start(&path, Arc::new(Fixed)).unwrap();
    let err = AdminServer::start(&path, Arc::new(Fixed))
        .err()
        .expect("second bind refused");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    drop(first);
    assert!(!path.exists(), "socket removed on stop");
    // A stale socket file (a crashed node's) is replaced.
    let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(stale);
    assert!(path.exists());
    let again = AdminServer::start(&path, Arc::new(Fixed)).unwrap();
    let mut c = AdminClient::connect(again.path()).unwrap();
    assert!(matches!(
        c.request(&Request::Status).unwrap(),
        Response::Error { .. }
    ));
}

/// A real node with its admin socket: phalanx-cpgtool lists the group a member
/// joined, with the node's name, and the status answer shows the ring.
#[test]
fn cpgtool_lists_a_running_nodes_groups() {
    use phalanx::cpg::{CpgEvent, Guarantee};
    use phalanx::node::{Node, NodeOptions};
    use phalanx::totem::Config;
    use std::time::Duration;

    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addrs = [(1u32, format!("127.0.0.1:{port}").parse().unwrap())].into();
    let mut opts = NodeOptions::new(Config::new(1, vec![1]), addrs);
    let sock = socket_path("node.sock");
    opts.admin_socket = Some(sock.clone());
    opts.cluster_name = "testcluster".into();
    opts.node_names = [(1, "alpha".to_string())].into();
    let node = Node::start(opts).unwrap();
    let member = node.cpg().member().unwrap();
    member.join(b"tool-group").unwrap();
    // The join completes with a view that contains the member.
    let deadline = Deadline::after("a view with the member", Duration::from_secs(10));
    loop {
        match member.events().recv_timeout(deadline.remaining()) {
            Ok(CpgEvent::Change(c)) if c.members.contains(&member.id()) => break,
            Ok(_) => {}
            Err(e) => panic!("no view with the member: {e}"),
        }
    }
    member
        .mcast(b"tool-group", Guarantee::Agreed, b"x")
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_phalanx-cpgtool"))
        .args(["--socket", sock.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("tool-group"), "{text}");
    let line = format!("{} {:>10} (alpha)", member.id().local, 1);
    assert!(text.contains(&line), "no member line {line:?} in:\n{text}");
    let mut c = AdminClient::connect(&sock).unwrap();
    match c.request(&Request::Status).unwrap() {
        Response::Status(s) => {
            assert_eq!((s.node_id, s.cluster_name.as_str()), (1, "testcluster"));
            assert_eq!(s.nodes.len(), 1);
            assert!(s.nodes[0].member && s.nodes[0].name == "alpha");
        }
        other => panic!("{other:?}"),
    }
    drop(member);
    node.leave().unwrap();
    assert!(!sock.exists(), "socket removed when the node stops");
}
