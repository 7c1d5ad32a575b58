//! Permission flags on the elements of a CIB, and access decisions.

use std::collections::BTreeMap;

use super::rules::{Kind, Permission};
use crate::xml::Element;
use crate::xpath::{Location, select_elements};

/// The kind of access asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading.
    Read,
    /// Changing, creating or deleting.
    Write,
}

/// A user's permissions, in the order they were collected.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions {
    list: Vec<Permission>,
}

/// The flags one element carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NodeFlags {
    read: bool,
    write: bool,
    deny: bool,
}

impl NodeFlags {
    /// Pacemaker's `test_acl_mode`.
    fn grants(self, access: Access) -> bool {
        !self.deny
            && match access {
                Access::Read => self.read || self.write,
                Access::Write => self.write,
            }
    }

    /// Readable by its own flags.
    pub(crate) fn readable(self) -> bool {
        self.grants(Access::Read)
    }
}

/// The flags every element of one CIB carries.
pub(crate) struct Flags {
    by_location: BTreeMap<Location, NodeFlags>,
    deny_matches: Vec<Location>,
}

impl Flags {
    /// The flags at `loc` (none if no permission selected it).
    pub(crate) fn at(&self, loc: &[usize]) -> NodeFlags {
        self.by_location.get(loc).copied().unwrap_or_default()
    }

    /// Elements selected by deny permissions, in permission then document
    /// order.
    pub(crate) fn deny_matches(&self) -> Vec<Location> {
        self.deny_matches.clone()
    }

    /// Pacemaker's `pcmk__check_acl`: the element, then each ancestor; the
    /// first deny refuses, the first grant allows; default deny.
    pub(crate) fn allows(&self, loc: &[usize], access: Access) -> bool {
        for n in (0..=loc.len()).rev() {
            let f = self.at(&loc[..n]);
            if f.grants(access) {
                return true;
            }
            if f.deny {
                return false;
            }
        }
        false
    }
}

impl Permissions {
    /// Permissions from a list.
    pub fn new(list: Vec<Permission>) -> Self {
        Permissions { list }
    }

    /// The permissions in collection order.
    pub fn list(&self) -> &[Permission] {
        &self.list
    }

    /// Whether the user has no permission at all (everything is denied).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Flags the elements of `cib`. A permission whose XPath cannot be
    /// parsed selects nothing (as in Pacemaker).
    pub(crate) fn flag(&self, cib: &Element) -> Flags {
        let mut by_location: BTreeMap<Location, NodeFlags> = BTreeMap::new();
        let mut deny_matches = Vec::new();
        for p in &self.list {
            let Ok(hits) = select_elements(cib, &p.xpath) else {
                continue;
            };
            for loc in hits {
                if p.kind == Kind::Deny {
                    deny_matches.push(loc.clone());
                }
                let f = by_location.entry(loc).or_default();
                match p.kind {
                    Kind::Read => f.read = true,
                    Kind::Write => f.write = true,
                    Kind::Deny => f.deny = true,
                }
            }
        }
        Flags {
            by_location,
            deny_matches,
        }
    }

    /// Whether the element at `loc` of `cib` may be accessed.
    pub fn allows(&self, cib: &Element, loc: &[usize], access: Access) -> bool {
        self.flag(cib).allows(loc, access)
    }
}
