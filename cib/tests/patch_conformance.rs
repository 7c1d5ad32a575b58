//! v2 patchsets against the real `crm_diff` of Pacemaker 2.1.5: byte-exact
//! diffs on the recorded vectors, our application of the real patches, and
//! the real tool's application of ours (with `crm_diff` itself as the
//! equality oracle).
// Tests drive the world (files, processes); the crate's sans-IO lints are for
// the library.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::path::{Path, PathBuf};

use phalanx_cib::patch::{
    ApplyOptions, DiffOptions, PatchError, apply, diff, pacemaker_equal, to_pretty_text,
};
use phalanx_cib::xml::{Element, parse};

fn load(path: &Path) -> Element {
    parse(&common::read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn pairs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(common::corpus().join("pairs-sample"))
        .expect("pairs-sample")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 40, "pairs-sample size");
    dirs
}

fn meta_says(dir: &Path, key_value: &str) -> bool {
    common::read(&dir.join("meta.json")).contains(key_value)
}

const PLAIN: DiffOptions = DiffOptions {
    cib: false,
    no_version: false,
};
const CIB: DiffOptions = DiffOptions {
    cib: true,
    no_version: false,
};

#[test]
fn upstream_cli_vectors_match_real_2_1_5() {
    let cli = common::corpus().join("upstream-cli");
    let real = cli.join("real-2.1.5");
    let old = load(&cli.join("crm_diff_old.xml"));
    let new = load(&cli.join("crm_diff_new.xml"));

    for (options, file) in [
        (PLAIN, "patchset.xml"),
        (CIB, "patchset-cib.xml"),
        (
            DiffOptions {
                cib: false,
                no_version: true,
            },
            "patchset-no-version.xml",
        ),
    ] {
        let ours = diff(&old, &new, &options).expect("vectors differ");
        assert_eq!(
            to_pretty_text(&ours),
            common::read(&real.join(file)),
            "diff {options:?} differs from real {file}"
        );
    }

    let plain = ApplyOptions::default();
    for (patch, expected) in [
        ("real-2.1.5/patchset.xml", "applied-own-patchset.xml"),
        ("crm_diff_patchset.xml", "applied-upstream-patchset.xml"),
    ] {
        let result = apply(&old, &load(&cli.join(patch)), &plain).expect("applies");
        assert_eq!(result, load(&real.join(expected)), "apply {patch}");
    }
    // Real exit codes: own result equals new (0), upstream's does not (1).
    assert!(pacemaker_equal(
        &load(&real.join("applied-own-patchset.xml")),
        &new
    ));
    assert!(!pacemaker_equal(
        &load(&real.join("applied-upstream-patchset.xml")),
        &new
    ));
    // Both --cib patchsets fail on their digest in 2.1.5 (attribute moves are
    // not in a --cib patch, so the result's digest differs).
    for patch in ["real-2.1.5/patchset-cib.xml", "crm_diff_patchset_cib.xml"] {
        let err = apply(&old, &load(&cli.join(patch)), &plain).expect_err(patch);
        assert!(
            matches!(err, PatchError::DigestMismatch { .. }),
            "{patch}: {err}"
        );
    }
}

#[test]
fn pairs_diff_is_byte_identical_to_real_crm_diff() {
    let mut plain_equal = 0;
    let mut cib_equal = 0;
    let mut cib_total = 0;
    for dir in pairs() {
        let a = load(&dir.join("A.xml"));
        let b = load(&dir.join("B.xml"));
        let ours = diff(&a, &b, &PLAIN);
        if meta_says(&dir, "\"no_change\": true") {
            assert!(ours.is_none(), "{}: expected no difference", dir.display());
            assert!(pacemaker_equal(&a, &b));
            plain_equal += 1;
            continue;
        }
        let ours = ours.unwrap_or_else(|| panic!("{}: expected a difference", dir.display()));
        assert_eq!(
            to_pretty_text(&ours),
            common::read(&dir.join("patch.xml")),
            "{}: plain diff",
            dir.display()
        );
        plain_equal += 1;
        let cib_patch = dir.join("patch-cib.xml");
        if cib_patch.exists() {
            cib_total += 1;
            let ours = diff(&a, &b, &CIB).expect("--cib diff");
            assert_eq!(
                to_pretty_text(&ours),
                common::read(&cib_patch),
                "{}: --cib diff",
                dir.display()
            );
            cib_equal += 1;
        }
    }
    eprintln!("pairs: plain diff byte-identical {plain_equal}/40, --cib {cib_equal}/{cib_total}");
}

