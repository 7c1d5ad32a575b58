//! Applying a v2 patchset the way Pacemaker 2.1.5's `xml_apply_patchset` does.
//!
//! Changes are processed in document order: `delete` removes its target at
//! once (a missing target is ignored), `modify` replaces all attributes of its
//! target with those of its `change-result`, and `create`/`move` are collected
//! (a moved node is parked at the end of its siblings meanwhile), then sorted
//! by `position` (stably) and carried out. Targets are found with Pacemaker's
//! own path reading (`search_v2_xpath`), quirks included. Nodes keep their
//! identity across these edits through an arena.

use crate::digest::cib_digest;
use crate::version::{Version, VersionCheckError, check_patch_versions, parse_component};
use crate::xml::{Attribute, Element, Node};

/// How to apply a patchset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Check the patch's `<version>` block against the document's version
    /// first (`crm_diff --cib --patch`, and what a CIB daemon does).
    pub check_versions: bool,
}

/// Why a patchset could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The document already has this update, or the patch does not raise the
    /// version (Pacemaker's `old_data`; callers usually treat it as success).
    #[error("update is old data: {0}")]
    OldData(VersionCheckError),
    /// The document is behind the patch's source version and needs a full
    /// resync (Pacemaker's `diff_failed` for a version gap).
    #[error("application of update diff failed: {0}")]
    NeedResync(VersionCheckError),
    /// A change's target does not exist, a move did not land where it
    /// should, or a change is malformed (Pacemaker's `diff_failed`).
    #[error("application of update diff failed: {0}")]
    DiffFailed(String),
    /// The patch carries a `digest` that the result does not have
    /// (Pacemaker's `diff_failed`).
    #[error(
        "application of update diff failed: digest mismatch (expected {expected}, result has {actual})"
    )]
    DigestMismatch {
        /// Digest in the patch.
        expected: String,
        /// Digest of the patched document.
        actual: String,
    },
    /// A `modify` change without an element in its `change-result`.
    #[error("modify change for {0} has no change-result")]
    MissingResult(String),
    /// A legacy format-1 patch, which this implementation does not apply.
    #[error("legacy patch format 1 is not supported (only format 2)")]
    LegacyFormat,
    /// A patch format other than 1 or 2.
    #[error("unknown patch format {0}")]
    UnknownFormat(i64),
}

impl PatchError {
    /// Whether Pacemaker would report this as `diff_failed` (the copy should
    /// be resynchronised) rather than `old_data`.
    pub fn is_diff_failed(&self) -> bool {
        !matches!(
            self,
            PatchError::OldData(_) | PatchError::LegacyFormat | PatchError::UnknownFormat(_)
        )
    }
}

/// Applies `patch` to `doc` and returns the patched document.
pub fn apply(
    doc: &Element,
    patch: &Element,
    options: &ApplyOptions,
) -> Result<Element, PatchError> {
    let format = patch.attr("format").map_or(1, parse_component);
    if options.check_versions {
        check_versions(doc, patch)?;
    }
    match format {
        2 => {}
        1 => return Err(PatchError::LegacyFormat),
        other => return Err(PatchError::UnknownFormat(other)),
    }
    let mut arena = Arena::from_root(doc);
    apply_v2(&mut arena, patch)?;
    let result = arena.to_root()?;
    if let Some(expected) = patch.attr("digest") {
        let actual = cib_digest(&result);
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(PatchError::DigestMismatch {
                expected: expected.to_string(),
                actual,
            });
        }
    }
    Ok(result)
}

/// The versions a patch moves from and to, read over the defaults Pacemaker
/// uses for a document at `current` (source = current, target = current with
/// one more update).
pub fn patch_versions(patch: &Element, current: Version) -> (Version, Version) {
    let mut source = current;
    let mut target = Version::new(current.admin_epoch, current.epoch, current.num_updates + 1);
    if let Some(version) = patch.find_child("version") {
        if let Some(s) = version.find_child("source") {
            source = Version::read_over(s, source);
        }
        if let Some(t) = version.find_child("target") {
            target = Version::read_over(t, target);
        }
    }
    (source, target)
}

fn check_versions(doc: &Element, patch: &Element) -> Result<(), PatchError> {
    let current = Version::of_cib(doc);
    let (source, target) = patch_versions(patch, current);
    check_patch_versions(current, source, target).map_err(|e| match e {
        VersionCheckError::NeedResync { .. } => PatchError::NeedResync(e),
        VersionCheckError::OldData { .. } => PatchError::OldData(e),
    })
}

type Id = usize;

