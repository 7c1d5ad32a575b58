//! Closed process groups on a running node: the handles applications program
//! against (the role of libcpg's `cpg_initialize` / `cpg_join` / `cpg_mcast_joined`
//! / `cpg_dispatch`).
//!
//! [`Cpg`] is the node's group service (clone it freely); each [`CpgMember`] it
//! creates is one member — what a process is to Corosync — with its own event
//! stream. Requests answer at once; a join or leave *completes* when its ordered
//! configuration change arrives (a [`GroupChange`](phalanx_cpg::GroupChange)
//! listing the member in `joined` or `left`). Dropping the last clone of a
//! member without leaving its groups reports it to the others with reason
//! PROCDOWN.
//!
//! Events reach the application three ways: [`CpgMember::events`] (a crossbeam
//! receiver), [`CpgMember::dispatch`] with a callback (with [`CpgMember::fd`] for
//! poll()-based loops, as `cpg_fd_get` + `cpg_dispatch`), or
//! [`Cpg::member_with_callback`], which runs the callback on a thread of its own
//! until its [`CallbackMember`] is dropped.

use super::callback::CallbackGuard;
use super::{Command, Reply, Shared};
use crate::stack::{CpgRequest, Request};
use crate::util::handle_table::HandleTable;
use crate::util::handle_table::{Handle, HandleError};
use crate::util::notify_fd::NotifyFd;
use bytes::BytesMut;
use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded};
use parking_lot::{Condvar, Mutex};
use phalanx_cpg::wire::MAX_HEADER;
use phalanx_cpg::{CpgError, CpgEvent, GroupName, Guarantee, MemberId, NodeId};
use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Where the driver puts one member's events.
pub(crate) struct MemberSink {
    pub(crate) tx: Sender<CpgEvent>,
    pub(crate) notify: Arc<NotifyFd>,
}

/// CPG state shared by the handles and the driver.
pub(crate) struct CpgShared {
    /// Next local member id the node hands out itself.
    pub(crate) next_local: AtomicU32,
    /// Local ids of live members (handed out or chosen), so that a chosen id
    /// ([`Cpg::member_with_id`]) never names two live members.
    live: Mutex<BTreeSet<u32>>,
    /// 64-bit handles of live members.
    handles: Mutex<HandleTable<Weak<MemberInner>>>,
    /// Every group and its members, as last applied (published by the driver).
    pub(crate) groups: Mutex<Vec<CpgGroup>>,
    /// Bytes reserved by handles for messages in the command queue, plus the
    /// core's send-queue bytes (kept in step by the driver).
    pub(crate) bytes: AtomicUsize,
    /// The same in messages.
    pub(crate) messages: AtomicUsize,
    room_lock: Mutex<()>,
    room: Condvar,
    waiters: AtomicUsize,
}

impl Default for CpgShared {
    fn default() -> Self {
        CpgShared {
            next_local: AtomicU32::new(1),
            live: Mutex::new(BTreeSet::new()),
            handles: Mutex::new(HandleTable::new(1 << 20)),
            groups: Mutex::new(Vec::new()),
            bytes: AtomicUsize::new(0),
            messages: AtomicUsize::new(0),
            room_lock: Mutex::new(()),
            room: Condvar::new(),
            waiters: AtomicUsize::new(0),
        }
    }
}

impl std::fmt::Debug for CpgShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpgShared")
            .field("bytes", &self.bytes)
            .field("messages", &self.messages)
            .finish_non_exhaustive()
    }
}

impl CpgShared {
    /// Moves the budget by the core's queue change and wakes `mcast_wait`ers
    /// when room appeared. Called by the driver.
    pub(crate) fn adjust(&self, bytes: isize, messages: isize) {
        fn apply(a: &AtomicUsize, d: isize) {
            if d >= 0 {
                a.fetch_add(d as usize, Ordering::AcqRel);
            } else {
                a.fetch_sub(d.unsigned_abs(), Ordering::AcqRel);
            }
        }
        apply(&self.bytes, bytes);
        apply(&self.messages, messages);
        if (bytes < 0 || messages < 0) && self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.room_lock.lock();
            self.room.notify_all();
        }
    }
}

