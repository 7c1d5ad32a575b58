//! The `Dlm` handle: libdlm-style lockspaces and locks through this node's DLM
//! service.
//!
//! Calls answer at once (the lock id, or a typed refusal); what the master decides
//! arrives as a [`DlmNotice`] — on the lockspace handle's channel
//! ([`Lockspace::notices`]), on a channel or callback given for one lock
//! ([`LockCall::notify`]), or, for the `*_wait` helpers, to the waiting caller.
//!
//! ```
//! use phalanx::node::{Node, NodeOptions};
//! use phalanx::dlm::{LockFlags, Mode};
//! use phalanx::totem::Config;
//!
//! // A one-node cluster with the DLM: every lock is mastered here.
//! let addr = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
//! let mut opts = NodeOptions::new(Config::new(1, vec![1]), [(1, addr)].into_iter().collect());
//! opts.dlm = Some(Default::default());
//! let node = Node::start(opts).unwrap();
//! let ls = node.dlm().lockspace("demo").unwrap();
//! let lock = ls.lock_wait(b"resource", Mode::Ex, LockFlags::EMPTY, None).unwrap();
//! // A second EX with NOQUEUE is refused while the first is held.
//! let busy = ls.lock_wait(b"resource", Mode::Ex, LockFlags::NOQUEUE, None);
//! assert_eq!(busy.unwrap_err(), phalanx::node::DlmCallError::WouldBlock);
//! ls.unlock_wait(lock.id, LockFlags::EMPTY, None).unwrap();
//! ls.leave().unwrap();
//! node.leave().unwrap();
//! ```

use super::{Command, Shared};
use crate::stack::{
    DlmEvent, DlmFastPath, DlmRequest, DlmServiceError, FastCall, FastRequest, InputError, Stack,
    lockspace_id,
};
use crossbeam_channel::{Receiver, RecvError, Sender, TryRecvError, bounded, unbounded};
use parking_lot::Mutex;
use phalanx_dlm::cluster::LockspaceId;
use phalanx_dlm::id_map::IdMap;
use phalanx_dlm::{
    Completion, DlmError, LockFlags, LockId, LockRequest, Mode, Owner, Status, UnlockRequest,
};
use phalanx_totem::{NodeId, Time};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// How long a `*_wait` caller polls for its answer before it parks, and for the
/// driver to finish routing the events it emitted before it gives a call to the
/// driver. An answer from a remote master on the direct path comes in a few tens
/// of microseconds, and waking a parked thread costs several of them on its own
/// (the futex wake and the scheduler's latency), once per answer. The poll
/// yields the processor between looks, so on a busy machine the threads that
/// make the answer (the node's driver) run meanwhile.
const SPIN_BEFORE_PARK: Duration = Duration::from_micros(50);

/// `rx.recv()`, polling for [`SPIN_BEFORE_PARK`] before it parks.
fn recv_spinning<T>(rx: &Receiver<T>) -> Result<T, RecvError> {
    let start = Instant::now();
    loop {
        match rx.try_recv() {
            Ok(v) => return Ok(v),
            Err(TryRecvError::Disconnected) => return Err(RecvError),
            Err(TryRecvError::Empty) => {}
        }
        if start.elapsed() >= SPIN_BEFORE_PARK {
            return rx.recv();
        }
        std::thread::yield_now();
    }
}

/// What the DLM tells an application about its locks and lockspaces.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DlmNotice {
    /// A completion AST: a call on `completion.lock` finished.
    Completion(Completion),
    /// A blocking AST: `lock` blocks a request for `mode`.
    Blocking {
        /// The lock.
        lock: LockId,
        /// The mode someone waits for.
        mode: Mode,
    },
    /// The master refused a call this node had accepted (errno).
    Refused {
        /// The lock.
        lock: LockId,
        /// errno.
        errno: i32,
    },
    /// The lockspace's membership changed; recovery runs.
    Members {
        /// View number (equal on every member).
        epoch: u64,
        /// Members after the change.
        members: Vec<NodeId>,
        /// Failed members not yet fenced (recovery waits for them).
        failed: Vec<NodeId>,
    },
    /// Recovery waits until `node` is fenced.
    AwaitFencing {
        /// The failed node.
        node: NodeId,
    },
    /// `node` is fenced since its loss: recovery may release its locks.
    Fenced {
        /// The node.
        node: NodeId,
        /// When the node's thread learned it (before it routed any completion
        /// that follows from it).
        at: std::time::Instant,
    },
    /// The fence decision reported `node` fenced since its loss (the fencing
    /// service's notice, independent of any lockspace's recovery).
    FenceRecorded {
        /// The node.
        node: NodeId,
        /// When the node's thread learned it (before it routed any completion
        /// that follows from it).
        at: std::time::Instant,
    },
    /// The lockspace finished recovery for `epoch`.
    Recovered {
        /// The epoch.
        epoch: u64,
    },
}

