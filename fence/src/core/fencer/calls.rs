//! Agent calls: the per-device queues under `pcmk_action_limit`, handing calls
//! out, and taking their results back.

use super::*;

impl Fencer {
    pub(super) fn enqueue(&mut self, call: Call) -> CallId {
        let id = CallId(self.next_call);
        self.next_call += 1;
        self.queues
            .entry(call.device.clone())
            .or_default()
            .push_back(id);
        self.calls.insert(id, call);
        id
    }

    /// A peer's `on_target` action against this node: run it here (queued under
    /// the device's own limit), or refuse it at once.
    pub(super) fn execute_for_peer(
        &mut self,
        now: Time,
        id: OpId,
        origin_call: CallId,
        device: String,
        action: Action,
        timeout_ms: u64,
    ) {
        let busy = self
            .calls
            .values()
            .filter(|c| matches!(c.purpose, Purpose::ForPeer(_)))
            .count()
            >= MAX_PEER_EXECUTIONS;
        let refusal = match self.registry.get(&device) {
            _ if busy => Some("too many actions for peers in flight".to_string()),
            None => Some(format!(
                "device {device} is not registered on {}",
                self.cfg.local_name
            )),
            Some(d) if action != Action::On || !d.capabilities().on_target => {
                Some(format!("{device} {action} does not run on the target"))
            }
            Some(_) => None,
        };
        if let Some(reason) = refusal {
            self.out
                .push_back(FencerOutput::Broadcast(PeerMessage::Executed {
                    id,
                    call: origin_call,
                    outcome: CallOutcome::Failed {
                        exit_code: None,
                        reason,
                    },
                }));
            return;
        }
        self.stats.executed_for_peers += 1;
        let target = self.cfg.local_name.clone();
        self.enqueue(Call {
            device,
            action,
            target: Some(target),
            op: Some(id),
            purpose: Purpose::ForPeer(origin_call),
            timeout: Duration::from_millis(timeout_ms.clamp(1, MAX_PEER_TIMEOUT_MS)),
            attempt: 1,
            guard: None,
            remote: false,
        });
        self.pump(now);
    }

    /// The answer to one of our `on_target` calls, from the target's fencer.
    pub(super) fn executed_by_peer(
        &mut self,
        now: Time,
        id: OpId,
        cid: CallId,
        outcome: CallOutcome,
    ) {
        let ours = self
            .calls
            .get(&cid)
            .is_some_and(|c| c.remote && c.guard.is_some() && c.op == Some(id));
        if !ours {
            self.stats.stale_results += 1;
            return;
        }
        if let Some(call) = self.calls.remove(&cid) {
            self.call_finished(now, cid, call, outcome);
        }
    }

    pub(super) fn running_on(&self, device: &str) -> usize {
        self.calls
            .values()
            .filter(|c| c.device == device && c.guard.is_some() && !c.remote)
            .count()
    }

    /// Starts queued calls while their devices have free slots (until nothing
    /// moves: a call that cannot start may queue another on a different device).
    pub(super) fn pump(&mut self, now: Time) {
        loop {
            let mut started = false;
            let devices: Vec<String> = self.queues.keys().cloned().collect();
            for dev in devices {
                loop {
                    let limit = self
                        .registry
                        .get(&dev)
                        .map_or(Some(1), |d| d.action_limit())
                        .map_or(usize::MAX, |l| l as usize);
                    if self.running_on(&dev) >= limit {
                        break;
                    }
                    let Some(cid) = self.queues.get_mut(&dev).and_then(|q| q.pop_front()) else {
                        break;
                    };
                    started = true;
                    self.start_call(now, cid);
                }
                if self.queues.get(&dev).is_some_and(|q| q.is_empty()) {
                    self.queues.remove(&dev);
                }
            }
            if !started {
                return;
            }
        }
    }

    pub(super) fn start_call(&mut self, now: Time, cid: CallId) {
        let grace = self.cfg.call_grace;
        let Some(call) = self.calls.get_mut(&cid) else {
            return;
        };
        call.guard = Some(now + call.timeout + grace);
        let call = call.clone();
        let Some(device) = self.registry.get(&call.device) else {
            // Removed while queued: the call cannot run.
            self.calls.remove(&cid);
            self.call_finished(
                now,
                cid,
                call,
                CallOutcome::Failed {
                    exit_code: None,
                    reason: "device was removed".into(),
                },
            );
            return;
        };
        // An `on_target` action of another node runs on that node (§2.8): hand
        // it to the target's fencer and wait for its answer like an agent's.
        if call.purpose == Purpose::Fence
            && call.action == Action::On
            && device.capabilities().on_target
            && let Some(target) = call.target.clone()
            && let Some(op) = call.op
            && !target.eq_ignore_ascii_case(&self.cfg.local_name)
        {
            if let Some(c) = self.calls.get_mut(&cid) {
                c.remote = true;
            }
            if let Some(step) = self.exec_mut(op).and_then(|e| e.step.as_mut()) {
                step.wait = StepWait::Running(cid);
                step.first_start.get_or_insert(now);
            }
            self.stats.delegated += 1;
            self.out
                .push_back(FencerOutput::Broadcast(PeerMessage::Execute {
                    id: op,
                    call: cid,
                    device: call.device.clone(),
                    target,
                    action: call.action,
                    timeout_ms: u64::try_from(call.timeout.as_millis()).unwrap_or(u64::MAX),
                }));
            return;
        }
        let port = call.target.as_deref().and_then(|t| {
            device
                .host_argument()
                .map(|arg| (arg.to_string(), device.port_for(t).to_string()))
        });
        let ac = AgentCall {
            call: cid,
            op: call.op,
            device: call.device.clone(),
            agent: device.agent().to_string(),
            action: call.action,
            agent_action: device.agent_action(call.action),
            target: call.target.clone(),
            port,
            params: device.agent_params(),
            timeout: call.timeout,
            attempt: call.attempt,
        };
        self.stats.calls += 1;
        if call.purpose == Purpose::Fence
            && let Some(op) = call.op
            && let Some(step) = self.exec_mut(op).and_then(|e| e.step.as_mut())
        {
            step.wait = StepWait::Running(cid);
            step.first_start.get_or_insert(now);
        }
        self.out.push_back(FencerOutput::AgentCall(ac));
    }

