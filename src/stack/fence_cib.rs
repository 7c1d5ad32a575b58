//! Fencing devices and levels defined in the CIB, as Pacemaker users write them:
//! `primitive class="stonith"` resources (their `instance_attributes` are the
//! device's parameters, `meta_attributes` `target-role=Stopped` disables one,
//! `priority` orders it) and `configuration/fencing-topology/fencing-level`
//! entries. The Stack reconciles the fencer with them after every CIB change, on
//! top of the devices of the node's configuration file.
//!
//! A device needs its agent's capabilities, which only running the agent's
//! `action=metadata` tells: the Stack asks the driver with
//! [`Output::FenceMetadata`](super::Output::FenceMetadata) and registers the
//! device when [`Input::FenceMetadata`](super::Input::FenceMetadata) answers.

use phalanx_cib::xml::Element;
use phalanx_fence::core::{
    AgentCapabilities, Device, Fencer, FencerError, FencerInput, LevelTarget,
};
use phalanx_totem::Time;
use std::collections::{BTreeMap, BTreeSet};

/// A `primitive class="stonith"` of the CIB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CibDevice {
    /// The primitive's id (the device id).
    pub id: String,
    /// Its `type`: the fence agent's name.
    pub agent: String,
    /// Its instance attributes.
    pub params: BTreeMap<String, String>,
    /// Its `priority` (meta attribute, else instance attribute; 0).
    pub priority: i64,
    /// `target-role` is not `Stopped`.
    pub enabled: bool,
}

/// A `fencing-level` of the CIB's topology.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CibLevel {
    /// Whom it fences.
    pub target: LevelTarget,
    /// 1..=9.
    pub index: u8,
    /// Its devices, in order.
    pub devices: Vec<String>,
}

/// What the CIB says about fencing: devices by id, levels in document order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CibFencing {
    pub devices: BTreeMap<String, CibDevice>,
    pub levels: Vec<CibLevel>,
    /// Entries that could not be read (a level without a valid target or index),
    /// described for the log; they are left out.
    pub invalid: Vec<String>,
}

/// Reads the fencing definitions from a whole CIB (`<cib>` root).
pub(crate) fn fencing_in_cib(cib: &Element) -> CibFencing {
    let mut out = CibFencing::default();
    let Some(config) = cib.find_child("configuration") else {
        return out;
    };
    if let Some(resources) = config.find_child("resources") {
        collect_devices(resources, &mut out);
    }
    if let Some(topology) = config.find_child("fencing-topology") {
        for level in topology
            .child_elements()
            .filter(|e| e.name() == "fencing-level")
        {
            match read_level(level) {
                Ok(l) => out.levels.push(l),
                Err(why) => out.invalid.push(format!(
                    "fencing-level {}: {why}",
                    level.id().unwrap_or("(no id)")
                )),
            }
        }
    }
    out
}

/// Stonith primitives anywhere under `resources` (top level or in a group).
fn collect_devices(parent: &Element, out: &mut CibFencing) {
    for e in parent.child_elements() {
        match e.name() {
            "primitive" if e.attr("class") == Some("stonith") => {
                let (Some(id), Some(agent)) = (e.id(), e.attr("type")) else {
                    out.invalid
                        .push("a stonith primitive without id or type".to_string());
                    continue;
                };
                let params = nvpairs(e, "instance_attributes");
                let meta = nvpairs(e, "meta_attributes");
                let priority = meta
                    .get("priority")
                    .or_else(|| params.get("priority"))
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or(0);
                let enabled = !meta
                    .get("target-role")
                    .is_some_and(|r| r.eq_ignore_ascii_case("stopped"));
                out.devices.insert(
                    id.to_string(),
                    CibDevice {
                        id: id.to_string(),
                        agent: agent.to_string(),
                        params,
                        priority,
                        enabled,
                    },
                );
            }
            "group" | "clone" => collect_devices(e, out),
            _ => {}
        }
    }
}

/// The `name → value` pairs of every `set` child (rules are not evaluated: the
/// first value of a name wins, as in document order).
fn nvpairs(e: &Element, set: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for s in e.child_elements().filter(|c| c.name() == set) {
        for nv in s.child_elements().filter(|c| c.name() == "nvpair") {
            if let (Some(n), Some(v)) = (nv.attr("name"), nv.attr("value")) {
                out.entry(n.to_string()).or_insert_with(|| v.to_string());
            }
        }
    }
    out
}

