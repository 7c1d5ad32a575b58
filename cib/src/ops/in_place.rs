//! Section-scoped changes applied in place, with an undo copy of the one section
//! they can touch instead of a scratch copy of the whole CIB.
//!
//! The general path of [`super::execute_validated`] clones the CIB, edits the
//! clone, compares old and new whole trees (three times) and diffs them: every
//! change costs O(CIB size) several times over although a `cibadmin -M -o
//! crm_config` edits a few hundred bytes. An operation whose scope is one
//! existing section (`create`, `modify`, `delete` with `-o SECTION`) can only
//! change that section (`process::create`/`modify`/`delete` look nothing up
//! outside it) and, afterwards, the root's version attributes. So here:
//!
//! * the section is copied (the undo record) and the operation edits the real
//!   tree; on any failure the section and the root's attributes are put back,
//!   which keeps the all-or-nothing contract;
//! * "did anything change" compares the section with its copy and the root's
//!   attributes with theirs;
//! * the patchset is diffed between two skeletons — root, the section's
//!   ancestors (attributes only) and the section, old and new — which yields
//!   the same changes as the whole-tree diff: the diff decides each element from
//!   its ancestors' paths, its siblings and its subtree, and outside the section
//!   nothing differs; its `digest` (of the whole new CIB) is then computed on the
//!   real tree.
//!
//! What stays O(CIB size) per change: the read-only scan for leftover `name++`
//! attributes outside the section (Pacemaker expands them over the whole result;
//! when there are any, the general path runs instead), the patchset's `--cib`
//! digest of the whole result and, when configured, schema validation of it.
//! Operations with ACLs in force, on the whole CIB, on `configuration`, by
//! XPath, `replace`, patches and transactions take the general path.

use super::merge::fix_plus_plus;
use super::request::{CallOptions, CibOp, OpContext, OpOutcome, Scope};
use super::section::{find_section, is_whole, section_path};
use super::{CibError, FEATURE_SET, acl_permissions, apply};
use crate::digest::{compare_versions, versioned_digest};
use crate::schema::SchemaValidator;
use crate::version::Version;
use crate::xml::{Attribute, Element, Node};

/// The section a section-scoped `create`/`modify`/`delete` edits, when the
/// operation qualifies for the in-place path.
fn target_section(op: &CibOp) -> Option<(&str, CallOptions)> {
    let (scope, input, options) = match op {
        CibOp::Create {
            scope,
            input,
            options,
        }
        | CibOp::Modify {
            scope,
            input,
            options,
        } => (scope, input, *options),
        CibOp::Delete {
            scope,
            input: Some(input),
            options,
        } => (scope, input, *options),
        _ => return None,
    };
    let Scope::Section(name) = scope else {
        return None;
    };
    // A `<cib>` input turns create and modify into whole-CIB merges.
    if is_whole(name) || input.name().eq_ignore_ascii_case("cib") {
        return None;
    }
    let path = section_path(name)?;
    // `configuration` itself holds nearly everything: no gain, general path.
    matches!(path, ["status"] | ["configuration", _]).then_some((name.as_str(), options))
}

/// Whether an element outside the subtree at `skip` (a location below `e`)
/// still holds an attribute of the form `name++` / `name+=N`.
fn plus_plus_outside(e: &Element, skip: &[usize]) -> bool {
    if e.attr_pairs()
        .any(|(n, v)| super::merge::has_increment(n, v))
    {
        return true;
    }
    e.children().iter().enumerate().any(|(i, c)| match c {
        Node::Element(child) => match skip.split_first() {
            Some((&first, rest)) if first == i => {
                !rest.is_empty() && plus_plus_outside(child, rest)
            }
            _ => subtree_has_plus_plus(child),
        },
        Node::Comment(_) => false,
    })
}

fn subtree_has_plus_plus(e: &Element) -> bool {
    e.attr_pairs()
        .any(|(n, v)| super::merge::has_increment(n, v))
        || e.child_elements().any(subtree_has_plus_plus)
}

/// An element with `e`'s name and attributes, no children.
fn shallow(e: &Element) -> Element {
    let mut s = Element::new(e.name());
    for (n, v) in e.attr_pairs() {
        s.set_attr(n, v);
    }
    s
}

