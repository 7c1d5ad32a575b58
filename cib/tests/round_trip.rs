//! Every scheduler CIB of the corpus parses, and its canonical form is equal
//! to the original for the real `crm_diff` (exit 0).
//!
//! Three corpus files are not even equal to themselves for Pacemaker (sibling
//! elements without ids, or with repeated ids, confuse its matching, so
//! `crm_diff -o X -n X` exits 1). Our [`pacemaker_equal`] reproduces that;
//! for those files the check is that the real `crm_diff` prints the same
//! patch for X against canon(X) as for X against X.
// Tests drive the world (files, processes); the crate's sans-IO lints are for
// the library.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use phalanx_cib::patch::{DiffOptions, diff, pacemaker_equal, to_pretty_text};
use phalanx_cib::xml::{Escaping, Style, parse, to_string};

/// Files per `crm_diff` run: one process per batch keeps the test fast.
const BATCH: usize = 110;

#[test]
fn scheduler_cibs_round_trip_through_canonical_form() {
    let crm_diff = common::tool("crm_diff");
    let files = common::scheduler_files();
    assert_eq!(files.len(), 436, "scheduler corpus size");
    let scratch = common::scratch("round-trip");
    let (files, self_unequal): (Vec<_>, Vec<_>) = files.into_iter().partition(|p| {
        let doc = parse(&common::read(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        pacemaker_equal(&doc, &doc)
    });
    let mut quirky = 0;
    for path in &self_unequal {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let doc = parse(&common::read(path)).expect("parsed above");
        let canon_file = scratch.join(&name);
        std::fs::write(&canon_file, to_string(&doc, Style::Pretty, Escaping::Xml)).expect("write");
        let x = path.to_str().unwrap();
        let itself = common::run(&crm_diff, &["--original", x, "--new", x], None);
        let canon = common::run(
            &crm_diff,
            &["--original", x, "--new", canon_file.to_str().unwrap()],
            None,
        );
        assert_eq!(
            itself.status.code(),
            Some(1),
            "{name}: real crm_diff finds it equal to itself, we do not"
        );
        assert_eq!(canon.status.code(), Some(1), "{name}");
        assert_eq!(
            itself.stdout, canon.stdout,
            "{name}: X-vs-canon(X) differs from X-vs-X"
        );
        // With a modern feature set the real tool prints a v2 patch for X
        // against itself; ours must be the same bytes.
        let mut modern = doc.clone();
        modern.set_attr("crm_feature_set", "3.16.1");
        std::fs::write(
            &canon_file,
            to_string(&modern, Style::Pretty, Escaping::Xml),
        )
        .expect("write");
        let m = canon_file.to_str().unwrap();
        let real = common::run(&crm_diff, &["--original", m, "--new", m], None);
        let ours = diff(&modern, &modern, &DiffOptions::default()).expect("self-unequal");
        assert_eq!(
            String::from_utf8_lossy(&real.stdout),
            to_pretty_text(&ours),
            "{name}: v2 self-diff differs from the real one"
        );
        quirky += 1;
    }
    let mut equal = 0;
    for (batch_no, batch) in files.chunks(BATCH).enumerate() {
        // Wrap each file in an element with a distinct id, so that crm_diff
        // matches file to file.
        let mut original = String::from("<batch crm_feature_set=\"3.16.1\">");
        let mut canonical = original.clone();
        for path in batch {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let text = common::read(path);
            let doc = parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let canon = to_string(&doc, Style::Pretty, Escaping::Xml);
            // Our own view: canonical text parses back to the same tree.
            let reparsed = parse(&canon).unwrap_or_else(|e| panic!("{name} canonical: {e}"));
            assert_eq!(reparsed, doc, "{name}: canonical form does not parse back");
            assert!(
                pacemaker_equal(&doc, &reparsed),
                "{name}: not equal to its canonical form"
            );
            original.push_str(&format!("<file id=\"{name}\">{text}</file>"));
            canonical.push_str(&format!("<file id=\"{name}\">{canon}</file>"));
        }
        original.push_str("</batch>");
        canonical.push_str("</batch>");
        let a = scratch.join(format!("orig-{batch_no}.xml"));
        let b = scratch.join(format!("canon-{batch_no}.xml"));
        std::fs::write(&a, &original).expect("write");
        std::fs::write(&b, &canonical).expect("write");
        let out = common::run(
            &crm_diff,
            &[
                "--original",
                a.to_str().unwrap(),
                "--new",
                b.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "batch {batch_no}: real crm_diff sees a difference:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The oracle must be able to fail: the batch with one attribute
        // dropped is reported as different.
        let broken = canonical.replacen(" id=\"", " x-probe=\"1\" id=\"", 2);
        std::fs::write(&b, &broken).expect("write");
        let out = common::run(
            &crm_diff,
            &[
                "--original",
                a.to_str().unwrap(),
                "--new",
                b.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "batch {batch_no}: probe not detected"
        );
        equal += batch.len();
    }
    let _ = std::fs::remove_dir_all(&scratch);
    eprintln!(
        "round trip: {equal} equal for the real crm_diff (exit 0), {quirky} unequal to themselves in Pacemaker with identical X-vs-X and X-vs-canon(X) patches"
    );
    assert_eq!(equal + quirky, 436);
}
