//! What the report gathers from one node: its flight recorder (a file in its state
//! directory, readable whether the node runs or was killed) and, when the node
//! answers on its admin socket, its live state.

use phalanx::admin::{AdminClient, Request, Response, socket_path};
use phalanx::logsys::{Snapshot, read_file};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one admin question may take: a node that does not answer in this
/// time is reported as not answering, and the report goes on.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(3);

/// One node to report on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Node id.
    pub id: u32,
    /// Its state directory (flight recorder, admin socket).
    pub state_dir: PathBuf,
}

impl Source {
    /// `<state_dir>/blackbox-<id>`.
    pub fn recorder(&self) -> PathBuf {
        self.state_dir.join(format!("blackbox-{}", self.id))
    }

    /// `<state_dir>/admin-<id>.sock`.
    pub fn admin_socket(&self) -> PathBuf {
        socket_path(&self.state_dir, self.id)
    }
}

/// A live answer, or why there is none.
pub type Answer = Result<Response, String>;

/// What one node gave.
#[derive(Debug)]
pub struct Collected {
    /// Which node.
    pub source: Source,
    /// Its flight recorder, or why it could not be read.
    pub recorder: Result<Snapshot, String>,
    /// Live state, when the admin socket answered: status, quorum, counters,
    /// fencing, CIB version — in that order, each with the question it answers.
    pub live: Option<Vec<(&'static str, Answer)>>,
    /// Why there is no live state (the node is down, or its socket is gone).
    pub unreachable: Option<String>,
}

/// The nodes whose flight recorders lie in `dir` (`blackbox-<id>` files).
pub fn sources_in(dir: &Path) -> std::io::Result<Vec<Source>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_prefix("blackbox-"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        found.push(Source {
            id,
            state_dir: dir.to_path_buf(),
        });
    }
    found.sort_by_key(|s| s.id);
    Ok(found)
}

/// Reads node `source`'s recorder and asks its admin socket, if it answers.
pub fn collect(source: &Source) -> Collected {
    let recorder = read_file(source.recorder()).map_err(|e| e.to_string());
    let (live, unreachable) = match ask_all(&source.admin_socket()) {
        Ok(l) => (Some(l), None),
        Err(e) => (None, Some(e)),
    };
    Collected {
        source: source.clone(),
        recorder,
        live,
        unreachable,
    }
}

/// The questions asked of every live node, each with its title in the report.
fn questions() -> Vec<(&'static str, Request)> {
    vec![
        ("status", Request::Status),
        ("quorum", Request::Quorum),
        ("counters", Request::Stats),
        ("fencing", Request::FenceStatus),
        (
            "cib",
            Request::Cib {
                command: r#"<cib_command t="cib" cib_op="cib_query"/>"#.to_string(),
            },
        ),
    ]
}

fn ask_all(socket: &Path) -> Result<Vec<(&'static str, Answer)>, String> {
    let fail = |e: std::io::Error| format!("{}: {e}", socket.display());
    let mut client = AdminClient::connect(socket).map_err(fail)?;
    client.set_timeout(ADMIN_TIMEOUT).map_err(fail)?;
    let mut answers = Vec::new();
    for (title, q) in questions() {
        let a = client.request(&q).map_err(|e| e.to_string());
        let broken = a.is_err();
        answers.push((title, a));
        if broken {
            // The connection is in an unknown state; a fresh one for the rest.
            client = AdminClient::connect(socket).map_err(fail)?;
            client.set_timeout(ADMIN_TIMEOUT).map_err(fail)?;
        }
    }
    Ok(answers)
}
