//! Pacemaker's CIB digests: MD5 over a fixed serialisation of the tree.
//!
//! Two forms exist, and which one a digest uses matters byte for byte:
//!
//! * **On-disk** ([`on_disk_digest`], the `cib.xml.sig` file, `cibadmin
//!   --md5-sum`): MD5 of one space, the compact serialisation of the whole
//!   element, and a newline.
//! * **Versioned** ([`versioned_digest`], the `digest=` of a patchset and of a
//!   replace request, `cibadmin --md5-sum-versioned`): for a feature set of
//!   3.0.5 or later, MD5 of the compact serialisation with the bookkeeping
//!   attributes ([`FILTERED_ATTRIBUTES`]) left out at every depth, with no
//!   space or newline around it; before 3.0.5 (or with no feature set) the
//!   on-disk form.
//!
//! Both use Pacemaker's own escaping ([`Escaping::Pacemaker`]), so they match
//! the real tools even where that escaping is lossy.

use md5::{Digest, Md5};

use crate::xml::{Element, Escaping, Style};

/// Attributes a versioned digest leaves out: they change on every write
/// without the configuration changing.
pub const FILTERED_ATTRIBUTES: [&str; 5] = [
    "crm-debug-origin",
    "cib-last-written",
    "update-origin",
    "update-client",
    "update-user",
];

/// The on-disk digest of `element`, as lowercase hex.
pub fn on_disk_digest(element: &Element) -> String {
    let mut text = String::with_capacity(4096);
    text.push(' ');
    crate::xml::write::write_element(
        &mut text,
        element,
        Style::Compact,
        Escaping::Pacemaker,
        &|_| true,
        0,
    );
    text.push('\n');
    md5_hex(text.as_bytes())
}

/// The digest Pacemaker computes for a CIB whose feature set is
/// `feature_set` (normally the `crm_feature_set` attribute of the document
/// the digest describes).
pub fn versioned_digest(element: &Element, feature_set: Option<&str>) -> String {
    let modern =
        feature_set.is_some_and(|v| compare_versions(v, "3.0.5") != std::cmp::Ordering::Less);
    if !modern {
        return on_disk_digest(element);
    }
    filtered_digest(element)
}

/// The versioned digest of `element` using its own `crm_feature_set`, which
/// is how patch application checks a patchset's `digest=`.
pub fn cib_digest(element: &Element) -> String {
    versioned_digest(element, element.attr("crm_feature_set"))
}

/// MD5 over the compact serialisation without [`FILTERED_ATTRIBUTES`].
fn filtered_digest(element: &Element) -> String {
    let mut text = String::with_capacity(4096);
    crate::xml::write::write_element(
        &mut text,
        element,
        Style::Compact,
        Escaping::Pacemaker,
        &|name| !FILTERED_ATTRIBUTES.contains(&name),
        0,
    );
    md5_hex(text.as_bytes())
}

fn md5_hex(bytes: &[u8]) -> String {
    let sum = Md5::digest(bytes);
    let mut hex = String::with_capacity(32);
    for b in sum {
        hex.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        hex.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    hex
}

/// Compares dotted version strings the way Pacemaker's `compare_version`
/// does: numeric components left to right, a missing component counting as
/// 0 (so `3.0` equals `3.0.0`); text after a component's digits is ignored,
/// and a component without digits counts as 0.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (x, y) => {
                let ord = leading_number(x.unwrap_or("0")).cmp(&leading_number(y.unwrap_or("0")));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

fn leading_number(s: &str) -> u64 {
    let digits: String = s
        .chars()
        .take_while(char::is_ascii_digit)
        .take(18)
        .collect();
    digits.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;
    use std::cmp::Ordering;

    #[test]
    fn md5_of_known_text() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn versioned_digest_filters_bookkeeping_and_old_feature_sets_use_on_disk() {
        let a = parse("<cib crm_feature_set=\"3.16.1\" cib-last-written=\"x\"><s crm-debug-origin=\"y\"/></cib>")
            .unwrap();
        let b = parse("<cib crm_feature_set=\"3.16.1\"><s/></cib>").unwrap();
        assert_eq!(cib_digest(&a), cib_digest(&b));
        assert_ne!(on_disk_digest(&a), on_disk_digest(&b));
        assert_eq!(versioned_digest(&a, Some("3.0.4")), on_disk_digest(&a));
        assert_eq!(versioned_digest(&a, None), on_disk_digest(&a));
    }

    #[test]
    fn version_comparison() {
        assert_eq!(compare_versions("3.0.5", "3.0.5"), Ordering::Equal);
        assert_eq!(compare_versions("3.16.1", "3.0.8"), Ordering::Greater);
        assert_eq!(compare_versions("3.0", "3.0.0"), Ordering::Equal);
        assert_eq!(compare_versions("3.0.4", "3.0.5"), Ordering::Less);
        assert_eq!(compare_versions("2.9", "3.0.8"), Ordering::Less);
    }
}
