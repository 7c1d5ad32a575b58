//! Hand-written edge-case patches applied by us and by the real `crm_diff`
//! 2.1.5 to the same document: the outcome (applied or refused) and the
//! printed result must be the same. Cases on which 2.1.5 itself crashes are
//! checked separately against our documented behaviour.
// Tests drive the world (files, processes); the crate's sans-IO lints are for
// the library.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use phalanx_cib::patch::{ApplyOptions, PatchError, apply, to_pretty_text};
use phalanx_cib::xml::parse;

const BASE: &str = "<cib crm_feature_set=\"3.16.1\" admin_epoch=\"0\" epoch=\"5\" num_updates=\"2\">\
<configuration><!--c0--><x id=\"a b\" v=\"1\"/><x id=\"2\"/><!--c1--><y/><y id=\"\"/><z id=\"it's\"/></configuration>\
<status/></cib>";

/// The changes of each patch (wrapped in `<diff format="2">`).
const CASES: &[&str] = &[
    r#"<change operation="create" path="/cib/configuration" position="-3"><n/></change>"#,
    r#"<change operation="create" path="/cib/configuration" position="99"><n/></change>"#,
    r#"<change operation="delete" path="/cib/configuration/x" position="1"/>"#,
    r#"<change operation="delete" path="/cib/configuration/comment" position="3"/>"#,
    r#"<change operation="delete" path="/cib/configuration/comment" position="2"/>"#,
    r#"<change operation="delete" path="/cib/configuration/x[@id='a b']"/>"#,
    r#"<change operation="delete" path="/cib/configuration/x[@id='a b']/q"/>"#,
    r#"<change operation="modify" path="/cib/configuration/x[@id='a b']"><change-result><x id="a b" w="2"/></change-result></change>"#,
    r#"<change operation="modify" path="/cib/configuration/y[@id='']"><change-result><y id="" w="2"/></change-result></change>"#,
    r#"<change operation="delete" path="/cib/configuration/"/>"#,
    r#"<change operation="modify" path="/cib/configuration/comment"><change-result><q a="1"/></change-result></change>"#,
    r#"<change operation="move" path="/cib/configuration/comment" position="3"/>"#,
    r#"<change operation="create" path="/cib/configuration/comment" position="0"><n/></change>"#,
    r#"<change path="/cib/configuration"/>"#,
    r#"<change operation="frob" path="/cib/configuration"/>"#,
    r#"<change operation="modify" path="/cib"><change-result><!--x--></change-result></change>"#,
    r#"<change operation="modify" path="/cib"><change-result/></change>"#,
    r#"<change operation="move" path="/cib/configuration/y" position="0"/><change operation="move" path="/cib/configuration/z[@id='it&apos;s']" position="0"/>"#,
    r#"<change operation="move" path="/cib/configuration/x[@id='2']" position="-1"/>"#,
    r#"<change operation="move" path="/cib/configuration/x[@id='2']" position="50"/>"#,
    r#"<change operation="create" path="/cib/configuration" position="1"><!--new--></change><change operation="create" path="/cib/configuration" position="1"><n id="q"/></change>"#,
    r#"<change operation="delete" path="/cib/configuration/x[@id='2']"/><change operation="delete" path="/cib/configuration/x[@id='2']"/>"#,
    r#"<change operation="modify" path="/cib/configuration/x[@id='2'] /extra"><change-result><x id="2" k="1"/></change-result></change>"#,
    r#"<change operation="delete" path="/cib/configuration/z[@id='it's']"/>"#,
    r#"<change operation="move" path="/cib" position="0"/>"#,
    r#"<change operation="modify" path="/cib" position="x"><change-result><cib a="1" a2="2"/></change-result></change>"#,
    r#"<change operation="create" path="/cib/configuration" position="abc"><n/></change>"#,
    r#"<change operation="delete" path="/cib/configuration/comment"/>"#,
    r#"<change operation="delete" path="/cib/configuration/comment" position="-5"/>"#,
    r#"<change operation="create" path="/cib"><b id="x"/></change><change operation="move" path="/cib/configuration"/>"#,
];

#[test]
fn edge_case_patches_agree_with_real_crm_diff() {
    let crm_diff = common::tool("crm_diff");
    let scratch = common::scratch("edge");
    let base_file = scratch.join("base.xml");
    let patch_file = scratch.join("patch.xml");
    std::fs::write(&base_file, BASE).expect("write");
    let base = parse(BASE).expect("base parses");
    let (mut applied, mut refused) = (0, 0);
    for (i, changes) in CASES.iter().enumerate() {
        let text = format!("<diff format=\"2\">{changes}</diff>");
        std::fs::write(&patch_file, &text).expect("write");
        let real = common::run(
            &crm_diff,
            &[
                "--original",
                base_file.to_str().unwrap(),
                "--patch",
                patch_file.to_str().unwrap(),
            ],
            None,
        );
        let ours = apply(
            &base,
            &parse(&text).expect("patch parses"),
            &ApplyOptions::default(),
        );
        match (real.status.code(), ours) {
            (Some(0), Ok(result)) => {
                assert_eq!(
                    String::from_utf8_lossy(&real.stdout),
                    to_pretty_text(&result),
                    "case {i}: {changes}"
                );
                applied += 1;
            }
            (Some(code), Err(_)) if code != 0 => refused += 1,
            (code, ours) => panic!(
                "case {i}: real exit {code:?}, ours {:?}: {changes}",
                ours.map(|_| "ok")
            ),
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    eprintln!("edge cases: {applied} applied identically, {refused} refused by both");
    assert!(applied > 10 && refused > 3);
}

#[test]
fn cases_that_crash_pacemaker_are_handled() {
    let base = parse(BASE).expect("base parses");
    let run = |changes: &str| {
        let patch = parse(&format!("<diff format=\"2\">{changes}</diff>")).expect("patch parses");
        apply(&base, &patch, &ApplyOptions::default())
    };
    // Paths resolving to the document: a delete of "nothing" is ignored.
    assert_eq!(
        run(r#"<change operation="delete" path="/"/>"#),
        Ok(base.clone())
    );
    assert_eq!(
        run(r#"<change operation="delete" path="cib/configuration"/>"#),
        Ok(base.clone())
    );
    // A create without content, and deleting the root: typed errors.
    assert!(matches!(
        run(r#"<change operation="create" path="/cib/status" position="0"/>"#),
        Err(PatchError::DiffFailed(_))
    ));
    assert!(matches!(
        run(r#"<change operation="delete" path="/cib"/>"#),
        Err(PatchError::DiffFailed(_))
    ));
}
