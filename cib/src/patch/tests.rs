//! Unit tests of patch generation and application rules that the recorded
//! corpus does not exercise on its own.

use super::*;
use crate::xml::{Element, parse};

fn doc(text: &str) -> Element {
    parse(text).expect("test document parses")
}

const BASE: &str = "<cib admin_epoch=\"0\" epoch=\"1\" num_updates=\"0\" crm_feature_set=\"3.16.1\">\
    <configuration><resources><primitive id=\"a\"/><!--c--><primitive id=\"b\"/></resources></configuration></cib>";

#[test]
fn diff_then_apply_round_trips_edits() {
    let a = doc(BASE);
    let b = doc(
        "<cib admin_epoch=\"0\" epoch=\"2\" num_updates=\"0\" crm_feature_set=\"3.16.1\">\
        <configuration><resources><primitive id=\"b\" x=\"1\"/><primitive id=\"n\"/><primitive id=\"a\"/></resources></configuration></cib>",
    );
    let patch = diff(&a, &b, &DiffOptions::default()).expect("differs");
    let ops: Vec<_> = patch
        .child_elements()
        .filter_map(|c| c.attr("operation"))
        .collect();
    // What the real crm_diff 2.1.5 prints for this pair: b's move comes
    // right after its modify, the create, then a's move.
    assert_eq!(
        ops,
        ["delete", "modify", "modify", "move", "create", "move"]
    );
    let result = apply(
        &a,
        &patch,
        &ApplyOptions {
            check_versions: true,
        },
    )
    .expect("applies");
    assert_eq!(result, b);
    assert!(pacemaker_equal(&result, &b));
}

#[test]
fn comment_text_is_compared_ignoring_ascii_case() {
    let a = doc("<cib><!--Hello--></cib>");
    let b = doc("<cib><!--hELLO--></cib>");
    assert!(pacemaker_equal(&a, &b));
    assert_ne!(a, b);
}

#[test]
fn attribute_order_counts_only_in_plain_mode() {
    let a = doc("<cib crm_feature_set=\"3.16.1\"><x id=\"1\" a=\"1\" b=\"2\"/></cib>");
    let b = doc("<cib crm_feature_set=\"3.16.1\"><x id=\"1\" b=\"2\" a=\"1\"/></cib>");
    assert!(!pacemaker_equal(&a, &b));
    let cib = DiffOptions {
        cib: true,
        no_version: false,
    };
    assert!(diff(&a, &b, &cib).is_none());
}

#[test]
fn roots_with_different_names_or_ids_are_not_compared() {
    // As the real crm_diff 2.1.5: names are compared ignoring case (then
    // the attributes differ), different names or ids give "no change".
    assert!(!pacemaker_equal(
        &doc("<cib a=\"1\"/>"),
        &doc("<CIB a=\"2\"/>")
    ));
    assert!(pacemaker_equal(
        &doc("<cib id=\"1\"/>"),
        &doc("<other id=\"1\"/>")
    ));
    assert!(pacemaker_equal(
        &doc("<cib id=\"1\" a=\"1\"/>"),
        &doc("<cib id=\"2\"/>")
    ));
}

#[test]
fn delete_of_missing_target_is_ignored_other_missing_targets_fail() {
    let a = doc(BASE);
    let ok = doc("<diff format=\"2\"><change operation=\"delete\" path=\"/cib/nothing\"/></diff>");
    assert_eq!(apply(&a, &ok, &ApplyOptions::default()), Ok(a.clone()));
    let bad = doc(
        "<diff format=\"2\"><change operation=\"modify\" path=\"/cib/nothing\">\
        <change-result><nothing/></change-result></change></diff>",
    );
    let err = apply(&a, &bad, &ApplyOptions::default()).unwrap_err();
    assert!(matches!(err, PatchError::DiffFailed(_)) && err.is_diff_failed());
    let no_result = doc("<diff format=\"2\"><change operation=\"modify\" path=\"/cib\"/></diff>");
    assert!(matches!(
        apply(&a, &no_result, &ApplyOptions::default()),
        Err(PatchError::MissingResult(_))
    ));
    let unknown = doc("<diff format=\"2\"><change operation=\"frob\" path=\"/cib\"/></diff>");
    assert!(matches!(
        apply(&a, &unknown, &ApplyOptions::default()),
        Err(PatchError::DiffFailed(_))
    ));
}

