//! The XML document model a CIB is made of.
//!
//! A CIB is an XML tree of elements and comments. Pacemaker parses it with
//! libxml2 and then strips every text node, so text (whitespace between tags,
//! and also character data inside elements) carries no meaning: this model has
//! no text nodes at all. What it keeps is what Pacemaker compares and hashes:
//! element names, attributes in document order, and the order of element and
//! comment children.
//!
//! * [`Element`] / [`Node`]: the tree and its editing API.
//! * [`parse`] / [`parse_with_limits`]: bounded parsing of untrusted text.
//! * [`write`]: the unformatted and pretty serialisations.

mod error;
mod node;
mod parse;
pub(crate) mod write;

pub use error::XmlError;
pub use node::{Attribute, Element, Node};
pub use parse::{ParseLimits, parse, parse_with_limits};
pub use write::{Escaping, Style, to_string, write_to};
