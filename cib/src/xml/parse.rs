//! Bounded parsing of untrusted XML text into an [`Element`] tree.
//!
//! What is kept mirrors what Pacemaker keeps after `libxml2` parsing and its
//! text stripping: elements, attributes (in order) and comments inside the root
//! element. Text and CDATA are dropped. Nothing is ever expanded beyond the five
//! predefined entities and character references: a DOCTYPE (the only place an
//! entity could be declared) is refused outright.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::error::XmlError;
use super::node::{Attribute, Element, Node};

/// Upper bounds applied while parsing. The defaults comfortably hold every real
/// CIB seen (the largest upstream test CIB is under 1 MB and 20 levels deep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Largest accepted input, in bytes.
    pub max_document_bytes: usize,
    /// Deepest element nesting (the root is depth 1).
    pub max_depth: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
    /// Longest element or attribute name, attribute value or comment, in bytes.
    pub max_value_bytes: usize,
    /// Most nodes (elements and comments) in the document.
    pub max_nodes: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_document_bytes: 64 << 20,
            max_depth: 256,
            max_attributes: 1024,
            max_value_bytes: 1 << 20,
            max_nodes: 4_000_000,
        }
    }
}

/// Parses a document with the default [`ParseLimits`].
pub fn parse(text: &str) -> Result<Element, XmlError> {
    parse_with_limits(text, &ParseLimits::default())
}

/// Parses a document, refusing anything beyond `limits`.
pub fn parse_with_limits(text: &str, limits: &ParseLimits) -> Result<Element, XmlError> {
    if text.len() > limits.max_document_bytes {
        return Err(XmlError::DocumentTooLarge {
            size: text.len(),
            limit: limits.max_document_bytes,
        });
    }
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    config.expand_empty_elements = false;
    config.trim_text(false);

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut nodes = 0usize;
    let count_node = |nodes: &mut usize| {
        *nodes += 1;
        if *nodes > limits.max_nodes {
            Err(XmlError::TooManyNodes {
                limit: limits.max_nodes,
            })
        } else {
            Ok(())
        }
    };

    loop {
        let position = reader.buffer_position();
        let event = reader.read_event().map_err(|e| XmlError::Syntax {
            position: reader.error_position(),
            message: e.to_string(),
        })?;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() && stack.is_empty() => {
                return Err(XmlError::TrailingContent { position });
            }
            Event::Start(start) => {
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::TooDeep {
                        limit: limits.max_depth,
                        position,
                    });
                }
                count_node(&mut nodes)?;
                stack.push(element_from(&start, limits, position)?);
            }
            Event::Empty(start) => {
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::TooDeep {
                        limit: limits.max_depth,
                        position,
                    });
                }
                count_node(&mut nodes)?;
                let element = element_from(&start, limits, position)?;
                match stack.last_mut() {
                    Some(parent) => parent.push_child(element),
                    None => root = Some(element),
                }
            }
            Event::End(_) => {
                // The tokenizer has checked that the name matches.
                let Some(element) = stack.pop() else {
                    return Err(XmlError::Syntax {
                        position,
                        message: "end tag without start tag".into(),
                    });
                };
                match stack.last_mut() {
                    Some(parent) => parent.push_child(element),
                    None => root = Some(element),
                }
            }
            Event::Comment(comment) => {
                if let Some(parent) = stack.last_mut() {
                    if comment.len() > limits.max_value_bytes {
                        return Err(XmlError::ValueTooLong {
                            limit: limits.max_value_bytes,
                            position,
                        });
                    }
                    count_node(&mut nodes)?;
                    let text = std::str::from_utf8(&comment).map_err(|_| XmlError::NotUtf8)?;
                    parent.push_child(Node::Comment(text.to_string()));
                }
                // Comments outside the root element are not part of the tree.
            }
            Event::Text(text) => {
                // Pacemaker strips all text; outside the root only blanks are allowed.
                if stack.is_empty() && !text.iter().all(u8::is_ascii_whitespace) {
                    return Err(if root.is_some() {
                        XmlError::TrailingContent { position }
                    } else {
                        XmlError::Syntax {
                            position,
                            message: "text before the root element".into(),
                        }
                    });
                }
            }
            Event::CData(_) | Event::GeneralRef(_) => {
                if stack.is_empty() {
                    return Err(XmlError::Syntax {
                        position,
                        message: "character data outside the root element".into(),
                    });
                }
            }
            Event::Decl(_) => {}
            Event::PI(_) => {
                if !stack.is_empty() {
                    return Err(XmlError::ProcessingInstruction { position });
                }
            }
            Event::DocType(_) => return Err(XmlError::DoctypeRefused { position }),
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.pop() {
        return Err(XmlError::Unclosed {
            element: open.name().to_string(),
        });
    }
    root.ok_or(XmlError::NoRoot)
}

