//! CIB schema validation with Pacemaker's own RelaxNG schemas (Debian's
//! `pacemaker-common`, `/usr/share/pacemaker`), through libxml2 as Pacemaker does:
//!
//! - offline, `phalanx-cibadmin` on a file gives the exit status the real
//!   `cibadmin` 2.1.5 gives for the same change on a copy of the same corpus CIB —
//!   valid changes applied, invalid ones (an element the schema does not allow, a
//!   primitive without its class, an unknown `validate-with`) refused with 78
//!   (`CRM_EX_CONFIG`) and the file left as it was;
//! - replicated, on two `phalanxd` nodes with `cib { schemas: ... }`, an invalid
//!   change is refused with 78 and changes neither node's copy, a valid one is
//!   applied on both.

mod common;

use common::conf::{TestDir, corosync_conf, loopback_addrs, one_link};
use common::recorder::{admin_tool, start_quorate};
use std::path::{Path, PathBuf};
use std::process::Command;

const SCHEMAS: &str = "/usr/share/pacemaker";

fn corpus_file(name: &str) -> PathBuf {
    let shared = std::env::var_os("PHALANX_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let p = shared.join("cib-corpus/scheduler").join(name);
    assert!(
        p.is_file(),
        "{} missing (shared/ must sit beside the checkout)",
        p.display()
    );
    p
}

fn real_cibadmin() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin"] {
        let p = Path::new(dir).join("cibadmin");
        if p.is_file() {
            return p;
        }
    }
    panic!("the real cibadmin is required (apt-get install pacemaker-cli-utils)");
}

/// `CIB_file=file program args`: exit status and stderr.
fn on_file(program: &Path, file: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(program)
        .env("CIB_file", file)
        .env("PCMK_schema_directory", SCHEMAS)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

/// The changes tried, with whether the schema allows them.
const CASES: &[(&str, &[&str], bool)] = &[
    (
        "a Dummy primitive",
        &[
            "-C",
            "-o",
            "resources",
            "-X",
            r#"<primitive id="schema-d1" class="ocf" provider="pacemaker" type="Dummy"/>"#,
        ],
        true,
    ),
    (
        "a cluster property",
        &[
            "-C",
            "-o",
            "crm_config",
            "-X",
            r#"<cluster_property_set id="schema-cps"><nvpair id="schema-nv" name="x" value="1"/></cluster_property_set>"#,
        ],
        true,
    ),
    (
        "a primitive without class and type",
        &[
            "-C",
            "-o",
            "resources",
            "-X",
            r#"<primitive id="schema-d2"/>"#,
        ],
        false,
    ),
    (
        "an element the schema does not know",
        &[
            "-C",
            "-o",
            "resources",
            "-X",
            r#"<frobnicator id="schema-f"/>"#,
        ],
        false,
    ),
    (
        "a location constraint without rsc",
        &[
            "-C",
            "-o",
            "constraints",
            "-X",
            r#"<rsc_location id="schema-l" node="n1" score="10"/>"#,
        ],
        false,
    ),
    (
        "an unknown validate-with",
        &["-M", "-X", r#"<cib validate-with="pacemaker-99.0"/>"#],
        false,
    ),
];

#[test]
fn offline_changes_are_validated_as_the_real_cibadmin_validates_them() {
    let dir = TestDir::new("cib-schema-offline");
    let ours = Path::new(env!("CARGO_BIN_EXE_phalanx-cibadmin"));
    let real = real_cibadmin();
    let mut compared = 0;
    for file in [
        "asymmetric.xml",
        "6-migrate-group.xml",
        "bundle-interleave-start.xml",
    ] {
        for (what, args, valid) in CASES {
            let theirs_file = dir.path.join("theirs.xml");
            let ours_file = dir.path.join("ours.xml");
            std::fs::copy(corpus_file(file), &theirs_file).unwrap();
            std::fs::copy(corpus_file(file), &ours_file).unwrap();
            let before = std::fs::read(&ours_file).unwrap();
            let (their_code, their_err) = on_file(&real, &theirs_file, args);
            let (our_code, our_err) = on_file(ours, &ours_file, args);
            assert_eq!(
                our_code, their_code,
                "{file}, {what}: ours exited {our_code} ({our_err}), cibadmin {their_code} ({their_err})"
            );
            assert_eq!(
                our_code == 0,
                *valid,
                "{file}, {what}: expected {}",
                if *valid { "acceptance" } else { "refusal" }
            );
            if !valid {
                assert_eq!(our_code, 78, "{file}, {what}: {our_err}");
                assert_eq!(
                    std::fs::read(&ours_file).unwrap(),
                    before,
                    "{file}, {what}: file changed"
                );
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 3 * CASES.len());
}

#[test]
fn a_replicated_cib_refuses_invalid_changes_on_every_node() {
    let dir = TestDir::new("cib-schema-cluster");
    let addrs = loopback_addrs(2);
    let conf = dir.write_conf(&corosync_conf(
        &dir,
        "schema",
        "",
        &one_link(&addrs),
        &format!(
            "quorum {{\n    provider: corosync_votequorum\n    two_node: 1\n}}\n\
             cib {{\n    schemas: {SCHEMAS}\n}}\n"
        ),
    ));
    let (_cluster, _log) = start_quorate(&conf, 2, None);
    let cibadmin = |node: u32, args: &[&str]| {
        admin_tool(
            env!("CARGO_BIN_EXE_phalanx-cibadmin"),
            &dir.admin_socket(node),
            args,
        )
    };
    let query = |node: u32| {
        let (code, text) = cibadmin(node, &["-Q", "-o", "resources"]);
        assert_eq!(code, 0, "node {node}: {text}");
        text
    };
    for (what, args, valid) in CASES.iter().filter(|(_, a, _)| a.contains(&"resources")) {
        let before = (query(1), query(2));
        let (code, text) = cibadmin(1, args);
        if *valid {
            assert_eq!(code, 0, "{what}: {text}");
        } else {
            assert_eq!(code, 78, "{what}: {text}");
            assert!(text.contains("validate"), "{what}: {text}");
            assert_eq!((query(1), query(2)), before, "{what} changed a copy");
        }
    }
    // The valid primitive is on both nodes: an applied change is answered once
    // its node applied it; node 2 applies it when totem delivers it there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !query(2).contains("schema-d1") {
        assert!(
            std::time::Instant::now() < deadline,
            "node 2 never got the primitive"
        );
    }
    assert!(query(1).contains("schema-d1"));
    assert!(!query(1).contains("schema-d2") && !query(2).contains("frobnicator"));
}
