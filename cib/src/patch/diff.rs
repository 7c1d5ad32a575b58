//! Computing a v2 patchset the way Pacemaker 2.1.5's `crm_diff` does.
//!
//! The walk (`mark_changes`) follows `xml_calculate_changes`: for each pair of
//! matched elements, compare attributes, then match old children against new
//! ones (deleting the unmatched), then new against old (creating the
//! unmatched, and flagging moves where skip-adjusted positions differ).
//! Matching is Pacemaker's: elements by name and, when the needle has one, by
//! `id`; comments by equal skip-adjusted position and case-insensitively
//! equal text. The patchset is then emitted from the flags
//! (`emit_changes`, after `xml_create_patchset_v2`).

use crate::digest::versioned_digest;
use crate::version::VERSION_ATTRIBUTES;
use crate::xml::Element;

use super::pairs::tracked_pair;
use super::siblings::Siblings;
use super::track::{
    CREATED, DELETED, DIRTY, MOVED, PROCESSED, SKIP, TAttr, TNode, UNCHANGED, attr_position,
    path_step,
};

/// How to compute a patchset; the defaults are plain `crm_diff`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// `crm_diff --cib`: attributes that only changed position are not a
    /// change, and the patchset carries a `digest` of the new CIB.
    pub cib: bool,
    /// `crm_diff --no-version`: the version attributes of the new CIB are
    /// taken from the old one, and the patchset has no `<version>` block.
    pub no_version: bool,
}

/// A node deleted from the old tree, as recorded for a `delete` change.
struct Deleted {
    path: String,
    /// Set for comments only.
    position: Option<i64>,
}

/// The v2 patchset turning `old` into `new`, or `None` when Pacemaker sees
/// no difference (what makes `crm_diff` exit 0).
pub fn diff(old: &Element, new: &Element, options: &DiffOptions) -> Option<Element> {
    // A copy only when the version attributes must be overwritten.
    let mut new = std::borrow::Cow::Borrowed(new);
    if options.no_version {
        let new = new.to_mut();
        for name in VERSION_ATTRIBUTES {
            if let Some(v) = old.attr(name) {
                new.set_attr(name, v);
            }
        }
    }
    let new: &Element = &new;
    // Unchanged matched subtrees are converted as stubs, not copied.
    let (mut old_t, mut new_t) = tracked_pair(old, new);

    // Pacemaker refuses to compare documents whose roots differ in name or
    // id (both ignoring ASCII case), and then reports no change.
    let same_id = match (old_t.id(), new_t.id()) {
        (None, None) => true,
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        _ => false,
    };
    if !old_t.name.eq_ignore_ascii_case(&new_t.name) || !same_id {
        return None;
    }

    let mut deleted = Vec::new();
    let root_path = format!("/{}", path_step(&new_t.name, new_t.id()));
    mark_changes(
        &mut old_t,
        &mut new_t,
        &root_path,
        !options.cib,
        &mut deleted,
    );

    let mut changes = Vec::new();
    for d in &deleted {
        let mut change = Element::new("change")
            .with_attr("operation", "delete")
            .with_attr("path", d.path.clone());
        if let Some(p) = d.position {
            change.set_attr("position", p.to_string());
        }
        changes.push(change);
    }
    emit_changes(&new_t, &root_path, None, &mut changes);
    if changes.is_empty() {
        return None;
    }

    let mut patch = Element::new("diff").with_attr("format", "2");
    if options.cib {
        let digest = versioned_digest(new, old.attr("crm_feature_set"));
        patch.set_attr("digest", digest);
    }
    if !options.no_version {
        let mut source = Element::new("source");
        let mut target = Element::new("target");
        for name in VERSION_ATTRIBUTES {
            source.set_attr(name, old.attr(name).unwrap_or("1"));
            target.set_attr(name, new.attr(name).unwrap_or("1"));
        }
        patch.push_child(
            Element::new("version")
                .with_child(source)
                .with_child(target),
        );
    }
    for c in changes {
        patch.push_child(c);
    }
    Some(patch)
}

/// Whether Pacemaker considers the two documents equal (`crm_diff` exits 0).
pub fn pacemaker_equal(a: &Element, b: &Element) -> bool {
    diff(a, b, &DiffOptions::default()).is_none()
}