/// Builds an element (without children) from a start tag.
fn element_from(
    start: &BytesStart<'_>,
    limits: &ParseLimits,
    position: u64,
) -> Result<Element, XmlError> {
    let too_long = || XmlError::ValueTooLong {
        limit: limits.max_value_bytes,
        position,
    };
    let name = std::str::from_utf8(start.name().as_ref())
        .map_err(|_| XmlError::NotUtf8)?
        .to_string();
    if name.len() > limits.max_value_bytes {
        return Err(too_long());
    }
    if !is_xml_name(&name) {
        return Err(XmlError::BadName { name, position });
    }
    let mut element = Element::new(name);
    let mut attributes: Vec<Attribute> = Vec::new();
    for attr in start.attributes().with_checks(true) {
        let attr = attr.map_err(|e| match e {
            quick_xml::events::attributes::AttrError::Duplicated(..) => {
                XmlError::DuplicateAttribute {
                    element: element.name().to_string(),
                    name: first_repeated_key(start),
                }
            }
            other => XmlError::Syntax {
                position,
                message: other.to_string(),
            },
        })?;
        if attributes.len() >= limits.max_attributes {
            return Err(XmlError::TooManyAttributes {
                element: element.name().to_string(),
                limit: limits.max_attributes,
            });
        }
        let key = std::str::from_utf8(attr.key.as_ref()).map_err(|_| XmlError::NotUtf8)?;
        if key.len() > limits.max_value_bytes || attr.value.len() > limits.max_value_bytes {
            return Err(too_long());
        }
        if !is_xml_name(key) {
            return Err(XmlError::BadName {
                name: key.to_string(),
                position,
            });
        }
        let raw = std::str::from_utf8(&attr.value).map_err(|_| XmlError::NotUtf8)?;
        attributes.push(Attribute {
            name: key.to_string(),
            value: decode_attribute_value(raw, position)?,
        });
    }
    for a in attributes {
        // Duplicates were rejected above, so this appends in order.
        element.set_attr(a.name, a.value);
    }
    Ok(element)
}

/// Whether `name` is an XML name: a letter, `_`, `:` or non-ASCII character
/// first, then also digits, `-` and `.`. (Non-ASCII is accepted wholesale;
/// the point is that a name cannot be empty or hold markup or whitespace.)
fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':' || !c.is_ascii());
    first_ok
        && chars.all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.') || !c.is_ascii()
        })
}

/// The name of the first attribute that appears twice in a start tag.
fn first_repeated_key(start: &BytesStart<'_>) -> String {
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for attr in start.attributes().with_checks(false).flatten() {
        let key = attr.key.as_ref().to_vec();
        if seen.contains(&key) {
            return String::from_utf8_lossy(&key).into_owned();
        }
        seen.push(key);
    }
    String::new()
}