/// The node's process-group service. `Clone + Send + Sync`.
///
/// A one-node cluster on loopback: a member joins a group, multicasts to it and
/// receives its own message after the view that lists it.
///
/// ```
/// use phalanx::cpg::{CpgEvent, Guarantee};
/// use phalanx::node::{Node, NodeOptions};
/// use phalanx::totem::Config;
/// use std::time::Duration;
///
/// // A free port for the example; a real cluster's addresses come from its
/// // configuration (`NodeOptions::from_config`).
/// let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
/// let addrs = [(1, format!("127.0.0.1:{port}").parse()?)].into();
/// let node = Node::start(NodeOptions::new(Config::new(1, vec![1]), addrs))?;
///
/// let member = node.cpg().member()?;
/// member.join(b"demo")?;
/// member.mcast_wait(b"demo", Guarantee::Agreed, b"hello", Some(Duration::from_secs(30)))?;
/// // In order: the view this member joined, then the message.
/// loop {
///     match member.events().recv_timeout(Duration::from_secs(30))? {
///         CpgEvent::Change(c) => {
///             assert_eq!(c.members, [member.id()]);
///             println!("view of {:?}: {:?}", c.group, c.members);
///         }
///         CpgEvent::Deliver(d) => {
///             assert_eq!((d.sender, &d.data[..]), (member.id(), &b"hello"[..]));
///             break;
///         }
///         _ => {} // totem configurations
///     }
/// }
/// assert_eq!(node.cpg().membership(b"demo"), [member.id()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Cpg {
    pub(super) node_id: NodeId,
    pub(super) tx: Sender<Command>,
    pub(super) waker: Arc<mio::Waker>,
    pub(super) shared: Arc<Shared>,
    pub(super) event_capacity: usize,
    pub(super) max_message: usize,
    /// (bytes, messages) the handles may have queued (the core's limits).
    pub(super) limits: (usize, usize),
}

impl std::fmt::Debug for Cpg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cpg")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// A group and its members cluster-wide, from [`Cpg::groups`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CpgGroup {
    /// The group.
    pub name: GroupName,
    /// Its members, ascending.
    pub members: Vec<MemberId>,
}

impl CpgGroup {
    pub(crate) fn new(name: GroupName, members: Vec<MemberId>) -> Self {
        CpgGroup { name, members }
    }
}

/// How much [`CpgMember::dispatch`] handles (libcpg's `CS_DISPATCH_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DispatchMode {
    /// At most one event, without waiting.
    One,
    /// Every event waiting now, without waiting for more.
    All,
    /// Events as they come, until the node stops or the member is dropped.
    Blocking,
}

impl Cpg {
    /// Largest payload [`CpgMember::mcast`] accepts (`CpgConfig::max_message_size`).
    pub fn max_message_size(&self) -> usize {
        self.max_message
    }

    /// This node's id.
    pub fn local_node(&self) -> NodeId {
        self.node_id
    }

    /// A new member of this node, not yet in any group.
    pub fn member(&self) -> Result<CpgMember, CpgError> {
        let local = {
            let mut live = self.shared.cpg.live.lock();
            loop {
                let l = self.shared.cpg.next_local.fetch_add(1, Ordering::Relaxed);
                if l != 0 && live.insert(l) {
                    break l;
                }
            }
        };
        self.member_as(local)
    }