/// One node of the arena. Id 0 is the document node, whose only child is the root.
#[derive(Debug, Clone)]
struct ANode {
    /// Element name, `comment` for a comment, empty for the document node.
    name: String,
    comment: Option<String>,
    attrs: Vec<Attribute>,
    parent: Option<Id>,
    children: Vec<Id>,
}

struct Arena {
    nodes: Vec<ANode>,
}

const DOCUMENT: Id = 0;

impl Arena {
    fn from_root(root: &Element) -> Arena {
        let mut arena = Arena {
            nodes: vec![ANode {
                name: String::new(),
                comment: None,
                attrs: Vec::new(),
                parent: None,
                children: Vec::new(),
            }],
        };
        let id = arena.add(&Node::Element(root.clone()), DOCUMENT);
        arena.nodes[DOCUMENT].children.push(id);
        arena
    }

    /// Adds a detached copy of `node` (with `parent` recorded) and returns its id.
    fn add(&mut self, node: &Node, parent: Id) -> Id {
        let id = self.nodes.len();
        let (name, comment, attrs) = match node {
            Node::Element(e) => (e.name().to_string(), None, e.attrs().to_vec()),
            Node::Comment(c) => ("comment".to_string(), Some(c.clone()), Vec::new()),
        };
        self.nodes.push(ANode {
            name,
            comment,
            attrs,
            parent: Some(parent),
            children: Vec::new(),
        });
        if let Node::Element(e) = node {
            for c in e.children() {
                let child = self.add(c, id);
                self.nodes[id].children.push(child);
            }
        }
        id
    }

    fn to_root(&self) -> Result<Element, PatchError> {
        let root = *self.nodes[DOCUMENT]
            .children
            .first()
            .ok_or_else(|| PatchError::DiffFailed("the patch deleted the root element".into()))?;
        match self.to_node(root) {
            Node::Element(e) => Ok(e),
            Node::Comment(_) => Err(PatchError::DiffFailed("the root is not an element".into())),
        }
    }

    fn to_node(&self, id: Id) -> Node {
        let n = &self.nodes[id];
        if let Some(c) = &n.comment {
            return Node::Comment(c.clone());
        }
        let mut e = Element::new(n.name.clone());
        for a in &n.attrs {
            e.set_attr(a.name.clone(), a.value.clone());
        }
        for &c in &n.children {
            e.push_child(self.to_node(c));
        }
        Node::Element(e)
    }

    fn id_attr(&self, id: Id) -> Option<&str> {
        self.nodes[id]
            .attrs
            .iter()
            .find(|a| a.name == "id")
            .map(|a| a.value.as_str())
    }

    /// Index of `id` among its parent's children.
    fn index_of(&self, id: Id) -> Option<usize> {
        let parent = self.nodes[id].parent?;
        self.nodes[parent].children.iter().position(|&c| c == id)
    }

    fn detach(&mut self, id: Id) {
        if let (Some(i), Some(parent)) = (self.index_of(id), self.nodes[id].parent) {
            self.nodes[parent].children.remove(i);
        }
    }

    /// Pacemaker's `first_matching_xml_child`.
    fn first_matching_child(
        &self,
        parent: Id,
        name: &str,
        id: Option<&str>,
        position: i64,
    ) -> Option<Id> {
        let children = &self.nodes[parent].children;
        children.iter().enumerate().find_map(|(i, &c)| {
            let node = &self.nodes[c];
            if node.name != name {
                return None;
            }
            if id.is_some() && self.id_attr(c) != id {
                return None;
            }
            if node.comment.is_some() && position >= 0 && i as i64 != position {
                return None;
            }
            Some(c)
        })
    }

    /// Pacemaker's `search_v2_xpath`, including how its `sscanf` patterns
    /// read a path: a step runs to the next `/`, the rest of the path stops
    /// at whitespace, and a step is `TAG` or `TAG[@id='ID']`. `position`
    /// selects among comments at the last step.
    fn search(&self, path: &str, position: i64) -> Option<Id> {
        let mut target = DOCUMENT;
        let mut current = path;
        while let Some(rest) = current.strip_prefix('/') {
            let section_len = rest.find('/').unwrap_or(rest.len());
            if section_len == 0 {
                break;
            }
            let section = &rest[..section_len];
            let after = &rest[section_len..];
            // `%s` reads up to whitespace; nothing left means one item read.
            let remainder: &str = &after[..after.find(char::is_whitespace).unwrap_or(after.len())];
            let last = remainder.is_empty();
            let (tag, id) = split_step(section)?;
            let pos = if last && position >= 0 { position } else { -1 };
            target = self.first_matching_child(target, tag, id, pos)?;
            if last {
                break;
            }
            current = remainder;
        }
        (target != DOCUMENT).then_some(target)
    }
}

