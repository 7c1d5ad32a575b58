//! The tree: elements with ordered attributes and element/comment children.

/// One attribute of an element. Order among an element's attributes is
/// significant (Pacemaker's serialisation, digests and plain diffs see it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// Attribute name as written (a namespace prefix, if any, is kept).
    pub name: String,
    /// Value after entity and character-reference decoding and XML attribute
    /// whitespace normalisation.
    pub value: String,
}

/// A child of an element: another element, or a comment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    /// An element.
    Element(Element),
    /// A comment; the text between `<!--` and `-->`, verbatim.
    Comment(String),
}

impl Node {
    /// The element, if this node is one.
    pub fn as_element(&self) -> Option<&Element> {
        match self {
            Node::Element(e) => Some(e),
            Node::Comment(_) => None,
        }
    }

    /// The element, mutably, if this node is one.
    pub fn as_element_mut(&mut self) -> Option<&mut Element> {
        match self {
            Node::Element(e) => Some(e),
            Node::Comment(_) => None,
        }
    }

    /// The comment text, if this node is a comment.
    pub fn as_comment(&self) -> Option<&str> {
        match self {
            Node::Comment(c) => Some(c),
            Node::Element(_) => None,
        }
    }

    /// The name Pacemaker's path syntax uses for this node: the element name,
    /// or `comment` for a comment (libxml2's name for comment nodes).
    pub fn path_name(&self) -> &str {
        match self {
            Node::Element(e) => e.name(),
            Node::Comment(_) => "comment",
        }
    }
}

impl From<Element> for Node {
    fn from(e: Element) -> Self {
        Node::Element(e)
    }
}

/// An XML element. `Clone` is a deep copy; `==` is exact structural equality
/// (name, attributes in order, children in order, comment text). Pacemaker's
/// looser notion of "no difference" lives in [`crate::patch`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Element {
    name: String,
    attributes: Vec<Attribute>,
    children: Vec<Node>,
}

impl Element {
    /// A new element with no attributes and no children.
    pub fn new(name: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            attributes: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Builder form of [`Element::set_attr`].
    #[must_use]
    pub fn with_attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder form of [`Element::push_child`].
    #[must_use]
    pub fn with_child(mut self, child: impl Into<Node>) -> Self {
        self.push_child(child);
        self
    }

    /// The element name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the element.
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }

    // ----- attributes -----

    /// The value of attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }

    /// The `id` attribute, which names elements in Pacemaker paths.
    pub fn id(&self) -> Option<&str> {
        self.attr("id")
    }

    /// Whether attribute `name` is present.
    pub fn has_attr(&self, name: &str) -> bool {
        self.attr_index(name).is_some()
    }

    /// Index of attribute `name` in document order.
    pub fn attr_index(&self, name: &str) -> Option<usize> {
        self.attributes.iter().position(|a| a.name == name)
    }

    /// Sets attribute `name`: an existing attribute keeps its position, a new
    /// one is appended (as libxml2's `xmlSetProp` does). Returns the old value.
    pub fn set_attr(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Option<String> {
        let name = name.into();
        let value = value.into();
        match self.attributes.iter_mut().find(|a| a.name == name) {
            Some(a) => Some(std::mem::replace(&mut a.value, value)),
            None => {
                self.attributes.push(Attribute { name, value });
                None
            }
        }
    }

    /// Removes attribute `name`, keeping the order of the others. Returns its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let i = self.attr_index(name)?;
        Some(self.attributes.remove(i).value)
    }

    /// Removes every attribute.
    pub fn clear_attrs(&mut self) {
        self.attributes.clear();
    }

    /// Attributes in document order.
    pub fn attrs(&self) -> &[Attribute] {
        &self.attributes
    }

