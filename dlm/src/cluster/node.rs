//! [`DlmNode`]: inputs, outputs and dispatch to the node's lockspaces.

use std::collections::{BTreeMap, VecDeque};

use crate::error::{ConfigError, DlmError};
use crate::lock::{LockId, Owner};
use crate::lockspace::{LockRequest, Lockspace, LockspaceConfig, UnlockRequest};
use crate::mode::Mode;
use crate::output::Completion;

use super::lockspace_state::LsState;
use super::process::LocalLockView;
use super::wire::{LockspaceId, Msg, NodeId, decode};

/// Bounds of a [`DlmNode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlmConfig {
    /// The engine configuration of every lockspace (its value-block length must be
    /// the same on every node).
    pub lockspace: LockspaceConfig,
    /// Most application calls waiting (for a lookup or the end of recovery) per
    /// lockspace; beyond it calls are refused with `TryAgain`.
    pub max_parked: usize,
    /// Most requests from other nodes held per lockspace while it recovers; beyond
    /// it they are refused with `EAGAIN`.
    pub max_held: usize,
    /// Most outputs queued; beyond it application calls are refused with
    /// `TryAgain` (messages from peers are always taken).
    pub max_outputs: usize,
    /// Most messages kept for lockspaces not joined yet or epochs not reached yet.
    pub max_early: usize,
}

impl Default for DlmConfig {
    fn default() -> Self {
        DlmConfig {
            lockspace: LockspaceConfig::default(),
            max_parked: 4096,
            max_held: 4096,
            max_outputs: 65536,
            max_early: 4096,
        }
    }
}

/// Every input of a [`DlmNode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// An application lock or convert call.
    Lock {
        /// Lockspace.
        lockspace: LockspaceId,
        /// The call.
        request: LockRequest,
    },
    /// An application unlock or cancel call.
    Unlock {
        /// Lockspace.
        lockspace: LockspaceId,
        /// The call.
        request: UnlockRequest,
    },
    /// A message another node's `Output::Send` addressed to this node.
    Message {
        /// The sender (authenticated by the link).
        from: NodeId,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The lockspace's agreed member set changed (a node joined or left the
    /// lockspace's group, or failed). Every member gets the same sequence of these,
    /// with increasing `epoch` (the group view's position in the total order).
    Members {
        /// Lockspace.
        lockspace: LockspaceId,
        /// Increasing view number, the same on every member.
        epoch: u64,
        /// Members after the change (this node included while it is a member).
        members: Vec<NodeId>,
        /// Every node that left the lockspace by failure (not by a clean leave) and
        /// that the fence decision does not report fenced yet — not only those of
        /// this change: a node joining now must wait for them too. Recovery waits
        /// until each is reported [`Input::Fenced`].
        failed: Vec<NodeId>,
    },
    /// The fence decision reports `node` fenced since it was lost
    /// (`FenceDecision::is_fenced_since_lost`). May be repeated.
    Fenced {
        /// The node.
        node: NodeId,
    },
    /// The toss timer: forget the lockspace's idle resources and tell their
    /// directory nodes.
    TossIdle {
        /// Lockspace.
        lockspace: LockspaceId,
    },
}

/// What a [`DlmNode`] asks its driver to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Carry `bytes` to node `to` (per-pair FIFO expected).
    Send {
        /// Destination.
        to: NodeId,
        /// An encoded [`Msg`].
        bytes: Vec<u8>,
    },
    /// A completion AST for a local process (`completion.lock` is the id the lock
    /// call returned on this node).
    Completion {
        /// Lockspace.
        lockspace: LockspaceId,
        /// The AST.
        completion: Completion,
    },
    /// A blocking AST for a local process.
    Blocking {
        /// Lockspace.
        lockspace: LockspaceId,
        /// The lock (local id).
        lock: LockId,
        /// Its owner.
        owner: Owner,
        /// The blocked mode.
        mode: Mode,
    },
    /// The master refused a call accepted locally (errno as `DlmError::errno`); a
    /// refused new lock is gone, a refused conversion or unlock left the lock as it
    /// was.
    Refused {
        /// Lockspace.
        lockspace: LockspaceId,
        /// The lock (local id).
        lock: LockId,
        /// Its owner.
        owner: Owner,
        /// errno.
        errno: i32,
    },
    /// Recovery of some lockspace waits until `node` is fenced: answer with
    /// [`Input::Fenced`] once the fence decision says so.
    AwaitFencing {
        /// The failed node.
        node: NodeId,
    },
    /// This node forgot an idle resource it mastered (toss timer or a full toss
    /// cache) and its value block with it; the next master starts from zero.
    Forgotten {
        /// Lockspace.
        lockspace: LockspaceId,
        /// Resource.
        name: Vec<u8>,
    },
    /// The lockspace finished recovery for `epoch` and runs again.
    Recovered {
        /// Lockspace.
        lockspace: LockspaceId,
        /// Epoch.
        epoch: u64,
    },
}

/// One node's distributed lock manager (see the [module docs](super)).
#[derive(Debug)]
pub struct DlmNode {
    me: NodeId,
    config: DlmConfig,
    lockspaces: BTreeMap<LockspaceId, LsState>,
    /// Messages for lockspaces this node has not joined yet.
    early: VecDeque<(NodeId, Msg)>,
    outputs: VecDeque<Output>,
}

