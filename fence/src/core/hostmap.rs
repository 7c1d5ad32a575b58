//! The text formats of a device's target parameters:
//!
//! * `pcmk_host_map`: `node1:1;node2:2,3` — mappings separated by `;`, blanks or
//!   tabs; node and port separated by the first `:` (or `=`, an old spelling);
//!   a `\` makes the next character literal (so a port may hold `;`, `:`, a blank
//!   or a `\`). The port text is passed to the agent as it is (`2,3` is one port
//!   argument meaning "ports 2 and 3"). Node names compare case-insensitively.
//! * `pcmk_delay_base` per node: `node1:0s;node2:5s` — the same shape, `:` only.
//! * `pcmk_host_list` and the output of an agent's `list`: entries separated by
//!   blanks, `,`, `;` or line ends (also a literal `\n`); each entry is its leading
//!   run of `[A-Za-z0-9_.-]`; entries `on`/`off` and lines mentioning `invalid` or
//!   `variable` (agent complaints) are skipped.

use thiserror::Error;

/// Longest parameter text we parse (bounded work on bad input).
pub const MAX_MAP_TEXT: usize = 64 * 1024;
/// Most entries kept from one map or list.
pub const MAX_MAP_ENTRIES: usize = 4096;

/// A map that could not be parsed. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MapError {
    /// An entry without a node or without a value (`node1`, `:5`, `node1:`).
    #[error("malformed mapping {0:?}")]
    Malformed(String),
    /// The text ends with a lone `\`.
    #[error("dangling escape at the end of {0:?}")]
    DanglingEscape(String),
    /// Longer than [`MAX_MAP_TEXT`] or more than [`MAX_MAP_ENTRIES`] entries.
    #[error("map too large")]
    TooLarge,
}

/// A node → value map (`pcmk_host_map`, per-node `pcmk_delay_base`), in the order
/// written; a node written twice keeps its last value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeMap {
    entries: Vec<(String, String)>,
}

impl NodeMap {
    /// Parses a `pcmk_host_map` (`:` or `=` between node and port).
    ///
    /// ```
    /// use phalanx_fence::core::NodeMap;
    /// let m = NodeMap::parse_host_map(r"node1:1;node2:2,3 node3:a\;b").unwrap();
    /// assert_eq!(m.get("NODE2"), Some("2,3"));
    /// assert_eq!(m.get("node3"), Some("a;b"));
    /// ```
    pub fn parse_host_map(text: &str) -> Result<NodeMap, MapError> {
        Self::parse(text, &[':', '='])
    }

    /// Parses a per-node value map such as `node1:0s;node2:5s` (`:` only).
    pub fn parse_node_values(text: &str) -> Result<NodeMap, MapError> {
        Self::parse(text, &[':'])
    }

    fn parse(text: &str, assign: &[char]) -> Result<NodeMap, MapError> {
        if text.len() > MAX_MAP_TEXT {
            return Err(MapError::TooLarge);
        }
        let mut entries: Vec<(String, String)> = Vec::new();
        // (name, value) being read; `value` is Some once the separator was seen.
        let mut name = String::new();
        let mut value: Option<String> = None;
        let mut raw = String::new();
        let mut chars = text.trim().chars();
        let mut finish = |name: &mut String,
                          value: &mut Option<String>,
                          raw: &mut String|
         -> Result<(), MapError> {
            if name.is_empty() && value.is_none() {
                raw.clear();
                return Ok(());
            }
            match value.take() {
                Some(v) if !name.is_empty() && !v.is_empty() => {
                    if entries.len() >= MAX_MAP_ENTRIES {
                        return Err(MapError::TooLarge);
                    }
                    entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                    entries.push((std::mem::take(name), v));
                    raw.clear();
                    Ok(())
                }
                _ => Err(MapError::Malformed(std::mem::take(raw))),
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    let Some(lit) = chars.next() else {
                        return Err(MapError::DanglingEscape(text.to_string()));
                    };
                    raw.push(c);
                    raw.push(lit);
                    match &mut value {
                        Some(v) => v.push(lit),
                        None => name.push(lit),
                    }
                }
                ';' | ' ' | '\t' | '\n' => finish(&mut name, &mut value, &mut raw)?,
                c if value.is_none() && assign.contains(&c) => {
                    raw.push(c);
                    value = Some(String::new());
                }
                c => {
                    raw.push(c);
                    match &mut value {
                        Some(v) => v.push(c),
                        None => name.push(c),
                    }
                }
            }
        }
        finish(&mut name, &mut value, &mut raw)?;
        Ok(NodeMap { entries })
    }

    /// The value for `node` (case-insensitive).
    pub fn get(&self, node: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(node))
            .map(|(_, v)| v.as_str())
    }

    /// True when no mapping was written.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The mappings in the order written.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// Parses a `pcmk_host_list` or the output of an agent's `list` action into target
