//! Fencing on a real node: the configuration's devices turned into the fencer's
//! (each agent's metadata read once at start), and the agent calls the Stack asks
//! for run by real processes on a bounded worker pool off the driver thread; each
//! completion wakes the driver and goes back in as [`Input::FenceAgentDone`].
//!
//! [`Input::FenceAgentDone`]: crate::stack::Input::FenceAgentDone

use crate::config::{
    ClusterConfig, ConfigError, FencingAction, FencingConfig, NoQuorumPolicy as ConfPolicy,
};
use crate::stack::FencingSetup;
use crossbeam_channel::{Receiver, TryRecvError};
use mio::Waker;
use phalanx_fence::Action;
use phalanx_fence::agent::{AgentMetadata, AgentOutcome, AgentRequest, FenceAgent};
use phalanx_fence::core::{
    AgentCall, CallId, CallOutcome, DecisionConfig, Device, FencerConfig, NoQuorumPolicy,
    watchdog_only_nodes,
};
use phalanx_fence::replay::{call_outcome, request_of_call};
use phalanx_fence::runner::{AgentCompletion, AgentPool, ProcessAgent};
use phalanx_totem::NodeId;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long reading one agent's metadata at start may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(20);
/// Agent calls waiting for a worker, beyond the running ones.
const AGENT_QUEUE: usize = 64;

/// Fencing of a node: the Stack's setup and where its agents run.
#[derive(Clone, Debug)]
pub struct NodeFencing {
    /// The fencer's devices and levels, the decision's policy, the node names.
    pub setup: FencingSetup,
    /// Where agents are found.
    pub agent_dir: PathBuf,
    /// Agent calls that may run at once (each is a process).
    pub workers: usize,
}

/// Builds a node's fencing from the configuration's `fencing` section: `None`
/// when fencing is off. Reads each device's agent metadata (a real `action=metadata`
/// call), so an agent that is missing or broken is a configuration error here, not
/// a failed fencing later.
pub fn fencing_from_config(
    cfg: &ClusterConfig,
    node_id: NodeId,
    incarnation: u64,
    seed: u64,
) -> Result<Option<NodeFencing>, ConfigError> {
    let f = &cfg.fencing;
    if !f.enabled {
        return Ok(None);
    }
    let names: BTreeMap<NodeId, String> = cfg
        .nodes
        .iter()
        .map(|n| {
            let name = n
                .name
                .clone()
                .unwrap_or_else(|| format!("node{}", n.node_id));
            (n.node_id, name)
        })
        .collect();
    let local_name = names
        .get(&node_id)
        .cloned()
        .unwrap_or_else(|| format!("node{node_id}"));
    let src = &cfg.source;
    let runner = ProcessAgent::new(&f.agent_dir);
    let mut metadata: BTreeMap<&str, AgentMetadata> = BTreeMap::new();
    let mut devices = Vec::new();
    for (i, d) in f.devices.iter().enumerate() {
        let key = format!("fencing.device.{i}.agent");
        if !metadata.contains_key(d.agent.as_str()) {
            let meta = read_metadata(&runner, &d.agent)
                .map_err(|why| src.error(&key, format!("agent {:?}: {why}", d.agent)))?;
            metadata.insert(d.agent.as_str(), meta);
        }
        let caps = metadata[d.agent.as_str()].capabilities();
        let params: BTreeMap<String, String> = d.params.iter().cloned().collect();
        let priority = params
            .get("priority")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0);
        let dev = Device::new(&d.id, &d.agent, params, caps, priority)
            .map_err(|e| src.error(&format!("fencing.device.{i}"), e.to_string()))?;
        devices.push(dev);
    }
    let levels = f
        .levels
        .iter()
        .map(|l| (l.target.clone(), l.index, l.devices.clone()))
        .collect();
    let mut fencer = FencerConfig::new(node_id, &local_name, incarnation, seed);
    fencer.default_timeout = f.timeout;
    let mut decision = DecisionConfig::new(node_id, names.keys().copied());
    decision.no_quorum_policy = policy(f);
    decision.fencing_action = match f.action {
        FencingAction::Reboot => Action::Reboot,
        FencingAction::Off => Action::Off,
    };
    decision.max_attempts = f.max_attempts;
    decision.priority_fencing_delay_ms =
        u64::try_from(f.priority_delay.as_millis()).unwrap_or(u64::MAX);
    decision.watchdog_timeout_ms =
        u64::try_from(f.fencing_watchdog_timeout.as_millis()).unwrap_or(u64::MAX);
    decision.startup_fencing = f.startup_fencing;
    decision.startup_deadtime_ms = u64::try_from(f.dc_deadtime.as_millis()).unwrap_or(u64::MAX);
    decision.node_pending_timeout_ms =
        u64::try_from(f.node_pending_timeout.as_millis()).unwrap_or(u64::MAX);
    decision.watchdog_only = watchdog_only_nodes(&devices, &names);
    Ok(Some(NodeFencing {
        setup: FencingSetup {
            fencer,
            decision,
            devices,
            levels,
            names,
            unclean_start: false,
            // The driver sets it from its state directory.
            ring_seq_durable: false,
        },
        agent_dir: f.agent_dir.clone(),
        workers: 4,
    }))
}