#[test]
fn comment_deletes_address_by_position() {
    let a = doc("<cib><!--x--><p/><!--y--></cib>");
    let patch = doc(
        "<diff format=\"2\"><change operation=\"delete\" path=\"/cib/comment\" position=\"2\"/></diff>",
    );
    let result = apply(&a, &patch, &ApplyOptions::default()).unwrap();
    assert_eq!(result, doc("<cib><!--x--><p/></cib>"));
}

#[test]
fn formats_and_versions_are_checked() {
    let a = doc(BASE);
    let legacy = doc("<diff format=\"1\"/>");
    assert_eq!(
        apply(&a, &legacy, &ApplyOptions::default()),
        Err(PatchError::LegacyFormat)
    );
    assert_eq!(
        apply(&a, &doc("<diff/>"), &ApplyOptions::default()),
        Err(PatchError::LegacyFormat)
    );
    assert_eq!(
        apply(&a, &doc("<diff format=\"7\"/>"), &ApplyOptions::default()),
        Err(PatchError::UnknownFormat(7))
    );
    let checked = ApplyOptions {
        check_versions: true,
    };
    let ahead = doc(
        "<diff format=\"2\"><version><source admin_epoch=\"0\" epoch=\"2\" num_updates=\"0\"/>\
        <target admin_epoch=\"0\" epoch=\"3\" num_updates=\"0\"/></version></diff>",
    );
    let err = apply(&a, &ahead, &checked).unwrap_err();
    assert!(matches!(err, PatchError::NeedResync(_)) && err.is_diff_failed());
    let behind = doc(
        "<diff format=\"2\"><version><source admin_epoch=\"0\" epoch=\"0\" num_updates=\"0\"/>\
        <target admin_epoch=\"0\" epoch=\"1\" num_updates=\"0\"/></version></diff>",
    );
    let err = apply(&a, &behind, &checked).unwrap_err();
    assert!(matches!(err, PatchError::OldData(_)) && !err.is_diff_failed());
    // No version block: target defaults to one more update, so it applies.
    assert!(apply(&a, &doc("<diff format=\"2\"/>"), &checked).is_ok());
}

#[test]
fn digest_is_verified() {
    let a = doc(BASE);
    let b = doc(&BASE
        .replace("epoch=\"1\"", "epoch=\"2\"")
        .replace("id=\"b\"", "id=\"b\" z=\"1\""));
    let cib = DiffOptions {
        cib: true,
        no_version: false,
    };
    let mut patch = diff(&a, &b, &cib).expect("differs");
    assert!(apply(&a, &patch, &ApplyOptions::default()).is_ok());
    patch.set_attr("digest", "00000000000000000000000000000000");
    assert!(matches!(
        apply(&a, &patch, &ApplyOptions::default()),
        Err(PatchError::DigestMismatch { .. })
    ));
}

#[test]
fn deleting_the_root_is_an_error_not_a_panic() {
    let a = doc(BASE);
    let patch = doc("<diff format=\"2\"><change operation=\"delete\" path=\"/cib\"/></diff>");
    assert!(matches!(
        apply(&a, &patch, &ApplyOptions::default()),
        Err(PatchError::DiffFailed(_))
    ));
}

#[test]
fn missing_positions_sort_first_and_mean_zero() {
    // Checked against the real crm_diff 2.1.5: b is created at 0, then a2
    // moves to 0.
    let a = doc("<cib><a id=\"1\"/><a id=\"2\"/></cib>");
    let patch = doc(
        "<diff format=\"2\"><change operation=\"create\" path=\"/cib\"><b id=\"x\"/></change>\
        <change operation=\"move\" path=\"/cib/a[@id='2']\"/></diff>",
    );
    let result = apply(&a, &patch, &ApplyOptions::default()).unwrap();
    assert_eq!(
        result,
        doc("<cib><a id=\"2\"/><b id=\"x\"/><a id=\"1\"/></cib>")
    );
}