fn read_level(e: &Element) -> Result<CibLevel, String> {
    let index: u8 = e
        .attr("index")
        .and_then(|i| i.trim().parse().ok())
        .filter(|i| (1..=9).contains(i))
        .ok_or("index must be 1..9")?;
    let devices: Vec<String> = e
        .attr("devices")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(String::from)
        .collect();
    if devices.is_empty() {
        return Err("no devices".into());
    }
    let target = match (
        e.attr("target"),
        e.attr("target-pattern"),
        e.attr("target-attribute"),
        e.attr("target-value"),
    ) {
        (Some(t), None, None, None) => LevelTarget::Node(t.to_string()),
        (None, Some(p), None, None) => LevelTarget::Pattern(p.to_string()),
        (None, None, Some(n), Some(v)) => LevelTarget::Attribute {
            name: n.to_string(),
            value: v.to_string(),
        },
        _ => {
            return Err(
                "needs exactly one of target, target-pattern, target-attribute + target-value"
                    .into(),
            );
        }
    };
    Ok(CibLevel {
        target,
        index,
        devices,
    })
}

/// The fencer's CIB-defined part and the agent metadata it needs.
#[derive(Debug, Default)]
pub(super) struct CibFencingState {
    /// Ids of the devices from the configuration file (a CIB device may not
    /// take one of them).
    pub config_devices: BTreeSet<String>,
    /// Agent → capabilities (from the configuration file's devices, then from
    /// metadata the driver read).
    pub caps: BTreeMap<String, AgentCapabilities>,
    /// Agents whose metadata was asked for and not yet answered.
    asked: BTreeSet<String>,
    /// Agents whose metadata failed → why (asked again when the CIB's devices
    /// change).
    failed: BTreeMap<String, String>,
    /// The CIB version last reconciled (admin_epoch, epoch, num_updates).
    seen_version: Option<(String, String, String)>,
    /// What the CIB asked for last.
    wanted: CibFencing,
    /// Devices registered from the CIB, as registered.
    devices: BTreeMap<String, CibDevice>,
    /// Levels registered from the CIB.
    levels: BTreeSet<CibLevel>,
}

/// What one reconciliation did, for the log and the counters.
#[derive(Debug, Default)]
pub(super) struct Reconciled {
    /// Agents whose metadata the driver must read.
    pub ask_metadata: Vec<String>,
    /// Lines for the log (registrations, removals, refusals).
    pub notes: Vec<String>,
    /// Refusals (invalid entries, devices the fencer rejected).
    pub refused: u64,
}

impl CibFencingState {
    /// Whether the CIB changed since the last reconciliation.
    pub fn cib_changed(&self, cib: &Element) -> bool {
        self.seen_version.as_ref() != Some(&version_of(cib))
    }

