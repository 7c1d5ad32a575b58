//! The device registry: registered devices and which of them can fence a target.
//!
//! Static checks answer at once; `dynamic-list` needs a fresh (< 60 s) `list`
//! output and `status` needs a `status` call for the target: the registry says so
//! ([`Eligibility::NeedsList`], [`Eligibility::NeedsStatus`]) and the fencer runs
//! the call and feeds the answer back.

use super::device::{Device, HostCheck};
use super::hostmap::parse_targets;
use crate::Action;
use phalanx_totem::Time;
use std::collections::BTreeMap;
use std::time::Duration;
use thiserror::Error;

/// How long a `list` output is trusted (Pacemaker: one minute).
pub const LIST_CACHE_TTL: Duration = Duration::from_secs(60);
/// Most devices in one registry.
pub const MAX_DEVICES: usize = 1024;

/// Can a device fence a target?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eligibility {
    /// Yes.
    Yes,
    /// No.
    No,
    /// Run the device's `list` first (`dynamic-list` without a fresh list).
    NeedsList,
    /// Run the device's `status` for the target first (`status` check).
    NeedsStatus,
}

/// A registry change that was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Already [`MAX_DEVICES`] devices.
    #[error("too many devices (at most {MAX_DEVICES})")]
    TooManyDevices,
}

#[derive(Debug, Clone, Default)]
struct ListCache {
    targets: Option<Vec<String>>,
    fetched: Option<Time>,
    /// `list` failed before it ever succeeded: the default check falls back to
    /// `status`.
    never_succeeded: bool,
}

/// The registered devices.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    devices: BTreeMap<String, Device>,
    lists: BTreeMap<String, ListCache>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a device (a replaced device forgets its `list` output).
    pub fn register(&mut self, device: Device) -> Result<(), RegistryError> {
        if !self.devices.contains_key(device.id()) && self.devices.len() >= MAX_DEVICES {
            return Err(RegistryError::TooManyDevices);
        }
        self.lists.remove(device.id());
        self.devices.insert(device.id().to_string(), device);
        Ok(())
    }

    /// Removes a device; false if it was not registered.
    pub fn remove(&mut self, id: &str) -> bool {
        self.lists.remove(id);
        self.devices.remove(id).is_some()
    }

    /// A device by id.
    pub fn get(&self, id: &str) -> Option<&Device> {
        self.devices.get(id)
    }

    /// All devices, by id.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }

    /// The check in force for a device (the default rule, with the `list` failure
    /// fallback).
    pub fn host_check(&self, device: &Device) -> HostCheck {
        let failed = self
            .lists
            .get(device.id())
            .is_some_and(|c| c.never_succeeded);
        device.host_check(failed)
    }

    /// Can `device` run `action` against `target`? `allow_stale` accepts a `list`
    /// output of any age (used right after a `list` call, successful or not, so a
    /// failing `list` cannot make the fencer ask forever).
    pub fn eligibility(
        &self,
        id: &str,
        action: Action,
        target: &str,
        now: Time,
        allow_stale: bool,
    ) -> Eligibility {
        let Some(device) = self.devices.get(id) else {
            return Eligibility::No;
        };
        if action == Action::On && !device.supports(Action::On) {
            return Eligibility::No;
        }
        match self.host_check(device) {
            HostCheck::None => Eligibility::Yes,
            HostCheck::StaticList => yes_if(device.statically_lists(target)),
            HostCheck::Status => Eligibility::NeedsStatus,
            HostCheck::DynamicList => {
                let cache = self.lists.get(id);
                let fresh = cache
                    .and_then(|c| c.fetched)
                    .is_some_and(|t| now.saturating_since(t) < LIST_CACHE_TTL);
                match cache.and_then(|c| c.targets.as_ref()) {
                    Some(targets) if fresh || allow_stale => {
                        let port = device.port_for(target);
                        yes_if(targets.iter().any(|t| t.eq_ignore_ascii_case(port)))
                    }
                    _ if allow_stale => Eligibility::No,
                    _ => Eligibility::NeedsList,
                }
            }
        }
    }

    /// Records the outcome of a device's `list`: its output, or `None` when it failed
    /// (an earlier list is then kept; with none, the default check becomes `status`).
    pub fn record_list(&mut self, id: &str, now: Time, output: Option<&str>) {
        if !self.devices.contains_key(id) {
            return;
        }
        let cache = self.lists.entry(id.to_string()).or_default();
        match output {
            Some(text) => {
                cache.targets = Some(parse_targets(text));
                cache.fetched = Some(now);
                cache.never_succeeded = false;
            }
            None => {
                if cache.targets.is_none() {
                    cache.never_succeeded = true;
                }
            }
        }
    }

    /// Devices that may fence `target` with `action`, with their eligibility (those
    /// that certainly cannot are left out), ordered by priority (higher first),
    /// then id.
    pub fn candidates(
        &self,
        target: &str,
        action: Action,
        now: Time,
    ) -> Vec<(String, Eligibility)> {
        let mut out: Vec<(i64, String, Eligibility)> = self
            .devices
            .values()
            .filter_map(
                |d| match self.eligibility(d.id(), action, target, now, false) {
                    Eligibility::No => None,
                    e => Some((d.priority(), d.id().to_string(), e)),
                },
            )
            .collect();
        out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        out.into_iter().map(|(_, id, e)| (id, e)).collect()
    }
}

