//! Each operation's effect on a CIB (Pacemaker's `cib_process_*`). These
//! functions edit the scratch copy [`super::execute`] hands them; version
//! bookkeeping, ACLs and atomicity are the caller's.

use super::error::CibError;
use super::merge::{find_template_match, update_first_match};
use super::request::{CallOptions, Scope};
use super::section::{find_section, is_section, is_whole, section_path};
use crate::digest::versioned_digest;
use crate::version::{VERSION_ATTRIBUTES, parse_component};
use crate::xml::{Element, Node};
use crate::xpath::{self, Location};

/// The feature set this implementation speaks (Pacemaker 2.1.5's).
pub const FEATURE_SET: &str = "3.16.1";
/// The newest schema, written into an empty CIB (Pacemaker 2.1.5's).
pub const LATEST_SCHEMA: &str = "pacemaker-3.9";

/// The element at `loc` (which a caller got from a search of the same tree).
fn at<'a>(cib: &'a Element, loc: &[usize]) -> Result<&'a Element, CibError> {
    cib.descendant(loc)
        .ok_or_else(|| CibError::NoSuchObject("location vanished".into()))
}

fn at_mut<'a>(cib: &'a mut Element, loc: &[usize]) -> Result<&'a mut Element, CibError> {
    cib.descendant_mut(loc)
        .ok_or_else(|| CibError::NoSuchObject("location vanished".into()))
}

/// Removes the element at `loc` (not the root).
fn remove_at(cib: &mut Element, loc: &[usize]) -> Result<(), CibError> {
    let (last, parent) = loc
        .split_last()
        .ok_or_else(|| CibError::InvalidArgument("cannot remove the root".into()))?;
    at_mut(cib, parent)?.remove_child(*last);
    Ok(())
}

/// Replaces the element at `loc` (not the root) with `with`, in place.
fn replace_at(cib: &mut Element, loc: &[usize], with: Element) -> Result<(), CibError> {
    let (last, parent) = loc
        .split_last()
        .ok_or_else(|| CibError::InvalidArgument("cannot replace the root here".into()))?;
    let parent = at_mut(cib, parent)?;
    if let Some(slot) = parent.children_mut().get_mut(*last) {
        *slot = Node::Element(with);
    }
    Ok(())
}

fn xpath_matches(cib: &Element, expr: &str) -> Result<Vec<Location>, CibError> {
    Ok(xpath::select_elements(cib, expr)?)
}

/// A copy of the element's name and attributes only (`--no-children`).
fn shallow(e: &Element) -> Element {
    let mut s = Element::new(e.name());
    for (n, v) in e.attr_pairs() {
        s.set_attr(n, v);
    }
    s
}

/// The section name a section scope refers to, `None` for the whole CIB.
fn section_name(scope: &Scope) -> Option<&str> {
    match scope {
        Scope::Section(s) if !is_whole(s) => Some(s),
        _ => None,
    }
}

/// `cib_query`.
pub fn query(cib: &Element, scope: &Scope, options: CallOptions) -> Result<Element, CibError> {
    let copy = |e: &Element| {
        if options.no_children {
            shallow(e)
        } else {
            e.clone()
        }
    };
    match scope {
        Scope::XPath(expr) => {
            let hits = xpath_matches(cib, expr)?;
            match hits.as_slice() {
                [] => Err(CibError::NoSuchObject(expr.clone())),
                [one] => Ok(copy(at(cib, one)?)),
                many => {
                    let mut wrap = Element::new("xpath-query");
                    for loc in many {
                        wrap.push_child(copy(at(cib, loc)?));
                    }
                    Ok(wrap)
                }
            }
        }
        _ => {
            let name = section_name(scope);
            let loc = find_section(cib, name)
                .ok_or_else(|| CibError::NoSuchObject(name.unwrap_or("cib").to_string()))?;
            Ok(copy(at(cib, &loc)?))
        }
    }
}

/// `cib_create`.
pub fn create(cib: &mut Element, scope: &Scope, input: &Element) -> Result<(), CibError> {
    let section = match scope {
        Scope::XPath(expr) => {
            let hits = xpath_matches(cib, expr)?;
            let first = hits
                .first()
                .ok_or_else(|| CibError::NoSuchObject(expr.clone()))?;
            at_mut(cib, first)?.push_child(input.clone());
            return Ok(());
        }
        _ => section_name(scope),
    };
    let Some(section) = section.filter(|_| !input.name().eq_ignore_ascii_case("cib")) else {
        // Creating at the top behaves as a modify.
        return modify(cib, &Scope::Whole, input, CallOptions::default());
    };
    let loc = find_section(cib, Some(section))
        .ok_or_else(|| CibError::InvalidArgument(format!("section {section} does not exist")))?;
    let parent = at_mut(cib, &loc)?;
    if input.name().eq_ignore_ascii_case(section) {
        for child in input.child_elements() {
            add_object(parent, child)?;
        }
        Ok(())
    } else {
        add_object(parent, input)
    }
}

