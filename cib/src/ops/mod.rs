//! CIB operations (§1.4 of the reference): query, create, modify, replace,
//! delete, erase, bump, patch application and transactions, with Pacemaker's
//! version bookkeeping (§1.3).
//!
//! [`execute`] is the single entry point. A modifying operation runs on a
//! scratch copy; only when the operation, the version sanity check and the
//! ACL check all succeed does the copy replace the caller's CIB, so a
//! failure leaves it untouched. Nothing here reads a clock: the text stamped
//! into `cib-last-written` comes in through [`OpContext::now`].

mod error;
mod in_place;
mod merge;
mod process;
mod reply;
mod request;
mod section;
pub mod wire;

pub use error::CibError;
pub use merge::{INFINITY, char2score};
pub use process::{FEATURE_SET, LATEST_SCHEMA, empty_cib};
pub use reply::Reply;
pub use request::{CallOptions, CibOp, OpContext, OpOutcome, Scope, callopt};
pub use section::is_section;

use crate::acl;
use crate::digest::compare_versions;
use crate::schema::SchemaValidator;
use crate::version::{Version, parse_component};
use crate::xml::Element;

/// Runs `op` on `cib` for the requester described by `ctx`.
///
/// Queries leave `cib` alone and return their result in
/// [`OpOutcome::output`]. Modifying operations are all-or-nothing: on error
/// `cib` is unchanged.
pub fn execute(cib: &mut Element, op: &CibOp, ctx: &OpContext) -> Result<OpOutcome, CibError> {
    execute_validated(cib, op, ctx, None)
}

/// [`execute`], and a change is only made when its result validates against
/// the schema the result's `validate-with` names (`validator` given; a
/// transaction is validated once, as a whole). A result that does not validate
/// fails with [`CibError::SchemaValidation`] and leaves `cib` unchanged.
pub fn execute_validated(
    cib: &mut Element,
    op: &CibOp,
    ctx: &OpContext,
    validator: Option<&dyn SchemaValidator>,
) -> Result<OpOutcome, CibError> {
    match op {
        CibOp::Query { scope, options } => {
            let filtered;
            let view = match acl_permissions(cib, ctx) {
                Some(perms) => {
                    filtered = acl::filtered_copy(cib, &perms).ok_or_else(|| {
                        CibError::PermissionDenied("ACLs let this user read nothing".into())
                    })?;
                    &filtered
                }
                None => &*cib,
            };
            let output = process::query(view, scope, *options)?;
            Ok(OpOutcome {
                output: Some(output),
                version: Version::of_cib(cib),
                changed: false,
                config_changed: false,
                patchset: None,
            })
        }
        CibOp::Transaction(ops) => {
            let mut scratch = cib.clone();
            for sub in ops {
                if matches!(sub, CibOp::Transaction(_) | CibOp::Query { .. }) {
                    return Err(CibError::InvalidArgument(format!(
                        "{} is not allowed inside a transaction",
                        sub.wire_name()
                    )));
                }
                execute(&mut scratch, sub, ctx)?;
            }
            validate_change(cib, &scratch, validator)?;
            Ok(commit(cib, scratch))
        }
        _ => {
            // A change confined to one section edits in place with an undo
            // copy of that section (no whole-CIB copy, compare or diff).
            if let Some(outcome) = in_place::try_execute(cib, op, ctx, validator) {
                return outcome;
            }
            execute_copying(cib, op, ctx, validator)
        }
    }
}

/// The general path of one modifying operation: on a scratch copy of the whole
/// CIB, installed only when everything succeeded.
fn execute_copying(
    cib: &mut Element,
    op: &CibOp,
    ctx: &OpContext,
    validator: Option<&dyn SchemaValidator>,
) -> Result<OpOutcome, CibError> {
    let mut scratch = cib.clone();
    apply(&mut scratch, op)?;
    let manage_versions = !ctx.keep_versions && !matches!(op, CibOp::ApplyPatch { .. });
    finish(cib, &mut scratch, ctx, manage_versions, op_options(op))?;
    validate_change(cib, &scratch, validator)?;
    Ok(commit(cib, scratch))
}

/// Validates a changed result (an unchanged one needs no new verdict).
fn validate_change(
    old: &Element,
    new: &Element,
    validator: Option<&dyn SchemaValidator>,
) -> Result<(), CibError> {
    if validator.is_none() || old == new {
        return Ok(());
    }
    crate::schema::check(validator, new).map_err(CibError::SchemaValidation)
}

fn op_options(op: &CibOp) -> CallOptions {
    match op {
        CibOp::Query { options, .. }
        | CibOp::Create { options, .. }
        | CibOp::Modify { options, .. }
        | CibOp::Replace { options, .. }
        | CibOp::Delete { options, .. } => *options,
        _ => CallOptions::default(),
    }
}