/// Where one lock's notices go.
#[derive(Clone)]
pub enum Notify {
    /// A channel (unbounded: a lock gets one completion per call and at most one
    /// BAST per mode above its own between grants).
    Channel(Sender<DlmNotice>),
    /// A callback, run on the node's thread: keep it short; the blocking calls of
    /// this module refuse to run there ([`DlmCallError::WouldDeadlock`]), the
    /// others (`lock`, `lock_with`, `convert`, `unlock`, `cancel`) run at once,
    /// as the Linux DLM lets an AST routine call `dlm_lock`/`dlm_unlock` — an
    /// AST-driven application needs no thread of its own per hand-over.
    Callback(Arc<dyn Fn(DlmNotice) + Send + Sync>),
}

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Notify::Channel(_) => "Notify::Channel",
            Notify::Callback(_) => "Notify::Callback",
        })
    }
}

impl Notify {
    fn send(&self, n: DlmNotice) -> bool {
        match self {
            Notify::Channel(tx) => tx.send(n).is_ok(),
            Notify::Callback(f) => {
                f(n);
                true
            }
        }
    }
}

/// Why a DLM call did not succeed (libdlm's errno in [`DlmCallError::errno`]).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DlmCallError {
    /// The node runs without the DLM (`NodeOptions::dlm`).
    #[error("the DLM is not enabled on this node")]
    NotConfigured,
    /// The node has stopped.
    #[error("the node is not running")]
    NotRunning,
    /// A blocking call from a notice callback (it runs on the node's thread,
    /// which would have to answer it).
    #[error("blocking DLM call from a callback on the node's thread")]
    WouldDeadlock,
    /// The lock manager refused the call at once; nothing changed.
    #[error(transparent)]
    Lock(#[from] DlmError),
    /// The lockspace request was refused (name, membership, queues full).
    #[error(transparent)]
    Lockspace(DlmServiceError),
    /// NOQUEUE and not grantable now (`EAGAIN`).
    #[error("not grantable now (EAGAIN)")]
    WouldBlock,
    /// The conversion would deadlock and was cancelled (`EDEADLK`).
    #[error("conversion deadlock (EDEADLK)")]
    Deadlock,
    /// The request was cancelled (`-DLM_ECANCEL`).
    #[error("cancelled")]
    Cancelled,
    /// The master refused the call (errno).
    #[error("refused by the master: errno {0}")]
    RefusedByMaster(i32),
    /// The lockspace join was refused because the state directory's DLM
    /// marker could not be written (`docs/dlm.md`): without it, a crash of this
    /// process could go unfenced. `EIO`.
    #[error("cannot record the DLM marker in the state directory: {0}")]
    Marker(String),
}

impl DlmCallError {
    /// The errno libdlm would report.
    pub fn errno(&self) -> i32 {
        match self {
            DlmCallError::Lock(e) => e.errno(),
            DlmCallError::WouldBlock | DlmCallError::Lockspace(DlmServiceError::TryAgain) => {
                phalanx_dlm::EAGAIN
            }
            DlmCallError::Deadlock => phalanx_dlm::EDEADLK,
            DlmCallError::Cancelled => -phalanx_dlm::DLM_ECANCEL,
            DlmCallError::RefusedByMaster(e) => *e,
            DlmCallError::Marker(_) => libc::EIO,
            DlmCallError::Lockspace(DlmServiceError::Busy) => phalanx_dlm::EBUSY,
            DlmCallError::Lockspace(DlmServiceError::NotJoined) => phalanx_dlm::ENOENT,
            _ => phalanx_dlm::EINVAL,
        }
    }
}

fn from_input(e: InputError) -> DlmCallError {
    match e {
        InputError::Dlm(DlmServiceError::NotConfigured) => DlmCallError::NotConfigured,
        InputError::Dlm(DlmServiceError::Lock(l)) => DlmCallError::Lock(l),
        InputError::Dlm(d) => DlmCallError::Lockspace(d),
        _ => DlmCallError::NotRunning,
    }
}

/// A granted lock as the `*_wait` helpers return it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granted {
    /// The lock's id (for convert / unlock).
    pub id: LockId,
    /// The completion (mode, status-block flags, value block read).
    pub completion: Completion,
}

/// One lock call with every option (see [`Lockspace::lock_with`]).
#[derive(Clone, Debug)]
pub struct LockCall {
    /// The resource (≤ 64 bytes).
    pub resource: Vec<u8>,
    /// The mode.
    pub mode: Mode,
    /// `LKF_*` flags.
    pub flags: LockFlags,
    /// The value-block buffer (sets VALBLK).
    pub lvb: Option<Vec<u8>>,
    /// Where this lock's notices go (`None`: the lockspace handle's channel).
    pub notify: Option<Notify>,
    /// Whether the lock wants blocking ASTs.
    pub bast: bool,
}

impl LockCall {
    /// A call for `mode` on `resource`, BASTs wanted, notices to the lockspace.
    pub fn new(resource: impl Into<Vec<u8>>, mode: Mode) -> LockCall {
        LockCall {
            resource: resource.into(),
            mode,
            flags: LockFlags::EMPTY,
            lvb: None,
            notify: None,
            bast: true,
        }
    }
}

/// The outcome a waiting caller receives.
type WaitOutcome = Result<Completion, DlmCallError>;