/// Splits `TAG[@id='ID']` as `sscanf("%[^[][@id='%[^']")` would: `None`
/// when the tag is empty, no id when the id part is absent or empty.
fn split_step(section: &str) -> Option<(&str, Option<&str>)> {
    let tag_len = section.find('[').unwrap_or(section.len());
    if tag_len == 0 {
        return None;
    }
    let tag = &section[..tag_len];
    let id = section[tag_len..].strip_prefix("[@id='").and_then(|rest| {
        let end = rest.find('\'').unwrap_or(rest.len());
        (end > 0).then(|| &rest[..end])
    });
    Some((tag, id))
}

/// A `create` or `move` waiting for the second pass.
struct Pending<'p> {
    change: &'p Element,
    target: Id,
    /// Sort key: a missing position sorts as -1 ...
    sort_key: i64,
    /// ... but is carried out as 0 (Pacemaker reads it twice, with two defaults).
    position: i64,
}

fn apply_v2(arena: &mut Arena, patch: &Element) -> Result<(), PatchError> {
    let mut first_error: Option<PatchError> = None;
    let mut fail = |e: PatchError| {
        if first_error.is_none() {
            first_error = Some(e);
        }
    };
    let mut pending: Vec<Pending<'_>> = Vec::new();

    for change in patch.child_elements() {
        let Some(op) = change.attr("operation") else {
            continue;
        };
        let path = change.attr("path");
        let position = if op == "delete" {
            change.attr("position").map_or(-1, parse_component)
        } else {
            -1
        };
        let target = path.and_then(|p| arena.search(p, position));
        let Some(target) = target else {
            if op != "delete" {
                fail(PatchError::DiffFailed(format!(
                    "no {op} target for {}",
                    path.unwrap_or("(no path)")
                )));
            }
            continue;
        };
        match op {
            "create" | "move" => {
                pending.push(Pending {
                    change,
                    target,
                    sort_key: change.attr("position").map_or(-1, parse_component),
                    position: change.attr("position").map_or(0, parse_component),
                });
                if let (true, Some(parent)) = (op == "move", arena.nodes[target].parent) {
                    // Parked after the last sibling until the second pass.
                    arena.detach(target);
                    arena.nodes[parent].children.push(target);
                }
            }
            "delete" => {
                arena.detach(target);
                arena.nodes[target].parent = None;
            }
            "modify" => {
                let result = change
                    .find_child("change-result")
                    .and_then(|r| r.children().first());
                match result {
                    None => fail(PatchError::MissingResult(path.unwrap_or("").to_string())),
                    Some(Node::Comment(_)) => arena.nodes[target].attrs.clear(),
                    Some(Node::Element(attrs)) => {
                        if arena.nodes[target].comment.is_none() {
                            arena.nodes[target].attrs = attrs.attrs().to_vec();
                        }
                    }
                }
            }
            other => fail(PatchError::DiffFailed(format!(
                "unknown operation '{other}'"
            ))),
        }
    }

    // Stable, as GLib's merge sort is.
    pending.sort_by_key(|p| p.sort_key);
    for p in pending {
        let op = p.change.attr("operation").unwrap_or("");
        if op == "create" {
            let Some(content) = p.change.children().first() else {
                fail(PatchError::DiffFailed(
                    "create change without content".into(),
                ));
                continue;
            };
            if arena.nodes[p.target].comment.is_some() {
                // libxml2 hangs the new node under the comment, where no
                // serialisation ever shows it: a no-op that succeeds.
                continue;
            }
            let child = arena.add(content, p.target);
            let siblings = &mut arena.nodes[p.target].children;
            match usize::try_from(p.position) {
                Ok(i) if i < siblings.len() => siblings.insert(i, child),
                _ => siblings.push(child),
            }
        } else {
            let Some(parent) = arena.nodes[p.target].parent else {
                continue;
            };
            let Some(current) = arena.index_of(p.target) else {
                continue;
            };
            if p.position != current as i64 {
                let mut dest = p.position;
                if dest > current as i64 {
                    dest += 1; // skip ourselves
                }
                arena.detach(p.target);
                let siblings = &mut arena.nodes[parent].children;
                // Index `dest` counted with ourselves still present.
                let before = usize::try_from(dest)
                    .ok()
                    .map(|d| if d > current { d - 1 } else { d })
                    .filter(|&d| d < siblings.len());
                match before {
                    Some(d) => siblings.insert(d, p.target),
                    None => siblings.push(p.target),
                }
            }
            if Some(p.position) != arena.index_of(p.target).map(|i| i as i64) {
                fail(PatchError::DiffFailed(format!(
                    "moved {} to position {} instead of {}",
                    p.change.attr("path").unwrap_or(""),
                    arena.index_of(p.target).unwrap_or(0),
                    p.position
                )));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
