//! Table tests of every operation and error, the version rules (§1.3),
//! atomicity, stamping and transactions.

use phalanx_cib::ops::{
    CallOptions, CibError, CibOp, OpContext, OpOutcome, Scope, empty_cib, execute, wire,
};
use phalanx_cib::version::Version;
use phalanx_cib::xml::{Element, Escaping, Style, parse, to_string};

const BASE: &str = r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="7" num_updates="4" admin_epoch="2">
  <configuration>
    <crm_config>
      <cluster_property_set id="opts">
        <nvpair id="opts-a" name="a" value="1"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="n1"/>
    </nodes>
    <resources>
      <primitive id="p1" class="ocf" provider="heartbeat" type="Dummy">
        <instance_attributes id="p1-ia">
          <nvpair id="p1-ia-x" name="x" value="5"/>
        </instance_attributes>
      </primitive>
      <group id="g">
        <primitive id="p2" class="ocf" provider="heartbeat" type="Dummy"/>
      </group>
    </resources>
    <constraints/>
  </configuration>
  <status>
    <node_state id="1" uname="n1" fails="3"/>
  </status>
</cib>"#;

fn base() -> Element {
    parse(BASE).unwrap()
}

fn xml(t: &str) -> Element {
    parse(t).unwrap()
}

fn ctx() -> OpContext {
    OpContext::default()
}

fn compact(e: &Element) -> String {
    to_string(e, Style::Compact, Escaping::Xml)
}

fn run(cib: &mut Element, op: CibOp) -> Result<OpOutcome, CibError> {
    execute(cib, &op, &ctx())
}

fn modify(scope: Scope, input: &str) -> CibOp {
    CibOp::Modify {
        scope,
        input: xml(input),
        options: CallOptions::default(),
    }
}

fn query(scope: Scope) -> CibOp {
    CibOp::Query {
        scope,
        options: CallOptions::default(),
    }
}

fn ids(e: &Element) -> Vec<String> {
    e.child_elements()
        .map(|c| c.id().unwrap_or(c.name()).to_string())
        .collect()
}

#[test]
fn queries() {
    let mut cib = base();
    let out = run(&mut cib, query(Scope::section("resources")))
        .unwrap()
        .output
        .unwrap();
    assert_eq!(out.name(), "resources");
    assert_eq!(ids(&out), ["p1", "g"]);
    let out = run(&mut cib, query(Scope::section("RESOURCES")))
        .unwrap()
        .output
        .unwrap();
    assert_eq!(
        out.name(),
        "resources",
        "section names are case-insensitive"
    );
    let out = run(&mut cib, query(Scope::xpath("//primitive")))
        .unwrap()
        .output
        .unwrap();
    assert_eq!(out.name(), "xpath-query");
    assert_eq!(ids(&out), ["p1", "p2"]);
    let one = run(&mut cib, query(Scope::xpath("//primitive[@id='p1']"))).unwrap();
    assert_eq!(one.output.unwrap().id(), Some("p1"));
    let shallow = execute(
        &mut cib,
        &CibOp::Query {
            scope: Scope::xpath("//primitive[@id='p1']"),
            options: CallOptions {
                no_children: true,
                ..Default::default()
            },
        },
        &ctx(),
    )
    .unwrap();
    assert!(shallow.output.unwrap().is_empty());
    assert!(matches!(
        run(&mut cib, query(Scope::section("acls"))),
        Err(CibError::NoSuchObject(_))
    ));
    assert!(matches!(
        run(&mut cib, query(Scope::xpath("//nothing"))),
        Err(CibError::NoSuchObject(_))
    ));
    let bad = run(&mut cib, query(Scope::xpath("//a[")));
    assert!(matches!(bad, Err(CibError::InvalidXPath(_))));
    assert_eq!(bad.unwrap_err().pacemaker_rc(), -6, "ENXIO as Pacemaker");
    assert_eq!(cib, base(), "queries do not change the CIB");
}

