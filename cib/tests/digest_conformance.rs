//! Our digests against the real `cibadmin --md5-sum` / `--md5-sum-versioned`
//! (Pacemaker 2.1.5) on every scheduler CIB of the corpus.
// Tests drive the world (files, processes); the crate's sans-IO lints are for
// the library.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use phalanx_cib::digest::{on_disk_digest, versioned_digest};
use phalanx_cib::xml::{Escaping, Style, parse, to_string};

#[test]
fn digests_equal_pacemakers_on_every_scheduler_cib() {
    let cibadmin = common::tool("cibadmin");
    let files = common::scheduler_files();
    assert_eq!(files.len(), 436, "scheduler corpus size");
    let mut on_disk_equal = 0;
    let mut versioned_equal = 0;
    let mut mismatches = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let doc = parse(&common::read(path)).unwrap_or_else(|e| panic!("{name}: {e}"));

        let real = common::run(
            &cibadmin,
            &["--md5-sum", "--xml-file", path.to_str().unwrap()],
            None,
        );
        assert!(real.status.success(), "{name}: cibadmin --md5-sum failed");
        let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
        if real == on_disk_digest(&doc) {
            on_disk_equal += 1;
        } else {
            mismatches.push(format!(
                "{name}: on-disk ours {} real {real}",
                on_disk_digest(&doc)
            ));
        }

        // The versioned (filtered) digest needs a modern feature set; give the
        // files that lack one 3.16.1 and feed Pacemaker our own serialisation.
        let mut modern = doc.clone();
        if modern.attr("crm_feature_set").is_none() {
            modern.set_attr("crm_feature_set", "3.16.1");
        }
        let text = to_string(&modern, Style::Compact, Escaping::Xml);
        let real = common::run(
            &cibadmin,
            &["--md5-sum-versioned", "--xml-pipe"],
            Some(&text),
        );
        assert!(
            real.status.success(),
            "{name}: cibadmin --md5-sum-versioned failed"
        );
        let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
        let ours = versioned_digest(&modern, modern.attr("crm_feature_set"));
        if real == ours {
            versioned_equal += 1;
        } else {
            mismatches.push(format!("{name}: versioned ours {ours} real {real}"));
        }
    }
    eprintln!(
        "digests equal: on-disk {on_disk_equal}/{n}, versioned {versioned_equal}/{n}",
        n = files.len()
    );
    assert!(
        mismatches.is_empty(),
        "digest mismatches:\n{}",
        mismatches.join("\n")
    );
}
