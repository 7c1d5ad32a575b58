//! A copy's identity: its version triple and an exact digest of its content,
//! and the bounded history of the states a copy went through.

use md5::{Digest as _, Md5};
use std::collections::VecDeque;
use std::fmt;

use crate::version::Version;
use crate::xml::{Element, Escaping, Node, Style, to_string, write_to};

/// Bytes in a [`Digest`].
pub const DIGEST_LEN: usize = 16;

/// MD5 of the compact serialisation with lossless (XML) escaping, so that two
/// copies with equal digests are equal trees (Pacemaker's own digests escape
/// lossily and leave out bookkeeping attributes: they cannot tell a tab from
/// four spaces, nor two `cib-last-written` values apart).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest(pub [u8; DIGEST_LEN]);

impl Digest {
    /// The digest of `cib`.
    pub fn of(cib: &Element) -> Self {
        let text = to_string(cib, Style::Compact, Escaping::Xml);
        Digest(Md5::digest(text.as_bytes()).into())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Version and digests of one state of a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fingerprint {
    /// `(admin_epoch, epoch, num_updates)`.
    pub version: Version,
    /// Exact content digest of the whole CIB.
    pub digest: Digest,
    /// Exact digest of the `configuration` section alone (what a copy read
    /// from disk holds).
    pub config: Digest,
}

impl Fingerprint {
    /// The fingerprint of `cib`: one serialisation of the whole CIB, in which
    /// the `configuration` section's own serialisation is a slice (the compact
    /// form has no whitespace, so a child's text is the same inside its parent
    /// as alone) — not a second serialisation of the section.
    pub fn of(cib: &Element) -> Self {
        let (text, config) = compact_with_configuration(cib);
        Fingerprint {
            version: Version::of_cib(cib),
            digest: Digest(Md5::digest(text.as_bytes()).into()),
            config: config
                .map(|r| Digest(Md5::digest(&text.as_bytes()[r]).into()))
                .unwrap_or_default(),
        }
    }

    /// Whether this is a copy as read from disk: `num_updates` 0 and nothing
    /// in `status`. It holds only configuration.
    pub fn fresh_from_disk(&self, cib: &Element) -> bool {
        self.version.num_updates == 0 && cib.find_child("status").is_none_or(Element::is_empty)
    }
}

/// The compact lossless serialisation of `cib` (as [`Digest::of`] hashes it)
/// and the byte range of its first `configuration` child within it.
fn compact_with_configuration(cib: &Element) -> (String, Option<std::ops::Range<usize>>) {
    if cib.is_empty() {
        return (to_string(cib, Style::Compact, Escaping::Xml), None);
    }
    // The root's start tag: the childless form `<cib .../>` made `<cib ...>`.
    let mut root = Element::new(cib.name());
    for (name, value) in cib.attr_pairs() {
        root.set_attr(name, value);
    }
    let mut text = to_string(&root, Style::Compact, Escaping::Xml);
    text.truncate(text.len() - "/>".len());
    text.push('>');
    let mut config = None;
    for child in cib.children() {
        match child {
            Node::Element(e) => {
                let start = text.len();
                write_to(&mut text, e, Style::Compact, Escaping::Xml);
                if config.is_none() && e.name() == "configuration" {
                    config = Some(start..text.len());
                }
            }
            Node::Comment(c) => {
                text.push_str("<!--");
                text.push_str(c);
                text.push_str("-->");
            }
        }
    }
    text.push_str("</");
    text.push_str(cib.name());
    text.push('>');
    (text, config)
}

/// The last states a copy went through, oldest first (bounded). A copy whose
/// current state is in the winner's history lost nothing in a sync: the
/// winner's copy descends from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    entries: VecDeque<Fingerprint>,
    max: usize,
}

impl History {
    /// A history holding at most `max` states (at least 1), starting at `now`.
    pub fn new(max: usize, now: Fingerprint) -> Self {
        let mut h = History {
            entries: VecDeque::new(),
            max: max.max(1),
        };
        h.push(now);
        h
    }

    /// Records a new current state.
    pub fn push(&mut self, f: Fingerprint) {
        if self.entries.back() == Some(&f) {
            return;
        }
        if self.entries.len() == self.max {
            self.entries.pop_front();
        }
        self.entries.push_back(f);
    }

    /// Whether `f` is one of the recorded states.
    pub fn contains(&self, f: &Fingerprint) -> bool {
        self.entries.contains(f)
    }

    /// Whether some recorded state had the configuration of `f`: the same
    /// `admin_epoch`, `epoch` and configuration digest.
    pub fn contains_configuration(&self, f: &Fingerprint) -> bool {
        self.entries.iter().any(|e| {
            e.config == f.config
                && e.version.admin_epoch == f.version.admin_epoch
                && e.version.epoch == f.version.epoch
        })
    }

    /// The states, oldest first.
    pub fn to_vec(&self) -> Vec<Fingerprint> {
        self.entries.iter().copied().collect()
    }

    /// A history of exactly `states` (oldest first).
    pub fn from_states(states: &[Fingerprint]) -> Self {
        History {
            entries: states.iter().copied().collect(),
            max: states.len().max(1),
        }
    }

    /// Changes the bound, dropping the oldest states beyond it.
    pub fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
        while self.entries.len() > self.max {
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::empty_cib;

    #[test]
    fn one_pass_digests_equal_separate_serialisations() {
        let mut cib = empty_cib(4);
        cib.set_attr("validate-with", "pacemaker-3.9");
        cib.set_attr("note", "a\t<b> & \"c\"");
        cib.push_child(Node::Comment(" after status ".into()));
        let f = Fingerprint::of(&cib);
        assert_eq!(f.digest, Digest::of(&cib));
        let config = cib.find_child("configuration").expect("configuration");
        assert_eq!(f.config, Digest::of(config));
        assert_ne!(f.config, Digest::default());
        // No configuration at all, and no children at all.
        let bare = Element::new("cib").with_attr("epoch", "1");
        let f = Fingerprint::of(&bare);
        assert_eq!((f.digest, f.config), (Digest::of(&bare), Digest::default()));
        let mut status_only = bare.clone();
        status_only.push_child(Element::new("status"));
        assert_eq!(
            Fingerprint::of(&status_only).digest,
            Digest::of(&status_only)
        );
    }
}
