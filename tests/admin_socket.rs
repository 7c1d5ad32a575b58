//! The admin socket answers well-formed requests, refuses bad ones with an error
//! line (and stays up), and will not steal the socket of a running node.

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
    // An oversized line: error, then the connection closes.
    let big = "x".repeat(10_000);
    writeln!(w, "{big}").unwrap();
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