/// Decodes an attribute value as an XML parser must: literal tabs, newlines
/// and carriage returns (a CR LF pair counting once) become spaces, then the
/// five predefined entities and character references are replaced. A literal
/// `<` or any other entity is an error.
fn decode_attribute_value(raw: &str, position: u64) -> Result<String, XmlError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\r' => {
                if matches!(chars.peek(), Some((_, '\n'))) {
                    chars.next();
                }
                out.push(' ');
            }
            '\n' | '\t' => out.push(' '),
            '<' => {
                return Err(XmlError::Syntax {
                    position,
                    message: "'<' inside an attribute value".into(),
                });
            }
            '&' => {
                let rest = &raw[i + 1..];
                let end = rest.find(';').ok_or_else(|| XmlError::BadReference {
                    reference: rest.chars().take(16).collect(),
                    position,
                })?;
                let reference = &rest[..end];
                out.push(
                    decode_reference(reference).ok_or_else(|| XmlError::BadReference {
                        reference: reference.chars().take(32).collect(),
                        position,
                    })?,
                );
                // Skip the reference text and the ';'.
                for _ in 0..reference.chars().count() + 1 {
                    chars.next();
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// The character a reference (the text between `&` and `;`) stands for.
fn decode_reference(reference: &str) -> Option<char> {
    let code = match reference {
        "lt" => return Some('<'),
        "gt" => return Some('>'),
        "amp" => return Some('&'),
        "quot" => return Some('"'),
        "apos" => return Some('\''),
        r => {
            let digits = r.strip_prefix('#')?;
            match digits.strip_prefix('x') {
                Some(hex) if !hex.is_empty() && hex.len() <= 8 => {
                    u32::from_str_radix(hex, 16).ok()?
                }
                Some(_) => return None,
                None if !digits.is_empty() && digits.len() <= 10 => digits.parse::<u32>().ok()?,
                None => return None,
            }
        }
    };
    let c = char::from_u32(code)?;
    // XML 1.0 Char production: tab, LF, CR and everything from space up,
    // minus U+FFFE/U+FFFF (surrogates cannot be chars at all).
    let allowed =
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}');
    allowed.then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_elements_attributes_and_comments_drops_text() {
        let doc = parse(
            "<?xml version=\"1.0\"?>\n<!-- outside -->\n<cib a=\"1\" b='2'>\n  <x id=\"i\">text<![CDATA[c]]>&amp;</x><!--in--></cib>\n",
        )
        .unwrap();
        assert_eq!(doc.name(), "cib");
        assert_eq!(
            doc.attr_pairs().collect::<Vec<_>>(),
            [("a", "1"), ("b", "2")]
        );
        assert_eq!(doc.children().len(), 2);
        assert!(doc.find_child_by_id("x", "i").unwrap().is_empty());
        assert_eq!(doc.children()[1].as_comment(), Some("in"));
    }

    #[test]
    fn attribute_values_are_normalised_and_decoded() {
        let doc = parse("<a v=\"x\ty\r\nz&#9;&#10;&lt;&apos;&#x41;\"/>").unwrap();
        assert_eq!(doc.attr("v"), Some("x y z\t\n<'A"));
    }

    #[test]
    fn hostile_inputs_are_typed_errors() {
        let bomb = "<!DOCTYPE a [<!ENTITY e \"xxxxxxxx\">]><a v=\"&e;\"/>";
        assert!(matches!(parse(bomb), Err(XmlError::DoctypeRefused { .. })));
        assert!(matches!(
            parse("<a v=\"&e;\"/>"),
            Err(XmlError::BadReference { .. })
        ));
        assert!(matches!(
            parse("<a v=\"&#0;\"/>"),
            Err(XmlError::BadReference { .. })
        ));
        assert!(matches!(
            parse("<a b=\"1\" b=\"2\"/>"),
            Err(XmlError::DuplicateAttribute { .. })
        ));
        assert!(matches!(parse("<a><b></a>"), Err(XmlError::Syntax { .. })));
        assert!(matches!(parse("<a><b>"), Err(XmlError::Unclosed { .. })));
        assert!(matches!(
            parse("<a/><b/>"),
            Err(XmlError::TrailingContent { .. })
        ));
        assert!(matches!(parse("  "), Err(XmlError::NoRoot)));
        assert!(matches!(parse("<\n/>"), Err(XmlError::BadName { .. })));
        assert!(matches!(
            parse("<a 1b=\"x\"/>"),
            Err(XmlError::BadName { .. }) | Err(XmlError::Syntax { .. })
        ));
        assert!(matches!(
            parse("<a><?pi x?></a>"),
            Err(XmlError::ProcessingInstruction { .. })
        ));
        let deep = "<a>".repeat(300) + &"</a>".repeat(300);
        assert!(matches!(
            parse(&deep),
            Err(XmlError::TooDeep { limit: 256, .. })
        ));
        let limits = ParseLimits {
            max_document_bytes: 10,
            ..ParseLimits::default()
        };
        assert!(matches!(
            parse_with_limits("<a b=\"123456\"/>", &limits),
            Err(XmlError::DocumentTooLarge {
                size: 15,
                limit: 10
            })
        ));
        let limits = ParseLimits {
            max_attributes: 2,
            ..ParseLimits::default()
        };
        assert!(matches!(
            parse_with_limits("<a b=\"1\" c=\"2\" d=\"3\"/>", &limits),
            Err(XmlError::TooManyAttributes { limit: 2, .. })
        ));
    }
}
