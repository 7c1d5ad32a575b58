//! Planning an operation: the target's levels or capable devices, the agent
//! queries some checks need, and the total timeout.

use super::*;

impl Fencer {
    pub(super) fn exec_mut(&mut self, id: OpId) -> Option<&mut Exec> {
        match &mut self.ops.get_mut(&id)?.kind {
            OpKind::Own(e) => Some(e),
            OpKind::Duplicate(_) => None,
        }
    }

    pub(super) fn plan(&mut self, now: Time, id: OpId) {
        let Some(op) = self.ops.get(&id) else { return };
        let target = op.req.target.clone();
        let action = op.req.action;
        let base = op.base_timeout_s;
        let attrs = self
            .attributes
            .get(&target.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default();
        let levels = self.topology.levels_for(&target, &attrs);
        let (topology, levels): (bool, Vec<Vec<String>>) = if levels.is_empty() {
            let devs = self
                .registry
                .candidates(&target, action, now)
                .into_iter()
                .map(|(d, _)| d)
                .collect();
            (false, vec![devs])
        } else {
            (true, levels.into_iter().map(|(_, d)| d).collect())
        };
        let mut asked = BTreeSet::new();
        let mut queries = Vec::new();
        for dev in levels.iter().flatten() {
            if !asked.insert(dev.clone()) {
                continue;
            }
            let purpose = match self.registry.eligibility(dev, action, &target, now, false) {
                Eligibility::NeedsList => Purpose::List,
                Eligibility::NeedsStatus => Purpose::Status,
                _ => continue,
            };
            queries.push((dev.clone(), purpose));
        }
        let mut call_ids = BTreeSet::new();
        for (dev, purpose) in queries {
            let Some(device) = self.registry.get(&dev) else {
                continue;
            };
            let qaction = if purpose == Purpose::List {
                Action::List
            } else {
                Action::Status
            };
            let timeout = secs(device.action_timeout_secs(qaction, base).max(1));
            let target_arg = (purpose == Purpose::Status).then(|| target.clone());
            let call = self.enqueue(Call {
                device: dev,
                action: qaction,
                target: target_arg,
                op: Some(id),
                purpose,
                timeout,
                attempt: 1,
                guard: None,
                remote: false,
            });
            call_ids.insert(call);
        }
        let Some(exec) = self.exec_mut(id) else {
            return;
        };
        exec.topology = topology;
        exec.levels = levels;
        exec.queries = call_ids;
        if exec.queries.is_empty() {
            self.finish_planning(now, id);
        }
    }

    pub(super) fn capable(
        &self,
        exec: &Exec,
        device: &str,
        action: Action,
        target: &str,
        now: Time,
    ) -> bool {
        match self.registry.eligibility(device, action, target, now, true) {
            Eligibility::Yes => true,
            Eligibility::NeedsStatus => exec.status_ok.contains(device),
            _ => false,
        }
    }

    pub(super) fn finish_planning(&mut self, now: Time, id: OpId) {
        let Some(op) = self.ops.get(&id) else { return };
        let OpKind::Own(exec) = &op.kind else { return };
        let target = op.req.target.clone();
        let action = op.req.action;
        let base = op.base_timeout_s;
        let mut exec = (**exec).clone();
        if !exec.topology {
            let keep: Vec<String> = exec.levels[0]
                .iter()
                .filter(|d| self.capable(&exec, d, action, &target, now))
                .cloned()
                .collect();
            exec.levels[0] = keep;
        }
        // The phase the budget is computed for (Pacemaker: the op's phase when the
        // first level is entered, for every level).
        let phase_action = if exec.topology && action == Action::Reboot && exec.levels[0].len() > 1
        {
            Action::Off
        } else {
            action
        };
        let budgets: Vec<DeviceBudget> = exec
            .levels
            .iter()
            .flatten()
            .filter(|d| self.capable(&exec, d, action, &target, now))
            .filter_map(|d| self.registry.get(d))
            .map(|d| DeviceBudget::of(d, phase_action, &target, base))
            .collect();
        if budgets.is_empty() {
            exec.planning = false;
            if let Some(op) = self.ops.get_mut(&id) {
                op.kind = OpKind::Own(Box::new(exec));
            }
            self.fail(now, id, format!("no device can fence {target}"), false);
            return;
        }
        let total = total_timeout_secs(&budgets, base, op.req.delay);
        let started = PeerMessage::Started {
            id,
            target,
            action,
            client: op.req.client.clone(),
            total_timeout_s: total,
            target_joined: op.req.target_joined,
        };
        exec.planning = false;
        if let Some(op) = self.ops.get_mut(&id) {
            op.total_timeout_s = total;
            op.deadline = now + secs(total);
            op.kind = OpKind::Own(Box::new(exec));
        }
        self.out.push_back(FencerOutput::Broadcast(started));
        self.start_level(now, id, 0);
    }
}
