//! Fast answers to the two questions the diff walk asks about a sibling list
//! over and over: "which child matches this needle?" and "what is this
//! child's skip-adjusted position?". Answered naively both are linear, which
//! makes the walk quadratic in the number of siblings (as in Pacemaker);
//! here matching is a map lookup and positions come from a Fenwick tree
//! kept in step with the *skip* flags.

use std::collections::BTreeMap;

use super::track::{SKIP, TNode};

/// Index over one sibling list.
pub(crate) struct Siblings {
    /// First child with a given name.
    first_by_name: BTreeMap<String, usize>,
    /// First child with a given name and id.
    first_by_name_id: BTreeMap<(String, String), usize>,
    /// Fenwick tree over "1 if not skipped" per child.
    tree: Vec<i64>,
}

impl Siblings {
    pub fn new(children: &[TNode]) -> Siblings {
        let mut first_by_name = BTreeMap::new();
        let mut first_by_name_id = BTreeMap::new();
        for (i, c) in children.iter().enumerate() {
            first_by_name.entry(c.name.clone()).or_insert(i);
            if let Some(id) = c.id() {
                first_by_name_id
                    .entry((c.name.clone(), id.to_string()))
                    .or_insert(i);
            }
        }
        let mut s = Siblings {
            first_by_name,
            first_by_name_id,
            tree: vec![0; children.len() + 1],
        };
        for (i, c) in children.iter().enumerate() {
            if c.flags & SKIP == 0 {
                s.add(i, 1);
            }
        }
        s
    }

    fn add(&mut self, index: usize, delta: i64) {
        let mut k = index + 1;
        while k < self.tree.len() {
            self.tree[k] += delta;
            k += k & k.wrapping_neg();
        }
    }

    /// Pacemaker's `pcmk__xml_position(child, skip)`: the number of
    /// children before `index` that are not flagged *skip*.
    pub fn position(&self, index: usize) -> i64 {
        let mut k = index;
        let mut sum = 0;
        while k > 0 {
            sum += self.tree[k];
            k -= k & k.wrapping_neg();
        }
        sum
    }

    /// Sets the *skip* flag on `children[index]`, keeping positions in step.
    pub fn skip(&mut self, children: &mut [TNode], index: usize) {
        if children[index].flags & SKIP == 0 {
            children[index].flags |= SKIP;
            self.add(index, -1);
        }
    }

    /// Pacemaker's element matching: the first child with the needle's name
    /// and, when the needle has an id, that id.
    pub fn match_element(&self, name: &str, id: Option<&str>) -> Option<usize> {
        match id {
            Some(id) => self
                .first_by_name_id
                .get(&(name.to_string(), id.to_string()))
                .copied(),
            None => self.first_by_name.get(name).copied(),
        }
    }
}
