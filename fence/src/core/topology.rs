//! Fencing topology: levels of devices per target (§2.5 of the fencing reference).
//!
//! A level has an index 1..=9, a list of devices that must *all* succeed, and one
//! target selector: a node name, a pattern (Pacemaker's POSIX extended regular
//! expression, matched anywhere in the name as `regexec` does), or a node attribute
//! and value. A target's levels come from one selector: its name if a selector
//! names it (case-insensitive), else the first matching pattern or attribute
//! selector in a fixed order (node names sort before patterns before attributes,
//! each by text) — Pacemaker's lookup, with its hash-table order made explicit.

use regex::{Regex, RegexBuilder};
use std::collections::BTreeMap;
use thiserror::Error;

/// Lowest level index.
pub const MIN_LEVEL: u8 = 1;
/// Highest level index.
pub const MAX_LEVEL: u8 = 9;
/// Most devices in one level.
pub const MAX_LEVEL_DEVICES: usize = 64;
/// Most target selectors.
pub const MAX_SELECTORS: usize = 1024;
/// Longest target pattern, and the compiled-size limit that goes with it.
pub const MAX_PATTERN_LEN: usize = 1024;
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Which targets a level applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LevelTarget {
    /// One node, by name (case-insensitive).
    Node(String),
    /// Names matching this extended regular expression (anywhere in the name).
    Pattern(String),
    /// Nodes whose attribute `name` has exactly `value`.
    Attribute {
        /// Attribute name.
        name: String,
        /// Attribute value.
        value: String,
    },
}

impl LevelTarget {
    fn key(&self) -> LevelTarget {
        match self {
            LevelTarget::Node(n) => LevelTarget::Node(n.to_ascii_lowercase()),
            other => other.clone(),
        }
    }
}

/// A topology change that was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// Index outside 1..=9.
    #[error("fencing level index {0} outside {MIN_LEVEL}..={MAX_LEVEL}")]
    BadIndex(u8),
    /// No devices, an empty device id, or more than [`MAX_LEVEL_DEVICES`].
    #[error("bad device list for a fencing level")]
    BadDevices,
    /// The pattern does not compile (or is too long / too large).
    #[error("bad target pattern: {0}")]
    BadPattern(String),
    /// An empty node name or attribute name.
    #[error("empty target")]
    EmptyTarget,
    /// Already [`MAX_SELECTORS`] selectors.
    #[error("too many fencing-level targets")]
    TooMany,
}

/// Splits a level's `devices="a,b,c"` attribute.
pub fn parse_level_devices(text: &str) -> Result<Vec<String>, TopologyError> {
    let devices: Vec<String> = text.split(',').map(|d| d.trim().to_string()).collect();
    if devices.is_empty()
        || devices.len() > MAX_LEVEL_DEVICES
        || devices.iter().any(|d| d.is_empty())
    {
        return Err(TopologyError::BadDevices);
    }
    Ok(devices)
}

#[derive(Debug, Clone)]
struct Selector {
    regex: Option<Regex>,
    levels: BTreeMap<u8, Vec<String>>,
}

/// All fencing levels.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    selectors: BTreeMap<LevelTarget, Selector>,
}

