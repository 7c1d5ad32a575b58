//! The CIB XML parser is total and bounded: any bytes give a tree or a typed
//! error, and a tree survives its own serialisation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx_cib::xml::{Escaping, ParseLimits, Style, parse_with_limits, to_string};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = ParseLimits {
        max_depth: 64,
        ..ParseLimits::default()
    };
    let Ok(doc) = parse_with_limits(text, &limits) else {
        return;
    };
    // Lossless escaping: both layouts parse back to the same tree.
    for style in [Style::Compact, Style::Pretty] {
        let out = to_string(&doc, style, Escaping::Xml);
        let again = parse_with_limits(&out, &limits).expect("our own output parses");
        assert_eq!(again, doc);
    }
    let _ = to_string(&doc, Style::Pretty, Escaping::Pacemaker);
    let _ = phalanx_cib::digest::on_disk_digest(&doc);
    let _ = phalanx_cib::digest::cib_digest(&doc);
    let _ = phalanx_cib::patch::diff(&doc, &doc, &Default::default());
});