    /// A new member with local id `local`, not yet in any group; `Exist` when
    /// a live member of this node has that id. For bridges whose clients name
    /// themselves (the libqb IPC server uses the client's pid, which libcpg
    /// applications expect to find in member lists). An id of a member that
    /// went down may be taken again: the core orders the new member's joins
    /// after the old one's departure (`Busy` until then).
    ///
    /// ```
    /// use phalanx::cpg::CpgError;
    /// use phalanx::node::{Node, NodeOptions};
    /// use phalanx::totem::Config;
    ///
    /// let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    /// let addrs = [(1, format!("127.0.0.1:{port}").parse()?)].into();
    /// let node = Node::start(NodeOptions::new(Config::new(1, vec![1]), addrs))?;
    /// let member = node.cpg().member_with_id(4242)?;
    /// assert_eq!(member.id().local, 4242);
    /// // Taken while that member lives; free again once it is dropped.
    /// assert_eq!(node.cpg().member_with_id(4242).unwrap_err(), CpgError::Exist);
    /// drop(member);
    /// assert_eq!(node.cpg().member_with_id(4242)?.id().local, 4242);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn member_with_id(&self, local: u32) -> Result<CpgMember, CpgError> {
        if local == 0 || !self.shared.cpg.live.lock().insert(local) {
            return Err(CpgError::Exist);
        }
        self.member_as(local)
    }

    /// A member with `local`, already recorded as live.
    fn member_as(&self, local: u32) -> Result<CpgMember, CpgError> {
        let (tx, rx) = bounded(self.event_capacity.max(1));
        let notify = match NotifyFd::new() {
            Ok(n) => Arc::new(n),
            Err(_) => {
                self.shared.cpg.live.lock().remove(&local);
                return Err(CpgError::NoResources);
            }
        };
        let inner = Arc::new_cyclic(|weak: &Weak<MemberInner>| {
            let handle = self.shared.cpg.handles.lock().insert(weak.clone());
            MemberInner {
                cpg: self.clone(),
                local,
                handle,
                events: rx,
                notify: notify.clone(),
                joined: Mutex::new(BTreeSet::new()),
                scratch: Mutex::new(BytesMut::new()),
            }
        });
        if inner.handle.is_err() {
            return Err(CpgError::NoResources);
        }
        let sink = MemberSink { tx, notify };
        self.send(Command::CpgRegister { local, sink })?;
        Ok(CpgMember { inner })
    }

    /// A new member whose events go to `callback`, called in order on a thread
    /// of its own until the returned [`CallbackMember`] is dropped (or
    /// [stopped](CallbackMember::stop)), the member goes down or the node stops.
    pub fn member_with_callback(
        &self,
        callback: impl FnMut(CpgEvent) + Send + 'static,
    ) -> Result<CallbackMember, CpgError> {
        let member = self.member()?;
        let name = format!("phalanx-cpg-{}", member.inner.local);
        // The thread's stream also ends when the driver drops the member's sink
        // (member down, node stopped).
        let events = member.inner.events.clone();
        let callback =
            CallbackGuard::spawn(name, events, callback).map_err(|_| CpgError::NoResources)?;
        Ok(CallbackMember { callback, member })
    }

    /// The member a 64-bit handle names (from [`CpgMember::handle`]), for handles
    /// that crossed an FFI or IPC boundary: a handle of a dropped member is refused.
    pub fn member_by_handle(&self, handle: u64) -> Result<CpgMember, HandleError> {
        let weak = self.shared.cpg.handles.lock().get(Handle(handle))?.clone();
        weak.upgrade()
            .map(|inner| CpgMember { inner })
            .ok_or(HandleError::Stale)
    }

    /// Members of `group` cluster-wide, as this node last applied them.
    pub fn membership(&self, group: &[u8]) -> Vec<MemberId> {
        self.shared
            .cpg
            .groups
            .lock()
            .iter()
            .find(|g| g.name.as_bytes() == group)
            .map(|g| g.members.clone())
            .unwrap_or_default()
    }

    /// Every group cluster-wide with its members (`cpg_iteration`), by name.
    pub fn groups(&self) -> Vec<CpgGroup> {
        self.shared.cpg.groups.lock().clone()
    }

    fn send(&self, c: Command) -> Result<(), CpgError> {
        self.tx.send(c).map_err(|_| CpgError::NotRunning)?;
        super::wake_if_parked(&self.shared, &self.waker);
        Ok(())
    }

    fn round_trip(&self, request: CpgRequest) -> Result<(), CpgError> {
        super::request(
            &self.tx,
            &self.shared,
            &self.waker,
            |reply| Command::Stack(Request::Cpg(request), Reply::Cpg(reply)),
            || CpgError::NotRunning,
        )
    }
}

struct MemberInner {
    cpg: Cpg,
    local: u32,
    handle: Result<Handle, HandleError>,
    events: Receiver<CpgEvent>,
    notify: Arc<NotifyFd>,
    /// Groups joined and not left through this member: `mcast` checks here
    /// exactly what the core checks (joining or joined), without a round trip.
    joined: Mutex<BTreeSet<Vec<u8>>>,
    /// Where `mcast` encodes: messages are carved out of shared chunks of
    /// [`SCRATCH_CHUNK`] bytes, so that the allocator is called once per
    /// chunk, not once per message on this thread and again on the driver's
    /// to free it (glibc then takes this thread's arena lock: the two
    /// contended for it).
    scratch: Mutex<BytesMut>,
}

/// The size of the buffers `mcast` carves encoded messages from. A chunk is
/// freed when the last message in it was framed; at most one per member is
/// partly free at a time.
const SCRATCH_CHUNK: usize = 64 * 1024;