/// Pacemaker's `pcmk__xml_match`: the index in `haystack` of the node that
/// corresponds to `needle` (whose skip-adjusted position among its own
/// siblings is `needle_position`).
fn find_match(
    haystack: &[TNode],
    index: &Siblings,
    needle: &TNode,
    needle_position: i64,
) -> Option<usize> {
    let Some(text) = &needle.comment else {
        return index.match_element(&needle.name, needle.id());
    };
    // Comments: the first candidate at the needle's position that is not
    // skipped must be a comment with the same text (ASCII case ignored).
    for (i, candidate) in haystack.iter().enumerate() {
        let offset = index.position(i);
        if offset < needle_position {
            continue;
        }
        if offset > needle_position {
            return None;
        }
        if candidate.flags & SKIP != 0 {
            continue;
        }
        return match &candidate.comment {
            Some(other) if other.eq_ignore_ascii_case(text) => Some(i),
            _ => None,
        };
    }
    None
}

/// `mark_xml_changes` for a matched pair: flags both trees, records deletions.
fn mark_changes(
    old: &mut TNode,
    new: &mut TNode,
    new_path: &str,
    track_attribute_moves: bool,
    deleted: &mut Vec<Deleted>,
) {
    if new.flags & PROCESSED != 0 {
        return;
    }
    new.flags |= PROCESSED;
    // The common case for a CIB change: most of the tree is untouched. An equal
    // subtree whose children all match themselves yields no flags below it, so
    // it need not be walked (nor its paths formatted) — this keeps the per-change
    // cost from growing with the CIB's size.
    if same_subtree(old, new) {
        new.flags |= UNCHANGED;
        return;
    }
    if !new.is_comment() {
        diff_attributes(old, new, track_attribute_moves);
    }
    let mut old_index = Siblings::new(&old.children);
    let mut new_index = Siblings::new(&new.children);

    // Old children: recurse into matches, delete the rest.
    for i in 0..old.children.len() {
        let pos = old_index.position(i);
        match find_match(&new.children, &new_index, &old.children[i], pos) {
            Some(j) => {
                let child_path = format!(
                    "{new_path}/{}",
                    path_step(&new.children[j].name, new.children[j].id())
                );
                mark_changes(
                    &mut old.children[i],
                    &mut new.children[j],
                    &child_path,
                    track_attribute_moves,
                    deleted,
                );
            }
            None => {
                let child = &old.children[i];
                deleted.push(Deleted {
                    path: format!("{new_path}/{}", path_step(&child.name, child.id())),
                    position: child.is_comment().then_some(pos),
                });
                old_index.skip(&mut old.children, i);
            }
        }
    }

    // New children: create the unmatched, flag moves.
    for j in 0..new.children.len() {
        let p_new = new_index.position(j);
        match find_match(&old.children, &old_index, &new.children[j], p_new) {
            None => {
                new_index.skip(&mut new.children, j);
                mark_created(&mut new.children[j]);
            }
            Some(i) => {
                let p_old = old_index.position(i);
                if p_old != p_new {
                    new.children[j].flags |= MOVED;
                    if p_old > p_new {
                        old_index.skip(&mut old.children, i);
                    } else {
                        new_index.skip(&mut new.children, j);
                    }
                }
            }
        }
    }
}

/// Whether `a` and `b` are equal (names, comments, attributes in order,
/// children) and every sibling list in them matches one to one under
/// Pacemaker's rule (each child is the first sibling its name and id, or its
/// name alone when it has no id, would match): then the walk would find every node matched to its twin at the same
/// position and flag nothing.
fn same_subtree(a: &TNode, b: &TNode) -> bool {
    if a.name != b.name
        || a.pair != b.pair
        || a.comment != b.comment
        || a.attrs.len() != b.attrs.len()
        || a.children.len() != b.children.len()
        || a.attrs
            .iter()
            .zip(&b.attrs)
            .any(|(x, y)| x.name != y.name || x.value != y.value || x.flags != 0 || y.flags != 0)
    {
        return false;
    }
    if !a
        .children
        .iter()
        .zip(&b.children)
        .all(|(x, y)| same_subtree(x, y))
    {
        return false;
    }
    if a.children.len() < 2 {
        return true;
    }
    // Pacemaker matches a needle with an id to the first sibling of that name
    // and id, and one without an id to the first sibling of that name: each
    // child must be that first sibling itself.
    let mut names = std::collections::BTreeSet::new();
    let mut keys = std::collections::BTreeSet::new();
    a.children.iter().filter(|c| !c.is_comment()).all(|c| {
        let first = match c.id() {
            Some(id) => keys.insert((c.name.as_str(), id)),
            None => !names.contains(c.name.as_str()),
        };
        names.insert(c.name.as_str());
        first
    })
}

