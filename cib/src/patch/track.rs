//! A copy of a tree with Pacemaker's per-node and per-attribute change flags.
//!
//! Pacemaker computes a patchset by marking flags on both trees while it
//! walks them (`xml_calculate_changes`), and several of those flags feed back
//! into later decisions: a node flagged `skip` no longer counts when the
//! positions of its siblings are compared. Reproducing crm_diff's output
//! exactly therefore means reproducing the flags, which this module holds.

use crate::xml::{Element, Node};

/// Flag bits, as in Pacemaker's `xml_private_flags`.
pub(crate) const CREATED: u8 = 1 << 0;
pub(crate) const DIRTY: u8 = 1 << 1;
pub(crate) const DELETED: u8 = 1 << 2;
pub(crate) const MOVED: u8 = 1 << 3;
pub(crate) const SKIP: u8 = 1 << 4;
pub(crate) const PROCESSED: u8 = 1 << 5;
/// Set on a new node whose whole subtree equals its match in the old tree and
/// whose sibling lists all match one to one: nothing inside can change, so the
/// walks skip it (not a Pacemaker flag; a shortcut that gives the same result).
pub(crate) const UNCHANGED: u8 = 1 << 6;

/// An attribute with its flags.
#[derive(Debug, Clone)]
pub(crate) struct TAttr {
    pub name: String,
    pub value: String,
    pub flags: u8,
}

/// An element or comment with its flags.
#[derive(Debug, Clone)]
pub(crate) struct TNode {
    /// Element name, or `comment`.
    pub name: String,
    /// Comment text for a comment node.
    pub comment: Option<String>,
    pub attrs: Vec<TAttr>,
    pub children: Vec<TNode>,
    pub flags: u8,
    /// Non-zero for a stub standing for an unchanged subtree: the number it
    /// shares with its twin in the other tree (see `super::pairs`).
    pub pair: u32,
}

impl TNode {
    /// `e`'s name and attributes, without children.
    pub fn shallow(e: &Element) -> TNode {
        TNode {
            name: e.name().to_string(),
            comment: None,
            attrs: e
                .attr_pairs()
                .map(|(n, v)| TAttr {
                    name: n.to_string(),
                    value: v.to_string(),
                    flags: 0,
                })
                .collect(),
            children: Vec::new(),
            flags: 0,
            pair: 0,
        }
    }

    /// A whole child, element or comment.
    pub fn from_node(n: &Node) -> TNode {
        match n {
            Node::Element(e) => TNode::from_element(e),
            Node::Comment(text) => TNode {
                name: "comment".to_string(),
                comment: Some(text.clone()),
                attrs: Vec::new(),
                children: Vec::new(),
                flags: 0,
                pair: 0,
            },
        }
    }

    pub fn from_element(e: &Element) -> TNode {
        TNode {
            name: e.name().to_string(),
            comment: None,
            attrs: e
                .attr_pairs()
                .map(|(n, v)| TAttr {
                    name: n.to_string(),
                    value: v.to_string(),
                    flags: 0,
                })
                .collect(),
            children: e
                .children()
                .iter()
                .map(|c| match c {
                    Node::Element(e) => TNode::from_element(e),
                    Node::Comment(text) => TNode {
                        name: "comment".to_string(),
                        comment: Some(text.clone()),
                        attrs: Vec::new(),
                        children: Vec::new(),
                        flags: 0,
                        pair: 0,
                    },
                })
                .collect(),
            flags: 0,
            pair: 0,
        }
    }

    pub fn is_comment(&self) -> bool {
        self.comment.is_some()
    }

    /// The `id` attribute (never present on a comment).
    pub fn id(&self) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == "id")
            .map(|a| a.value.as_str())
    }

    /// Back to a plain element, leaving out attributes flagged deleted.
    pub fn to_node(&self) -> Node {
        match &self.comment {
            Some(text) => Node::Comment(text.clone()),
            None => Node::Element(self.to_element()),
        }
    }

    pub fn to_element(&self) -> Element {
        let mut e = Element::new(self.name.clone());
        for a in self.attrs.iter().filter(|a| a.flags & DELETED == 0) {
            e.set_attr(a.name.clone(), a.value.clone());
        }
        for c in &self.children {
            e.push_child(c.to_node());
        }
        e
    }
}

/// Pacemaker's `pcmk__xml_position`: how many of the items before `index`
/// lack `ignore` (the item's own flags do not matter).
pub(crate) fn position<T>(items: &[T], index: usize, flags: impl Fn(&T) -> u8, ignore: u8) -> i64 {
    let counted = items[..index]
        .iter()
        .filter(|item| flags(item) & ignore == 0)
        .count();
    counted as i64
}

/// Position of attribute `index` among `attrs`, not counting those flagged `ignore`.
pub(crate) fn attr_position(attrs: &[TAttr], index: usize, ignore: u8) -> i64 {
    position(attrs, index, |a| a.flags, ignore)
}

/// One path step as Pacemaker writes it: `name` or `name[@id='ID']`.
pub(crate) fn path_step(name: &str, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("{name}[@id='{id}']"),
        None => name.to_string(),
    }
}
