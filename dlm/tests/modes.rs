//! §3.1/§3.2 tables: the compatibility matrix and QUECVT validity, written out cell by
//! cell as the reference prints them.

use phalanx_dlm::{Conversion, Mode};

use Mode::{Cr, Cw, Ex, Nl, Pr, Pw};

/// Row = granted, column = requested, 1 = compatible (§3.2).
const MATRIX: [(Mode, [u8; 6]); 6] = [
    (Nl, [1, 1, 1, 1, 1, 1]),
    (Cr, [1, 1, 1, 1, 1, 0]),
    (Cw, [1, 1, 1, 0, 0, 0]),
    (Pr, [1, 1, 0, 1, 0, 0]),
    (Pw, [1, 1, 0, 0, 0, 0]),
    (Ex, [1, 0, 0, 0, 0, 0]),
];

#[test]
fn compatibility_matrix_matches_every_cell_of_the_reference() {
    let mut checked = 0;
    for (granted, row) in MATRIX {
        for (requested, cell) in Mode::ALL.into_iter().zip(row) {
            assert_eq!(
                granted.is_compatible(requested),
                cell == 1,
                "{granted} granted vs {requested} requested"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 36);
}

/// The up-conversions QUECVT is valid for (§3.2, last paragraph).
const QUECVT_UP: [(Mode, &[Mode]); 6] = [
    (Nl, &[Cr, Cw, Pr, Pw, Ex]),
    (Cr, &[Cw, Pr, Pw, Ex]),
    (Cw, &[Pr, Pw, Ex]),
    (Pr, &[Cw, Pw, Ex]),
    (Pw, &[Ex]),
    (Ex, &[]),
];

#[test]
fn quecvt_validity_table_matches_the_reference() {
    let mut valid = 0;
    for (from, ups) in QUECVT_UP {
        for to in Mode::ALL {
            let expected = ups.contains(&to);
            assert_eq!(from.quecvt_allowed(to), expected, "{from} -> {to}");
            valid += usize::from(expected);
        }
    }
    assert_eq!(valid, 5 + 4 + 3 + 3 + 1);
}

#[test]
fn pr_and_cw_are_a_middle_conversion_both_ways() {
    assert_eq!(Pr.conversion_to(Cw), Conversion::Middle);
    assert_eq!(Cw.conversion_to(Pr), Conversion::Middle);
    assert!(!Pr.is_compatible(Cw));
}

#[test]
fn conversion_kinds_follow_mode_order_outside_pr_cw() {
    assert_eq!(Ex.conversion_to(Nl), Conversion::Down);
    assert_eq!(Pw.conversion_to(Cw), Conversion::Down);
    assert_eq!(Cr.conversion_to(Pw), Conversion::Up);
    assert_eq!(Pr.conversion_to(Pr), Conversion::Same);
    assert!(Conversion::Down.is_release() && Conversion::Same.is_release());
    assert!(!Conversion::Up.is_release() && !Conversion::Middle.is_release());
}

#[test]
fn mode_values_are_the_libdlm_constants() {
    let values: Vec<u8> = Mode::ALL.iter().map(|m| m.value()).collect();
    assert_eq!(values, vec![0, 1, 2, 3, 4, 5]);
    let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
    assert_eq!(names, vec!["NL", "CR", "CW", "PR", "PW", "EX"]);
    assert!(Mode::try_from(-1).is_err(), "IV is not a requestable mode");
}