    pub(super) fn agent_done(&mut self, now: Time, cid: CallId, outcome: CallOutcome) {
        // Only a started call can finish; a queued one has not been handed out.
        // A call handed to a peer is answered by the peer, not by our runner.
        match self.calls.get(&cid) {
            Some(c) if c.guard.is_some() && !c.remote => {}
            _ => {
                self.stats.stale_results += 1;
                return;
            }
        }
        let Some(call) = self.calls.remove(&cid) else {
            return;
        };
        self.call_finished(now, cid, call, outcome);
    }

    pub(super) fn call_finished(
        &mut self,
        now: Time,
        cid: CallId,
        call: Call,
        outcome: CallOutcome,
    ) {
        if let (Purpose::ForPeer(origin_call), Some(op)) = (call.purpose, call.op) {
            self.out
                .push_back(FencerOutput::Broadcast(PeerMessage::Executed {
                    id: op,
                    call: origin_call,
                    outcome: clip_outcome(outcome),
                }));
            return;
        }
        let Some(op_id) = call.op.filter(|id| self.ops.contains_key(id)) else {
            if call.purpose == Purpose::List {
                // Still worth caching for later operations.
                let output = match &outcome {
                    CallOutcome::Success { output } => Some(output.as_str()),
                    _ => None,
                };
                self.registry.record_list(&call.device, now, output);
            }
            return;
        };
        match call.purpose {
            Purpose::List | Purpose::Status => {
                if call.purpose == Purpose::List {
                    let output = match &outcome {
                        CallOutcome::Success { output } => Some(output.as_str()),
                        _ => None,
                    };
                    self.registry.record_list(&call.device, now, output);
                }
                let reachable = matches!(
                    outcome,
                    CallOutcome::Success { .. }
                        | CallOutcome::Failed {
                            exit_code: Some(2),
                            ..
                        }
                );
                let Some(exec) = self.exec_mut(op_id) else {
                    return;
                };
                exec.queries.remove(&cid);
                if call.purpose == Purpose::Status && reachable {
                    exec.status_ok.insert(call.device.clone());
                }
                if exec.planning && exec.queries.is_empty() {
                    self.finish_planning(now, op_id);
                }
            }
            // Answered above.
            Purpose::ForPeer(_) => {}
            Purpose::Fence => {
                let Some(step) = self.exec_mut(op_id).and_then(|e| e.step.clone()) else {
                    return;
                };
                // Only the current attempt's call moves the step.
                if step.wait != StepWait::Running(cid) && step.wait != StepWait::Queued(cid) {
                    return;
                }
                match outcome {
                    CallOutcome::Success { .. } => self.step_succeeded(now, op_id),
                    CallOutcome::Failed { reason, .. } => {
                        let elapsed = step
                            .first_start
                            .map_or(Duration::ZERO, |t| now.saturating_since(t));
                        // Retry only with ≥ 30 % of the action timeout left.
                        let in_time = elapsed.as_secs_f64() < step.timeout_s as f64 * 0.7;
                        if step.attempt < step.retries && in_time {
                            self.stats.retries += 1;
                            let pause = self.cfg.retry_pause;
                            if let Some(s) = self.exec_mut(op_id).and_then(|e| e.step.as_mut()) {
                                s.attempt += 1;
                                s.wait = StepWait::Pause(now + pause);
                            }
                            if pause.is_zero() {
                                self.enqueue_step(now, op_id);
                            }
                        } else {
                            self.step_failed(
                                now,
                                op_id,
                                format!("{} {}: {reason}", step.device, step.action),
                            );
                        }
                    }
                    CallOutcome::TimedOut => {
                        self.step_failed(
                            now,
                            op_id,
                            format!("{} {} timed out", step.device, step.action),
                        );
                    }
                }
            }
        }
    }
}

/// Longest agent timeout a peer may ask for (a day).
const MAX_PEER_TIMEOUT_MS: u64 = 24 * 3600 * 1000;

/// An outcome cut to what the wire carries.
fn clip_outcome(outcome: CallOutcome) -> CallOutcome {
    let clip = |mut s: String| {
        let mut end = s.len().min(MAX_REASON_LEN);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s
    };
    match outcome {
        CallOutcome::Success { output } => CallOutcome::Success {
            output: clip(output),
        },
        CallOutcome::Failed { exit_code, reason } => CallOutcome::Failed {
            exit_code,
            reason: clip(reason),
        },
        CallOutcome::TimedOut => CallOutcome::TimedOut,
    }
}