impl Drop for MemberInner {
    fn drop(&mut self) {
        if let Ok(h) = self.handle {
            let _ = self.cpg.shared.cpg.handles.lock().remove(h);
        }
        // The node may be gone already; then there is nobody left to tell.
        let down = Request::Cpg(CpgRequest::MemberDown { local: self.local });
        let _ = self.cpg.send(Command::Stack(down, Reply::None));
        // Only now may the id be chosen again: its new member's registration
        // is queued after this departure.
        self.cpg.shared.cpg.live.lock().remove(&self.local);
    }
}

/// One group member (node id + local id). `Clone + Send + Sync`; the member goes
/// down (PROCDOWN for any group it did not leave) when its last clone is dropped.
#[derive(Clone)]
pub struct CpgMember {
    inner: Arc<MemberInner>,
}

impl std::fmt::Debug for CpgMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpgMember")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl CpgMember {
    /// This member's identity cluster-wide.
    pub fn id(&self) -> MemberId {
        MemberId {
            node: self.inner.cpg.node_id,
            local: self.inner.local,
        }
    }

    /// A 64-bit handle for this member, safe to pass across an FFI or IPC
    /// boundary: [`Cpg::member_by_handle`] refuses it once the member is gone.
    pub fn handle(&self) -> u64 {
        self.inner.handle.map(|h| h.0).unwrap_or(0)
    }

    /// Asks to join `group`. `Ok` means the request is ordered; the join is
    /// complete when a [`CpgEvent::Change`] lists this member in `joined`.
    pub fn join(&self, group: &[u8]) -> Result<(), CpgError> {
        GroupName::new(group)?;
        let local = self.inner.local;
        let g = group.to_vec();
        // Held across the round trip: a clone's mcast cannot slip between this
        // request and the core's answer (see `mcast`).
        let mut joined = self.inner.joined.lock();
        self.inner
            .cpg
            .round_trip(CpgRequest::Join { local, group: g })?;
        joined.insert(group.to_vec());
        Ok(())
    }

    /// Asks to leave `group`; complete when a change lists this member in `left`.
    pub fn leave(&self, group: &[u8]) -> Result<(), CpgError> {
        GroupName::new(group)?;
        let local = self.inner.local;
        let g = group.to_vec();
        let mut joined = self.inner.joined.lock();
        self.inner
            .cpg
            .round_trip(CpgRequest::Leave { local, group: g })?;
        joined.remove(group);
        Ok(())
    }

    /// Multicasts `data` to every member of `group` (this one included), in
    /// agreed or safe order. [`CpgError::TryAgain`] when the node's queue is
    /// full: see [`CpgMember::mcast_wait`].
    pub fn mcast(&self, group: &[u8], guarantee: Guarantee, data: &[u8]) -> Result<(), CpgError> {
        let cpg = &self.inner.cpg;
        if data.len() > cpg.max_message {
            return Err(CpgError::TooLarge {
                size: data.len(),
                max: cpg.max_message,
            });
        }
        // Held until the command is queued, so that a clone's leave is ordered
        // either before this check (NotExist) or after this message (which the
        // core then still accepts): what the handle admits, the core takes.
        let joined = self.inner.joined.lock();
        if !joined.contains(group) {
            return Err(CpgError::NotExist);
        }
        let reserved = MAX_HEADER + data.len();
        let budget = &cpg.shared.cpg;
        let bytes = budget.bytes.fetch_add(reserved, Ordering::AcqRel);
        let msgs = budget.messages.fetch_add(1, Ordering::AcqRel);
        // The core takes any message into an empty queue; otherwise both limits hold.
        let empty = bytes == 0 && msgs == 0;
        if !empty && (bytes + reserved > cpg.limits.0 || msgs + 1 > cpg.limits.1) {
            budget.bytes.fetch_sub(reserved, Ordering::AcqRel);
            budget.messages.fetch_sub(1, Ordering::AcqRel);
            return Err(CpgError::TryAgain);
        }
        // The one copy of the payload, straight into the message totem carries.
        let encoded = {
            let mut scratch = self.inner.scratch.lock();
            let need = MAX_HEADER + data.len();
            if scratch.capacity() - scratch.len() < need {
                *scratch = BytesMut::with_capacity(need.max(SCRATCH_CHUNK));
            }
            phalanx_cpg::wire::encode_mcast_into(
                Some(crate::stack::ServiceId::Cpg as u8),
                self.inner.local,
                group,
                data,
                &mut scratch,
            );
            scratch.split().freeze()
        };
        let request = Request::Cpg(CpgRequest::McastEncoded {
            local: self.inner.local,
            guarantee,
            encoded,
        });
        let sent = cpg.send(Command::Stack(request, Reply::CpgBudget(reserved)));
        drop(joined);
        if sent.is_err() {
            budget.bytes.fetch_sub(reserved, Ordering::AcqRel);
            budget.messages.fetch_sub(1, Ordering::AcqRel);
        }
        sent
    }

    /// [`CpgMember::mcast`], waiting for room instead of answering `TryAgain`
    /// (at most `timeout`, if given; then `TryAgain`).
    pub fn mcast_wait(
        &self,
        group: &[u8],
        guarantee: Guarantee,
        data: &[u8],
        timeout: Option<Duration>,
    ) -> Result<(), CpgError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let budget = &self.inner.cpg.shared.cpg;
        loop {
            match self.mcast(group, guarantee, data) {
                Err(CpgError::TryAgain) => {}
                other => return other,
            }
            let mut guard = budget.room_lock.lock();
            budget.waiters.fetch_add(1, Ordering::SeqCst);
            // Re-check under the lock: room freed between the failed try and here
            // was signalled before we waited, so look before sleeping.
            let full = budget.bytes.load(Ordering::SeqCst) + MAX_HEADER + data.len()
                > self.inner.cpg.limits.0
                || budget.messages.load(Ordering::SeqCst) >= self.inner.cpg.limits.1;
            if full {
                // Bounded waits, so a node that stopped cannot hang the caller.
                let slice = Duration::from_millis(100);
                let wait = match deadline {
                    Some(d) => d.saturating_duration_since(Instant::now()).min(slice),
                    None => slice,
                };
                budget.room.wait_for(&mut guard, wait);
            }
            budget.waiters.fetch_sub(1, Ordering::SeqCst);
            drop(guard);
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return self.mcast(group, guarantee, data);
            }
        }
    }

    /// This member's events, in order: its groups' configuration changes and
    /// messages, and totem membership changes.
    pub fn events(&self) -> &Receiver<CpgEvent> {
        &self.inner.events
    }

    /// A file descriptor that is readable while events wait (poll it for
    /// `POLLIN`, then call [`CpgMember::dispatch`]).
    pub fn fd(&self) -> RawFd {
        self.inner.notify.as_raw_fd()
    }

    /// Hands waiting events to `f` (see [`DispatchMode`]); returns how many.
    pub fn dispatch(&self, mode: DispatchMode, mut f: impl FnMut(CpgEvent)) -> usize {
        // Clear first: an event queued while we drain raises the fd again.
        self.inner.notify.clear();
        let mut n = 0;
        loop {
            let ev = match mode {
                DispatchMode::Blocking => match self.inner.events.recv() {
                    Ok(ev) => ev,
                    // The driver dropped the member's sink: the node stopped.
                    Err(_) => return n,
                },
                _ => match self.inner.events.try_recv() {
                    Ok(ev) => ev,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => return n,
                },
            };
            f(ev);
            n += 1;
            if mode == DispatchMode::One {
                if !self.inner.events.is_empty() {
                    self.inner.notify.raise();
                }
                return n;
            }
        }
    }

    /// Members of `group` cluster-wide, as this node last applied them.
    pub fn membership(&self, group: &[u8]) -> Vec<MemberId> {
        self.inner.cpg.membership(group)
    }
}

/// A member whose events go to a callback on a thread of its own, from
/// [`Cpg::member_with_callback`]. It dereferences to its [`CpgMember`] (join,
/// leave, mcast as usual).
///
/// Dropping it stops the callback (waiting for a call in progress to return,
/// see [`CallbackGuard`]) and then drops the member, which goes down if no
/// clone of it is left. [`CallbackMember::stop`] stops the callback and keeps
/// the member: its later events then wait in [`CpgMember::events`].
#[must_use = "dropping it at once stops the callback and the member"]
#[derive(Debug)]
pub struct CallbackMember {
    // Declared first: dropped first, so no callback runs for a member that
    // is going down.
    callback: CallbackGuard,
    member: CpgMember,
}

impl CallbackMember {
    /// The member.
    pub fn member(&self) -> &CpgMember {
        &self.member
    }

    /// Stops the callback (waiting for its thread to end) and hands back the
    /// member.
    pub fn stop(self) -> CpgMember {
        let CallbackMember { callback, member } = self;
        callback.stop();
        member
    }
}

impl std::ops::Deref for CallbackMember {
    type Target = CpgMember;

    fn deref(&self) -> &CpgMember {
        &self.member
    }
}
