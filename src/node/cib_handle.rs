//! The `Cib` handle: requests to the replicated CIB through this node, answered
//! once every node has applied them (modifying operations) or at once (queries).

use super::{Command, Reply, Shared};
use crate::stack::{CibRequest, Request};
use crossbeam_channel::{Sender, bounded};
use parking_lot::Mutex;
use phalanx_cib::ops::{CibOp, OpContext};
use phalanx_cib::service::{CibReply, ReplyError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;

/// The client number of handle requests in the service.
pub const CIB_HANDLE_CLIENT: u64 = 1;

/// Why a CIB call did not succeed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CibCallError {
    /// The node runs without the CIB service.
    #[error("the CIB is not enabled on this node")]
    NotConfigured,
    /// The node has stopped.
    #[error("the node is not running")]
    NotRunning,
    /// The node's partition is not quorate and the CIB takes writes only with
    /// quorum (reads still work); `phalanx-cibadmin` exits with 106, as
    /// `cibadmin` does (`CRM_EX_QUORUM`).
    #[error("no quorum: writes are refused in a partition without quorum")]
    NoQuorum,
    /// The service refused the request (queue full: try again; too large).
    #[error("refused: {0}")]
    Refused(String),
    /// The operation ran and failed, or a configuration change interrupted it.
    #[error(transparent)]
    Failed(#[from] ReplyError),
}

/// The CIB's version and digest as the driver last published them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CibStatus {
    /// `(admin_epoch, epoch, num_updates)`.
    pub version: (i64, i64, i64),
    /// The on-disk digest of the whole CIB (status included) as text.
    pub digest: String,
    /// Whether the state exchange of the current configuration is over.
    pub synced: bool,
}

#[derive(Debug, Default)]
pub(crate) struct CibShared {
    pub(crate) status: Mutex<Option<CibStatus>>,
    next_call: AtomicU64,
}

/// The answer the driver routes back for a handle's request.
pub(crate) type CibAnswer = Sender<Result<CibReply, CibCallError>>;

/// The replicated CIB through this node (`Clone + Send + Sync`).
#[derive(Clone)]
pub struct Cib {
    pub(super) tx: Sender<Command>,
    pub(super) waker: Arc<mio::Waker>,
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for Cib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cib").finish_non_exhaustive()
    }
}

impl Cib {
    /// Runs `op` as the daemon itself (no ACLs) and waits for the result.
    pub fn request(&self, op: CibOp) -> Result<CibReply, CibCallError> {
        self.request_with(op, OpContext::default())
    }

    /// Runs `op` with `ctx` (user, client name, ACL check) and waits for the
    /// result; `ctx.now` is filled with this node's clock when unset.
    pub fn request_with(&self, op: CibOp, mut ctx: OpContext) -> Result<CibReply, CibCallError> {
        if ctx.now.is_none() {
            ctx.now = Some(super::cib_store::ctime_now());
        }
        let call = self.shared.cib.next_call.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = bounded(1);
        let req = Box::new(CibRequest {
            client: CIB_HANDLE_CLIENT,
            call,
            op,
            ctx,
        });
        self.tx
            .send(Command::Stack(
                Request::Cib(req),
                Reply::CibDone { call, answer: tx },
            ))
            .map_err(|_| CibCallError::NotRunning)?;
        super::wake_if_parked(&self.shared, &self.waker);
        rx.recv().map_err(|_| CibCallError::NotRunning)?
    }

    /// The version and digest as last published (`None` without the service).
    pub fn status(&self) -> Option<CibStatus> {
        self.shared.cib.status.lock().clone()
    }
}