/// What a handle asks the driver.
pub(crate) enum DlmCommand {
    Join {
        name: Arc<[u8]>,
        notices: Sender<DlmNotice>,
        answer: Sender<Result<(), DlmCallError>>,
    },
    Leave {
        name: Arc<[u8]>,
        answer: Sender<Result<(), DlmCallError>>,
    },
    Call {
        request: DlmRequest,
        /// Where a new lock's notices go.
        notify: Option<Notify>,
        /// A caller waiting for this call's completion.
        waiter: Option<Sender<WaitOutcome>>,
        answer: Sender<Result<Option<LockId>, DlmCallError>>,
    },
    Dump {
        answer: Sender<DlmDump>,
    },
    /// A call run on its caller's thread left outputs in the core: move them.
    Flush,
}

/// One lock in a [`DlmDump`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpedLock {
    /// The lockspace.
    pub lockspace: String,
    /// The resource (lossy UTF-8).
    pub resource: String,
    /// Node holding the lock.
    pub node: NodeId,
    /// The holder's lock id.
    pub id: u32,
    /// Granted mode (`None`: waiting).
    pub granted: Option<Mode>,
    /// Mode asked for by the call in progress.
    pub requested: Option<Mode>,
    /// The master of the resource, when known.
    pub master: Option<NodeId>,
}

/// This node's DLM state: lockspaces, its own locks, the master copies it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DlmDump {
    /// Joined lockspaces: (name, members, recovering).
    pub lockspaces: Vec<(String, Vec<NodeId>, bool)>,
    /// This node's own locks.
    pub own: Vec<DumpedLock>,
    /// Granted master copies held here (locks of any node on resources mastered here).
    pub mastered: Vec<DumpedLock>,
}

/// The DLM through this node (`Clone + Send + Sync`).
#[derive(Clone)]
pub struct Dlm {
    pub(super) tx: Sender<Command>,
    pub(super) waker: Arc<mio::Waker>,
    pub(super) shared: Arc<Shared>,
    pub(super) node: NodeId,
    /// The caller's-thread path of the `*_wait` calls (`None`: no DLM).
    pub(super) fast: Option<DlmFast>,
}

/// What a handle needs to run calls on its own thread: the Stack's service
/// (behind its lock) and the driver's route table.
#[derive(Clone)]
pub(crate) struct DlmFast {
    pub(crate) path: DlmFastPath,
    pub(crate) routes: Arc<Mutex<RouteTable>>,
    /// The links' sockets, for sending the direct path's datagrams from the
    /// calling thread.
    pub(crate) tx: Option<Arc<DirectSockets>>,
}

/// Sockets and clock an application thread sends the direct path's datagrams
/// with ([`DlmFastPath::take_transmits`]): the first of a remote lock's three
/// thread hops (waking the driver to send the request) is gone.
pub(crate) struct DirectSockets {
    /// Per link slot, a descriptor of the driver's sending socket (emptied
    /// when the driver goes).
    sockets: parking_lot::RwLock<Vec<std::net::UdpSocket>>,
    /// The driver's clock origin (the Stack's `Time` zero).
    start: Instant,
}

impl DirectSockets {
    pub(crate) fn new(sockets: Vec<std::net::UdpSocket>, start: Instant) -> DirectSockets {
        DirectSockets {
            sockets: parking_lot::RwLock::new(sockets),
            start,
        }
    }

    /// Closes the descriptors (the driver is gone).
    pub(crate) fn close(&self) {
        self.sockets.write().clear();
    }

    /// Sends what the DLM service let this thread take; refusals are counted
    /// (the channel sends those records again).
    fn send(&self, path: &DlmFastPath) {
        let sockets = self.sockets.read();
        if sockets.is_empty() {
            return;
        }
        let now = Time::from_nanos(self.start.elapsed().as_nanos() as u64);
        let mut errors = 0;
        for t in path.take_transmits(now) {
            let sent = sockets
                .get(usize::from(t.link))
                .is_some_and(|s| s.send_to(&t.data, t.to).is_ok());
            if !sent {
                errors += 1;
            }
        }
        path.count_send_errors(errors);
    }
}

impl std::fmt::Debug for Dlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dlm").finish_non_exhaustive()
    }
}

