//! The corosync.conf syntax: sections `name {`, `key: value` lines, `}` and `#`
//! comments, as Corosync's `coroparse.c` reads them. Nothing here knows what a
//! key means; that is the mapper's job.

use crate::config::error::ConfigError;

/// Deepest accepted section nesting (Corosync's own files use 4).
const MAX_DEPTH: usize = 32;

/// A `name { ... }` section.
#[derive(Debug, Default)]
pub(super) struct Section {
    pub(super) name: String,
    pub(super) line: u32,
    pub(super) items: Vec<Item>,
}

/// A `key: value` line.
#[derive(Debug)]
pub(super) struct Kv {
    pub(super) key: String,
    pub(super) value: String,
    pub(super) line: u32,
}

/// One entry of a section.
#[derive(Debug)]
pub(super) enum Item {
    Kv(Kv),
    Section(Section),
}

fn err(file: &str, line: u32, key: Option<&str>, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(file, Some(line), key.map(str::to_string), msg)
}

/// Parses the text into its top-level sections.
pub(super) fn parse(text: &str, file: &str) -> Result<Vec<Section>, ConfigError> {
    let mut stack: Vec<Section> = vec![Section::default()];
    for (i, raw) in text.lines().enumerate() {
        let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(name) = l.strip_suffix('{') {
            let name = name.trim();
            if name.is_empty()
                || name.contains([':', '{', '}'])
                || name.contains(char::is_whitespace)
            {
                return Err(err(file, line, None, format!("bad section name {name:?}")));
            }
            if stack.len() > MAX_DEPTH {
                return Err(err(file, line, None, "sections nested too deep"));
            }
            stack.push(Section {
                name: name.to_string(),
                line,
                items: Vec::new(),
            });
        } else if l == "}" {
            if stack.len() == 1 {
                return Err(err(file, line, None, "`}` without a matching `{`"));
            }
            let done = stack.pop().unwrap_or_default();
            if let Some(parent) = stack.last_mut() {
                parent.items.push(Item::Section(done));
            }
        } else if let Some((k, v)) = l.split_once(':') {
            let key = k.trim();
            if key.is_empty() || key.contains(char::is_whitespace) || key.contains(['{', '}']) {
                return Err(err(
                    file,
                    line,
                    None,
                    format!("bad key {key:?} (one `key: value` per line)"),
                ));
            }
            if stack.len() == 1 {
                return Err(err(
                    file,
                    line,
                    Some(key),
                    "`key: value` outside any section",
                ));
            }
            let mut value = v.trim();
            for q in ['"', '\''] {
                if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
                    value = &value[1..value.len() - 1];
                    break;
                }
            }
            if let Some(top) = stack.last_mut() {
                top.items.push(Item::Kv(Kv {
                    key: key.to_string(),
                    value: value.to_string(),
                    line,
                }));
            }
        } else {
            return Err(err(
                file,
                line,
                None,
                format!("expected `key: value`, `name {{` or `}}`, got {l:?}"),
            ));
        }
    }
    if stack.len() > 1 {
        let open = stack
            .last()
            .map(|s| (s.name.clone(), s.line))
            .unwrap_or_default();
        // Drop iteratively (bounded by MAX_DEPTH anyway).
        return Err(err(
            file,
            open.1,
            Some(&open.0),
            format!("section `{} {{` is never closed", open.0),
        ));
    }
    Ok(stack
        .pop()
        .map(|r| r.items)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| match i {
            Item::Section(s) => Some(s),
            Item::Kv(_) => None,
        })
        .collect())
}
