//! v2 patchsets (`<diff format="2">`), compatible with Pacemaker 2.1.5.
//!
//! * [`diff`] computes the patchset `crm_diff --original A --new B` prints,
//!   change for change and in the same order; [`pacemaker_equal`] is its
//!   "no difference" (`crm_diff` exit 0).
//! * [`apply`] applies a patchset with Pacemaker's rules: optional version
//!   check (typed `old_data` / resync errors), deletes of missing targets
//!   ignored, creates and moves sorted by position, digest verified when the
//!   patch carries one.
//!
//! The patchset itself is an ordinary [`Element`]; print
//! it with [`to_pretty_text`] to get `crm_diff`'s exact bytes.

mod apply;
mod diff;
mod pairs;
mod siblings;
mod track;

pub use apply::{ApplyOptions, PatchError, apply, patch_versions};
pub use diff::{DiffOptions, diff, pacemaker_equal};

use crate::xml::{Element, Escaping, Style, to_string};

/// A patchset (or any element) as `crm_diff` prints it: pretty, with
/// Pacemaker's escaping.
pub fn to_pretty_text(patch: &Element) -> String {
    to_string(patch, Style::Pretty, Escaping::Pacemaker)
}

#[cfg(test)]
mod tests;