fn policy(f: &FencingConfig) -> NoQuorumPolicy {
    match f.no_quorum_policy {
        ConfPolicy::Stop => NoQuorumPolicy::Stop,
        ConfPolicy::Ignore => NoQuorumPolicy::Ignore,
        ConfPolicy::Freeze => NoQuorumPolicy::Freeze,
        ConfPolicy::Suicide => NoQuorumPolicy::Fence,
    }
}

fn read_metadata(runner: &ProcessAgent, agent: &str) -> Result<AgentMetadata, String> {
    let req = AgentRequest::new(agent, Action::Metadata)
        .timeout(METADATA_TIMEOUT)
        .attempts(1);
    match runner.run(&req).outcome {
        AgentOutcome::Metadata(xml) => AgentMetadata::parse(&xml).map_err(|e| e.to_string()),
        AgentOutcome::Failed(f) => Err(format!("metadata failed: {}", f.message)),
        other => Err(format!("metadata answered {other:?}")),
    }
}

/// Pool ids with this bit set are metadata reads (for devices the CIB defines);
/// the others are the fencer's calls.
const METADATA_ID: u64 = 1 << 63;

/// A finished piece of agent work.
pub(crate) enum FenceCompletion {
    /// A fencer call.
    Call(CallId, CallOutcome),
    /// An agent's metadata: its capabilities, or why not.
    Metadata(
        String,
        Result<phalanx_fence::core::AgentCapabilities, String>,
    ),
}

/// The worker pool and where its completions arrive.
pub(crate) struct FenceRunner {
    pool: AgentPool,
    done: Receiver<AgentCompletion>,
    /// Metadata reads in flight: pool id → agent.
    metadata: parking_lot::Mutex<(u64, BTreeMap<u64, String>)>,
}

impl FenceRunner {
    pub(crate) fn new(f: &NodeFencing, waker: Arc<Waker>) -> std::io::Result<FenceRunner> {
        // Capacity = the most calls in flight, so a worker never blocks on it.
        let (tx, done) = crossbeam_channel::bounded(AGENT_QUEUE + f.workers.max(1));
        let agent: Arc<dyn FenceAgent> = Arc::new(ProcessAgent::new(&f.agent_dir));
        let notify = Arc::new(move || {
            // A failed wake only delays the completion to the next pass.
            let _ = waker.wake();
        });
        let pool = AgentPool::with_notify(agent, f.workers, AGENT_QUEUE, tx, notify)?;
        Ok(FenceRunner {
            pool,
            done,
            metadata: parking_lot::Mutex::new((0, BTreeMap::new())),
        })
    }

    /// Starts reading `agent`'s metadata; `Err` carries the failure to report at
    /// once (queue full).
    pub(crate) fn submit_metadata(&self, agent: &str) -> Result<(), String> {
        let mut m = self.metadata.lock();
        m.0 += 1;
        let id = METADATA_ID | m.0;
        let req = AgentRequest::new(agent, Action::Metadata)
            .timeout(METADATA_TIMEOUT)
            .attempts(1);
        // Recorded before the submit: the worker may finish before it returns.
        m.1.insert(id, agent.to_string());
        self.pool.submit(id, req).map_err(|e| {
            m.1.remove(&id);
            e.to_string()
        })
    }

    /// Starts a call; `Err` carries the failure to report at once (queue full).
    pub(crate) fn submit(&self, call: &AgentCall) -> Result<(), CallOutcome> {
        self.pool
            .submit(call.call.0, request_of_call(call))
            .map_err(|e| CallOutcome::Failed {
                exit_code: None,
                reason: e.to_string(),
            })
    }

    /// A finished call or metadata read, if any.
    pub(crate) fn try_recv(&self) -> Option<FenceCompletion> {
        match self.done.try_recv() {
            Ok(c) if c.id & METADATA_ID != 0 => {
                let agent = self.metadata.lock().1.remove(&c.id).unwrap_or_default();
                let result = match &c.reply.outcome {
                    AgentOutcome::Metadata(xml) => AgentMetadata::parse(xml)
                        .map(|m| m.capabilities())
                        .map_err(|e| e.to_string()),
                    AgentOutcome::Failed(f) => Err(format!("metadata failed: {}", f.message)),
                    other => Err(format!("metadata answered {other:?}")),
                };
                Some(FenceCompletion::Metadata(agent, result))
            }
            Ok(c) => Some(FenceCompletion::Call(CallId(c.id), call_outcome(&c.reply))),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }

    /// Whether a completion waits.
    pub(crate) fn has_completions(&self) -> bool {
        !self.done.is_empty()
    }
}
