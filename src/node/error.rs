//! Why a node could not start.

use crate::config::ConfigError;
use crate::crypto::CryptoError;
use crate::link::LinkConfigError;
use crate::stack::StackConfigError;
use std::io;
use std::path::PathBuf;

/// Why [`Node::start`](super::Node::start) failed. Nothing is left running:
/// sockets bound so far are closed and no thread is left behind.
///
/// The configuration variants ([`Config`](Self::Config), [`Stack`](Self::Stack),
/// [`Link`](Self::Link), [`LinkNodes`](Self::LinkNodes), [`Crypto`](Self::Crypto))
/// fail the same way on every retry: the options must change. [`Io`](Self::Io) and
/// [`AdminSocket`](Self::AdminSocket) come from the operating system and may
/// succeed later (an address or socket path freed, a file repaired).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The cluster configuration does not give this node's options
    /// ([`NodeOptions::from_config`](super::NodeOptions::from_config)); names the
    /// file, line and key.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The protocol stack refused its configuration: totem's timers and limits,
    /// votequorum's, or a quorum configuration for another node.
    #[error(transparent)]
    Stack(#[from] StackConfigError),
    /// The link settings: link numbers, or ping timing.
    #[error(transparent)]
    Link(#[from] LinkConfigError),
    /// A link beyond link 0 does not list the same nodes as link 0.
    #[error("link {link} does not list the same nodes as link 0")]
    LinkNodes {
        /// The link's number.
        link: u8,
    },
    /// The cluster key or cluster name cannot key the datagram crypto.
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    /// The admin socket could not be served at `path`.
    #[error("admin socket {}: {source}", path.display())]
    AdminSocket {
        /// The socket path asked for.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The watchdog could not be armed (no device, not a watchdog, the
    /// supervisor executable missing).
    #[error("watchdog: {0}")]
    Watchdog(#[from] phalanx_fence::watchdog::io::WatchdogError),
    /// The CIB schemas (`cib { schemas: DIR }`) cannot be used: libxml2 missing,
    /// or no Pacemaker schema in the directory.
    #[error("CIB schemas: {0}")]
    CibSchemas(String),
    /// The operating system refused: binding a socket, reading the persisted ring
    /// sequence in the state directory, starting a thread.
    #[error(transparent)]
    Io(#[from] io::Error),
}
