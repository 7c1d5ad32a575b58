//! # phalanx-cib — Pacemaker-compatible configuration database
//!
//! This crate owns an XML configuration tree compatible with Pacemaker's CIB
//! (cluster information base), checked against Pacemaker 2.1.5's own tools
//! (see `docs/cib.md`). Implemented so far:
//!
//! * [`xml`]: the document model — a bounded parser for untrusted text, an
//!   [`xml::Element`] tree (ordered attributes, element and comment children;
//!   text is dropped as Pacemaker drops it), and Pacemaker's compact and pretty
//!   serialisations.
//! * [`digest`]: Pacemaker's on-disk and versioned MD5 digests.
//! * [`version`]: the `(admin_epoch, epoch, num_updates)` triple and the
//!   version rules for applying patches.
//! * [`patch`]: v2 patchsets — `crm_diff`-identical diffs, and application
//!   with Pacemaker's version, position and digest rules. Legacy format-1
//!   patches are refused.
//!
//! * [`ops`]: the CIB operations (query/create/modify/replace/delete/erase/
//!   bump/transactions) with Pacemaker's version rules, typed errors and the
//!   `cib_command` wire form.
//! * [`xpath`]: the XPath subset operations and ACLs address elements with.
//! * [`acl`]: access control lists — filtered reads and refused writes.
//!
//! * [`service`]: the replication service — requests applied by every node in
//!   totem's agreed order, state exchange and sync on configuration changes,
//!   divergence reports (`docs/cib-service.md`).
//! * [`persist`]: the on-disk format (`cib.xml`, `.sig`, backups) as pure
//!   functions.
//! * [`schema`]: the schema-validation hook every change passes through.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod acl;
pub mod digest;
pub mod ops;
pub mod patch;
pub mod persist;
pub mod schema;
pub mod service;
pub mod version;
pub mod xml;
pub mod xpath;