/// Adds `obj` under `parent` unless a child with its name (and id) exists.
fn add_object(parent: &mut Element, obj: &Element) -> Result<(), CibError> {
    let exists = match obj.id() {
        None => parent.find_child(obj.name()).is_some(),
        Some(id) => parent.find_child_by_id(obj.name(), id).is_some(),
    };
    if exists {
        return Err(CibError::Exists {
            name: obj.name().to_string(),
            id: obj.id().map(str::to_string),
        });
    }
    parent.push_child(obj.clone());
    Ok(())
}

/// `cib_modify`.
pub fn modify(
    cib: &mut Element,
    scope: &Scope,
    input: &Element,
    options: CallOptions,
) -> Result<(), CibError> {
    if let Scope::XPath(expr) = scope {
        let hits = xpath_matches(cib, expr)?;
        if hits.is_empty() {
            return Err(CibError::NoSuchObject(expr.clone()));
        }
        // As Pacemaker: a match without a same-name/id element fails the
        // request, but without `multiple` the first success ends the loop.
        let mut result = Ok(());
        for loc in &hits {
            if !update_first_match(at_mut(cib, loc)?, input) {
                result = Err(CibError::NoSuchObject(format!(
                    "no <{}> with id {:?} under {expr}",
                    input.name(),
                    input.id()
                )));
            } else if !options.multiple {
                break;
            }
        }
        return result;
    }
    let section = section_name(scope).filter(|_| input.name() != "cib");
    let loc = match find_section(cib, section) {
        Some(loc) => loc,
        None => create_missing_section(cib, section)?,
    };
    let root = at_mut(cib, &loc)?;
    if update_first_match(root, input) {
        Ok(())
    } else if options.can_create {
        root.push_child(input.clone());
        Ok(())
    } else {
        Err(CibError::NoSuchObject(format!(
            "no <{}> with id {:?}",
            input.name(),
            input.id()
        )))
    }
}

/// Creates an absent section (empty) under its parent, as `modify` does.
fn create_missing_section(cib: &mut Element, section: Option<&str>) -> Result<Location, CibError> {
    let name = section.unwrap_or("cib");
    let path = section_path(name)
        .filter(|p| !p.is_empty() && is_section(name))
        .ok_or_else(|| CibError::InvalidArgument(format!("unknown section {name}")))?;
    let (own, parents) = path
        .split_last()
        .ok_or_else(|| CibError::InvalidArgument(format!("section {name} has no parent")))?;
    if cib.name() != "cib" {
        return Err(CibError::InvalidArgument("root is not <cib>".into()));
    }
    let mut loc = Vec::new();
    let mut cur: &Element = cib;
    for step in parents {
        let i = cur.child_index(step, None).ok_or_else(|| {
            CibError::InvalidArgument(format!("parent of section {name} is missing"))
        })?;
        loc.push(i);
        cur = at(cur, &[i])?;
    }
    let parent = at_mut(cib, &loc)?;
    parent.push_child(Element::new(*own));
    loc.push(parent.children().len() - 1);
    Ok(loc)
}

/// Reads a version attribute as Pacemaker's `cib_version_details` does:
/// missing is -1.
fn version_of(cib: &Element) -> [i64; 3] {
    VERSION_ATTRIBUTES.map(|n| cib.attr(n).map_or(-1, parse_component))
}

