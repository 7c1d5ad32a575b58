//! Running an operation: one device step at a time (delay, slot, call, retries),
//! level fall-through, the reboot remap, and the timers that drive it.

use super::*;

impl Fencer {
    pub(super) fn start_level(&mut self, now: Time, id: OpId, level: usize) {
        let Some(op) = self.ops.get(&id) else { return };
        let action = op.req.action;
        let Some(exec) = self.exec_mut(id) else {
            return;
        };
        if level >= exec.levels.len() {
            let reason = exec
                .last_reason
                .clone()
                .unwrap_or_else(|| "all fencing levels failed".into());
            self.fail(now, id, reason, false);
            return;
        }
        exec.level = level;
        exec.pos = 0;
        exec.phase = if exec.topology && action == Action::Reboot && exec.levels[level].len() > 1 {
            Phase::Off
        } else {
            Phase::Requested
        };
        self.start_step(now, id);
    }

    pub(super) fn start_step(&mut self, now: Time, id: OpId) {
        let Some(op) = self.ops.get(&id) else { return };
        let OpKind::Own(exec) = &op.kind else { return };
        let list = if exec.phase == Phase::On {
            &exec.on_devices
        } else {
            &exec.levels[exec.level]
        };
        let Some(dev_id) = list.get(exec.pos).cloned() else {
            if !exec.topology && exec.phase == Phase::Requested {
                let reason = exec
                    .last_reason
                    .clone()
                    .unwrap_or_else(|| "every device failed".into());
                self.fail(now, id, reason, false);
            } else {
                self.level_complete(now, id);
            }
            return;
        };
        let target = op.req.target.clone();
        let requested = op.req.delay;
        let base = op.base_timeout_s;
        let first = exec.level == 0 && exec.pos == 0 && exec.phase != Phase::On;
        let phase = exec.phase;
        let usable = self.registry.get(&dev_id).is_some()
            && (phase == Phase::On || self.capable(exec, &dev_id, op.req.action, &target, now));
        let Some(device) = self.registry.get(&dev_id).filter(|_| usable) else {
            self.step_failed(now, id, format!("device {dev_id} cannot fence {target}"));
            return;
        };
        let action = match phase {
            Phase::Off => Action::Off,
            Phase::On => Action::On,
            Phase::Requested if op.req.action == Action::Reboot => device.reboot_or_off(),
            Phase::Requested => op.req.action,
        };
        let timeout_s = device.action_timeout_secs(action, base).max(1);
        let retries = device.retries(action).max(1);
        let delay = start_delay_secs(
            requested,
            first,
            device.delay_base_secs(action, &target),
            device.delay_max_secs(action),
            &mut self.rng,
        );
        let step = Step {
            device: dev_id,
            action,
            timeout_s,
            attempt: 1,
            retries,
            first_start: None,
            wait: StepWait::Delay(now + secs(delay)),
        };
        if let Some(exec) = self.exec_mut(id) {
            exec.step = Some(step);
        }
        if delay == 0 {
            self.enqueue_step(now, id);
        }
    }

    /// Queues the current step's next attempt on its device.
    pub(super) fn enqueue_step(&mut self, now: Time, id: OpId) {
        let Some(op) = self.ops.get(&id) else { return };
        let target = op.req.target.clone();
        let OpKind::Own(exec) = &op.kind else { return };
        let Some(step) = exec.step.clone() else {
            return;
        };
        let elapsed = step
            .first_start
            .map_or(Duration::ZERO, |t| now.saturating_since(t));
        let remaining = secs(step.timeout_s).saturating_sub(elapsed);
        if remaining.is_zero() {
            self.step_failed(
                now,
                id,
                format!("{} {} ran out of time", step.device, step.action),
            );
            return;
        }
        let call = self.enqueue(Call {
            device: step.device.clone(),
            action: step.action,
            target: Some(target),
            op: Some(id),
            purpose: Purpose::Fence,
            timeout: remaining,
            attempt: step.attempt,
            guard: None,
            remote: false,
        });
        if let Some(s) = self.exec_mut(id).and_then(|e| e.step.as_mut()) {
            s.wait = StepWait::Queued(call);
        }
    }

    pub(super) fn step_succeeded(&mut self, now: Time, id: OpId) {
        let Some(exec) = self.exec_mut(id) else {
            return;
        };
        exec.step = None;
        if !exec.topology && exec.phase == Phase::Requested {
            self.succeed(now, id);
            return;
        }
        exec.pos += 1;
        self.start_step(now, id);
    }

    pub(super) fn step_failed(&mut self, now: Time, id: OpId, reason: String) {
        let Some(exec) = self.exec_mut(id) else {
            return;
        };
        exec.step = None;
        if exec.phase == Phase::On {
            // The target is already off: an `on` failure is ignored.
            exec.pos += 1;
            self.start_step(now, id);
            return;
        }
        exec.last_reason = Some(reason);
        if exec.topology {
            let next = exec.level + 1;
            self.start_level(now, id, next);
        } else {
            exec.pos += 1;
            self.start_step(now, id);
        }
    }

    pub(super) fn level_complete(&mut self, now: Time, id: OpId) {
        let Some(exec) = self.exec_mut(id) else {
            return;
        };
        if exec.phase != Phase::Off {
            self.succeed(now, id);
            return;
        }
        let level = exec.levels[exec.level].clone();
        let on: Vec<String> = level
            .into_iter()
            .filter(|d| {
                self.registry.get(d).is_some_and(|dev: &Device| {
                    !dev.reboot_stays_off()
                        && dev.supports(Action::On)
                        && !dev.capabilities().on_automatic
                        // An `on` that must run on the target cannot: the off
                        // phase has just powered it down.
                        && !dev.capabilities().on_target
                })
            })
            .collect();
        let Some(exec) = self.exec_mut(id) else {
            return;
        };
        exec.phase = Phase::On;
        exec.on_devices = on;
        exec.pos = 0;
        self.start_step(now, id);
    }

    pub(super) fn expire(&mut self, now: Time) {
        // Lost calls first: they free device slots and may end steps.
        let lost: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.guard.is_some_and(|g| g <= now))
            .map(|(id, _)| *id)
            .collect();
        for cid in lost {
            if let Some(call) = self.calls.remove(&cid) {
                self.call_finished(now, cid, call, CallOutcome::TimedOut);
            }
        }
        let ids: Vec<OpId> = self.ops.keys().copied().collect();
        for id in ids {
            let Some(op) = self.ops.get(&id) else {
                continue;
            };
            if self.deadline_of(op).is_some_and(|d| d <= now) {
                let on_phase = matches!(&op.kind, OpKind::Own(e) if e.phase == Phase::On);
                if on_phase {
                    self.succeed(now, id);
                } else {
                    let t = op.total_timeout_s.max(scaled(op.base_timeout_s));
                    self.fail(now, id, format!("timed out after {t}s"), true);
                }
                continue;
            }
            let wait = match &op.kind {
                OpKind::Own(e) => e.step.as_ref().map(|s| s.wait),
                OpKind::Duplicate(_) => None,
            };
            if let Some(StepWait::Delay(t) | StepWait::Pause(t)) = wait
                && t <= now
            {
                self.enqueue_step(now, id);
            }
        }
    }
}
