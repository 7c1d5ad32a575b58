//! Serialisation in Pacemaker's layout.
//!
//! Pacemaker writes XML with its own serialiser, not libxml2's: attributes in
//! document order, `<x/>` for an element without children, comments verbatim,
//! no text, and either no whitespace at all ([`Style::Compact`], the form its
//! digests hash) or two spaces of indentation per level with one node per line
//! ([`Style::Pretty`], what `crm_diff` and `cibadmin -Q` print).

use super::node::{Element, Node};

/// Layout of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// No whitespace between nodes and no trailing newline.
    Compact,
    /// One node per line, two spaces of indentation per level, each line
    /// ending in a newline.
    Pretty,
}

/// How attribute values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escaping {
    /// Byte for byte what Pacemaker 2.1.5 writes: `< > & " '` as entities, a
    /// tab as four spaces, newline and carriage return as the two characters
    /// `\n` / `\r`, other control characters as `\ooo`, and, as in Pacemaker,
    /// nothing at all from the first non-ASCII character of a value on. Lossy
    /// (and not always well-formed), but it is what digests are computed over
    /// and what `crm_diff` prints.
    Pacemaker,
    /// Well-formed and lossless: the five entities, and tab, newline and
    /// carriage return as character references.
    Xml,
}

/// Serialises `element` into a new string.
pub fn to_string(element: &Element, style: Style, escaping: Escaping) -> String {
    let mut out = String::new();
    write_to(&mut out, element, style, escaping);
    out
}

/// Appends the serialisation of `element` to `out`.
pub fn write_to(out: &mut String, element: &Element, style: Style, escaping: Escaping) {
    write_element(out, element, style, escaping, &|_| true, 0);
}

/// Appends `element`, keeping only attributes for which `keep(name)` holds (at
/// every depth); digests use this to leave out bookkeeping attributes.
pub(crate) fn write_element(
    out: &mut String,
    element: &Element,
    style: Style,
    escaping: Escaping,
    keep: &dyn Fn(&str) -> bool,
    depth: usize,
) {
    let pretty = style == Style::Pretty;
    if pretty {
        indent(out, depth);
    }
    out.push('<');
    out.push_str(element.name());
    for (name, value) in element.attr_pairs() {
        if keep(name) {
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            escape_into(out, value, escaping);
            out.push('"');
        }
    }
    if element.is_empty() {
        out.push_str("/>");
    } else {
        out.push('>');
    }
    if pretty {
        out.push('\n');
    }
    if element.is_empty() {
        return;
    }
    for child in element.children() {
        match child {
            Node::Element(e) => write_element(out, e, style, escaping, keep, depth + 1),
            Node::Comment(c) => {
                if pretty {
                    indent(out, depth + 1);
                }
                out.push_str("<!--");
                out.push_str(c);
                out.push_str("-->");
                if pretty {
                    out.push('\n');
                }
            }
        }
    }
    if pretty {
        indent(out, depth);
    }
    out.push_str("</");
    out.push_str(element.name());
    out.push('>');
    if pretty {
        out.push('\n');
    }
}

fn indent(out: &mut String, depth: usize) {
    out.extend(std::iter::repeat_n(' ', 2 * depth));
}

/// Appends an escaped attribute value.
pub(crate) fn escape_into(out: &mut String, value: &str, escaping: Escaping) {
    // Nearly every value is plain ASCII with nothing to escape: one copy
    // instead of a push per character (serialisation is on every change's
    // digest path).
    let plain =
        |b: u8| (b' '..0x7f).contains(&b) && !matches!(b, b'<' | b'>' | b'&' | b'"' | b'\'');
    if value.bytes().all(plain) {
        out.push_str(value);
        return;
    }
    for (i, c) in value.char_indices() {
        match (c, escaping) {
            ('<', _) => out.push_str("&lt;"),
            ('>', _) => out.push_str("&gt;"),
            ('&', _) => out.push_str("&amp;"),
            ('"', _) => out.push_str("&quot;"),
            ('\'', _) => out.push_str("&apos;"),
            ('\t', Escaping::Xml) => out.push_str("&#9;"),
            ('\n', Escaping::Xml) => out.push_str("&#10;"),
            ('\r', Escaping::Xml) => out.push_str("&#13;"),
            ('\t', Escaping::Pacemaker) => out.push_str("    "),
            ('\n', Escaping::Pacemaker) => out.push_str("\\n"),
            ('\r', Escaping::Pacemaker) => out.push_str("\\r"),
            (c, Escaping::Pacemaker) if !c.is_ascii() => {
                // Pacemaker stops escaping at the first multi-byte character.
                out.push_str(&value[i..]);
                return;
            }
            (c, Escaping::Pacemaker) if c < ' ' || c == '\u{7f}' => {
                out.push_str(&format!("\\{:03o}", c as u32));
            }
            (c, _) => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    #[test]
    fn compact_and_pretty_layouts() {
        let doc = parse("<a x=\"1\"><b/><!-- c --><d y=\"2\"><e/></d></a>").unwrap();
        assert_eq!(
            to_string(&doc, Style::Compact, Escaping::Pacemaker),
            "<a x=\"1\"><b/><!-- c --><d y=\"2\"><e/></d></a>"
        );
        assert_eq!(
            to_string(&doc, Style::Pretty, Escaping::Pacemaker),
            "<a x=\"1\">\n  <b/>\n  <!-- c -->\n  <d y=\"2\">\n    <e/>\n  </d>\n</a>\n"
        );
    }

    #[test]
    fn pacemaker_escaping_is_reproduced() {
        let mut out = String::new();
        escape_into(&mut out, "<>&\"'\t\n\r\u{7f}", Escaping::Pacemaker);
        assert_eq!(out, "&lt;&gt;&amp;&quot;&apos;    \\n\\r\\177");
        out.clear();
        escape_into(&mut out, "a<é<b", Escaping::Pacemaker);
        assert_eq!(out, "a&lt;é<b");
        out.clear();
        escape_into(&mut out, "é<\t\n", Escaping::Xml);
        assert_eq!(out, "é&lt;&#9;&#10;");
    }

    #[test]
    fn xml_escaping_round_trips() {
        let doc = parse("<a v=\"&#9;&#10;&#13;&lt;é&amp;&quot;&apos;\"/>").unwrap();
        let text = to_string(&doc, Style::Pretty, Escaping::Xml);
        assert_eq!(parse(&text).unwrap(), doc);
    }
}
