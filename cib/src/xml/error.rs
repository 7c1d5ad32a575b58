//! Why a document could not be parsed.

use thiserror::Error;

/// A document that was refused by the parser. Every variant says where or which
/// limit; none of them is a panic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XmlError {
    /// The input is larger than [`ParseLimits::max_document_bytes`](super::ParseLimits).
    #[error("document is {size} bytes, more than the limit of {limit}")]
    DocumentTooLarge {
        /// Size of the input.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Elements are nested deeper than the limit.
    #[error("elements nested deeper than {limit} levels (at byte {position})")]
    TooDeep {
        /// The limit in force.
        limit: usize,
        /// Byte offset where the limit was crossed.
        position: u64,
    },
    /// An element has more attributes than the limit.
    #[error("element <{element}> has more than {limit} attributes")]
    TooManyAttributes {
        /// Name of the element.
        element: String,
        /// The limit in force.
        limit: usize,
    },
    /// A name, attribute value or comment is longer than the limit.
    #[error("a name, attribute value or comment is longer than {limit} bytes (at byte {position})")]
    ValueTooLong {
        /// The limit in force.
        limit: usize,
        /// Byte offset of the offending item.
        position: u64,
    },
    /// The document has more nodes than the limit.
    #[error("document has more than {limit} nodes")]
    TooManyNodes {
        /// The limit in force.
        limit: usize,
    },
    /// A `<!DOCTYPE>` declaration: refused, so no entity can ever be declared
    /// or expanded.
    #[error("DOCTYPE declarations are not accepted (at byte {position})")]
    DoctypeRefused {
        /// Byte offset of the declaration.
        position: u64,
    },
    /// A processing instruction inside the root element (Pacemaker's own tools
    /// abort on these).
    #[error(
        "processing instructions inside the document element are not accepted (at byte {position})"
    )]
    ProcessingInstruction {
        /// Byte offset of the instruction.
        position: u64,
    },
    /// An entity reference other than the five predefined ones, or a character
    /// reference to a character XML does not allow.
    #[error("unknown or invalid reference '&{reference};' (at byte {position})")]
    BadReference {
        /// The text between `&` and `;`.
        reference: String,
        /// Byte offset of the element holding it.
        position: u64,
    },
    /// The same attribute twice on one element.
    #[error("attribute '{name}' appears twice on <{element}>")]
    DuplicateAttribute {
        /// Element name.
        element: String,
        /// Attribute name.
        name: String,
    },
    /// An element or attribute name that is not an XML name.
    #[error("invalid element or attribute name {name:?} (at byte {position})")]
    BadName {
        /// The name as found.
        name: String,
        /// Byte offset of the element.
        position: u64,
    },
    /// The input is not UTF-8.
    #[error("document is not valid UTF-8")]
    NotUtf8,
    /// No document element was found.
    #[error("document has no root element")]
    NoRoot,
    /// Something other than comments, whitespace or processing instructions
    /// follows the root element.
    #[error("content after the root element (at byte {position})")]
    TrailingContent {
        /// Byte offset of the extra content.
        position: u64,
    },
    /// The input ends inside an element.
    #[error("document ends before <{element}> is closed")]
    Unclosed {
        /// The innermost open element.
        element: String,
    },
    /// Any other well-formedness error reported by the tokenizer.
    #[error("malformed XML at byte {position}: {message}")]
    Syntax {
        /// Byte offset of the error.
        position: u64,
        /// What the tokenizer said.
        message: String,
    },
}