/// The CIB reduced to `root_attrs`, the section's ancestors (attributes only)
/// and `section`: what the diff needs to see of a change confined to it.
fn skeleton(cib: &Element, root_attrs: &[Attribute], loc: &[usize], section: Element) -> Element {
    let mut chain = Vec::with_capacity(loc.len());
    let mut cur = cib;
    for (depth, &i) in loc.iter().enumerate() {
        if depth + 1 < loc.len() {
            if let Some(Node::Element(child)) = cur.children().get(i) {
                chain.push(shallow(child));
                cur = child;
            }
        }
    }
    let mut inner = section;
    while let Some(mut parent) = chain.pop() {
        parent.push_child(inner);
        inner = parent;
    }
    let mut root = Element::new(cib.name());
    for a in root_attrs {
        root.set_attr(a.name.as_str(), a.value.as_str());
    }
    root.with_child(inner)
}

/// What the operation may change, as it was before: the section (at `loc`) and
/// the root's attributes.
struct UndoRecord {
    loc: Vec<usize>,
    section: Element,
    root_attrs: Vec<Attribute>,
}

impl UndoRecord {
    /// Puts the section and the root's attributes back as they were.
    fn undo(self, cib: &mut Element) {
        if let Some(slot) = cib.descendant_mut(&self.loc) {
            *slot = self.section;
        }
        cib.clear_attrs();
        for a in self.root_attrs {
            cib.set_attr(a.name, a.value);
        }
    }
}

/// Runs `op` in place when it qualifies (see the module comment); `None` when
/// it does not, before anything was touched: the caller takes the general path.
pub(super) fn try_execute(
    cib: &mut Element,
    op: &CibOp,
    ctx: &OpContext,
    validator: Option<&dyn SchemaValidator>,
) -> Option<Result<OpOutcome, CibError>> {
    let (section, options) = target_section(op)?;
    if cib.name() != "cib" || acl_permissions(cib, ctx).is_some() {
        return None;
    }
    let loc = find_section(cib, Some(section))?;
    if plus_plus_outside(cib, &loc) {
        return None;
    }
    let record = UndoRecord {
        section: cib.descendant(&loc)?.clone(),
        root_attrs: cib.attrs().to_vec(),
        loc,
    };
    Some(match run(cib, op, ctx, validator, &record, options) {
        Ok(applied) => Ok(finish_outcome(cib, applied, record)),
        Err(e) => {
            record.undo(cib);
            Err(e)
        }
    })
}

/// What [`run`] found out, before the patchset is made.
struct Applied {
    changed: bool,
    config_changed: bool,
}

/// The operation and `finish`'s bookkeeping on the real tree. On `Err` the
/// caller undoes.
fn run(
    cib: &mut Element,
    op: &CibOp,
    ctx: &OpContext,
    validator: Option<&dyn SchemaValidator>,
    record: &UndoRecord,
    options: CallOptions,
) -> Result<Applied, CibError> {
    let loc = record.loc.as_slice();
    apply(cib, op)?;
    // Nothing outside the section held `name++` (checked before), and the
    // operation changed nothing outside it: expanding the section is the
    // whole-tree expansion.
    let section = cib
        .descendant_mut(loc)
        .ok_or_else(|| CibError::NoSuchObject("section vanished".into()))?;
    fix_plus_plus(section);
    if cib.attrs() != record.root_attrs.as_slice() {
        // Unreachable for a section-scoped operation; refuse rather than
        // reason about a root the undo record does not describe.
        return Err(CibError::InvalidArgument(
            "a section-scoped operation changed the root".into(),
        ));
    }
    if let Some(theirs) = cib.attr("crm_feature_set") {
        if compare_versions(theirs, FEATURE_SET) == std::cmp::Ordering::Greater {
            return Err(CibError::FeatureSetTooNew {
                theirs: theirs.to_string(),
                ours: FEATURE_SET.to_string(),
            });
        }
    }
    let changed = cib.descendant(loc) != Some(&record.section);
    if !changed {
        return Ok(Applied {
            changed: false,
            config_changed: false,
        });
    }
    let config_changed = loc.len() == 2; // under `configuration` (else `status`)
    super::stamp_change(cib, config_changed, !ctx.keep_versions, ctx, options);
    if validator.is_some() {
        crate::schema::check(validator, cib).map_err(CibError::SchemaValidation)?;
    }
    Ok(Applied {
        changed: true,
        config_changed,
    })
}

