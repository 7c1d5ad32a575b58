//! The CIB version triple and the rules that compare copies and patches.

use std::cmp::Ordering;

use crate::xml::Element;

/// Names of the three version attributes on `<cib>`, most significant first.
pub const VERSION_ATTRIBUTES: [&str; 3] = ["admin_epoch", "epoch", "num_updates"];

/// `(admin_epoch, epoch, num_updates)`. Ordering is lexicographic, most
/// significant first, which is how Pacemaker decides which copy is newer.
///
/// Components are kept as Pacemaker reads them: a decimal integer clamped to
/// the C `int` range, leading digits of a value with trailing text, and -1 for
/// a value that is not a number at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version {
    /// Raised only by an administrator; dominates the others.
    pub admin_epoch: i64,
    /// Raised on every configuration change.
    pub epoch: i64,
    /// Raised on status-only changes; reset when `epoch` changes.
    pub num_updates: i64,
}

impl Version {
    /// A version from its three components.
    pub const fn new(admin_epoch: i64, epoch: i64, num_updates: i64) -> Self {
        Version {
            admin_epoch,
            epoch,
            num_updates,
        }
    }

    /// The components as an array, most significant first.
    pub const fn components(self) -> [i64; 3] {
        [self.admin_epoch, self.epoch, self.num_updates]
    }

    /// A version from an array, most significant first.
    pub const fn from_components(c: [i64; 3]) -> Self {
        Version::new(c[0], c[1], c[2])
    }

    /// The version of a CIB root as Pacemaker reads it for a version check:
    /// a missing or negative component counts as 0.
    pub fn of_cib(cib: &Element) -> Self {
        let mut c = [0i64; 3];
        for (slot, name) in c.iter_mut().zip(VERSION_ATTRIBUTES) {
            *slot = cib.attr(name).map_or(0, parse_component).max(0);
        }
        Version::from_components(c)
    }

    /// Reads the components present on `element` over `defaults` (the way a
    /// patchset's `<source>`/`<target>` are read): a missing attribute keeps
    /// the default.
    pub fn read_over(element: &Element, defaults: Version) -> Self {
        let mut c = defaults.components();
        for (slot, name) in c.iter_mut().zip(VERSION_ATTRIBUTES) {
            if let Some(v) = element.attr(name) {
                *slot = parse_component(v);
            }
        }
        Version::from_components(c)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}.{}",
            self.admin_epoch, self.epoch, self.num_updates
        )
    }
}

/// Parses one version component as Pacemaker's `crm_element_value_int` does.
pub fn parse_component(text: &str) -> i64 {
    let t = text.trim_start();
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'-') => (-1i64, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let run: &str = &digits[..digits.bytes().take_while(u8::is_ascii_digit).count()];
    if run.is_empty() {
        return -1;
    }
    // Saturate instead of overflowing, then clamp to the C int range.
    let magnitude = run.bytes().fold(0i64, |acc, d| {
        acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    (sign * magnitude).clamp(i64::from(i32::MIN), i64::from(i32::MAX))
}

/// Why a patch cannot be applied to a copy at a given version (§1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VersionCheckError {
    /// The copy is older than the patch's source: updates were missed and the
    /// copy needs a full resync (Pacemaker's `diff_failed` / resync).
    #[error(
        "current version {current} is older than the patch source {source_version}: resync needed"
    )]
    NeedResync {
        /// Version of the copy.
        current: Version,
        /// Version the patch was made from.
        source_version: Version,
    },
    /// The copy is already newer than the patch's source, or the patch does
    /// not raise the version: nothing to do (`old_data`).
    #[error("patch {source_version} -> {target} is old data for current version {current}")]
    OldData {
        /// Version of the copy.
        current: Version,
        /// Version the patch was made from.
        source_version: Version,
        /// Version the patch leads to.
        target: Version,
    },
}

/// Pacemaker's check before applying a patch from `source` to `target` on a
/// copy at `current`: component by component, a copy behind the source needs
/// a resync, one ahead of it has the data already; then the target must be
/// ahead of the source in some component.
pub fn check_patch_versions(
    current: Version,
    source: Version,
    target: Version,
) -> Result<(), VersionCheckError> {
    for (cur, src) in current.components().into_iter().zip(source.components()) {
        match cur.cmp(&src) {
            Ordering::Less => {
                return Err(VersionCheckError::NeedResync {
                    current,
                    source_version: source,
                });
            }
            Ordering::Greater => {
                return Err(VersionCheckError::OldData {
                    current,
                    source_version: source,
                    target,
                });
            }
            Ordering::Equal => {}
        }
    }
    let raised = target
        .components()
        .into_iter()
        .zip(source.components())
        .any(|(t, s)| t > s);
    if raised {
        Ok(())
    } else {
        Err(VersionCheckError::OldData {
            current,
            source_version: source,
            target,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_is_lexicographic() {
        assert!(Version::new(1, 0, 0) > Version::new(0, 99, 99));
        assert!(Version::new(0, 2, 0) > Version::new(0, 1, 50));
        assert!(Version::new(0, 1, 2) > Version::new(0, 1, 1));
    }

    #[test]
    fn components_parse_like_pacemaker() {
        assert_eq!(parse_component("12"), 12);
        assert_eq!(parse_component("12abc"), 12);
        assert_eq!(parse_component("x"), -1);
        assert_eq!(parse_component(""), -1);
        assert_eq!(parse_component("-3"), -3);
        assert_eq!(parse_component("99999999999999999999"), i64::from(i32::MAX));
        let cib = Element::new("cib")
            .with_attr("epoch", "5")
            .with_attr("admin_epoch", "-2");
        assert_eq!(Version::of_cib(&cib), Version::new(0, 5, 0));
    }

    #[test]
    fn patch_version_rules() {
        let cur = Version::new(0, 5, 3);
        assert_eq!(
            check_patch_versions(cur, cur, Version::new(0, 5, 4)),
            Ok(())
        );
        assert_eq!(
            check_patch_versions(cur, cur, Version::new(0, 6, 0)),
            Ok(())
        );
        assert!(matches!(
            check_patch_versions(cur, Version::new(0, 6, 0), Version::new(0, 7, 0)),
            Err(VersionCheckError::NeedResync { .. })
        ));
        assert!(matches!(
            check_patch_versions(cur, Version::new(0, 4, 9), Version::new(0, 5, 0)),
            Err(VersionCheckError::OldData { .. })
        ));
        // Versions that do not move are old data even when they match.
        assert!(matches!(
            check_patch_versions(cur, cur, cur),
            Err(VersionCheckError::OldData { .. })
        ));
    }
}