#[test]
fn creating_under_a_comment_changes_nothing() {
    // As the real crm_diff 2.1.5 (the node lands inside the comment, unseen).
    let a = doc("<cib><!--c--><p/></cib>");
    let patch = doc(
        "<diff format=\"2\"><change operation=\"create\" path=\"/cib/comment\" position=\"0\"><n/></change></diff>",
    );
    assert_eq!(apply(&a, &patch, &ApplyOptions::default()), Ok(a.clone()));
}

/// A CIB of `n` primitives, each with a nested attribute set.
fn resources(n: usize, changed: Option<usize>) -> Element {
    let mut text = String::from(
        "<cib admin_epoch=\"0\" epoch=\"1\" num_updates=\"0\" crm_feature_set=\"3.16.1\">\
         <configuration><resources>",
    );
    for i in 0..n {
        let v = if changed == Some(i) { "new" } else { "old" };
        text.push_str(&format!(
            "<primitive id=\"r{i}\"><instance_attributes id=\"r{i}-ia\">\
             <nvpair id=\"r{i}-p\" name=\"p\" value=\"{v}\"/></instance_attributes></primitive>"
        ));
    }
    text.push_str("</resources></configuration></cib>");
    doc(&text)
}

#[test]
fn a_small_change_in_a_large_cib_is_one_change_and_unchanged_moves_are_kept() {
    // Equal subtrees are skipped by the walk; the patchset must be what the
    // full walk gives: one modify at the changed nvpair.
    let a = resources(2000, None);
    let b = resources(2000, Some(1234));
    let patch = diff(&a, &b, &DiffOptions::default()).expect("differs");
    let changes: Vec<_> = patch
        .child_elements()
        .filter(|c| c.name() == "change")
        .collect();
    assert_eq!(changes.len(), 1, "{patch:?}");
    assert_eq!(changes[0].attr("operation"), Some("modify"));
    assert_eq!(
        changes[0].attr("path"),
        Some(
            "/cib/configuration/resources/primitive[@id='r1234']/\
             instance_attributes[@id='r1234-ia']/nvpair[@id='r1234-p']"
        )
    );
    // Swapping two unchanged subtrees is still a move, and applying the
    // patchset gives the new tree.
    let c = doc(&to_string_swapped(&a));
    let patch = diff(&a, &c, &DiffOptions::default()).expect("differs");
    assert!(
        patch
            .child_elements()
            .any(|ch| ch.attr("operation") == Some("move")),
        "{patch:?}"
    );
    let result = apply(
        &a,
        &patch,
        &ApplyOptions {
            check_versions: false,
        },
    )
    .expect("applies");
    assert_eq!(result, c);
}

/// `cib` as text with its first two primitives swapped.
fn to_string_swapped(cib: &Element) -> String {
    let mut c = cib.clone();
    let resources = c
        .find_child_mut("configuration")
        .and_then(|x| x.find_child_mut("resources"))
        .expect("resources");
    resources.children_mut().swap(0, 1);
    crate::xml::to_string(&c, crate::xml::Style::Compact, crate::xml::Escaping::Xml)
}

#[test]
fn an_idless_sibling_after_a_named_one_keeps_the_self_diff_move() {
    // Pacemaker matches the id-less node_state to the first node_state, so
    // even a document against itself has a move (scheduler corpus:
    // failcount-block.xml); the equal-subtree shortcut must not hide it.
    let x = doc(
        "<cib admin_epoch=\"0\" epoch=\"1\" num_updates=\"0\" crm_feature_set=\"3.16.1\">\
         <status><node_state id=\"1\"/><node_state/></status></cib>",
    );
    let patch = diff(&x, &x, &DiffOptions::default()).expect("self-unequal");
    assert!(
        patch
            .child_elements()
            .any(|c| c.attr("operation") == Some("move")),
        "{patch:?}"
    );
}