impl Topology {
    /// No levels.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) level `index` for `target`.
    pub fn register(
        &mut self,
        target: LevelTarget,
        index: u8,
        devices: Vec<String>,
    ) -> Result<(), TopologyError> {
        if !(MIN_LEVEL..=MAX_LEVEL).contains(&index) {
            return Err(TopologyError::BadIndex(index));
        }
        if devices.is_empty()
            || devices.len() > MAX_LEVEL_DEVICES
            || devices.iter().any(|d| d.is_empty())
        {
            return Err(TopologyError::BadDevices);
        }
        let regex = match &target {
            LevelTarget::Node(n) | LevelTarget::Attribute { name: n, .. } if n.is_empty() => {
                return Err(TopologyError::EmptyTarget);
            }
            LevelTarget::Pattern(p) => {
                if p.len() > MAX_PATTERN_LEN {
                    return Err(TopologyError::BadPattern("pattern too long".into()));
                }
                Some(
                    RegexBuilder::new(p)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .dfa_size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|e| TopologyError::BadPattern(e.to_string()))?,
                )
            }
            _ => None,
        };
        let key = target.key();
        if !self.selectors.contains_key(&key) && self.selectors.len() >= MAX_SELECTORS {
            return Err(TopologyError::TooMany);
        }
        self.selectors
            .entry(key)
            .or_insert_with(|| Selector {
                regex,
                levels: BTreeMap::new(),
            })
            .levels
            .insert(index, devices);
        Ok(())
    }

    /// Removes level `index` of `target` (`None`: all its levels); false if absent.
    pub fn remove(&mut self, target: &LevelTarget, index: Option<u8>) -> bool {
        let key = target.key();
        let Some(sel) = self.selectors.get_mut(&key) else {
            return false;
        };
        let removed = match index {
            Some(i) => sel.levels.remove(&i).is_some(),
            None => {
                let had = !sel.levels.is_empty();
                sel.levels.clear();
                had
            }
        };
        if sel.levels.is_empty() {
            self.selectors.remove(&key);
        }
        removed
    }

    /// True when no level is registered.
    pub fn is_empty(&self) -> bool {
        self.selectors.is_empty()
    }

    /// The levels for `target` in ascending index order (empty: no topology for
    /// it); `attributes` are the target's node attributes.
    ///
    /// ```
    /// use phalanx_fence::core::{LevelTarget, Topology};
    /// use std::collections::BTreeMap;
    /// let mut t = Topology::new();
    /// t.register(LevelTarget::Pattern("node.*".into()), 2, vec!["b".into()]).unwrap();
    /// t.register(LevelTarget::Pattern("node.*".into()), 1, vec!["a".into()]).unwrap();
    /// let levels = t.levels_for("node3", &BTreeMap::new());
    /// assert_eq!(levels, vec![(1, vec!["a".to_string()]), (2, vec!["b".to_string()])]);
    /// ```
    pub fn levels_for(
        &self,
        target: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Vec<(u8, Vec<String>)> {
        let exact = LevelTarget::Node(target.to_ascii_lowercase());
        let chosen = self.selectors.get(&exact).or_else(|| {
            self.selectors.iter().find_map(|(k, sel)| {
                let hit = match k {
                    LevelTarget::Node(_) => false,
                    LevelTarget::Pattern(_) => {
                        sel.regex.as_ref().is_some_and(|r| r.is_match(target))
                    }
                    LevelTarget::Attribute { name, value } => attributes.get(name) == Some(value),
                };
                hit.then_some(sel)
            })
        });
        chosen
            .map(|sel| sel.levels.iter().map(|(i, d)| (*i, d.clone())).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(d: &[&str]) -> Vec<String> {
        d.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn levels_ascending_and_selectors() {
        let mut t = Topology::new();
        t.register(LevelTarget::Node("node3".into()), 3, v(&["true3", "true4"]))
            .unwrap();
        t.register(
            LevelTarget::Node("Node3".into()),
            1,
            v(&["false1", "true1"]),
        )
        .unwrap();
        t.register(
            LevelTarget::Node("node3".into()),
            2,
            v(&["true2", "false2"]),
        )
        .unwrap();
        t.register(LevelTarget::Pattern("^node[0-9]$".into()), 1, v(&["pat"]))
            .unwrap();
        t.register(
            LevelTarget::Attribute {
                name: "rack".into(),
                value: "r1".into(),
            },
            1,
            v(&["attr"]),
        )
        .unwrap();
        let none = BTreeMap::new();
        let got = t.levels_for("NODE3", &none);
        assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(got[0].1, v(&["false1", "true1"]));
        // Level removal (topology_level_removal): level 2 is gone.
        assert!(t.remove(&LevelTarget::Node("node3".into()), Some(2)));
        assert_eq!(
            t.levels_for("node3", &none)
                .iter()
                .map(|(i, _)| *i)
                .collect::<Vec<_>>(),
            [1, 3]
        );
        // Pattern: anywhere-match semantics of regexec, anchored here by the pattern.
        assert_eq!(t.levels_for("node4", &none), vec![(1, v(&["pat"]))]);
        assert!(t.levels_for("node44", &none).is_empty());
        let attrs = BTreeMap::from([("rack".to_string(), "r1".to_string())]);
        assert_eq!(t.levels_for("other", &attrs), vec![(1, v(&["attr"]))]);
        assert!(t.levels_for("other", &none).is_empty());
        // Unanchored pattern matches anywhere, as '@node.*' does in cts-fencing.
        let mut t = Topology::new();
        t.register(LevelTarget::Pattern("node.*".into()), 1, v(&["true"]))
            .unwrap();
        assert_eq!(t.levels_for("xnode3", &none).len(), 1);
    }

    #[test]
    fn refusals() {
        let mut t = Topology::new();
        assert_eq!(
            t.register(LevelTarget::Node("n".into()), 0, v(&["a"])),
            Err(TopologyError::BadIndex(0))
        );
        assert_eq!(
            t.register(LevelTarget::Node("n".into()), 10, v(&["a"])),
            Err(TopologyError::BadIndex(10))
        );
        assert_eq!(
            t.register(LevelTarget::Node("n".into()), 1, vec![]),
            Err(TopologyError::BadDevices)
        );
        assert_eq!(
            t.register(LevelTarget::Node(String::new()), 1, v(&["a"])),
            Err(TopologyError::EmptyTarget)
        );
        assert!(matches!(
            t.register(LevelTarget::Pattern("node(".into()), 1, v(&["a"])),
            Err(TopologyError::BadPattern(_))
        ));
        assert!(matches!(
            t.register(LevelTarget::Pattern("a{1000}{1000}".into()), 1, v(&["a"])),
            Err(TopologyError::BadPattern(_))
        ));
        assert!(t.is_empty());
        assert_eq!(parse_level_devices("a, b ,c").unwrap(), v(&["a", "b", "c"]));
        assert!(parse_level_devices("a,,b").is_err());
        assert!(!t.remove(&LevelTarget::Node("n".into()), None));
    }
}
