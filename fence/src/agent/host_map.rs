//! `pcmk_host_map`: which port (plug) of a device belongs to which node.

use std::collections::BTreeMap;

/// A parsed `pcmk_host_map` such as `node1:1;node2:2,3`.
///
/// As Pacemaker 3 reads it: entries are separated by `;`, spaces or tabs; each entry
/// is `node:port` (or the older `node=port`), split at the first `:` or `=`; the port
/// text is passed on as it is (so `2,3` stays `2,3`); node names compare without
/// regard to ASCII case; an entry with an empty side is malformed and ignored (kept
/// in [`HostMap::malformed`] so a caller can warn).
///
/// ```
/// use phalanx_fence::agent::HostMap;
/// let map = HostMap::parse("node1:1; Node2=2,3 bad");
/// assert_eq!(map.port_of("NODE1"), Some("1"));
/// assert_eq!(map.port_of("node2"), Some("2,3"));
/// assert_eq!(map.malformed(), ["bad"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostMap {
    /// Lower-cased node name → port text.
    ports: BTreeMap<String, String>,
    malformed: Vec<String>,
}

/// At most this many entries are read from one map; the rest are ignored as
/// malformed (a device with thousands of ports per node is not a real thing).
pub const MAX_HOST_MAP_ENTRIES: usize = 4096;

impl HostMap {
    /// Parses a map; never fails (bad entries are collected, not fatal).
    pub fn parse(text: &str) -> HostMap {
        let mut map = HostMap::default();
        for entry in text
            .split([';', ' ', '\t', '\n', '\r'])
            .filter(|e| !e.is_empty())
        {
            if map.ports.len() >= MAX_HOST_MAP_ENTRIES {
                map.malformed.push(entry.to_string());
                continue;
            }
            match entry.split_once([':', '=']) {
                Some((node, port)) if !node.is_empty() && !port.is_empty() => {
                    map.ports
                        .insert(node.to_ascii_lowercase(), port.to_string());
                }
                _ => map.malformed.push(entry.to_string()),
            }
        }
        map
    }

    /// The port mapped to `node`, if any.
    pub fn port_of(&self, node: &str) -> Option<&str> {
        self.ports
            .get(&node.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The entries that could not be read (without the separators).
    pub fn malformed(&self) -> &[String] {
        &self.malformed
    }

    /// How many nodes are mapped.
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// Whether no node is mapped.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}