#[test]
fn create_and_its_errors() {
    let mut cib = base();
    let out = run(
        &mut cib,
        CibOp::Create {
            scope: Scope::section("resources"),
            input: xml(r#"<primitive id="p3" class="ocf" provider="heartbeat" type="Dummy"/>"#),
            options: CallOptions::default(),
        },
    )
    .unwrap();
    assert!(out.config_changed);
    assert_eq!(out.version, Version::new(2, 8, 0));
    let err = run(
        &mut cib,
        CibOp::Create {
            scope: Scope::section("resources"),
            input: xml(r#"<resources><primitive id="p4"/><primitive id="p1"/></resources>"#),
            options: CallOptions::default(),
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        CibError::Exists {
            name: "primitive".into(),
            id: Some("p1".into())
        }
    );
    assert_eq!((err.pacemaker_rc(), err.exit_code()), (-17, 108));
    assert!(
        cib.descendant(&[1, 5, 7]).is_none() && !compact(&cib).contains("p4"),
        "a failed create leaves nothing behind"
    );
    // Creating at the top is a modify.
    run(
        &mut cib,
        CibOp::Create {
            scope: Scope::section("cib"),
            input: xml(r#"<node id="1" uname="n1" type="member"/>"#),
            options: CallOptions::default(),
        },
    )
    .unwrap();
    assert!(compact(&cib).contains(r#"<node id="1" uname="n1" type="member"/>"#));
    // A known section that is absent cannot take a create.
    let err = run(
        &mut cib,
        CibOp::Create {
            scope: Scope::section("tags"),
            input: xml(r#"<tag id="t"/>"#),
            options: CallOptions::default(),
        },
    )
    .unwrap_err();
    assert!(matches!(err, CibError::InvalidArgument(_)));
    assert_eq!(err.exit_code(), 70);
}

#[test]
fn modify_merges_and_counts_scores() {
    let mut cib = base();
    run(
        &mut cib,
        modify(
            Scope::section("resources"),
            r#"<primitive id="p1" description="d"><instance_attributes id="p1-ia"><nvpair id="p1-ia-x" value="value+=10"/><nvpair id="p1-ia-y" name="y" value="2"/></instance_attributes></primitive>"#,
        ),
    )
    .unwrap();
    let text = compact(&cib);
    assert!(text.contains(
        r#"<primitive id="p1" class="ocf" provider="heartbeat" type="Dummy" description="d">"#
    ));
    assert!(text.contains(
        r#"<nvpair id="p1-ia-x" name="x" value="15"/><nvpair id="p1-ia-y" name="y" value="2"/>"#
    ));
    // Score arithmetic caps at INFINITY; a fresh attribute counts from 0.
    run(
        &mut cib,
        modify(
            Scope::section("status"),
            r#"<node_state id="1" fails="fails+=INFINITY" seen="seen++"/>"#,
        ),
    )
    .unwrap();
    assert!(compact(&cib).contains(r#"fails="1000000" seen="1""#));
    // Status-only changes raise num_updates.
    assert_eq!(Version::of_cib(&cib), Version::new(2, 8, 1));
    // No match: ENXIO, or append with can_create.
    let absent = r#"<primitive id="zz" class="ocf" provider="heartbeat" type="Dummy"/>"#;
    assert!(matches!(
        run(&mut cib, modify(Scope::section("resources"), absent)),
        Err(CibError::NoSuchObject(_))
    ));
    run(
        &mut cib,
        CibOp::Modify {
            scope: Scope::section("resources"),
            input: xml(absent),
            options: CallOptions {
                can_create: true,
                ..Default::default()
            },
        },
    )
    .unwrap();
    assert!(compact(&cib).contains(r#"<primitive id="zz""#));
    // A missing section is created.
    run(
        &mut cib,
        CibOp::Modify {
            scope: Scope::section("rsc_defaults"),
            input: xml(r#"<meta_attributes id="rd"/>"#),
            options: CallOptions {
                can_create: true,
                ..Default::default()
            },
        },
    )
    .unwrap();
    assert!(compact(&cib).contains(r#"<rsc_defaults><meta_attributes id="rd"/></rsc_defaults>"#));
    // An identical modify changes nothing and bumps nothing.
    let before = cib.clone();
    let out = run(
        &mut cib,
        modify(Scope::Whole, r#"<node id="1" uname="n1"/>"#),
    )
    .unwrap();
    assert!(!out.changed);
    assert_eq!(cib, before);
}

#[test]
fn modify_by_xpath_first_or_all() {
    let mut cib = base();
    let all = CibOp::Modify {
        scope: Scope::xpath("//primitive"),
        input: xml(r#"<primitive description="x"/>"#),
        options: CallOptions {
            multiple: true,
            ..Default::default()
        },
    };
    // Inputs without id match elements without id only.
    assert!(matches!(run(&mut cib, all), Err(CibError::NoSuchObject(_))));
    let first = modify(
        Scope::xpath("//group"),
        r#"<primitive id="p2" description="x"/>"#,
    );
    run(&mut cib, first).unwrap();
    assert!(compact(&cib).contains(
        r#"<primitive id="p2" class="ocf" provider="heartbeat" type="Dummy" description="x"/>"#
    ));
}

#[test]
fn replace_elements_and_whole_cib() {
    let mut cib = base();
    run(
        &mut cib,
        CibOp::Replace {
            scope: Scope::section("resources"),
            input: xml(r#"<primitive id="p2" class="ocf" provider="pacemaker" type="Stateful"/>"#),
            digest: None,
            options: CallOptions::default(),
        },
    )
    .unwrap();
    assert!(compact(&cib).contains(r#"<group id="g"><primitive id="p2" class="ocf" provider="pacemaker" type="Stateful"/></group>"#));
    let older = {
        let mut c = base();
        c.set_attr("epoch", "6");
        c
    };
    let err = run(
        &mut cib,
        CibOp::Replace {
            scope: Scope::Whole,
            input: older,
            digest: None,
            options: CallOptions::default(),
        },
    )
    .unwrap_err();
    assert!(matches!(err, CibError::OldData { .. }));
    assert_eq!((err.pacemaker_rc(), err.exit_code()), (-205, 103));
    let mut newer = empty_cib(50);
    newer.set_attr("admin_epoch", "2");
    let digest = phalanx_cib::digest::versioned_digest(&newer, Some("3.16.1"));
    let bad = run(
        &mut cib,
        CibOp::Replace {
            scope: Scope::Whole,
            input: newer.clone(),
            digest: Some("0000".into()),
            options: CallOptions::default(),
        },
    );
    assert!(matches!(bad, Err(CibError::DigestMismatch { .. })));
    let out = run(
        &mut cib,
        CibOp::Replace {
            scope: Scope::Whole,
            input: newer.clone(),
            digest: Some(digest),
            options: CallOptions::default(),
        },
    )
    .unwrap();
    assert_eq!(out.version, Version::new(2, 51, 0), "replace then bump");
    // A sync reply keeps the received versions.
    let mut cib = base();
    let mut synced = base();
    synced.set_attr("epoch", "9");
    synced
        .find_child_mut("status")
        .unwrap()
        .children_mut()
        .clear();
    let keep = OpContext {
        keep_versions: true,
        ..ctx()
    };
    let out = execute(
        &mut cib,
        &CibOp::Replace {
            scope: Scope::Whole,
            input: synced,
            digest: None,
            options: CallOptions::default(),
        },
        &keep,
    )
    .unwrap();
    assert_eq!(out.version, Version::new(2, 9, 4));
}

#[test]
fn delete_by_template_and_xpath() {
    let mut cib = base();
    // Attribute values compare case-insensitively; absent objects succeed.
    run(
        &mut cib,
        CibOp::Delete {
            scope: Scope::section("resources"),
            input: Some(xml(r#"<primitive id="p2" type="DUMMY"/>"#)),
            options: CallOptions::default(),
        },
    )
    .unwrap();
    assert!(!compact(&cib).contains("p2"));
    let out = run(
        &mut cib,
        CibOp::Delete {
            scope: Scope::section("resources"),
            input: Some(xml(r#"<primitive id="p2"/>"#)),
            options: CallOptions::default(),
        },
    )
    .unwrap();
    assert!(!out.changed);
    // A template with a non-matching attribute deletes nothing.
    run(
        &mut cib,
        CibOp::Delete {
            scope: Scope::Whole,
            input: Some(xml(r#"<primitive id="p1" type="Other"/>"#)),
            options: CallOptions::default(),
        },
    )
    .unwrap();
    assert!(compact(&cib).contains(r#"id="p1""#));
    let mut cib = base();
    run(
        &mut cib,
        CibOp::Delete {
            scope: Scope::xpath("//nvpair | //primitive"),
            input: None,
            options: CallOptions {
                multiple: true,
                ..Default::default()
            },
        },
    )
    .unwrap();
    assert!(!compact(&cib).contains("nvpair") && !compact(&cib).contains("<primitive"));
    let err = run(
        &mut cib,
        CibOp::Delete {
            scope: Scope::xpath("/cib"),
            input: None,
            options: CallOptions::default(),
        },
    )
    .unwrap_err();
    assert!(matches!(err, CibError::InvalidArgument(_)));
}

#[test]
fn erase_and_bump_follow_the_version_rules() {
    let mut cib = base();
    let out = run(&mut cib, CibOp::Bump).unwrap();
    assert_eq!(out.version, Version::new(2, 8, 5), "bump: (a, e+1, n+1)");
    let out = run(&mut cib, CibOp::Erase).unwrap();
    assert_eq!(out.version, Version::new(3, 9, 0), "erase: (a+1, e+1, 0)");
    assert_eq!(
        compact(&cib),
        r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="9" num_updates="0" admin_epoch="3"><configuration><crm_config/><nodes/><resources/><constraints/></configuration><status/></cib>"#
    );
}

#[test]
fn sanity_and_feature_set_checks_refuse_atomically() {
    let mut cib = base();
    for (input, want) in [
        (r#"<cib admin_epoch="1"/>"#, "old"),
        (r#"<cib epoch="3"/>"#, "old"),
        (r#"<cib crm_feature_set="99.0"/>"#, "feature"),
    ] {
        let err = run(&mut cib, modify(Scope::Whole, input)).unwrap_err();
        match want {
            "old" => assert!(matches!(err, CibError::OldData { .. }), "{input}"),
            _ => assert_eq!(err.pacemaker_rc(), -93, "{input}"),
        }
        assert_eq!(cib, base(), "{input}: refused ops leave the CIB alone");
    }
    // Lowering num_updates alone is allowed.
    run(&mut cib, modify(Scope::Whole, r#"<cib num_updates="0"/>"#)).unwrap();
}

#[test]
fn configuration_changes_are_stamped() {
    let mut cib = base();
    let stamp = OpContext {
        user: Some("alice".into()),
        client_name: Some("cibadmin".into()),
        origin: Some("n1".into()),
        now: Some("Sun Dec  6 04:00:00 2026".into()),
        ..ctx()
    };
    execute(
        &mut cib,
        &modify(Scope::section("status"), r#"<node_state id="1" x="1"/>"#),
        &stamp,
    )
    .unwrap();
    assert!(
        cib.attr("cib-last-written").is_none(),
        "status changes are not stamped"
    );
    execute(
        &mut cib,
        &modify(Scope::Whole, r#"<node id="1" type="member"/>"#),
        &stamp,
    )
    .unwrap();
    assert_eq!(
        cib.attr("cib-last-written"),
        Some("Sun Dec  6 04:00:00 2026")
    );
    assert_eq!(cib.attr("update-origin"), Some("n1"));
    assert_eq!(cib.attr("update-client"), Some("cibadmin"));
    assert_eq!(cib.attr("update-user"), Some("alice"));
}

#[test]
fn transactions_are_all_or_nothing() {
    let mut cib = base();
    let ok = CibOp::Transaction(vec![
        modify(Scope::Whole, r#"<nvpair id="opts-a" value="2"/>"#),
        CibOp::Bump,
    ]);
    let out = run(&mut cib, ok).unwrap();
    assert_eq!(out.version, Version::new(2, 9, 1), "each operation bumps");
    let snapshot = cib.clone();
    let failing = CibOp::Transaction(vec![
        modify(Scope::Whole, r#"<nvpair id="opts-a" value="3"/>"#),
        modify(Scope::Whole, r#"<nvpair id="nope" value="3"/>"#),
    ]);
    assert!(matches!(
        run(&mut cib, failing),
        Err(CibError::NoSuchObject(_))
    ));
    assert_eq!(cib, snapshot);
    let nested = CibOp::Transaction(vec![CibOp::Transaction(vec![])]);
    assert!(matches!(
        run(&mut cib, nested),
        Err(CibError::InvalidArgument(_))
    ));
    // The patch module is wired in: a patch is applied, not refused.
    let out = run(
        &mut cib,
        CibOp::ApplyPatch {
            patch: xml("<diff format=\"2\"/>"),
        },
    );
    assert!(!matches!(out, Err(CibError::Unsupported(_))), "{out:?}");
}

#[test]
fn acl_groups_and_bypass() {
    let text = BASE.replace(
        "<constraints/>",
        r#"<constraints/><acls><acl_group id="ops"><role id="rw"/></acl_group><acl_role id="rw"><acl_permission id="rw-1" kind="write" xpath="/cib"/><acl_permission id="rw-2" kind="deny" object-type="nvpair" attribute="value"/></acl_role></acls>"#,
    )
    .replace(r#"<nvpair id="opts-a" name="a" value="1"/>"#, r#"<nvpair id="opts-a" name="enable-acl" value="true"/>"#);
    let cib = xml(&text);
    let as_user = |user: &str, groups: &[&str]| OpContext {
        user: Some(user.into()),
        check_acls: true,
        user_groups: groups.iter().map(|g| g.to_string()).collect(),
        ..ctx()
    };
    let q = query(Scope::Whole);
    // Not in the group: no ACLs at all, so nothing is readable.
    let err = execute(&mut cib.clone(), &q, &as_user("eve", &[])).unwrap_err();
    assert_eq!((err.pacemaker_rc(), err.exit_code()), (-13, 4));
    // In the group: everything but nvpairs with a value.
    let out = execute(&mut cib.clone(), &q, &as_user("eve", &["ops"])).unwrap();
    let text = compact(&out.output.unwrap());
    assert!(
        text.contains("<primitive id=\"p1\"") && !text.contains("<nvpair"),
        "{text}"
    );
    let w = modify(Scope::Whole, r#"<nvpair id="p1-ia-x" value="9"/>"#);
    assert!(matches!(
        execute(&mut cib.clone(), &w, &as_user("eve", &["ops"])),
        Err(CibError::PermissionDenied(_))
    ));
    // Privileged users and requests without ACL checking bypass.
    for c in [
        as_user("root", &[]),
        as_user("hacluster", &[]),
        OpContext {
            check_acls: false,
            ..as_user("eve", &[])
        },
    ] {
        execute(&mut cib.clone(), &w, &c).unwrap();
    }
}

#[test]
fn wire_decoding_is_total() {
    let op = modify(
        Scope::section("resources"),
        r#"<primitive id="p1" description="x"/>"#,
    );
    let text = wire::encode(&op, &ctx());
    let (decoded, _) = wire::decode(text.as_bytes()).unwrap();
    assert_eq!(decoded, op);
    // Every prefix of a valid request decodes or fails cleanly.
    for n in 0..text.len() {
        let _ = wire::decode(&text.as_bytes()[..n]);
    }
}