fn mark_created(node: &mut TNode) {
    node.flags |= CREATED;
    for c in &mut node.children {
        mark_created(c);
    }
}

/// `xml_diff_attrs`: flags attributes of `new` as changed, moved, created,
/// or (re-added at the end) deleted.
fn diff_attributes(old: &mut TNode, new: &mut TNode, track_moves: bool) {
    for a in &mut new.attrs {
        a.flags |= CREATED;
    }
    for k in 0..old.attrs.len() {
        let name = old.attrs[k].name.clone();
        match new.attrs.iter().position(|a| a.name == name) {
            None => new.attrs.push(TAttr {
                name,
                value: old.attrs[k].value.clone(),
                flags: DELETED,
            }),
            Some(n) => {
                let new_pos = attr_position(&new.attrs, n, SKIP);
                let old_pos = attr_position(&old.attrs, k, SKIP);
                new.attrs[n].flags &= !CREATED;
                if new.attrs[n].value != old.attrs[k].value {
                    new.attrs[n].flags |= DIRTY;
                } else if old_pos != new_pos && track_moves {
                    new.attrs[n].flags |= DIRTY | MOVED;
                    if old_pos > new_pos {
                        old.attrs[k].flags |= SKIP;
                    } else {
                        new.attrs[n].flags |= SKIP;
                    }
                }
            }
        }
    }
    for a in &mut new.attrs {
        if a.flags & CREATED != 0 {
            a.flags |= DIRTY;
        }
    }
}

/// `add_xml_changes_to_patchset`: creates, modifies and moves in a
/// depth-first walk of the new tree. `index` is the node's index among its
/// parent's children (`None` for the root).
fn emit_changes(node: &TNode, path: &str, index: Option<(usize, &str)>, out: &mut Vec<Element>) {
    if node.flags & UNCHANGED != 0 {
        // Nothing inside changed; only the node itself may have moved.
        if let (true, Some((i, _))) = (node.flags & MOVED != 0, index) {
            out.push(
                Element::new("change")
                    .with_attr("operation", "move")
                    .with_attr("path", path)
                    .with_attr("position", i.to_string()),
            );
        }
        return;
    }
    if node.flags & CREATED != 0 {
        if let Some((i, parent_path)) = index {
            out.push(
                Element::new("change")
                    .with_attr("operation", "create")
                    .with_attr("path", parent_path)
                    .with_attr("position", i.to_string())
                    .with_child(node.to_node()),
            );
        }
        return;
    }

    let changed: Vec<&TAttr> = node
        .attrs
        .iter()
        .filter(|a| a.flags & (DELETED | DIRTY) != 0)
        .collect();
    if !changed.is_empty() {
        let mut list = Element::new("change-list");
        for a in changed {
            let mut attr = Element::new("change-attr").with_attr("name", a.name.clone());
            if a.flags & DELETED != 0 {
                attr.set_attr("operation", "unset");
            } else {
                attr.set_attr("operation", "set");
                attr.set_attr("value", a.value.clone());
            }
            list.push_child(attr);
        }
        let mut result = Element::new(node.name.clone());
        for a in node.attrs.iter().filter(|a| a.flags & DELETED == 0) {
            result.set_attr(a.name.clone(), a.value.clone());
        }
        out.push(
            Element::new("change")
                .with_attr("operation", "modify")
                .with_attr("path", path)
                .with_child(list)
                .with_child(Element::new("change-result").with_child(result)),
        );
    }

    for (i, child) in node.children.iter().enumerate() {
        let child_path = format!("{path}/{}", path_step(&child.name, child.id()));
        emit_changes(child, &child_path, Some((i, path)), out);
    }

    if let (true, Some((i, _))) = (node.flags & MOVED != 0, index) {
        out.push(
            Element::new("change")
                .with_attr("operation", "move")
                .with_attr("path", path)
                .with_attr("position", i.to_string()),
        );
    }
}
