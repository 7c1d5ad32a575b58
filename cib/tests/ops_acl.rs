//! ACLs against the real `cibadmin` 2.1.5: with `CIB_file` and `CIB_user`,
//! cibadmin applies a user's ACLs offline, which makes it an oracle for the
//! users and permissions of Pacemaker's `regression.acls` test (rebuilt here
//! from its documented roles): every user runs every request, and the exit
//! status and the resulting CIB (or query output) must match ours.
// Tests drive the world (files, processes); the crate's sans-IO lints are for
// the library.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::process::Command;

use phalanx_cib::ops::{CallOptions, CibOp, OpContext, Scope, execute};
use phalanx_cib::xml::{Element, Escaping, Style, parse, to_string};

/// The CIB of the ACL cases: a resource with meta attributes, cluster
/// options, and the `regression.acls` users and roles.
const ACL_CIB: &str = r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="5" num_updates="3" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-enable-acl" name="enable-acl" value="true"/>
        <nvpair id="cib-bootstrap-options-fencing-enabled" name="fencing-enabled" value="false"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="node1"/>
    </nodes>
    <resources>
      <primitive id="dummy" class="ocf" provider="pacemaker" type="Dummy">
        <meta_attributes id="dummy-meta">
          <nvpair id="dummy-meta-target-role" name="target-role" value="Started"/>
        </meta_attributes>
      </primitive>
      <primitive id="dummy2" class="ocf" provider="pacemaker" type="Dummy"/>
    </resources>
    <constraints/>
    <acls>
      <acl_target id="l33t-haxor">
        <role id="auto-l33t-haxor"/>
      </acl_target>
      <acl_role id="auto-l33t-haxor">
        <acl_permission id="crook-nothing" kind="deny" xpath="/cib"/>
      </acl_role>
      <acl_target id="niceguy">
        <role id="observer"/>
      </acl_target>
      <acl_role id="observer">
        <acl_permission id="observer-read-1" kind="read" xpath="/cib"/>
        <acl_permission id="observer-write-1" kind="write" xpath="//nvpair[@name='fencing-enabled']"/>
        <acl_permission id="observer-write-2" kind="write" xpath="//nvpair[@name='target-role']"/>
      </acl_role>
      <acl_target id="bob">
        <role id="admin"/>
      </acl_target>
      <acl_role id="admin">
        <acl_permission id="admin-read-1" kind="read" xpath="/cib"/>
        <acl_permission id="admin-write-1" kind="write" xpath="//resources"/>
      </acl_role>
      <acl_target id="badidea">
        <role id="auto-badidea"/>
      </acl_target>
      <acl_role id="auto-badidea">
        <acl_permission id="badidea-resources" kind="read" xpath="//meta_attributes"/>
      </acl_role>
      <acl_target id="betteridea">
        <role id="auto-betteridea"/>
      </acl_target>
      <acl_role id="auto-betteridea">
        <acl_permission id="betteridea-nothing" kind="deny" xpath="/cib"/>
        <acl_permission id="betteridea-resources" kind="read" xpath="//meta_attributes"/>
      </acl_role>
      <acl_target id="carol">
        <role id="carol-role"/>
      </acl_target>
      <acl_role id="carol-role">
        <acl_permission id="carol-read" kind="read" xpath="/cib"/>
        <acl_permission id="carol-write" kind="write" object-type="primitive"/>
        <acl_permission id="carol-deny" kind="deny" reference="dummy-meta"/>
      </acl_role>
      <acl_target id="dave">
        <role id="dave-role"/>
      </acl_target>
      <acl_role id="dave-role">
        <acl_permission id="dave-read" kind="read" xpath="/cib"/>
        <acl_permission id="dave-deny" kind="deny" object-type="nvpair" attribute="value"/>
        <acl_permission id="dave-write" kind="write" object-type="primitive" attribute="type"/>
      </acl_role>
    </acls>
  </configuration>
  <status/>
</cib>
"#;

