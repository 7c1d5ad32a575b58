//! Reading the ACL configuration: whether ACLs apply, and which permissions
//! a user has.

use super::flags::Permissions;
use crate::xml::Element;

/// Users ACLs never restrict: the superuser and the daemon user.
const PRIVILEGED_USERS: [&str; 2] = ["root", "hacluster"];
/// How deep role references may nest before they are ignored (they may
/// form cycles).
const MAX_ROLE_DEPTH: usize = 8;

/// What a permission grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Read the selected subtrees.
    Read,
    /// Read and write them.
    Write,
    /// Neither (overrides grants on the same element).
    Deny,
}

/// One `acl_permission`, reduced to the XPath it selects with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// Its `id`.
    pub id: String,
    /// What it grants.
    pub kind: Kind,
    /// The elements it covers.
    pub xpath: String,
}

/// Whether ACLs can restrict `user` at all (not for the daemon itself,
/// `root` or `hacluster`).
pub fn acls_required(user: Option<&str>) -> bool {
    user.is_some_and(|u| !u.is_empty() && !PRIVILEGED_USERS.contains(&u))
}

/// Pacemaker's `crm_is_true`.
fn is_true(v: &str) -> bool {
    ["true", "on", "yes", "y", "1"]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(v))
}

/// The `enable-acl` cluster option of `cib`: the first value found, the
/// `cib-bootstrap-options` set first.
pub fn enable_acl(cib: &Element) -> bool {
    let Some(crm_config) = cib
        .find_child("configuration")
        .and_then(|c| c.find_child("crm_config"))
    else {
        return false;
    };
    let sets: Vec<&Element> = crm_config
        .child_elements()
        .filter(|s| s.name() == "cluster_property_set")
        .collect();
    let ordered = sets
        .iter()
        .filter(|s| s.id() == Some("cib-bootstrap-options"))
        .chain(
            sets.iter()
                .filter(|s| s.id() != Some("cib-bootstrap-options")),
        );
    for set in ordered {
        for nv in set.child_elements() {
            if nv.name() == "nvpair" && nv.attr("name") == Some("enable-acl") {
                return nv.attr("value").is_some_and(is_true);
            }
        }
    }
    false
}

/// Whether ACLs restrict `user` on `cib`.
pub fn acls_enabled(cib: &Element, user: Option<&str>) -> bool {
    acls_required(user) && enable_acl(cib)
}

/// The permissions `user` (a member of `groups`) has in `cib`, in the order
/// Pacemaker collects them.
pub fn permissions_for(cib: &Element, user: &str, groups: &[String]) -> Permissions {
    let mut out = Vec::new();
    let Some(acls) = cib
        .find_child("configuration")
        .and_then(|c| c.find_child("acls"))
    else {
        return Permissions::new(out);
    };
    for entry in acls.child_elements() {
        let name = entry.attr("name").or(entry.id());
        let applies = match entry.name() {
            "acl_target" => name == Some(user),
            "acl_group" => name.is_some_and(|g| groups.iter().any(|m| m == g)),
            _ => false,
        };
        if applies {
            collect(acls, entry, &mut out, 0);
        }
    }
    Permissions::new(out)
}

fn collect(acls: &Element, entry: &Element, out: &mut Vec<Permission>, depth: usize) {
    if depth > MAX_ROLE_DEPTH {
        return;
    }
    for child in entry.child_elements() {
        match child.name() {
            "role" => {
                if let Some(role) = child
                    .id()
                    .and_then(|id| acls.find_child_by_id("acl_role", id))
                {
                    collect(acls, role, out, depth + 1);
                }
            }
            "acl_permission" => {
                if let Some(p) = permission(child) {
                    out.push(p);
                }
            }
            _ => {}
        }
    }
}

/// An `acl_permission` as an XPath, or `None` when it selects nothing.
fn permission(e: &Element) -> Option<Permission> {
    let kind = match e.attr("kind")? {
        "read" => Kind::Read,
        "write" => Kind::Write,
        "deny" => Kind::Deny,
        _ => return None,
    };
    let xpath = match (e.attr("xpath"), e.attr("object-type"), e.attr("reference")) {
        (Some(x), _, _) => x.to_string(),
        (None, None, None) => return None,
        (None, tag, reference) => {
            let attribute = e.attr("attribute");
            let mut x = format!("//{}", tag.unwrap_or("*"));
            let mut tests = Vec::new();
            if let Some(r) = reference {
                tests.push(format!("@id='{r}'"));
            }
            if let Some(a) = attribute {
                tests.push(format!("@{a}"));
            }
            if !tests.is_empty() {
                x.push('[');
                x.push_str(&tests.join(" and "));
                x.push(']');
            }
            x
        }
    };
    Some(Permission {
        id: e.id().unwrap_or_default().to_string(),
        kind,
        xpath,
    })
}