/// names (see the module docs for the rules).
///
/// ```
/// use phalanx_fence::core::parse_targets;
/// assert_eq!(parse_targets("node1 node2,node3;node4"), ["node1", "node2", "node3", "node4"]);
/// assert_eq!(parse_targets("1,node1\n2,node2\n"), ["1", "node1", "2", "node2"]);
/// ```
pub fn parse_targets(text: &str) -> Vec<String> {
    let text = if text.len() > MAX_MAP_TEXT {
        // Cut at a char boundary at or below the limit.
        let mut end = MAX_MAP_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        &text[..end]
    } else {
        text
    };
    let mut out = Vec::new();
    for line in text.split('\n').flat_map(|l| l.split("\\n")) {
        if line.contains("invalid") || line.contains("variable") {
            continue;
        }
        for entry in line.split(|c: char| c.is_whitespace() || c == ',' || c == ';') {
            let end = entry
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
                .unwrap_or(entry.len());
            let name = &entry[..end];
            if name.is_empty()
                || name.eq_ignore_ascii_case("on")
                || name.eq_ignore_ascii_case("off")
            {
                continue;
            }
            if out.len() >= MAX_MAP_ENTRIES {
                return out;
            }
            out.push(name.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_map_table() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("node1:1;node2:2,3", &[("node1", "1"), ("node2", "2,3")]),
            ("node1=1 node2=2", &[("node1", "1"), ("node2", "2")]),
            ("  node1:1;;\tnode2:2 ; ", &[("node1", "1"), ("node2", "2")]),
            (r"node1:a\ b", &[("node1", "a b")]),
            (
                r"node1:a\;b;node2:c\:d",
                &[("node1", "a;b"), ("node2", "c:d")],
            ),
            (r"node1:a\\b", &[("node1", r"a\b")]),
            (r"no\:de:x", &[("no:de", "x")]),
            ("node1:1:2", &[("node1", "1:2")]),
            ("node1:1;NODE1:9", &[("NODE1", "9")]),
            ("", &[]),
        ];
        for (text, want) in cases {
            let m = NodeMap::parse_host_map(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            let got: Vec<(&str, &str)> = m.entries().collect();
            assert_eq!(&got, want, "{text:?}");
        }
        for bad in ["node1", "node1:", ":1", "node1:1;node2", r"node1:1\"] {
            assert!(
                NodeMap::parse_host_map(bad).is_err(),
                "{bad:?} must be refused"
            );
        }
        assert_eq!(
            NodeMap::parse_host_map(&"a".repeat(MAX_MAP_TEXT + 1)),
            Err(MapError::TooLarge)
        );
    }

    #[test]
    fn node_values_use_colon_only() {
        let m = NodeMap::parse_node_values("node1:0s;node2:5s").unwrap();
        assert_eq!(m.get("node2"), Some("5s"));
        assert_eq!(m.get("Node1"), Some("0s"));
        assert!(NodeMap::parse_node_values("node1=5s").is_err());
    }

    #[test]
    fn target_list_table() {
        let cases: &[(&str, &[&str])] = &[
            ("node1 node2 node3", &["node1", "node2", "node3"]),
            ("node1,node2;node3", &["node1", "node2", "node3"]),
            ("node1, node2 ,,node3", &["node1", "node2", "node3"]),
            ("1,node1\n2,node2", &["1", "node1", "2", "node2"]),
            ("1,node1\\n2,node2", &["1", "node1", "2", "node2"]),
            ("node1,ON\nnode2,off", &["node1", "node2"]),
            ("Parse error: invalid option\nnode1", &["node1"]),
            ("node1(x) node2", &["node1", "node2"]),
            ("", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_targets(text), want, "{text:?}");
        }
    }
}