fn yes_if(b: bool) -> Eligibility {
    if b { Eligibility::Yes } else { Eligibility::No }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::device::AgentCapabilities;

    fn device(id: &str, params: &[(&str, &str)], caps: AgentCapabilities, prio: i64) -> Device {
        let p = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Device::new(id, "fence_dummy", p, caps, prio).unwrap()
    }

    fn t(s: u64) -> Time {
        Time::from_nanos(s * 1_000_000_000)
    }

    #[test]
    fn which_devices_can_fence() {
        let mut r = Registry::new();
        let ps = AgentCapabilities::power_switch();
        r.register(device(
            "a",
            &[("pcmk_host_list", "node1 node2")],
            ps.clone(),
            0,
        ))
        .unwrap();
        r.register(device("b", &[("pcmk_host_map", "node3:3")], ps.clone(), 5))
            .unwrap();
        r.register(device("c", &[("pcmk_host_check", "none")], ps.clone(), 0))
            .unwrap();
        let no_on = AgentCapabilities {
            on: false,
            ..ps.clone()
        };
        r.register(device("d", &[("pcmk_host_check", "none")], no_on, 0))
            .unwrap();
        let ids =
            |v: Vec<(String, Eligibility)>| v.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
        assert_eq!(
            ids(r.candidates("node1", Action::Off, t(0))),
            ["a", "c", "d"]
        );
        assert_eq!(
            ids(r.candidates("node3", Action::Reboot, t(0))),
            ["b", "c", "d"]
        );
        assert_eq!(ids(r.candidates("node3", Action::On, t(0))), ["b", "c"]);
        assert_eq!(ids(r.candidates("node9", Action::Off, t(0))), ["c", "d"]);
        assert!(r.remove("c"));
        assert!(!r.remove("c"));
        assert_eq!(ids(r.candidates("node9", Action::Off, t(0))), ["d"]);
    }

    #[test]
    fn dynamic_list_cache_and_fallback_to_status() {
        let mut r = Registry::new();
        r.register(device(
            "dl",
            &[("pcmk_host_map", "")],
            AgentCapabilities::power_switch(),
            0,
        ))
        .unwrap();
        // An empty pcmk_host_map is still "set": static-list with nothing in it.
        assert_eq!(
            r.eligibility("dl", Action::Off, "node1", t(0), false),
            Eligibility::No
        );

        r.register(device("dl", &[], AgentCapabilities::power_switch(), 0))
            .unwrap();
        assert_eq!(
            r.eligibility("dl", Action::Off, "node1", t(0), false),
            Eligibility::NeedsList
        );
        r.record_list("dl", t(10), Some("1,node1\n2,node2\n"));
        assert_eq!(
            r.eligibility("dl", Action::Off, "NODE1", t(20), false),
            Eligibility::Yes
        );
        assert_eq!(
            r.eligibility("dl", Action::Off, "node3", t(20), false),
            Eligibility::No
        );
        // Stale after a minute: ask again; a failed list keeps the old targets.
        assert_eq!(
            r.eligibility("dl", Action::Off, "node1", t(70), false),
            Eligibility::NeedsList
        );
        r.record_list("dl", t(71), None);
        assert_eq!(
            r.eligibility("dl", Action::Off, "node1", t(71), true),
            Eligibility::Yes
        );

        // A list that never worked: the default check falls back to status.
        r.register(device("dl", &[], AgentCapabilities::power_switch(), 0))
            .unwrap();
        r.record_list("dl", t(0), None);
        assert_eq!(
            r.eligibility("dl", Action::Off, "node1", t(0), false),
            Eligibility::NeedsStatus
        );
        // ... but not when dynamic-list was asked for explicitly.
        r.register(device(
            "dl",
            &[("pcmk_host_check", "dynamic-list")],
            AgentCapabilities::power_switch(),
            0,
        ))
        .unwrap();
        r.record_list("dl", t(0), None);
        assert_eq!(
            r.eligibility("dl", Action::Off, "node1", t(0), true),
            Eligibility::No
        );
        // A mapped port is looked up in the list, not the node name.
        r.register(device(
            "m",
            &[
                ("pcmk_host_check", "dynamic-list"),
                ("pcmk_host_map", "node7:p7"),
            ],
            AgentCapabilities::power_switch(),
            0,
        ))
        .unwrap();
        r.record_list("m", t(0), Some("p7\n"));
        assert_eq!(
            r.eligibility("m", Action::Off, "node7", t(1), false),
            Eligibility::Yes
        );
    }
}
