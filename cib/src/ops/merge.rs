//! Pacemaker's element-level edits: the recursive merge behind `modify`,
//! score arithmetic in attribute values, and the match-by-template search
//! behind `delete` and `replace`.

use crate::xml::{Element, Node};

/// The score Pacemaker treats as infinite.
pub const INFINITY: i64 = 1_000_000;

/// Pacemaker's `char2score`: `INFINITY`/`+INFINITY`, `-INFINITY`, the node
/// health colours (0 here: they come from options we do not model), else the
/// leading integer clamped to ±INFINITY (0 if there is none).
pub fn char2score(text: &str) -> i64 {
    match text {
        "INFINITY" | "+INFINITY" => return INFINITY,
        "-INFINITY" => return -INFINITY,
        _ => {}
    }
    if ["red", "yellow", "green"]
        .iter()
        .any(|c| c.eq_ignore_ascii_case(text))
    {
        return 0;
    }
    let t = text.trim_start();
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'-') => (-1i64, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let run = &digits[..digits.bytes().take_while(u8::is_ascii_digit).count()];
    let magnitude = run.bytes().fold(0i64, |acc, d| {
        acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    (sign * magnitude).clamp(-INFINITY, INFINITY)
}

/// The increment `value` asks for on attribute `name`: `name++` → 1,
/// `name+=N` → `char2score(N)`; `None` when `value` is not of that form.
fn increment(name: &str, value: &str) -> Option<i64> {
    let rest = value.strip_prefix(name)?;
    if rest.starts_with("++") {
        Some(1)
    } else {
        rest.strip_prefix("+=").map(char2score)
    }
}

/// Whether `value` is score arithmetic on attribute `name` (`name++`,
/// `name+=N`): what [`fix_plus_plus`] would expand.
pub(super) fn has_increment(name: &str, value: &str) -> bool {
    value
        .strip_prefix(name)
        .is_some_and(|rest| rest.starts_with("++") || rest.starts_with("+="))
}

/// Sets attribute `name` to `value` on `target`, expanding score arithmetic
/// against the current value (Pacemaker's `expand_plus_plus`). A value
/// naming arithmetic on an attribute that does not exist yet is stored as
/// is; [`fix_plus_plus`] expands it later from 0.
pub fn expand_plus_plus(target: &mut Element, name: &str, value: &str) {
    let Some(old) = target.attr(name) else {
        target.set_attr(name, value);
        return;
    };
    match increment(name, value) {
        Some(inc) => {
            let new = char2score(old).saturating_add(inc).min(INFINITY);
            target.set_attr(name, new.to_string());
        }
        None => {
            target.set_attr(name, value);
        }
    }
}

/// Expands every attribute left in the form `name++` / `name+=N` in the
/// whole tree, counting from 0 (Pacemaker runs this over the result of
/// every modifying operation).
pub fn fix_plus_plus(e: &mut Element) {
    let pending: Vec<(String, i64)> = e
        .attr_pairs()
        .filter_map(|(n, v)| increment(n, v).map(|inc| (n.to_string(), inc)))
        .collect();
    for (name, inc) in pending {
        e.set_attr(name, inc.min(INFINITY).to_string());
    }
    for c in e.child_elements_mut() {
        fix_plus_plus(c);
    }
}

/// Merges `update` into `target` (same name): attributes are set in order
/// (with score arithmetic), each child of `update` is merged into the first
/// child of `target` with the same name and `id` (or `idref`, or just the
/// name when it has neither), or appended when there is none. Never
/// deletes anything.
pub fn merge_into(target: &mut Element, update: &Element) {
    for (name, value) in update.attr_pairs() {
        expand_plus_plus(target, name, value);
    }
    for child in update.children() {
        match child {
            Node::Comment(text) => {
                let present = target
                    .children()
                    .iter()
                    .any(|n| n.as_comment() == Some(text.as_str()));
                if !present {
                    target.push_child(Node::Comment(text.clone()));
                }
            }
            Node::Element(u) => {
                let key = match (u.attr("id"), u.attr("idref")) {
                    (Some(id), _) => Some(("id", id)),
                    (None, Some(idref)) => Some(("idref", idref)),
                    (None, None) => None,
                };
                let index = target.children().iter().position(|n| match n {
                    Node::Element(e) => {
                        e.name() == u.name() && key.is_none_or(|(k, v)| e.attr(k) == Some(v))
                    }
                    Node::Comment(_) => false,
                });
                let index = index.unwrap_or_else(|| {
                    target.push_child(Element::new(u.name()));
                    target.children().len() - 1
                });
                if let Some(t) = target.children_mut()[index].as_element_mut() {
                    merge_into(t, u);
                }
            }
        }
    }
}

/// Pacemaker's `update_xml_child`: merges `update` into the first element,
/// depth first from `root` itself, with the same name and the same `id`
/// (both absent counts as the same). Returns whether one was found.
pub fn update_first_match(root: &mut Element, update: &Element) -> bool {
    if root.name() == update.name() && root.id() == update.id() {
        merge_into(root, update);
        return true;
    }
    root.child_elements_mut()
        .any(|c| update_first_match(c, update))
}

/// Whether `candidate` matches the template for `delete`/`replace`: the
/// same name (ASCII case-insensitive), the same `id` if the template has
/// one, and, when `all_attributes`, every template attribute present with
/// an equal value (case-insensitive, as Pacemaker compares them).
fn matches_template(candidate: &Element, template: &Element, all_attributes: bool) -> bool {
    if !candidate.name().eq_ignore_ascii_case(template.name()) {
        return false;
    }
    if let Some(id) = template.id() {
        if candidate.id() != Some(id) {
            return false;
        }
    }
    !all_attributes
        || template.attr_pairs().all(|(n, v)| {
            candidate
                .attr(n)
                .is_some_and(|cv| cv.eq_ignore_ascii_case(v))
        })
}

/// Location (relative to `root`) of the first descendant of `root` — never
/// `root` itself — matching `template` depth first (Pacemaker's
/// `replace_xml_child` search).
pub fn find_template_match(
    root: &Element,
    template: &Element,
    all_attributes: bool,
) -> Option<Vec<usize>> {
    for (i, child) in root.children().iter().enumerate() {
        if let Node::Element(c) = child {
            if matches_template(c, template, all_attributes) {
                return Some(vec![i]);
            }
            if let Some(mut rest) = find_template_match(c, template, all_attributes) {
                rest.insert(0, i);
                return Some(rest);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    #[test]
    fn scores() {
        assert_eq!(char2score("INFINITY"), INFINITY);
        assert_eq!(char2score("-INFINITY"), -INFINITY);
        assert_eq!(char2score("12abc"), 12);
        assert_eq!(char2score("false"), 0);
        assert_eq!(char2score("99999999999"), INFINITY);
        let mut e = Element::new("x").with_attr("value", "5");
        expand_plus_plus(&mut e, "value", "value++");
        assert_eq!(e.attr("value"), Some("6"));
        expand_plus_plus(&mut e, "value", "value+=10");
        assert_eq!(e.attr("value"), Some("16"));
        expand_plus_plus(&mut e, "value", "value+=INFINITY");
        assert_eq!(e.attr("value"), Some("1000000"));
        expand_plus_plus(&mut e, "value", "other++");
        assert_eq!(e.attr("value"), Some("other++"));
        expand_plus_plus(&mut e, "fresh", "fresh+=3");
        assert_eq!(e.attr("fresh"), Some("fresh+=3"));
        fix_plus_plus(&mut e);
        assert_eq!(e.attr("fresh"), Some("3"));
    }

    #[test]
    fn merge_matches_by_id_then_name() {
        let mut t = parse(r#"<a x="1"><b id="1" v="o"/><c/><b id="2"/></a>"#).unwrap();
        let u = parse(r#"<a y="2"><b id="2" v="n"/><c w="1"/><b id="3"/></a>"#).unwrap();
        merge_into(&mut t, &u);
        assert_eq!(
            crate::xml::to_string(&t, crate::xml::Style::Compact, crate::xml::Escaping::Xml),
            r#"<a x="1" y="2"><b id="1" v="o"/><c w="1"/><b id="2" v="n"/><b id="3"/></a>"#
        );
    }
}