#[test]
fn pairs_real_patches_apply_to_b() {
    let crm_diff = common::tool("crm_diff");
    let mut ok = 0;
    let mut cib_ok = 0;
    let mut old_data = 0;
    for dir in pairs() {
        let a = load(&dir.join("A.xml"));
        let b = load(&dir.join("B.xml"));
        let patch = dir.join("patch.xml");
        if !patch.exists() {
            continue;
        }
        let result = apply(&a, &load(&patch), &ApplyOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert!(
            pacemaker_equal(&result, &b),
            "{}: result differs from B",
            dir.display()
        );
        assert_eq!(
            result,
            load(&dir.join("result.xml")),
            "{}: result.xml",
            dir.display()
        );
        ok += 1;

        let cib_patch = dir.join("patch-cib.xml");
        if cib_patch.exists() {
            // meta.json records the real `crm_diff -p` of the --cib patch
            // (digest verified, no version check).
            let outcome = apply(&a, &load(&cib_patch), &ApplyOptions::default());
            if meta_says(&dir, "\"real_cib_patch_rc\": 0") {
                let result =
                    outcome.unwrap_or_else(|e| panic!("{}: --cib apply: {e}", dir.display()));
                assert!(
                    pacemaker_equal(&result, &b),
                    "{}: --cib result",
                    dir.display()
                );
            } else {
                assert!(
                    outcome.is_err(),
                    "{}: real --cib apply failed, ours did not",
                    dir.display()
                );
            }
            // With the version check, compare with the real `crm_diff --cib -p`.
            let real = common::run(
                &crm_diff,
                &[
                    "--cib",
                    "--original",
                    dir.join("A.xml").to_str().unwrap(),
                    "--patch",
                    cib_patch.to_str().unwrap(),
                ],
                None,
            );
            let checked = apply(
                &a,
                &load(&cib_patch),
                &ApplyOptions {
                    check_versions: true,
                },
            );
            match (real.status.code(), &checked) {
                (Some(0), Ok(result)) => assert!(pacemaker_equal(result, &b)),
                // 103: "Update was older than existing configuration".
                (Some(103), Err(PatchError::OldData(_))) => old_data += 1,
                (code, outcome) => panic!(
                    "{}: real crm_diff --cib -p exited {code:?}, ours gave {outcome:?}",
                    dir.display()
                ),
            }
            cib_ok += 1;
        }
    }
    eprintln!(
        "real patch -> our apply: {ok} plain, {cib_ok} --cib (of which {old_data} old_data with the version check, as the real tool)"
    );
    assert_eq!(ok, 38);
}

#[test]
fn pairs_our_patches_are_applied_by_real_crm_diff() {
    let crm_diff = common::tool("crm_diff");
    let scratch = common::scratch("ours-to-real");
    let mut ok = 0;
    for dir in pairs() {
        let a = load(&dir.join("A.xml"));
        let b = load(&dir.join("B.xml"));
        let Some(ours) = diff(&a, &b, &PLAIN) else {
            continue;
        };
        let patch_file = scratch.join("patch.xml");
        std::fs::write(&patch_file, to_pretty_text(&ours)).expect("write patch");
        let a_path = dir.join("A.xml");
        let out = common::run(
            &crm_diff,
            &[
                "--original",
                a_path.to_str().unwrap(),
                "--patch",
                patch_file.to_str().unwrap(),
            ],
            None,
        );
        assert!(
            out.status.success(),
            "{}: real crm_diff refused our patch: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let result_file = scratch.join("result.xml");
        std::fs::write(&result_file, &out.stdout).expect("write result");
        let b_path = dir.join("B.xml");
        let cmp = common::run(
            &crm_diff,
            &[
                "--original",
                result_file.to_str().unwrap(),
                "--new",
                b_path.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(
            cmp.status.code(),
            Some(0),
            "{}: real apply of our patch differs from B:\n{}",
            dir.display(),
            String::from_utf8_lossy(&cmp.stdout)
        );
        ok += 1;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    eprintln!("our patch -> real apply: {ok}/38 equal to B");
    assert_eq!(ok, 38);
}