    /// Attributes as `(name, value)` pairs in document order.
    pub fn attr_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attributes
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_str()))
    }

    // ----- children -----

    /// All children (elements and comments) in order.
    pub fn children(&self) -> &[Node] {
        &self.children
    }

    /// All children, mutably (for edits the other methods do not cover).
    pub fn children_mut(&mut self) -> &mut Vec<Node> {
        &mut self.children
    }

    /// Element children only, in order.
    pub fn child_elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(Node::as_element)
    }

    /// Element children only, mutably.
    pub fn child_elements_mut(&mut self) -> impl Iterator<Item = &mut Element> {
        self.children.iter_mut().filter_map(Node::as_element_mut)
    }

    /// Whether the element has no children at all.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// The first child element named `name`.
    pub fn find_child(&self, name: &str) -> Option<&Element> {
        self.child_elements().find(|e| e.name == name)
    }

    /// The first child element named `name`, mutably.
    pub fn find_child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.child_elements_mut().find(|e| e.name == name)
    }

    /// The first child element named `name` whose `id` is `id`.
    pub fn find_child_by_id(&self, name: &str, id: &str) -> Option<&Element> {
        self.child_elements()
            .find(|e| e.name == name && e.id() == Some(id))
    }

    /// The first child element named `name` whose `id` is `id`, mutably.
    pub fn find_child_by_id_mut(&mut self, name: &str, id: &str) -> Option<&mut Element> {
        self.child_elements_mut()
            .find(|e| e.name == name && e.id() == Some(id))
    }

    /// Index (among all children, comments included) of the first child
    /// element named `name`, with `id` if given.
    pub fn child_index(&self, name: &str, id: Option<&str>) -> Option<usize> {
        self.children.iter().position(|n| match n {
            Node::Element(e) => e.name == name && (id.is_none() || e.id() == id),
            Node::Comment(_) => false,
        })
    }

    /// Appends a child.
    pub fn push_child(&mut self, child: impl Into<Node>) {
        self.children.push(child.into());
    }

    /// Inserts a child before position `index`; an index past the end appends.
    pub fn insert_child(&mut self, index: usize, child: impl Into<Node>) {
        let index = index.min(self.children.len());
        self.children.insert(index, child.into());
    }

    /// Removes and returns the child at `index`, or `None` if there is none.
    pub fn remove_child(&mut self, index: usize) -> Option<Node> {
        (index < self.children.len()).then(|| self.children.remove(index))
    }

    /// Number of nodes in this subtree (this element, its descendants and comments).
    pub fn node_count(&self) -> usize {
        1 + self
            .children
            .iter()
            .map(|c| match c {
                Node::Element(e) => e.node_count(),
                Node::Comment(_) => 1,
            })
            .sum::<usize>()
    }

    /// The element reached by following child indices from this one.
    pub fn descendant(&self, path: &[usize]) -> Option<&Element> {
        let mut cur = self;
        for &i in path {
            cur = cur.children.get(i)?.as_element()?;
        }
        Some(cur)
    }

    /// The element reached by following child indices from this one, mutably.
    pub fn descendant_mut(&mut self, path: &[usize]) -> Option<&mut Element> {
        let mut cur = self;
        for &i in path {
            cur = cur.children.get_mut(i)?.as_element_mut()?;
        }
        Some(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_keep_order_on_set_and_remove() {
        let mut e = Element::new("nvpair")
            .with_attr("id", "a")
            .with_attr("name", "n")
            .with_attr("value", "v");
        assert_eq!(e.set_attr("name", "m"), Some("n".to_string()));
        let names: Vec<_> = e.attr_pairs().map(|(n, _)| n).collect();
        assert_eq!(names, ["id", "name", "value"]);
        assert_eq!(e.remove_attr("name"), Some("m".to_string()));
        assert_eq!(e.remove_attr("name"), None);
        e.set_attr("name", "x");
        let names: Vec<_> = e.attr_pairs().map(|(n, _)| n).collect();
        assert_eq!(names, ["id", "value", "name"]);
    }

    #[test]
    fn children_find_insert_remove() {
        let mut e = Element::new("resources")
            .with_child(Node::Comment(" c ".into()))
            .with_child(Element::new("primitive").with_attr("id", "p1"))
            .with_child(Element::new("primitive").with_attr("id", "p2"));
        assert_eq!(e.find_child("primitive").and_then(Element::id), Some("p1"));
        assert!(e.find_child_by_id("primitive", "p2").is_some());
        assert!(e.find_child_by_id("group", "p2").is_none());
        assert_eq!(e.child_index("primitive", Some("p2")), Some(2));
        e.insert_child(0, Element::new("group"));
        assert_eq!(e.children()[0].path_name(), "group");
        e.insert_child(99, Node::Comment("end".into()));
        assert_eq!(e.children().last().and_then(Node::as_comment), Some("end"));
        assert!(e.remove_child(99).is_none());
        assert_eq!(
            e.remove_child(0).map(|n| n.path_name().to_string()),
            Some("group".into())
        );
        assert_eq!(e.node_count(), 5);
        let copy = e.clone();
        assert_eq!(copy, e);
        e.find_child_by_id_mut("primitive", "p1")
            .map(|p| p.set_attr("x", "1"));
        assert_ne!(copy, e);
    }
}
