//! Patch application is total: any patch XML applied to a CIB gives a CIB or
//! a typed error, never a panic; and diffs of the result apply cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx_cib::patch::{ApplyOptions, DiffOptions, apply, diff};
use phalanx_cib::xml::{Escaping, ParseLimits, Style, parse_with_limits, to_string};

const BASE: &str = "<cib admin_epoch=\"0\" epoch=\"3\" num_updates=\"1\" crm_feature_set=\"3.16.1\">\
<configuration><crm_config><cluster_property_set id=\"o\"><nvpair id=\"n1\" name=\"a\" value=\"1\"/>\
</cluster_property_set></crm_config><nodes><node id=\"1\" uname=\"n1\"/><!--c--></nodes>\
<resources><primitive id=\"p\" class=\"ocf\" type=\"Dummy\"/><group id=\"g\"><primitive id=\"q\"/></group></resources>\
<constraints/></configuration><status/></cib>";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = ParseLimits {
        max_depth: 64,
        ..ParseLimits::default()
    };
    // "DOC\0PATCH" fuzzes both; otherwise the input is a patch for BASE.
    let (doc_text, patch_text) = match text.split_once('\0') {
        Some((d, p)) => (d, p),
        None => (BASE, text),
    };
    let (Ok(doc), Ok(patch)) = (
        parse_with_limits(doc_text, &limits),
        parse_with_limits(patch_text, &limits),
    ) else {
        return;
    };
    for check_versions in [false, true] {
        if let Ok(result) = apply(&doc, &patch, &ApplyOptions { check_versions }) {
            let out = to_string(&result, Style::Pretty, Escaping::Xml);
            assert_eq!(
                parse_with_limits(&out, &ParseLimits::default()).ok(),
                Some(result.clone())
            );
            let _ = diff(&doc, &result, &DiffOptions::default());
        }
    }
});
