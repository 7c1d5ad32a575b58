//! `corosync-cfgtool -R` (`corosync_cfg_reload_config`): what a re-read
//! configuration file changes against the one the node runs, and the answer.
//!
//! Phalanx applies configuration on a start. A file that reads as the running
//! configuration is `CS_OK` (nothing to do, Corosync's answer too); a change
//! confined to `logging { }` is `CS_OK` as well — phalanxd's logging is its
//! flight recorder and stderr, which that section does not configure, so there
//! is nothing to apply; any other change is refused (`CS_ERR_NOT_SUPPORTED`)
//! and the sections that changed are named in the flight recorder.
//!
//! ```
//! use phalanx::compat::qb::reload::{changed_sections, verdict};
//! use phalanx::config::ClusterConfig;
//!
//! let running = ClusterConfig::default();
//! let mut file = running.clone();
//! file.logging.to_syslog = !running.logging.to_syslog;
//! assert_eq!(changed_sections(&running, &file), ["logging"]);
//! assert_eq!(verdict(&running, &file).0, 1); // CS_OK
//! file.cluster_name = "other".into();
//! assert_eq!(verdict(&running, &file).0, 19); // CS_ERR_NOT_SUPPORTED
//! ```

use super::cs;
use crate::config::ClusterConfig;

/// The corosync.conf sections in which `file` differs from `running`.
pub fn changed_sections(running: &ClusterConfig, file: &ClusterConfig) -> Vec<&'static str> {
    let (a, b) = (running, file);
    let mut out = Vec::new();
    let totem = a.cluster_name != b.cluster_name
        || a.transport != b.transport
        || a.links != b.links
        || a.link_mode != b.link_mode
        || a.totem != b.totem
        || a.crypto != b.crypto;
    let sections = [
        ("totem", totem),
        (
            "nodelist",
            a.nodes != b.nodes
                || a.local_node_id != b.local_node_id
                || a.local_node_pos != b.local_node_pos,
        ),
        ("quorum", a.quorum != b.quorum),
        ("logging", a.logging != b.logging),
        ("fencing", a.fencing != b.fencing),
        (
            "system",
            a.state_dir != b.state_dir || a.sched_rr != b.sched_rr,
        ),
        (
            "compat/uidgid",
            a.compat_ipc != b.compat_ipc
                || a.ipc_transport != b.ipc_transport
                || a.ipc_users != b.ipc_users
                || a.ipc_groups != b.ipc_groups,
        ),
        ("cib", a.cib != b.cib || a.cib_schemas != b.cib_schemas),
    ];
    out.extend(sections.iter().filter(|(_, c)| *c).map(|(name, _)| *name));
    if out.is_empty() && a != b {
        out.push("other settings");
    }
    out
}

/// The reload's `cs_error_t` and, for the flight recorder, what changed.
pub fn verdict(running: &ClusterConfig, file: &ClusterConfig) -> (i32, Vec<&'static str>) {
    let changed = changed_sections(running, file);
    let error = if changed.iter().all(|s| *s == "logging") {
        cs::OK
    } else {
        cs::ERR_NOT_SUPPORTED
    };
    (error, changed)
}
