//! Where each key of a TOML file is: its line and its value's byte span, by
//! dotted path (`nodes.0.addrs.1`), for errors and warnings that point at lines.

use std::collections::BTreeMap;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Line of every key and value span of every value, by dotted path
/// (`nodes.0.addrs.1`).
pub(super) struct Lines {
    starts: Vec<usize>,
    keys: BTreeMap<String, (u32, std::ops::Range<usize>)>,
}

impl Lines {
    pub(super) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines {
            starts,
            keys: BTreeMap::new(),
        }
    }

    pub(super) fn line_at(&self, offset: usize) -> u32 {
        let idx = self.starts.partition_point(|&s| s <= offset);
        u32::try_from(idx.max(1)).unwrap_or(u32::MAX)
    }

    pub(super) fn walk_table(&mut self, prefix: &str, t: &DeTable<'_>) {
        for (k, v) in t.iter() {
            let path = if prefix.is_empty() {
                k.get_ref().to_string()
            } else {
                format!("{prefix}.{}", k.get_ref())
            };
            let line = self.line_at(k.span().start);
            self.keys.insert(path.clone(), (line, v.span()));
            self.walk_value(&path, v);
        }
    }

    fn walk_value(&mut self, path: &str, v: &Spanned<DeValue<'_>>) {
        match v.get_ref() {
            DeValue::Table(t) => self.walk_table(path, t),
            DeValue::Array(a) => {
                for (i, e) in a.iter().enumerate() {
                    let p = format!("{path}.{i}");
                    let line = self.line_at(e.span().start);
                    self.keys.insert(p.clone(), (line, e.span()));
                    self.walk_value(&p, e);
                }
            }
            _ => {}
        }
    }

    pub(super) fn line(&self, path: &str) -> Option<u32> {
        let mut k = path;
        loop {
            if let Some((l, _)) = self.keys.get(k) {
                return Some(*l);
            }
            k = k.rsplit_once('.')?.0;
        }
    }

    /// The innermost path whose value holds `offset`.
    pub(super) fn path_at(&self, offset: usize) -> Option<&str> {
        self.keys
            .iter()
            .filter(|(_, (_, span))| span.start <= offset && offset < span.end.max(span.start + 1))
            .min_by_key(|(k, (_, span))| (span.end - span.start, std::cmp::Reverse(k.len())))
            .map(|(k, _)| k.as_str())
    }
}

/// TOML spelling of a dotted path: `nodes.0.id` → `nodes[0].id`.
pub(super) fn pretty(path: &str) -> String {
    let mut out = String::new();
    for part in path.split('.') {
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(part);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}