/// The operation's own edit of the scratch copy.
fn apply(scratch: &mut Element, op: &CibOp) -> Result<(), CibError> {
    match op {
        CibOp::Create { scope, input, .. } => process::create(scratch, scope, input),
        CibOp::Modify {
            scope,
            input,
            options,
        } => process::modify(scratch, scope, input, *options),
        CibOp::Replace {
            scope,
            input,
            digest,
            options,
        } => process::replace(scratch, scope, input, digest.as_deref(), *options),
        CibOp::Delete {
            scope,
            input,
            options,
        } => process::delete(scratch, scope, input.as_ref(), *options),
        CibOp::Erase => {
            process::erase(scratch);
            Ok(())
        }
        CibOp::Bump => {
            process::bump(scratch);
            Ok(())
        }
        CibOp::ApplyPatch { patch } => {
            let current = Version::of_cib(scratch);
            let options = crate::patch::ApplyOptions {
                check_versions: true,
            };
            *scratch = crate::patch::apply(scratch, patch, &options).map_err(|e| {
                if e.is_diff_failed() {
                    CibError::DiffFailed(e.to_string())
                } else {
                    CibError::OldData {
                        current,
                        offered: crate::patch::patch_versions(patch, current).1,
                    }
                }
            })?;
            Ok(())
        }
        CibOp::Query { .. } | CibOp::Transaction(_) => Err(CibError::InvalidArgument(
            "not a single modifying operation".into(),
        )),
    }
}

/// Whether anything under `/cib/configuration` differs (including the
/// section appearing or disappearing).
fn configuration_changed(old: &Element, new: &Element) -> bool {
    old.find_child("configuration") != new.find_child("configuration")
}

/// A version component as Pacemaker's sanity check reads it (missing is -1).
fn component(cib: &Element, name: &str) -> i64 {
    cib.attr(name).map_or(-1, parse_component)
}

/// Whether the CIB's schema carries the `update-*` attributes (pacemaker-1.2
/// and later, `pacemaker-next`, `none`).
fn schema_has_update_attrs(schema: &str) -> bool {
    match schema.strip_prefix("pacemaker-") {
        Some("next") => true,
        Some(v) => compare_versions(v, "1.2") != std::cmp::Ordering::Less,
        None => schema == "none",
    }
}

/// The common tail of every modifying operation (Pacemaker's
/// `cib_perform_op`): score arithmetic leftovers, feature-set and version
/// sanity checks, the version bump and the modification stamp.
fn finish(
    old: &Element,
    new: &mut Element,
    ctx: &OpContext,
    manage_versions: bool,
    options: CallOptions,
) -> Result<(), CibError> {
    merge::fix_plus_plus(new);
    if let Some(theirs) = new.attr("crm_feature_set") {
        if compare_versions(theirs, FEATURE_SET) == std::cmp::Ordering::Greater {
            return Err(CibError::FeatureSetTooNew {
                theirs: theirs.to_string(),
                ours: FEATURE_SET.to_string(),
            });
        }
    }
    let (old_admin, new_admin) = (component(old, "admin_epoch"), component(new, "admin_epoch"));
    let (old_epoch, new_epoch) = (component(old, "epoch"), component(new, "epoch"));
    if new_admin < old_admin || (new_admin == old_admin && new_epoch < old_epoch) {
        return Err(CibError::OldData {
            current: Version::of_cib(old),
            offered: Version::of_cib(new),
        });
    }
    if new == old {
        return Ok(());
    }
    if let Some(perms) = acl_permissions(old, ctx) {
        acl::check_write(old, new, &perms).map_err(CibError::PermissionDenied)?;
    }
    let config_changed = configuration_changed(old, new);
    stamp_change(new, config_changed, manage_versions, ctx, options);
    Ok(())
}

/// What a change does to the root: the version bump (§1.3: a configuration
/// change bumps `epoch` and zeroes `num_updates`, any other change bumps
/// `num_updates`) unless versions are kept, and for a configuration change
/// `cib-last-written` and the `update-*` attributes where the schema has them.
pub(super) fn stamp_change(
    cib: &mut Element,
    config_changed: bool,
    manage_versions: bool,
    ctx: &OpContext,
    options: CallOptions,
) {
    if manage_versions {
        if config_changed {
            cib.set_attr("num_updates", "0");
            process::increment_counter(cib, "epoch");
        } else {
            process::increment_counter(cib, "num_updates");
        }
    }
    if let (true, Some(now), false) = (config_changed, &ctx.now, options.no_mtime) {
        cib.set_attr("cib-last-written", now.as_str());
        if cib
            .attr("validate-with")
            .is_some_and(schema_has_update_attrs)
        {
            for (name, value) in [
                ("update-origin", &ctx.origin),
                ("update-client", &ctx.client_name),
                ("update-user", &ctx.user),
            ] {
                match value {
                    Some(v) => {
                        cib.set_attr(name, v.as_str());
                    }
                    None => {
                        cib.remove_attr(name);
                    }
                }
            }
        }
    }
}

/// The requester's permissions when ACLs restrict it on `cib`.
fn acl_permissions(cib: &Element, ctx: &OpContext) -> Option<acl::Permissions> {
    let user = ctx.user.as_deref()?;
    (ctx.check_acls && acl::acls_enabled(cib, Some(user)))
        .then(|| acl::permissions_for(cib, user, &ctx.user_groups))
}

/// Installs `scratch` as the CIB and describes the change.
fn commit(cib: &mut Element, scratch: Element) -> OpOutcome {
    let changed = *cib != scratch;
    let config_changed = configuration_changed(cib, &scratch);
    let patchset = if changed {
        // `--cib` form: the patchset carries the result's digest, so a
        // replica whose result differs (v2 paths cannot tell apart id-less
        // siblings) detects it and resynchronises instead of diverging.
        let options = crate::patch::DiffOptions {
            cib: true,
            ..Default::default()
        };
        crate::patch::diff(cib, &scratch, &options)
    } else {
        None
    };
    *cib = scratch;
    OpOutcome {
        output: None,
        version: Version::of_cib(cib),
        changed,
        config_changed,
        patchset,
    }
}