/// `cib_replace`.
pub fn replace(
    cib: &mut Element,
    scope: &Scope,
    input: &Element,
    digest: Option<&str>,
    options: CallOptions,
) -> Result<(), CibError> {
    if let Scope::XPath(expr) = scope {
        let mut hits = xpath_matches(cib, expr)?;
        if hits.is_empty() {
            return Err(CibError::NoSuchObject(expr.clone()));
        }
        if !options.multiple {
            hits.truncate(1);
        }
        // Each match is removed and a copy of the input appended to its
        // parent. Going backwards keeps the remaining locations valid; every
        // copy is identical, so the order of appends does not show.
        for loc in hits.iter().rev() {
            if loc.is_empty() {
                return Err(CibError::InvalidArgument(
                    "the XPath addresses the whole /cib".into(),
                ));
            }
            remove_at(cib, loc)?;
            at_mut(cib, &loc[..loc.len() - 1])?.push_child(input.clone());
        }
        return Ok(());
    }
    if input.name().eq_ignore_ascii_case("cib") {
        return replace_whole(cib, input, digest);
    }
    let section = section_name(scope).filter(|s| !input.name().eq_ignore_ascii_case(s));
    if section.is_some_and(|s| !is_section(s)) {
        // Unlike the other operations, 2.1.5's replace finds nothing under
        // an unknown section name.
        return Err(CibError::NoSuchObject(format!(
            "unknown section {section:?}"
        )));
    }
    let root = find_section(cib, section)
        .ok_or_else(|| CibError::NoSuchObject(section.unwrap_or("cib").to_string()))?;
    let rel = find_template_match(at(cib, &root)?, input, false).ok_or_else(|| {
        CibError::NoSuchObject(format!("no <{}> with id {:?}", input.name(), input.id()))
    })?;
    let loc: Location = root.into_iter().chain(rel).collect();
    replace_at(cib, &loc, input.clone())
}

fn replace_whole(cib: &mut Element, input: &Element, digest: Option<&str>) -> Result<(), CibError> {
    if let Some(expected) = digest {
        let actual = versioned_digest(input, Some(FEATURE_SET));
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(CibError::DigestMismatch {
                expected: expected.to_string(),
                actual,
            });
        }
    }
    let current = version_of(cib);
    let offered = version_of(input);
    // Lexicographic, as Pacemaker: an equal version is accepted.
    if offered < current {
        return Err(CibError::OldData {
            current: crate::version::Version::from_components(current),
            offered: crate::version::Version::from_components(offered),
        });
    }
    *cib = input.clone();
    Ok(())
}

/// `cib_delete`.
pub fn delete(
    cib: &mut Element,
    scope: &Scope,
    input: Option<&Element>,
    options: CallOptions,
) -> Result<(), CibError> {
    if let Scope::XPath(expr) = scope {
        let mut hits = xpath_matches(cib, expr)?;
        if !options.multiple {
            hits.truncate(1);
        }
        if hits.iter().any(Vec::is_empty) {
            return Err(CibError::InvalidArgument(
                "the XPath addresses the whole /cib".into(),
            ));
        }
        // Reverse document order: descendants go before their ancestors and
        // earlier locations stay valid.
        for loc in hits.iter().rev() {
            if cib.descendant(loc).is_some() {
                remove_at(cib, loc)?;
            }
        }
        return Ok(());
    }
    let input = input.ok_or_else(|| CibError::InvalidArgument("delete needs input".into()))?;
    let section = section_name(scope);
    let Some(root) = find_section(cib, section) else {
        return Ok(());
    };
    let templates: Vec<&Element> = match section {
        Some(s) if input.name().eq_ignore_ascii_case(s) => input.child_elements().collect(),
        _ => vec![input],
    };
    for t in templates {
        if let Some(rel) = find_template_match(at(cib, &root)?, t, true) {
            let loc: Location = root.iter().copied().chain(rel).collect();
            remove_at(cib, &loc)?;
        }
    }
    Ok(())
}

/// Reads a counter as Pacemaker's `update_counter` does (absent or negative
/// counts as 0) and stores it plus one.
pub fn increment_counter(cib: &mut Element, name: &str) {
    let v = cib.attr(name).map_or(0, parse_component).max(0);
    cib.set_attr(name, v.saturating_add(1).to_string());
}

/// The CIB `cibadmin --empty` prints, with `epoch` as given.
pub fn empty_cib(epoch: i64) -> Element {
    let config = Element::new("configuration")
        .with_child(Element::new("crm_config"))
        .with_child(Element::new("nodes"))
        .with_child(Element::new("resources"))
        .with_child(Element::new("constraints"));
    Element::new("cib")
        .with_attr("crm_feature_set", FEATURE_SET)
        .with_attr("validate-with", LATEST_SCHEMA)
        .with_attr("epoch", epoch.to_string())
        .with_attr("num_updates", "0")
        .with_attr("admin_epoch", "0")
        .with_child(config)
        .with_child(Element::new("status"))
}

/// `cib_erase`: an empty CIB carrying the old root's attributes, with
/// `admin_epoch` raised.
pub fn erase(cib: &mut Element) {
    let mut fresh = empty_cib(0);
    for (n, v) in cib.attr_pairs() {
        fresh.set_attr(n, v);
    }
    increment_counter(&mut fresh, "admin_epoch");
    *cib = fresh;
}

/// `cib_bump`: `epoch + 1`.
pub fn bump(cib: &mut Element) {
    increment_counter(cib, "epoch");
}