const USERS: &[&str] = &[
    "l33t-haxor",
    "niceguy",
    "bob",
    "badidea",
    "betteridea",
    "carol",
    "dave",
    "mike",
    "root",
    "hacluster",
];

struct Case {
    name: &'static str,
    args: Vec<&'static str>,
    input: Option<&'static str>,
    op: CibOp,
}

fn xml(t: &str) -> Element {
    parse(t).expect("test XML")
}

fn cases() -> Vec<Case> {
    let o = CallOptions::default;
    let modify = |scope: Scope, input: &'static str| CibOp::Modify {
        scope,
        input: xml(input),
        options: o(),
    };
    let target_role = r#"<nvpair id="dummy-meta-target-role" name="target-role" value="Stopped"/>"#;
    let fencing = r#"<nvpair id="cib-bootstrap-options-fencing-enabled" value="true"/>"#;
    let new_prim = r#"<primitive id="dummy3" class="ocf" provider="pacemaker" type="Dummy"/>"#;
    let is_managed = r#"<primitive id="dummy"><meta_attributes id="dummy-meta"><nvpair id="dummy-meta-is-managed" name="is-managed" value="false"/></meta_attributes></primitive>"#;
    let new_meta = r#"<primitive id="dummy2"><meta_attributes id="dummy2-meta"><nvpair id="dummy2-meta-t" name="target-role" value="Stopped"/></meta_attributes></primitive>"#;
    let loc = r#"<rsc_location id="loc1" rsc="dummy" node="node1" score="100"/>"#;
    let repl = r#"<primitive id="dummy2" class="ocf" provider="heartbeat" type="Dummy"/>"#;
    let q = |scope: Scope| CibOp::Query {
        scope,
        options: o(),
    };
    vec![
        Case {
            name: "query",
            args: vec!["-Q"],
            input: None,
            op: q(Scope::Whole),
        },
        Case {
            name: "query resources",
            args: vec!["-Q", "-o", "resources"],
            input: None,
            op: q(Scope::section("resources")),
        },
        Case {
            name: "query xpath nvpairs",
            args: vec!["-Q", "-A", "//nvpair"],
            input: None,
            op: q(Scope::xpath("//nvpair")),
        },
        Case {
            name: "modify target-role",
            args: vec!["-M", "-x", "@INPUT"],
            input: Some(target_role),
            op: modify(Scope::Whole, target_role),
        },
        Case {
            name: "modify fencing-enabled",
            args: vec!["-M", "-o", "crm_config", "-x", "@INPUT"],
            input: Some(fencing),
            op: modify(Scope::section("crm_config"), fencing),
        },
        Case {
            name: "create primitive",
            args: vec!["-C", "-o", "resources", "-x", "@INPUT"],
            input: Some(new_prim),
            op: CibOp::Create {
                scope: Scope::section("resources"),
                input: xml(new_prim),
                options: o(),
            },
        },
        Case {
            name: "create constraint",
            args: vec!["-C", "-o", "constraints", "-x", "@INPUT"],
            input: Some(loc),
            op: CibOp::Create {
                scope: Scope::section("constraints"),
                input: xml(loc),
                options: o(),
            },
        },
        Case {
            name: "modify adds nvpair in existing meta",
            args: vec!["-M", "-o", "resources", "-x", "@INPUT"],
            input: Some(is_managed),
            op: modify(Scope::section("resources"), is_managed),
        },
        Case {
            name: "modify adds new meta block",
            args: vec!["-M", "-o", "resources", "-x", "@INPUT"],
            input: Some(new_meta),
            op: modify(Scope::section("resources"), new_meta),
        },
        Case {
            name: "delete primitive",
            args: vec!["-D", "-o", "resources", "-x", "@INPUT"],
            input: Some(r#"<primitive id="dummy2"/>"#),
            op: CibOp::Delete {
                scope: Scope::section("resources"),
                input: Some(xml(r#"<primitive id="dummy2"/>"#)),
                options: o(),
            },
        },
        Case {
            name: "replace primitive",
            args: vec!["-R", "-o", "resources", "-x", "@INPUT"],
            input: Some(repl),
            op: CibOp::Replace {
                scope: Scope::section("resources"),
                input: xml(repl),
                digest: None,
                options: o(),
            },
        },
        Case {
            name: "delete xpath target-role",
            args: vec!["-D", "-A", "//nvpair[@name='target-role']"],
            input: None,
            op: CibOp::Delete {
                scope: Scope::xpath("//nvpair[@name='target-role']"),
                input: None,
                options: o(),
            },
        },
        Case {
            name: "bump",
            args: vec!["-B"],
            input: None,
            op: CibOp::Bump,
        },
        Case {
            name: "erase",
            args: vec!["-E", "--force"],
            input: None,
            op: CibOp::Erase,
        },
    ]
}

fn canon(e: &Element) -> String {
    to_string(e, Style::Pretty, Escaping::Xml)
}

#[test]
fn acl_decisions_match_cibadmin_for_every_user_and_request() {
    let cibadmin = common::tool("cibadmin");
    let dir = common::scratch("ops-acl");
    let doc = xml(ACL_CIB);
    let (mut passed, mut denied) = (0, 0);
    let mut failures = Vec::new();
    for user in USERS {
        for c in cases() {
            let file = dir.join("cib.xml");
            std::fs::write(&file, ACL_CIB).expect("write CIB");
            let input = dir.join("input.xml");
            if let Some(t) = c.input {
                std::fs::write(&input, t).expect("write input");
            }
            let input_path = input.to_string_lossy().to_string();
            let args: Vec<&str> = c
                .args
                .iter()
                .map(|a| {
                    if *a == "@INPUT" {
                        input_path.as_str()
                    } else {
                        a
                    }
                })
                .collect();
            let out = Command::new(&cibadmin)
                .args(&args)
                .env("CIB_file", &file)
                .env("CIB_user", user)
                .output()
                .expect("run cibadmin");
            let real_code = out.status.code().unwrap_or(-1);
            let real_result = std::fs::read_to_string(&file).expect("read result");

            let mut ours = doc.clone();
            let ctx = OpContext {
                user: Some(user.to_string()),
                check_acls: true,
                ..OpContext::default()
            };
            let outcome = execute(&mut ours, &c.op, &ctx);
            let label = format!("{user} / {}", c.name);
            let verdict: Result<(), String> = match &outcome {
                Err(e) => {
                    if i32::from(e.exit_code()) != real_code {
                        Err(format!(
                            "we fail ({e}, exit {}), cibadmin exits {real_code}",
                            e.exit_code()
                        ))
                    } else if ours != doc {
                        Err("CIB changed on failure".into())
                    } else {
                        denied += 1;
                        Ok(())
                    }
                }
                Ok(o) => {
                    if real_code != 0 {
                        Err(format!("we succeed, cibadmin exits {real_code}"))
                    } else {
                        let real_cib = xml(&real_result);
                        if canon(&real_cib) != canon(&ours) {
                            Err(format!(
                                "results differ\n--- cibadmin\n{}\n--- ours\n{}",
                                canon(&real_cib),
                                canon(&ours)
                            ))
                        } else if let (CibOp::Query { .. }, Some(output)) = (&c.op, &o.output) {
                            let real_out = xml(&String::from_utf8_lossy(&out.stdout));
                            if canon(&real_out) == canon(output) {
                                Ok(())
                            } else {
                                Err(format!(
                                    "query output differs\n--- cibadmin\n{}\n--- ours\n{}",
                                    canon(&real_out),
                                    canon(output)
                                ))
                            }
                        } else {
                            Ok(())
                        }
                    }
                }
            };
            match verdict {
                Ok(()) => passed += 1,
                Err(why) => failures.push(format!("{label}: {why}")),
            }
        }
    }
    eprintln!("ACL conformance: {passed} user/request cases equal to cibadmin ({denied} refused)");
    assert!(
        failures.is_empty(),
        "{} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(denied > 20, "the matrix must exercise refusals: {denied}");
}