/// The outcome, with the patchset diffed between skeletons.
fn finish_outcome(cib: &Element, applied: Applied, record: UndoRecord) -> OpOutcome {
    let patchset = if applied.changed {
        let loc = record.loc.as_slice();
        let new_section = cib.descendant(loc).cloned().unwrap_or_default();
        let old = skeleton(cib, &record.root_attrs, loc, record.section);
        let new = skeleton(cib, cib.attrs(), loc, new_section);
        let options = crate::patch::DiffOptions {
            cib: true,
            ..Default::default()
        };
        crate::patch::diff(&old, &new, &options).map(|mut p| {
            // The skeleton's digest is not the CIB's: the real one, once.
            let feature_set = old.attr("crm_feature_set");
            p.set_attr("digest", versioned_digest(cib, feature_set));
            p
        })
    } else {
        None
    };
    OpOutcome {
        output: None,
        version: Version::of_cib(cib),
        changed: applied.changed,
        config_changed: applied.config_changed,
        patchset,
    }
}

#[cfg(test)]
mod tests {
    //! The in-place path against the general (copying) one: the same operation
    //! on the same CIB must give the same result, the same tree afterwards and
    //! the same patchset, byte for byte — for changes, no-ops and failures.

    use super::super::execute_copying;
    use super::*;
    use crate::xml::parse;

    /// Comments at several levels, a status section, an attribute order that
    /// is not alphabetical, id-less siblings, and `++` arithmetic on input.
    const CIB: &str = r#"<cib validate-with="pacemaker-3.9" epoch="7" num_updates="3" admin_epoch="0" crm_feature_set="3.16.1" have-quorum="1"><!-- top --><configuration><crm_config><cluster_property_set id="cib-bootstrap-options"><nvpair id="opt-a" name="a" value="1"/><nvpair id="opt-b" name="b" value="2"/></cluster_property_set></crm_config><nodes><node id="1" uname="n1"/><node id="2" uname="n2"/></nodes><!-- between --><resources><primitive id="r1" class="ocf" provider="heartbeat" type="Dummy"><meta_attributes id="r1-meta"><nvpair id="r1-ts" name="target-role" value="Started"/></meta_attributes></primitive><primitive id="r2" class="ocf" provider="heartbeat" type="Dummy"/></resources><constraints><rsc_location id="loc1" rsc="r1" node="n1" score="10"/><rsc_order id="o1" first="r1" then="r2"/></constraints></configuration><status><node_state id="1" uname="n1" in_ccm="true"><lrm id="1"><lrm_resources/></lrm></node_state></status></cib>"#;

    fn el(xml: &str) -> Element {
        parse(xml).expect("test XML parses")
    }

    fn ctx() -> OpContext {
        OpContext {
            user: Some("hacluster".into()),
            client_name: Some("cibadmin".into()),
            origin: Some("n1".into()),
            now: Some("Sun Dec  6 19:00:00 2026".into()),
            ..Default::default()
        }
    }

    fn modify(section: &str, input: &str, can_create: bool) -> CibOp {
        CibOp::Modify {
            scope: Scope::section(section),
            input: el(input),
            options: CallOptions {
                can_create,
                ..Default::default()
            },
        }
    }

