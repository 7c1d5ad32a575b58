//! Access control lists (§1.9 of the reference), with Pacemaker 2.1.5's
//! semantics.
//!
//! * ACLs apply when the CIB enables them (`enable-acl` true in
//!   `crm_config`) and the user is neither `root` nor `hacluster` (nor the
//!   daemon itself, i.e. no user).
//! * The user's permissions come from the `acl_target` whose `name` (or
//!   `id`) is the user and the `acl_group`s naming a group the user is in;
//!   each lists `role` references to `acl_role`s holding `acl_permission`s
//!   (`kind` read/write/deny, selected by `xpath`, `reference` = an id, or
//!   `object-type` with an optional `attribute`).
//! * Every permission flags the elements it selects; a flag covers the
//!   element's subtree. To decide an access to an element, the element and
//!   then its ancestors are examined: the first one carrying a deny flag
//!   refuses, the first one whose flags grant the access allows (write
//!   implies read), and reaching past the root refuses (default deny).
//! * Reads get a filtered copy ([`filtered_copy`]): denied subtrees are
//!   removed, elements on the way to readable ones keep only their `id`; a
//!   user who may read nothing gets `EACCES`.
//! * Writes ([`check_write`]) compare the CIB before and after: every
//!   changed or removed element needs write access in the CIB as it was,
//!   every new element write access in the result (so a permission that
//!   selects the object being created allows it), except new "scaffolding"
//!   elements with no attribute but `id` (outside `acls`). One refused
//!   change refuses the whole request.

mod flags;
mod rules;

pub use flags::{Access, Permissions};
pub use rules::{Kind, Permission, acls_enabled, acls_required, enable_acl, permissions_for};

use std::collections::BTreeSet;

use crate::xml::{Element, Node};
use crate::xpath::Location;

/// The part of `cib` the permissions let the user read, or `None` when
/// nothing at all is readable (Pacemaker answers `EACCES`).
pub fn filtered_copy(cib: &Element, perms: &Permissions) -> Option<Element> {
    if perms.is_empty() {
        return None;
    }
    let flags = perms.flag(cib);
    let mut removed = BTreeSet::new();
    let mut stripped = BTreeSet::new();
    // Denied subtrees go first, so that a readable ancestor does not keep
    // them.
    for loc in flags.deny_matches() {
        let gone = (0..=loc.len()).any(|n| removed.contains(&loc[..n]));
        if !gone {
            purge(cib, &flags, &loc, &mut removed, &mut stripped);
        }
    }
    if !purge(cib, &flags, &[], &mut removed, &mut stripped) {
        return None;
    }
    let mut path = Vec::new();
    Some(rebuild(cib, &mut path, &removed, &stripped))
}

/// Pacemaker's `purge_xml_attributes`: an element readable by its own flags
/// stays whole; otherwise it keeps only its `id`, and stays only if some
/// descendant is readable. Returns whether it stays.
fn purge(
    cib: &Element,
    flags: &flags::Flags,
    loc: &[usize],
    removed: &mut BTreeSet<Location>,
    stripped: &mut BTreeSet<Location>,
) -> bool {
    if flags.at(loc).readable() {
        return true;
    }
    let Some(e) = cib.descendant(loc) else {
        return false;
    };
    stripped.insert(loc.to_vec());
    let mut any = false;
    for (i, child) in e.children().iter().enumerate() {
        let mut c = loc.to_vec();
        c.push(i);
        if removed.contains(&c) {
            continue;
        }
        match child {
            Node::Element(_) => {
                if purge(cib, flags, &c, removed, stripped) {
                    any = true;
                }
            }
            Node::Comment(_) => {
                removed.insert(c);
            }
        }
    }
    if !any {
        removed.insert(loc.to_vec());
    }
    any
}

fn rebuild(
    e: &Element,
    path: &mut Vec<usize>,
    removed: &BTreeSet<Location>,
    stripped: &BTreeSet<Location>,
) -> Element {
    let mut out = Element::new(e.name());
    let strip = stripped.contains(path);
    for (n, v) in e.attr_pairs() {
        if !strip || n == "id" {
            out.set_attr(n, v);
        }
    }
    for (i, child) in e.children().iter().enumerate() {
        path.push(i);
        if !removed.contains(path) {
            match child {
                Node::Element(c) => {
                    let copy = rebuild(c, path, removed, stripped);
                    out.push_child(copy);
                }
                Node::Comment(t) => out.push_child(Node::Comment(t.clone())),
            }
        }
        path.pop();
    }
    out
}