thread_local! {
    /// The node (its `Shared`'s address) whose driver runs on this thread; 0 on
    /// every other thread.
    static DRIVES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

thread_local! {
    /// A notice callback on this (driver) thread made a DLM call whose outputs
    /// wait in the core.
    static CALLED_ON_DRIVER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the current thread as the driver of the node sharing `shared` (its
/// callbacks' blocking DLM calls are refused).
pub(crate) fn mark_driver_thread(shared: &Arc<Shared>) {
    DRIVES.with(|d| d.set(Arc::as_ptr(shared) as usize));
}

/// Whether a callback on this thread made a DLM call since the last look (the
/// driver then moves its outputs: [`crate::stack::Stack::dlm_flush`]).
pub(crate) fn take_called_on_driver() -> bool {
    CALLED_ON_DRIVER.with(|c| c.replace(false))
}

impl Dlm {
    /// Whether this is the node's driver thread (a thread-local: no lock on
    /// every call).
    fn on_driver_thread(&self) -> bool {
        DRIVES.with(|d| d.get() == Arc::as_ptr(&self.shared) as usize)
    }

    fn command<T>(
        &self,
        make: impl FnOnce(Sender<Result<T, DlmCallError>>) -> DlmCommand,
    ) -> Result<T, DlmCallError> {
        if self.on_driver_thread() {
            return Err(DlmCallError::WouldDeadlock);
        }
        let (tx, rx) = bounded(1);
        self.tx
            .send(Command::Dlm(make(tx)))
            .map_err(|_| DlmCallError::NotRunning)?;
        super::wake_if_parked(&self.shared, &self.waker);
        rx.recv().map_err(|_| DlmCallError::NotRunning)?
    }

    /// Joins (creates or opens) lockspace `name` and waits until this node is a
    /// member; already a member: a new handle at once.
    pub fn lockspace(&self, name: impl AsRef<[u8]>) -> Result<Lockspace, DlmCallError> {
        let name: Arc<[u8]> = name.as_ref().into();
        let (ntx, nrx) = unbounded();
        let n = name.clone();
        self.command(|answer| DlmCommand::Join {
            name: n,
            notices: ntx.clone(),
            answer,
        })?;
        Ok(Lockspace {
            dlm: self.clone(),
            id: lockspace_id(&name),
            name,
            notices_tx: ntx,
            notices: nrx,
            owner: Owner::new(self.node, std::process::id()),
        })
    }

    /// The DLM service's counters (messages, drops, datagrams sent from
    /// application threads); `None` without the service.
    pub fn stats(&self) -> Option<crate::stack::DlmServiceStats> {
        self.fast.as_ref().map(|f| f.path.stats())
    }

    /// This node's lockspaces, own locks and master copies.
    pub fn dump(&self) -> Result<DlmDump, DlmCallError> {
        if self.on_driver_thread() {
            return Err(DlmCallError::WouldDeadlock);
        }
        let (tx, rx) = bounded(1);
        self.tx
            .send(Command::Dlm(DlmCommand::Dump { answer: tx }))
            .map_err(|_| DlmCallError::NotRunning)?;
        super::wake_if_parked(&self.shared, &self.waker);
        rx.recv().map_err(|_| DlmCallError::NotRunning)
    }
}

/// A joined lockspace (`Clone + Send + Sync`; clones share the notice channel).
#[derive(Clone)]
pub struct Lockspace {
    dlm: Dlm,
    name: Arc<[u8]>,
    /// `lockspace_id(name)`.
    id: LockspaceId,
    notices_tx: Sender<DlmNotice>,
    notices: Receiver<DlmNotice>,
    owner: Owner,
}

impl std::fmt::Debug for Lockspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lockspace")
            .field("name", &String::from_utf8_lossy(&self.name))
            .finish_non_exhaustive()
    }
}

impl Lockspace {
    /// The lockspace's name.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The owner the locks of this handle carry (node, process id).
    pub fn owner(&self) -> Owner {
        self.owner
    }

    /// Notices of locks without their own [`Notify`], and the lockspace's
    /// membership, fencing and recovery notices.
    pub fn notices(&self) -> &Receiver<DlmNotice> {
        &self.notices
    }

    fn call(
        &self,
        request: FastRequest,
        notify: Option<Notify>,
        waiter: Option<Sender<WaitOutcome>>,
    ) -> Result<Option<LockId>, DlmCallError> {
        if waiter.is_none()
            && self.dlm.on_driver_thread()
            && let Some(fast) = &self.dlm.fast
        {
            return self.call_on_driver(fast, request, notify);
        }
        self.dlm.command(|answer| DlmCommand::Call {
            request: request.into_request(&self.name),
            notify,
            waiter,
            answer,
        })
    }

    /// A call from a notice callback on the node's own thread
    /// ([`DlmFastPath::call_on_driver`]): run at once, its outputs moved by
    /// the driver once the callback returned (no command, no wait for the
    /// driver's answer, which is this thread).
    fn call_on_driver(
        &self,
        fast: &DlmFast,
        request: FastRequest,
        notify: Option<Notify>,
    ) -> Result<Option<LockId>, DlmCallError> {
        let ls = self.id;
        let mut notify = notify;
        let outcome = fast.path.call_on_driver(&self.name, request, |new_lock| {
            if let (Some(id), Some(n)) = (new_lock, notify.take()) {
                fast.routes.lock().insert(
                    (ls, id.get()),
                    Route {
                        notify: n,
                        waiter: None,
                    },
                );
            }
        });
        match outcome {
            FastCall::Accepted(id) | FastCall::Completed(id, _) => {
                CALLED_ON_DRIVER.with(|c| c.set(true));
                Ok(id)
            }
            FastCall::Refused(e) => Err(from_input(InputError::Dlm(e))),
            FastCall::NotRun(_) => Err(DlmCallError::NotRunning),
        }
    }

    /// The engine's request for a lock call; takes the call's name and value
    /// buffer (no copy of either per call).
    fn lock_request(&self, c: &mut LockCall) -> LockRequest {
        let name = std::mem::take(&mut c.resource);
        let mut r = LockRequest::new(self.owner, name, c.mode).with_flags(c.flags);
        if let Some(v) = c.lvb.take() {
            r.flags |= LockFlags::VALBLK;
            r.lvb = Some(v.into_boxed_slice());
        }
        if !c.bast {
            r = r.without_bast();
        }
        r
    }

    /// A new lock (`dlm_ls_lock`): the id at once, the completion later as a
    /// notice on [`Lockspace::notices`].
    pub fn lock(
        &self,
        resource: &[u8],
        mode: Mode,
        flags: LockFlags,
        lvb: Option<&[u8]>,
    ) -> Result<LockId, DlmCallError> {
        let mut c = LockCall::new(resource, mode);
        c.flags = flags;
        c.lvb = lvb.map(<[u8]>::to_vec);
        self.lock_with(c)
    }

    /// A new lock with every option (its own channel or callback).
    pub fn lock_with(&self, mut c: LockCall) -> Result<LockId, DlmCallError> {
        let request = FastRequest::Lock(self.lock_request(&mut c));
        let notify = Some(c.notify.unwrap_or(Notify::Channel(self.notices_tx.clone())));
        self.call(request, notify, None)?
            .ok_or(DlmCallError::NotRunning)
    }

    /// Converts `lock` to `mode` (CONVERT is added); completion as a notice.
    pub fn convert(
        &self,
        lock: LockId,
        mode: Mode,
        flags: LockFlags,
        lvb: Option<&[u8]>,
    ) -> Result<(), DlmCallError> {
        let request = self.convert_request(lock, mode, flags, lvb);
        self.call(request, None, None).map(|_| ())
    }

    fn convert_request(
        &self,
        lock: LockId,
        mode: Mode,
        flags: LockFlags,
        lvb: Option<&[u8]>,
    ) -> FastRequest {
        let mut r = LockRequest::convert(self.owner, lock, mode).with_flags(flags);
        if let Some(v) = lvb {
            r = r.with_lvb(v);
        }
        FastRequest::Lock(r)
    }

    fn unlock_request(&self, lock: LockId, flags: LockFlags, lvb: Option<&[u8]>) -> FastRequest {
        let mut r = UnlockRequest::new(self.owner, lock).with_flags(flags);
        if let Some(v) = lvb {
            r = r.with_lvb(v);
        }
        FastRequest::Unlock(r)
    }

    /// Unlocks `lock` (with VALBLK and a buffer from PW/EX: writes the value
    /// block); completion (`Unlocked`) as a notice.
    pub fn unlock(
        &self,
        lock: LockId,
        flags: LockFlags,
        lvb: Option<&[u8]>,
    ) -> Result<(), DlmCallError> {
        let request = self.unlock_request(lock, flags, lvb);
        self.call(request, None, None).map(|_| ())
    }

    /// Cancels the waiting request or conversion of `lock`; its completion says
    /// `Cancelled` (or the call's own outcome if it won the race).
    pub fn cancel(&self, lock: LockId) -> Result<(), DlmCallError> {
        let request = FastRequest::Unlock(UnlockRequest::cancel(self.owner, lock));
        self.call(request, None, None).map(|_| ())
    }

    fn wait(
        &self,
        request: FastRequest,
        notify: Option<Notify>,
    ) -> Result<(Option<LockId>, Completion), DlmCallError> {
        if self.dlm.on_driver_thread() {
            return Err(DlmCallError::WouldDeadlock);
        }
        let (request, notify) = match &self.dlm.fast {
            Some(fast) => {
                // A completion the driver has just handed to this thread keeps
                // its event counted until the driver's next instruction: a call
                // made at once would find the DLM busy and take the driver's
                // path (two more thread hops). Give the driver that moment.
                // (No clock read when nothing is in flight: the common case.)
                if fast.path.events_in_flight() {
                    let start = Instant::now();
                    while fast.path.events_in_flight() && start.elapsed() < SPIN_BEFORE_PARK {
                        std::thread::yield_now();
                    }
                }
                match self.fast_wait(fast, request, notify)? {
                    Ok((id, c)) => return outcome(id, c),
                    Err(back) => back,
                }
            }
            None => (request, notify),
        };
        let (tx, rx) = bounded(1);
        let id = self.call(request, notify, Some(tx))?;
        let c = recv_spinning(&rx).map_err(|_| DlmCallError::NotRunning)??;
        outcome(id, c)
    }

    /// A `*_wait` call on this thread ([`DlmFastPath`]): its completion at
    /// once, or after the driver moved its outputs; `Err` gives the call back
    /// for the driver's path. The routes are those `DlmRoutes::command` makes.
    #[allow(clippy::type_complexity)]
    fn fast_wait(
        &self,
        fast: &DlmFast,
        request: FastRequest,
        notify: Option<Notify>,
    ) -> Result<Result<(Option<LockId>, Completion), (FastRequest, Option<Notify>)>, DlmCallError>
    {
        let ls = self.id;
        let target = request.target();
        let mut notify = notify;
        let slot = &mut notify;
        // The waiter's channel, made only when the completion will come later.
        let mut wait_rx = None;
        let rx_slot = &mut wait_rx;
        let outcome = fast.path.call(&self.name, request, |new_lock, own| {
            let waiter = own.is_none().then(|| {
                let (tx, rx) = bounded(1);
                *rx_slot = Some(rx);
                tx
            });
            let mut routes = fast.routes.lock();
            if let (Some(l), Some(w)) = (target, &waiter)
                && let Some(r) = routes.get_mut(&(ls, l.get()))
            {
                r.waiter = Some(w.clone());
            }
            if let (Some(id), Some(n)) = (new_lock, slot.take()) {
                routes.insert((ls, id.get()), Route { notify: n, waiter });
            }
            // A completion that ends the lock ends its route (as routing it does).
            if let Some(c) = own
                && c.granted.is_none()
            {
                routes.remove(&(ls, c.lock.get()));
            }
        });
        match outcome {
            FastCall::NotRun(request) => Ok(Err((request, notify))),
            FastCall::Refused(e) => Err(from_input(InputError::Dlm(e))),
            FastCall::Completed(id, c) => Ok(Ok((id, c))),
            FastCall::Accepted(id) => {
                // With the datagrams sent from here, the driver may have
                // nothing left to do for this call but run the channel's
                // retransmission timer: no wake-up if it is parked until then.
                let driver_idle = fast.tx.as_ref().is_some_and(|tx| {
                    tx.send(&fast.path);
                    fast.path
                        .driver_wanted_by()
                        .is_some_and(|t| super::parked_until_at_most(&self.dlm.shared, t))
                });
                if !driver_idle {
                    self.dlm
                        .tx
                        .send(Command::Dlm(DlmCommand::Flush))
                        .map_err(|_| DlmCallError::NotRunning)?;
                    super::wake_if_parked(&self.dlm.shared, &self.dlm.waker);
                }
                let c = recv_spinning(&wait_rx.ok_or(DlmCallError::NotRunning)?)
                    .map_err(|_| DlmCallError::NotRunning)??;
                Ok(Ok((id, c)))
            }
        }
    }

    /// Locks and waits for the grant (`dlm_ls_lock_wait`). Refusals are errors:
    /// NOQUEUE not grantable → [`DlmCallError::WouldBlock`], and so on. Later
    /// BASTs go to [`Lockspace::notices`], which keeps them until read: a
    /// caller that never reads it and holds contended locks wants
    /// [`Lockspace::lock_wait_with`] with `bast: false` (libdlm's NULL
    /// `bastaddr`).
    pub fn lock_wait(
        &self,
        resource: &[u8],
        mode: Mode,
        flags: LockFlags,
        lvb: Option<&[u8]>,
    ) -> Result<Granted, DlmCallError> {
        let mut c = LockCall::new(resource, mode);
        c.flags = flags;
        c.lvb = lvb.map(<[u8]>::to_vec);
        self.lock_wait_with(c)
    }

    /// Locks with every option of a [`LockCall`] and waits for the grant, as
    /// [`Lockspace::lock_wait`]. With `bast: false` the master sends this lock
    /// no blocking ASTs (no datagram, no notice a holder would not act on);
    /// later notices go to `c.notify`, or to [`Lockspace::notices`].
    ///
    /// ```no_run
    /// # use phalanx::node::{LockCall, Node};
    /// # use phalanx::dlm::{LockFlags, Mode};
    /// # fn demo(node: &Node) -> Result<(), Box<dyn std::error::Error>> {
    /// let ls = node.dlm().lockspace("app")?;
    /// let mut call = LockCall::new("hot", Mode::Ex);
    /// call.bast = false; // released at once: nobody needs to ask for it
    /// let g = ls.lock_wait_with(call)?;
    /// ls.unlock_wait(g.id, LockFlags::EMPTY, None)?;
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn lock_wait_with(&self, mut c: LockCall) -> Result<Granted, DlmCallError> {
        let notify = Some(
            c.notify
                .take()
                .unwrap_or_else(|| Notify::Channel(self.notices_tx.clone())),
        );
        let request = FastRequest::Lock(self.lock_request(&mut c));
        let (id, completion) = self.wait(request, notify)?;
        Ok(Granted {
            id: id.ok_or(DlmCallError::NotRunning)?,
            completion,
        })
    }

    /// Converts and waits for the outcome.
    pub fn convert_wait(
        &self,
        lock: LockId,
        mode: Mode,
        flags: LockFlags,
        lvb: Option<&[u8]>,
    ) -> Result<Completion, DlmCallError> {
        self.wait(self.convert_request(lock, mode, flags, lvb), None)
            .map(|(_, c)| c)
    }

    /// Unlocks and waits for the release (`dlm_ls_unlock_wait`).
    pub fn unlock_wait(
        &self,
        lock: LockId,
        flags: LockFlags,
        lvb: Option<&[u8]>,
    ) -> Result<Completion, DlmCallError> {
        self.wait(self.unlock_request(lock, flags, lvb), None)
            .map(|(_, c)| c)
    }

    /// Leaves the lockspace (refused while this node holds locks in it) and waits
    /// until the group has removed this node.
    pub fn leave(self) -> Result<(), DlmCallError> {
        let name = self.name.clone();
        self.dlm
            .command(|answer| DlmCommand::Leave { name, answer })
    }
}

/// A `*_wait` call's result from its completion: refusals are errors.
fn outcome(
    id: Option<LockId>,
    c: Completion,
) -> Result<(Option<LockId>, Completion), DlmCallError> {
    match c.status {
        Status::Granted | Status::Unlocked => Ok((id, c)),
        Status::WouldBlock => Err(DlmCallError::WouldBlock),
        Status::Deadlock => Err(DlmCallError::Deadlock),
        Status::Cancelled => Err(DlmCallError::Cancelled),
    }
}

/// Callers waiting for a join or a leave to complete.
type Waiters = Vec<Sender<Result<(), DlmCallError>>>;

/// One lock's routing in the driver.
pub(crate) struct Route {
    notify: Notify,
    waiter: Option<Sender<WaitOutcome>>,
}

/// Where each lock's notices go, by (lockspace, lock id). Shared with the
/// handles' [`DlmFast`] path; always locked after the Stack's DLM service, never
/// before it (a handle registers a route while the service is locked).
pub(crate) type RouteTable = IdMap<(LockspaceId, u32), Route>;

/// The driver's side: routes notices to handles, answers joins and leaves.
#[derive(Default)]
pub(crate) struct DlmRoutes {
    locks: Arc<Mutex<RouteTable>>,
    joins: BTreeMap<Arc<[u8]>, Waiters>,
    leaves: BTreeMap<Arc<[u8]>, Waiters>,
    /// Every lockspace handle's notice channel, by lockspace.
    sinks: BTreeMap<Arc<[u8]>, Vec<Sender<DlmNotice>>>,
}

impl DlmRoutes {
    pub(crate) fn command(&mut self, stack: &mut Stack, now: Time, c: DlmCommand) {
        match c {
            DlmCommand::Join {
                name,
                notices,
                answer,
            } => {
                let joined = stack.dlm_lockspaces().iter().any(|(n, _)| *n == name);
                if joined {
                    self.sinks.entry(name).or_default().push(notices);
                    let _ = answer.send(Ok(()));
                    return;
                }
                if let Some(w) = self.joins.get_mut(&name) {
                    w.push(answer);
                    self.sinks.entry(name).or_default().push(notices);
                    return;
                }
                match stack.dlm_request(
                    now,
                    DlmRequest::Join {
                        name: name.to_vec(),
                    },
                ) {
                    Ok(_) => {
                        self.joins.entry(name.clone()).or_default().push(answer);
                        self.sinks.entry(name).or_default().push(notices);
                    }
                    Err(e) => {
                        let _ = answer.send(Err(from_input(e)));
                    }
                }
            }
            DlmCommand::Leave { name, answer } => {
                match stack.dlm_request(
                    now,
                    DlmRequest::Leave {
                        name: name.to_vec(),
                    },
                ) {
                    Ok(_) => self.leaves.entry(name).or_default().push(answer),
                    Err(e) => {
                        let _ = answer.send(Err(from_input(e)));
                    }
                }
            }
            DlmCommand::Call {
                request,
                notify,
                waiter,
                answer,
            } => {
                let (ls, lock) = match &request {
                    DlmRequest::Lock { lockspace, request } => {
                        (lockspace_id(lockspace), request.lock)
                    }
                    DlmRequest::Unlock { lockspace, request } => {
                        (lockspace_id(lockspace), Some(request.lock))
                    }
                    _ => (0, None),
                };
                // A waiter on an existing lock is set before the call: its
                // completion is produced by the call at the earliest.
                let previous = match (lock, &waiter) {
                    (Some(l), Some(w)) => self
                        .locks
                        .lock()
                        .get_mut(&(ls, l.get()))
                        .map(|r| r.waiter.replace(w.clone())),
                    _ => None,
                };
                match stack.dlm_request(now, request) {
                    Ok(Some(id)) => {
                        if let Some(notify) = notify {
                            self.locks
                                .lock()
                                .insert((ls, id.get()), Route { notify, waiter });
                        }
                        let _ = answer.send(Ok(Some(id)));
                    }
                    Ok(None) => {
                        let _ = answer.send(Ok(None));
                    }
                    Err(e) => {
                        if let (Some(l), Some(prev)) = (lock, previous)
                            && let Some(r) = self.locks.lock().get_mut(&(ls, l.get()))
                        {
                            r.waiter = prev;
                        }
                        let _ = answer.send(Err(from_input(e)));
                    }
                }
            }
            DlmCommand::Dump { answer } => {
                let _ = answer.send(dump(stack));
            }
            DlmCommand::Flush => stack.dlm_flush(now),
        }
    }

    /// The route table, for handles' [`DlmFast`] paths.
    pub(crate) fn table(&self) -> Arc<Mutex<RouteTable>> {
        self.locks.clone()
    }

    fn notify_lockspace(&mut self, name: &Arc<[u8]>, n: &DlmNotice) {
        if let Some(s) = self.sinks.get_mut(name) {
            s.retain(|tx| tx.send(n.clone()).is_ok());
        }
    }

    fn notify_all(&mut self, n: &DlmNotice) {
        for s in self.sinks.values_mut() {
            s.retain(|tx| tx.send(n.clone()).is_ok());
        }
    }

    /// The fencing service reported `node` fenced since its loss.
    pub(crate) fn fence_recorded(&mut self, node: NodeId) {
        self.notify_all(&DlmNotice::FenceRecorded {
            node,
            at: std::time::Instant::now(),
        });
    }

    /// Routes one service event; `stack` answers whether a refused lock still exists.
    pub(crate) fn event(&mut self, stack: &Stack, e: DlmEvent) {
        match e {
            DlmEvent::Joined { lockspace } => {
                for w in self.joins.remove(&lockspace).unwrap_or_default() {
                    let _ = w.send(Ok(()));
                }
            }
            DlmEvent::Left { lockspace } => {
                for w in self.leaves.remove(&lockspace).unwrap_or_default() {
                    let _ = w.send(Ok(()));
                }
                self.sinks.remove(&lockspace);
                let id = lockspace_id(&lockspace);
                self.locks.lock().retain(|(ls, _), _| *ls != id);
            }
            DlmEvent::Completion {
                lockspace,
                completion,
            } => {
                let key = (lockspace_id(&lockspace), completion.lock.get());
                let gone = completion.granted.is_none();
                // Taken out of the table, sent with the table unlocked (a
                // callback may be slow).
                let target = {
                    let mut locks = self.locks.lock();
                    let target = locks
                        .get_mut(&key)
                        .map(|r| r.waiter.take().ok_or_else(|| r.notify.clone()));
                    if gone {
                        locks.remove(&key);
                    }
                    target
                };
                match target {
                    Some(Ok(w)) => {
                        let _ = w.send(Ok(completion));
                    }
                    Some(Err(notify)) => {
                        notify.send(DlmNotice::Completion(completion));
                    }
                    None => {}
                }
            }
            DlmEvent::Blocking {
                lockspace,
                lock,
                mode,
                ..
            } => {
                let key = (lockspace_id(&lockspace), lock.get());
                let notify = self.locks.lock().get(&key).map(|r| r.notify.clone());
                if let Some(n) = notify {
                    n.send(DlmNotice::Blocking { lock, mode });
                }
            }
            DlmEvent::Refused {
                lockspace,
                lock,
                errno,
                ..
            } => {
                let id = lockspace_id(&lockspace);
                let key = (id, lock.get());
                // The service's lock before the table's, never inside it.
                let exists = stack
                    .dlm()
                    .is_some_and(|d| d.locks(id).iter().any(|l| l.id == lock.get()));
                let target = {
                    let mut locks = self.locks.lock();
                    let target = locks
                        .get_mut(&key)
                        .map(|r| r.waiter.take().ok_or_else(|| r.notify.clone()));
                    if !exists {
                        locks.remove(&key);
                    }
                    target
                };
                match target {
                    Some(Ok(w)) => {
                        let _ = w.send(Err(DlmCallError::RefusedByMaster(errno)));
                    }
                    Some(Err(notify)) => {
                        notify.send(DlmNotice::Refused { lock, errno });
                    }
                    None => {}
                }
            }
            DlmEvent::Members {
                lockspace,
                epoch,
                members,
                failed,
            } => self.notify_lockspace(
                &lockspace,
                &DlmNotice::Members {
                    epoch,
                    members,
                    failed,
                },
            ),
            DlmEvent::Recovered { lockspace, epoch } => {
                self.notify_lockspace(&lockspace, &DlmNotice::Recovered { epoch })
            }
            DlmEvent::AwaitFencing { node } => self.notify_all(&DlmNotice::AwaitFencing { node }),
            DlmEvent::Fenced { node } => self.notify_all(&DlmNotice::Fenced {
                node,
                at: std::time::Instant::now(),
            }),
        }
    }
}

fn dump(stack: &Stack) -> DlmDump {
    // The lockspaces first: `dlm()` holds the service's lock until the end.
    let lockspaces = stack.dlm_lockspaces();
    let Some(d) = stack.dlm() else {
        return DlmDump::default();
    };
    let mut out = DlmDump::default();
    for (name, id) in lockspaces {
        let ls = String::from_utf8_lossy(&name).into_owned();
        out.lockspaces.push((
            ls.clone(),
            d.members(id).map(<[NodeId]>::to_vec).unwrap_or_default(),
            d.is_recovering(id).unwrap_or(false),
        ));
        for l in d.locks(id) {
            out.own.push(DumpedLock {
                lockspace: ls.clone(),
                resource: String::from_utf8_lossy(&l.name).into_owned(),
                node: d.id(),
                id: l.id,
                granted: l.granted,
                requested: l.pending.and_then(|(_, m)| m),
                master: l.master,
            });
        }
        for (res, node, lid, mode) in d.master_copies(id) {
            out.mastered.push(DumpedLock {
                lockspace: ls.clone(),
                resource: String::from_utf8_lossy(&res).into_owned(),
                node,
                id: lid,
                granted: Some(mode),
                requested: None,
                master: Some(d.id()),
            });
        }
    }
    out
}