    /// Makes the fencer's CIB-defined devices and levels those of `cib`
    /// (`force`: even if its version was seen, as after new metadata).
    pub fn reconcile(
        &mut self,
        cib: &Element,
        fencer: &mut Fencer,
        now: Time,
        force: bool,
    ) -> Reconciled {
        let mut r = Reconciled::default();
        let version = version_of(cib);
        if !force && self.seen_version.as_ref() == Some(&version) {
            return r;
        }
        self.seen_version = Some(version);
        let wanted = fencing_in_cib(cib);
        if wanted.devices != self.wanted.devices {
            self.failed.clear();
        }
        let changed = wanted != self.wanted;
        if changed {
            for why in &wanted.invalid {
                r.notes.push(format!("CIB fencing entry ignored: {why}"));
                r.refused += 1;
            }
        }
        self.wanted = wanted;
        // Devices gone, disabled or changed come out first.
        let stale: Vec<String> = self
            .devices
            .iter()
            .filter(|(id, d)| {
                self.wanted
                    .devices
                    .get(*id)
                    .is_none_or(|w| !w.enabled || w != *d)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.devices.remove(&id);
            let _ = fencer.handle(now, FencerInput::RemoveDevice(id.clone()));
            r.notes.push(format!("CIB device {id} removed"));
        }
        let add: Vec<CibDevice> = self
            .wanted
            .devices
            .values()
            .filter(|w| w.enabled && !self.devices.contains_key(&w.id))
            .cloned()
            .collect();
        for w in add {
            if self.config_devices.contains(&w.id) {
                if changed {
                    r.notes.push(format!(
                        "CIB device {} ignored: the configuration file defines that id",
                        w.id
                    ));
                    r.refused += 1;
                }
                continue;
            }
            let Some(caps) = self.caps.get(&w.agent).cloned() else {
                if !self.failed.contains_key(&w.agent) && self.asked.insert(w.agent.clone()) {
                    r.ask_metadata.push(w.agent.clone());
                }
                continue;
            };
            let registered = Device::new(&w.id, &w.agent, w.params.clone(), caps, w.priority)
                .map_err(FencerError::from)
                .and_then(|d| fencer.handle(now, FencerInput::RegisterDevice(d)));
            match registered {
                Ok(()) => {
                    r.notes
                        .push(format!("CIB device {} ({}) registered", w.id, w.agent));
                    self.devices.insert(w.id.clone(), w);
                }
                Err(e) => {
                    r.notes.push(format!("CIB device {} refused: {e}", w.id));
                    r.refused += 1;
                }
            }
        }
        let wanted_levels: BTreeSet<CibLevel> = self.wanted.levels.iter().cloned().collect();
        for l in self.levels.difference(&wanted_levels) {
            let _ = fencer.handle(
                now,
                FencerInput::RemoveLevel {
                    target: l.target.clone(),
                    index: Some(l.index),
                },
            );
        }
        let mut kept = BTreeSet::new();
        for l in &wanted_levels {
            if self.levels.contains(l) {
                kept.insert(l.clone());
                continue;
            }
            let input = FencerInput::RegisterLevel {
                target: l.target.clone(),
                index: l.index,
                devices: l.devices.clone(),
            };
            match fencer.handle(now, input) {
                Ok(()) => {
                    kept.insert(l.clone());
                }
                Err(e) => {
                    r.notes
                        .push(format!("CIB fencing level {} refused: {e}", l.index));
                    r.refused += 1;
                }
            }
        }
        self.levels = kept;
        r
    }

    /// The driver read `agent`'s metadata.
    pub fn metadata(&mut self, agent: &str, result: Result<AgentCapabilities, String>) {
        self.asked.remove(agent);
        match result {
            Ok(caps) => {
                self.caps.insert(agent.to_string(), caps);
            }
            Err(why) => {
                self.failed.insert(agent.to_string(), why);
            }
        }
    }

    /// Ids of the devices registered from the CIB.
    pub fn registered(&self) -> impl Iterator<Item = &str> {
        self.devices.keys().map(String::as_str)
    }
}

fn version_of(cib: &Element) -> (String, String, String) {
    let a = |n: &str| cib.attr(n).unwrap_or("0").to_string();
    (a("admin_epoch"), a("epoch"), a("num_updates"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_levels_are_read_as_pacemaker_writes_them() {
        let cib = phalanx_cib::xml::parse(
            r#"<cib><configuration><resources>
              <primitive id="kill" class="stonith" type="fence_phalanx_kill">
                <instance_attributes id="kill-ia">
                  <nvpair id="a" name="pcmk_host_map" value="n1:1;n2:2"/>
                  <nvpair id="b" name="pidfile_dir" value="/run/x"/>
                </instance_attributes>
                <meta_attributes id="kill-ma"><nvpair id="c" name="priority" value="5"/></meta_attributes>
              </primitive>
              <group id="g"><primitive id="off" class="stonith" type="fence_dummy">
                <meta_attributes id="m"><nvpair id="d" name="target-role" value="Stopped"/></meta_attributes>
              </primitive></group>
              <primitive id="web" class="ocf" provider="heartbeat" type="apache"/>
            </resources>
            <fencing-topology>
              <fencing-level id="l1" index="1" target="n1" devices="kill,off"/>
              <fencing-level id="l2" index="2" target-pattern="n[23]" devices="off"/>
              <fencing-level id="l3" index="1" target-attribute="rack" target-value="a" devices="kill"/>
              <fencing-level id="bad" index="12" target="n1" devices="kill"/>
              <fencing-level id="two" index="3" target="n1" target-pattern="x" devices="kill"/>
            </fencing-topology></configuration><status/></cib>"#,
        )
        .expect("parses");
        let f = fencing_in_cib(&cib);
        assert_eq!(f.devices.len(), 2, "{f:?}");
        let kill = &f.devices["kill"];
        assert_eq!(kill.agent, "fence_phalanx_kill");
        assert_eq!(kill.params["pcmk_host_map"], "n1:1;n2:2");
        assert_eq!(kill.priority, 5);
        assert!(kill.enabled);
        assert!(!f.devices["off"].enabled, "target-role=Stopped");
        assert_eq!(
            f.levels,
            vec![
                CibLevel {
                    target: LevelTarget::Node("n1".into()),
                    index: 1,
                    devices: vec!["kill".into(), "off".into()],
                },
                CibLevel {
                    target: LevelTarget::Pattern("n[23]".into()),
                    index: 2,
                    devices: vec!["off".into()],
                },
                CibLevel {
                    target: LevelTarget::Attribute {
                        name: "rack".into(),
                        value: "a".into()
                    },
                    index: 1,
                    devices: vec!["kill".into()],
                },
            ]
        );
        assert_eq!(f.invalid.len(), 2, "{:?}", f.invalid);
    }

    #[test]
    fn an_empty_or_foreign_document_defines_nothing() {
        for xml in [
            "<cib/>",
            "<cib><configuration/></cib>",
            "<other><x/></other>",
        ] {
            let cib = phalanx_cib::xml::parse(xml).expect("parses");
            assert_eq!(fencing_in_cib(&cib), CibFencing::default());
        }
    }
}