    fn cases() -> Vec<CibOp> {
        vec![
            // change a value, add a pair, add a set (can_create), no-op
            modify(
                "crm_config",
                r#"<cluster_property_set id="cib-bootstrap-options"><nvpair id="opt-a" name="a" value="9"/></cluster_property_set>"#,
                false,
            ),
            modify(
                "crm_config",
                r#"<cluster_property_set id="cib-bootstrap-options"><nvpair id="opt-c" name="c" value="3"/></cluster_property_set>"#,
                false,
            ),
            modify(
                "crm_config",
                r#"<cluster_property_set id="new-set"><nvpair id="n-1" name="x" value="y"/></cluster_property_set>"#,
                true,
            ),
            modify(
                "crm_config",
                r#"<cluster_property_set id="cib-bootstrap-options"><nvpair id="opt-a" name="a" value="1"/></cluster_property_set>"#,
                false,
            ),
            // nothing to modify, no create: fails, nothing changes
            modify(
                "crm_config",
                r#"<cluster_property_set id="absent"><nvpair id="z" name="z" value="z"/></cluster_property_set>"#,
                false,
            ),
            // score arithmetic on a resource, in status, on a node
            modify(
                "constraints",
                r#"<rsc_location id="loc1" score="score+=5"/>"#,
                false,
            ),
            modify(
                "constraints",
                r#"<rsc_location id="loc1" fresh="fresh++"/>"#,
                false,
            ),
            modify(
                "status",
                r#"<node_state id="1" uname="n1" crmd="online"/>"#,
                false,
            ),
            modify("nodes", r#"<node id="2" uname="n2" type="member"/>"#, false),
            CibOp::Create {
                scope: Scope::section("resources"),
                input: el(r#"<primitive id="r3" class="ocf" provider="pacemaker" type="Dummy"/>"#),
                options: CallOptions::default(),
            },
            // exists: fails
            CibOp::Create {
                scope: Scope::section("resources"),
                input: el(r#"<primitive id="r2" class="ocf" provider="pacemaker" type="Dummy"/>"#),
                options: CallOptions::default(),
            },
            // the section as input: the first child is added, the second exists
            // (all or nothing: the first must not stay)
            CibOp::Create {
                scope: Scope::section("constraints"),
                input: el(
                    r#"<constraints><rsc_order id="o2" first="r2" then="r1"/><rsc_order id="o1" first="r1" then="r2"/></constraints>"#,
                ),
                options: CallOptions::default(),
            },
            CibOp::Delete {
                scope: Scope::section("constraints"),
                input: Some(el(r#"<rsc_location id="loc1"/>"#)),
                options: CallOptions::default(),
            },
            CibOp::Delete {
                scope: Scope::section("resources"),
                input: Some(el(r#"<primitive id="absent"/>"#)),
                options: CallOptions::default(),
            },
            CibOp::Delete {
                scope: Scope::section("resources"),
                input: Some(el(r#"<meta_attributes id="r1-meta"/>"#)),
                options: CallOptions::default(),
            },
        ]
    }

    fn compare(cib: &Element, op: &CibOp, ctx: &OpContext) {
        let mut general = cib.clone();
        let expected = execute_copying(&mut general, op, ctx, None);
        let mut here = cib.clone();
        let got = try_execute(&mut here, op, ctx, None)
            .unwrap_or_else(|| panic!("{op:?} should take the in-place path"));
        assert_eq!(got, expected, "outcome of {op:?}");
        assert_eq!(here, general, "tree after {op:?}");
        if expected.is_err() {
            assert_eq!(&here, cib, "a failed {op:?} left a change behind");
        }
    }

    #[test]
    fn in_place_matches_the_copying_path() {
        let cib = el(CIB);
        for op in cases() {
            compare(&cib, &op, &ctx());
            compare(&cib, &op, &OpContext::default());
        }
    }

    #[test]
    fn successive_changes_stay_identical() {
        let mut general = el(CIB);
        let mut here = general.clone();
        for (round, op) in cases().iter().cycle().take(45).enumerate() {
            let mut c = ctx();
            c.now = Some(format!("t{round}"));
            let a = execute_copying(&mut general, op, &c, None);
            let b = super::super::execute(&mut here, op, &c);
            assert_eq!(b, a, "round {round}: {op:?}");
            assert_eq!(here, general, "round {round}: {op:?}");
        }
    }

    #[test]
    fn leftover_arithmetic_elsewhere_takes_the_copying_path() {
        // A `++` outside the edited section is expanded by the whole-tree pass
        // of the general path; the in-place path must not run.
        let cib = el(&CIB.replace(r#"score="10""#, r#"score="score++""#));
        let op = &cases()[0];
        assert!(try_execute(&mut cib.clone(), op, &ctx(), None).is_none());
        let mut a = cib.clone();
        let mut b = cib.clone();
        assert_eq!(
            super::super::execute(&mut b, op, &ctx()),
            execute_copying(&mut a, op, &ctx(), None)
        );
        assert_eq!(a, b);
        assert!(
            crate::xml::to_string(&b, crate::xml::Style::Compact, crate::xml::Escaping::Xml)
                .contains(r#"score="1""#)
        );
    }

    #[test]
    fn whole_cib_xpath_and_configuration_scopes_take_the_copying_path() {
        let input = r#"<cluster_property_set id="cib-bootstrap-options"/>"#;
        for op in [
            modify("configuration", input, false),
            modify("cib", input, false),
            CibOp::Modify {
                scope: Scope::xpath("//crm_config"),
                input: el(input),
                options: CallOptions::default(),
            },
            modify("crm_config", r#"<cib epoch="99"/>"#, false),
        ] {
            assert!(
                try_execute(&mut el(CIB), &op, &ctx(), None).is_none(),
                "{op:?}"
            );
        }
    }

    #[test]
    fn a_missing_section_takes_the_copying_path() {
        let cib = el(&CIB.replace(
            "<nodes><node id=\"1\" uname=\"n1\"/><node id=\"2\" uname=\"n2\"/></nodes>",
            "",
        ));
        let op = modify("nodes", r#"<node id="3" uname="n3"/>"#, true);
        assert!(try_execute(&mut cib.clone(), &op, &ctx(), None).is_none());
    }
}
