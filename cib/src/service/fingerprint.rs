//! A copy's identity: its version triple and an exact digest of its content,
//! and the bounded history of the states a copy went through.

use md5::{Digest as _, Md5};
use std::collections::VecDeque;
use std::fmt;

use crate::version::Version;
use crate::xml::{Element, Escaping, Style, to_string};

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
    /// The fingerprint of `cib`.
    pub fn of(cib: &Element) -> Self {
        Fingerprint {
            version: Version::of_cib(cib),
            digest: Digest::of(cib),
            config: cib
                .find_child("configuration")
                .map(Digest::of)
                .unwrap_or_default(),
        }
    }

    /// Whether this is a copy as read from disk: `num_updates` 0 and nothing
    /// in `status`. It holds only configuration.
    pub fn fresh_from_disk(&self, cib: &Element) -> bool {
        self.version.num_updates == 0 && cib.find_child("status").is_none_or(Element::is_empty)
    }
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
