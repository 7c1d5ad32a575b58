//! Cross-checks against the reference document itself: the §3.2 compatibility matrix,
//! the QUECVT list and the §3.6 value-block table are parsed from
//! `reference/ha-services.md` (in `shared/` beside the checkout, or under
//! `PHALANX_SHARED_DIR`) and compared with the engine's functions. The test fails,
//! not skips, when the reference is missing.

use std::path::{Path, PathBuf};

use phalanx_dlm::{LvbTransfer, Mode, lvb_transfer};

fn reference() -> String {
    let shared = std::env::var_os("PHALANX_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let path = shared.join("reference/ha-services.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reference not found at {} ({e}); set PHALANX_SHARED_DIR",
            path.display()
        )
    })
}

/// The rows of the first markdown table after `heading`, as cells (header and
/// separator rows dropped).
fn table_after(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

fn mode(name: &str) -> Mode {
    *Mode::ALL
        .iter()
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("unknown mode {name:?}"))
}

#[test]
fn compatibility_matrix_equals_the_reference_table() {
    let doc = reference();
    let rows = table_after(&doc, "### 3.2 Compatibility matrix");
    assert_eq!(rows.len(), 6);
    for row in rows {
        let granted = mode(&row[0]);
        for (requested, cell) in Mode::ALL.into_iter().zip(&row[1..]) {
            assert_eq!(
                granted.is_compatible(requested),
                cell == "1",
                "{granted}/{requested}"
            );
        }
    }
}

#[test]
fn quecvt_list_equals_the_reference_sentence() {
    let doc = reference();
    let start = doc
        .find("QUECVT is only valid for these up-conversions")
        .expect("sentence");
    let sentence = &doc[start..start + doc[start..].find("\n\n").expect("paragraph end")];
    let list = &sentence[sentence.find("):").expect("list") + 2..];
    let mut listed = Vec::new();
    for item in list.split(';') {
        let item = item.trim().trim_end_matches('.');
        let (from, to) = item.split_once('→').expect("arrow");
        let targets = to.trim_matches(|c| c == '{' || c == '}');
        for t in targets.split(',') {
            listed.push((mode(from.trim()), mode(t.trim())));
        }
    }
    assert_eq!(listed.len(), 16);
    for from in Mode::ALL {
        for to in Mode::ALL {
            assert_eq!(
                from.quecvt_allowed(to),
                listed.contains(&(from, to)),
                "{from}->{to}"
            );
        }
    }
}

#[test]
fn lvb_transfer_equals_the_reference_table() {
    let doc = reference();
    let rows = table_after(&doc, "### 3.6 Lock value blocks");
    assert_eq!(rows.len(), 7);
    for row in rows {
        let held = match row[0].as_str() {
            "UN (new)" => None,
            name => Some(mode(name)),
        };
        for (granted, cell) in Mode::ALL.into_iter().zip(&row[1..]) {
            let expected = match cell.as_str() {
                "R" => LvbTransfer::Read,
                "W" => LvbTransfer::Write,
                "–" => LvbTransfer::None,
                other => panic!("unexpected cell {other:?}"),
            };
            assert_eq!(
                lvb_transfer(held, granted),
                expected,
                "{held:?} -> {granted}"
            );
        }
    }
}