impl DlmNode {
    /// A node with no lockspace; checks the engine configuration.
    pub fn new(me: NodeId, config: DlmConfig) -> Result<DlmNode, ConfigError> {
        Lockspace::new(config.lockspace.clone())?;
        Ok(DlmNode {
            me,
            config,
            lockspaces: BTreeMap::new(),
            early: VecDeque::new(),
            outputs: VecDeque::new(),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// Dispatches any input; `Ok(Some(id))` for an accepted lock call.
    pub fn handle_input(&mut self, input: Input) -> Result<Option<LockId>, DlmError> {
        match input {
            Input::Lock { lockspace, request } => self.lock(lockspace, request).map(Some),
            Input::Unlock { lockspace, request } => self.unlock(lockspace, request).map(|()| None),
            Input::Message { from, bytes } => {
                self.message(from, &bytes);
                Ok(None)
            }
            Input::Members {
                lockspace,
                epoch,
                members,
                failed,
            } => {
                self.change_members(lockspace, epoch, members, failed);
                Ok(None)
            }
            Input::Fenced { node } => {
                for ls in self.lockspaces.values_mut() {
                    ls.fenced(node, &mut self.outputs);
                }
                Ok(None)
            }
            Input::TossIdle { lockspace } => {
                if let Some(ls) = self.lockspaces.get_mut(&lockspace) {
                    ls.toss_idle(&mut self.outputs);
                }
                Ok(None)
            }
        }
    }

    /// An application lock, conversion or orphan adoption; the id names the lock on
    /// this node. Validated here at once (flags, name, value-block length, the
    /// lock's state); what the master decides comes as outputs.
    pub fn lock(&mut self, lockspace: LockspaceId, req: LockRequest) -> Result<LockId, DlmError> {
        self.check_room()?;
        let ls = self
            .lockspaces
            .get_mut(&lockspace)
            .ok_or(DlmError::NoSuchLockspace(lockspace))?;
        ls.app_lock(req, &mut self.outputs)
    }

    /// An application unlock or cancel.
    pub fn unlock(&mut self, lockspace: LockspaceId, req: UnlockRequest) -> Result<(), DlmError> {
        self.check_room()?;
        let ls = self
            .lockspaces
            .get_mut(&lockspace)
            .ok_or(DlmError::NoSuchLockspace(lockspace))?;
        ls.app_unlock(req, &mut self.outputs)
    }

    /// The next output, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// How many outputs wait to be polled.
    pub fn pending_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// The next output, left in the queue.
    pub fn peek_output(&self) -> Option<&Output> {
        self.outputs.front()
    }

    /// This node's own locks in a lockspace, by id.
    pub fn locks(&self, lockspace: LockspaceId) -> Vec<LocalLockView> {
        self.lockspaces
            .get(&lockspace)
            .map(LsState::local_views)
            .unwrap_or_default()
    }

    /// The granted master copies this node holds: (resource, holder node, the
    /// holder's lock id, granted mode). Orphans are not listed.
    pub fn master_copies(&self, lockspace: LockspaceId) -> Vec<(Vec<u8>, NodeId, u32, Mode)> {
        self.lockspaces
            .get(&lockspace)
            .map(LsState::master_copies)
            .unwrap_or_default()
    }

    /// The engine holding the master copies of the resources this node masters.
    pub fn master_engine(&self, lockspace: LockspaceId) -> Option<&Lockspace> {
        self.lockspaces.get(&lockspace).map(LsState::engine)
    }

    /// Whether the lockspace is recovering (`None`: not a member).
    pub fn is_recovering(&self, lockspace: LockspaceId) -> Option<bool> {
        self.lockspaces.get(&lockspace).map(LsState::is_recovering)
    }

    /// The lockspace's members as this node knows them.
    pub fn members(&self, lockspace: LockspaceId) -> Option<&[NodeId]> {
        self.lockspaces.get(&lockspace).map(LsState::member_list)
    }

    fn check_room(&self) -> Result<(), DlmError> {
        if self.outputs.len() >= self.config.max_outputs {
            return Err(DlmError::TryAgain);
        }
        Ok(())
    }

    fn message(&mut self, from: NodeId, bytes: &[u8]) {
        // Undecodable bytes are dropped: the link authenticated the sender, so this
        // is a version mismatch or a bug, and no answer could be addressed anyway.
        let Ok(msg) = decode(bytes) else { return };
        let lockspace = msg.lockspace();
        match self.lockspaces.get_mut(&lockspace) {
            Some(ls) => ls.message(from, msg, &mut self.outputs),
            None => {
                if self.early.len() < self.config.max_early {
                    self.early.push_back((from, msg));
                }
            }
        }
    }

    fn change_members(
        &mut self,
        lockspace: LockspaceId,
        epoch: u64,
        members: Vec<NodeId>,
        failed: Vec<NodeId>,
    ) {
        let mut members = members;
        members.sort_unstable();
        members.dedup();
        let is_member = members.contains(&self.me);
        match self.lockspaces.get_mut(&lockspace) {
            // This node left the lockspace: its state goes with it.
            Some(ls) if !is_member && epoch > ls.epoch() => {
                self.lockspaces.remove(&lockspace);
            }
            Some(_) if !is_member => {}
            Some(ls) => ls.members(epoch, members, failed, &mut self.outputs),
            None if is_member => {
                let Ok(engine) = Lockspace::new(self.config.lockspace.clone()) else {
                    return;
                };
                let mut ls = LsState::new(lockspace, self.me, engine, &self.config);
                ls.members(epoch, members, failed, &mut self.outputs);
                let early = std::mem::take(&mut self.early);
                for (from, msg) in early {
                    if msg.lockspace() == lockspace {
                        ls.message(from, msg, &mut self.outputs);
                    } else {
                        self.early.push_back((from, msg));
                    }
                }
                self.lockspaces.insert(lockspace, ls);
            }
            None => {}
        }
    }
}