/// Checks that every difference between `old` and `new` is a write the
/// permissions allow. Changed and removed elements are judged by the flags
/// of the CIB before the operation, new elements by the flags of the result
/// (so a permission selecting what is being created allows it, as in
/// Pacemaker). Returns a description of the first refused change.
pub fn check_write(old: &Element, new: &Element, perms: &Permissions) -> Result<(), String> {
    let before = perms.flag(old);
    let after = perms.flag(new);
    let judge = Judge {
        before: &|loc: &[usize]| before.allows(loc, Access::Write),
        after: &|loc: &[usize]| after.allows(loc, Access::Write),
    };
    if old.name() != new.name() {
        return if (judge.before)(&[]) {
            Ok(())
        } else {
            Err(format!("replacing <{}>", old.name()))
        };
    }
    walk(old, new, &mut Vec::new(), &mut Vec::new(), &judge, "")
}

/// Write decisions on the CIB before and after the operation.
struct Judge<'a> {
    before: &'a dyn Fn(&[usize]) -> bool,
    after: &'a dyn Fn(&[usize]) -> bool,
}

fn describe(e: &Element, parent_path: &str) -> String {
    match e.id() {
        Some(id) => format!("{parent_path}/{}[@id='{id}']", e.name()),
        None => format!("{parent_path}/{}", e.name()),
    }
}

fn same_attributes(a: &Element, b: &Element) -> bool {
    a.attrs().len() == b.attrs().len() && a.attr_pairs().all(|(n, v)| b.attr(n) == Some(v))
}

fn comments(e: &Element) -> Vec<&str> {
    e.children().iter().filter_map(Node::as_comment).collect()
}

fn walk(
    old: &Element,
    new: &Element,
    old_loc: &mut Vec<usize>,
    new_loc: &mut Vec<usize>,
    judge: &Judge<'_>,
    parent_path: &str,
) -> Result<(), String> {
    let here = describe(old, parent_path);
    if !same_attributes(old, new) && !(judge.before)(old_loc) {
        return Err(format!("changing attributes of {here}"));
    }
    if comments(old) != comments(new) && !(judge.before)(old_loc) {
        return Err(format!("changing comments of {here}"));
    }
    // Pair children by name and id, in order.
    let mut used = vec![false; old.children().len()];
    for (j, n) in new.children().iter().enumerate() {
        let Node::Element(n) = n else { continue };
        let found = old.children().iter().enumerate().position(|(i, o)| {
            !used[i]
                && o.as_element()
                    .is_some_and(|o| o.name() == n.name() && o.id() == n.id())
        });
        new_loc.push(j);
        let r = match found.and_then(|i| old.children()[i].as_element().map(|o| (i, o))) {
            Some((i, o)) => {
                used[i] = true;
                old_loc.push(i);
                let r = walk(o, n, old_loc, new_loc, judge, &here);
                old_loc.pop();
                r
            }
            None => check_created(n, new_loc, judge, &here),
        };
        new_loc.pop();
        r?;
    }
    for (i, o) in old.children().iter().enumerate() {
        if let (false, Node::Element(o)) = (used[i], o) {
            old_loc.push(i);
            let ok = (judge.before)(old_loc);
            old_loc.pop();
            if !ok {
                return Err(format!("deleting {}", describe(o, &here)));
            }
        }
    }
    Ok(())
}

/// A new element (and its new descendants) at `loc` of the result: anything
/// but `id`-only scaffolding (outside `acls`) needs write access there.
fn check_created(
    e: &Element,
    loc: &mut Vec<usize>,
    judge: &Judge<'_>,
    parent_path: &str,
) -> Result<(), String> {
    let here = describe(e, parent_path);
    let in_acls = here.contains("/acls/") || e.name() == "acls";
    let scaffolding = e.attr_pairs().all(|(n, _)| n == "id" && !in_acls);
    if !scaffolding && !(judge.after)(loc) {
        return Err(format!("creating {here}"));
    }
    for (j, c) in e.children().iter().enumerate() {
        if let Node::Element(c) = c {
            loc.push(j);
            let r = check_created(c, loc, judge, &here);
            loc.pop();
            r?;
        }
    }
    Ok(())
}
