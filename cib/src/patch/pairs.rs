//! Both trees of a diff converted to tracked trees at once, with the parts
//! that did not change left out.
//!
//! The walk (`diff::mark_changes`) marks a matched pair of equal subtrees
//! unchanged without looking inside, and emits for it at most a move of its
//! root — which needs only the root's name, attributes and position. So such
//! a pair is converted as two childless stubs carrying the same pair number
//! (a stub compares equal to its own twin only). A small change on a large
//! CIB then converts the path to the change and the siblings along it, not
//! two copies of the whole tree.
//!
//! A pair is the walk's own match: the new child that Pacemaker's rule
//! (first sibling with the needle's name and id, or with its name when it has
//! no id) gives for the old child, and no other old child matches it.

use std::collections::BTreeMap;

use crate::xml::{Element, Node};

use super::track::TNode;

/// `(old, new)` as tracked trees, equal matched subtrees as stubs.
pub(crate) fn tracked_pair(old: &Element, new: &Element) -> (TNode, TNode) {
    let mut next = 0;
    pair(old, new, &mut next)
}

fn pair(old: &Element, new: &Element, next: &mut u32) -> (TNode, TNode) {
    let mut old_t = TNode::shallow(old);
    let mut new_t = TNode::shallow(new);
    let twins = twins(old.children(), new.children());
    let mut new_children: Vec<Option<TNode>> = vec![None; new.children().len()];
    for (child, twin) in old.children().iter().zip(twins) {
        let twin = twin.and_then(|j| match new.children().get(j) {
            Some(Node::Element(b)) => Some((j, b)),
            _ => None,
        });
        let converted = match (child, twin) {
            (Node::Element(a), Some((j, b))) => {
                let (a_t, b_t) = if !a.is_empty() && same_subtree(a, b) {
                    *next += 1;
                    let mut a_t = TNode::shallow(a);
                    let mut b_t = TNode::shallow(b);
                    a_t.pair = *next;
                    b_t.pair = *next;
                    (a_t, b_t)
                } else {
                    pair(a, b, next)
                };
                new_children[j] = Some(b_t);
                a_t
            }
            _ => TNode::from_node(child),
        };
        old_t.children.push(converted);
    }
    new_t.children = new
        .children()
        .iter()
        .zip(new_children)
        .map(|(c, t)| t.unwrap_or_else(|| TNode::from_node(c)))
        .collect();
    (old_t, new_t)
}

/// For each old child, the index of the new child the walk matches it with,
/// when that new child is matched by no other old child.
fn twins(old: &[Node], new: &[Node]) -> Vec<Option<usize>> {
    let mut first_by_name: BTreeMap<&str, usize> = BTreeMap::new();
    let mut first_by_name_id: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (i, c) in new.iter().enumerate() {
        let (name, id) = key(c);
        first_by_name.entry(name).or_insert(i);
        if let Some(id) = id {
            first_by_name_id.entry((name, id)).or_insert(i);
        }
    }
    let matched: Vec<Option<usize>> = old
        .iter()
        .map(|c| match c {
            Node::Element(e) => match e.id() {
                Some(id) => first_by_name_id.get(&(e.name(), id)).copied(),
                None => first_by_name.get(e.name()).copied(),
            },
            // Comments match by position; they have no children to spare.
            Node::Comment(_) => None,
        })
        .collect();
    let mut hits: BTreeMap<usize, u32> = BTreeMap::new();
    for j in matched.iter().flatten() {
        *hits.entry(*j).or_default() += 1;
    }
    matched
        .into_iter()
        .map(|m| m.filter(|j| hits.get(j) == Some(&1)))
        .collect()
}

/// A child's name and id as the walk's sibling index sees them (a comment is
/// named `comment`).
fn key(c: &Node) -> (&str, Option<&str>) {
    match c {
        Node::Element(e) => (e.name(), e.id()),
        Node::Comment(_) => ("comment", None),
    }
}

/// `diff::same_subtree` on plain elements: equal (names, attributes in order,
/// children, comments) and every sibling list inside matching one to one.
fn same_subtree(a: &Element, b: &Element) -> bool {
    if a.name() != b.name()
        || a.children().len() != b.children().len()
        || !a.attr_pairs().eq(b.attr_pairs())
    {
        return false;
    }
    let children_equal = a
        .children()
        .iter()
        .zip(b.children())
        .all(|(x, y)| match (x, y) {
            (Node::Element(x), Node::Element(y)) => same_subtree(x, y),
            (Node::Comment(x), Node::Comment(y)) => x == y,
            _ => false,
        });
    if !children_equal {
        return false;
    }
    if a.children().len() < 2 {
        return true;
    }
    let mut names = std::collections::BTreeSet::new();
    let mut keys = std::collections::BTreeSet::new();
    a.child_elements().all(|c| {
        let first = match c.id() {
            Some(id) => keys.insert((c.name(), id)),
            None => !names.contains(c.name()),
        };
        names.insert(c.name());
        first
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::{DiffOptions, diff};
    use crate::xml::parse;

    #[test]
    fn equal_matched_subtrees_become_twin_stubs() {
        let old = parse(
            r#"<cib><configuration><resources><primitive id="a"><x id="x1"/></primitive><primitive id="b"><x id="x2"/></primitive></resources></configuration></cib>"#,
        )
        .expect("xml");
        let mut new = old.clone();
        new.set_attr("epoch", "2");
        let (o, n) = tracked_pair(&old, &new);
        let resources = |t: &TNode| t.children[0].children[0].clone();
        // Whole configuration equal: one stub pair, no children converted.
        assert_eq!(o.children[0].pair, n.children[0].pair);
        assert_ne!(o.children[0].pair, 0);
        assert!(o.children[0].children.is_empty());
        // A change inside primitive b: a stays a stub, b is walked.
        let changed = parse(
            r#"<cib><configuration><resources><primitive id="a"><x id="x1"/></primitive><primitive id="b"><x id="x3"/></primitive></resources></configuration></cib>"#,
        )
        .expect("xml");
        let (o, n) = tracked_pair(&old, &changed);
        let (ro, rn) = (resources(&o), resources(&n));
        assert!(ro.children[0].pair != 0 && ro.children[0].children.is_empty());
        assert_eq!(ro.children[0].pair, rn.children[0].pair);
        assert_eq!(ro.children[1].pair, 0);
        assert_eq!(rn.children[1].children.len(), 1);
    }

    #[test]
    fn ambiguous_matches_are_converted_whole() {
        // Two id-less <x> siblings both match the first new one: no stubs.
        let old = parse(r#"<r><x><y/></x><x><y/></x></r>"#).expect("xml");
        let new = parse(r#"<r><x><y/></x><x><z/></x></r>"#).expect("xml");
        let (o, n) = tracked_pair(&old, &new);
        assert!(o.children.iter().chain(&n.children).all(|c| c.pair == 0));
        assert_eq!(o.children[0].children.len(), 1);
        // And the walk still sees a difference (Pacemaker's quirky one: both
        // old <x> match the first new <x>).
        let p = diff(&old, &new, &DiffOptions::default()).expect("a change");
        assert!(p.child_elements().any(|c| c.name() == "change"), "{p:?}");
    }
}
