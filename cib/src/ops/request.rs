//! What a client asks for: the operation, its target and options, and who
//! asks.

use crate::version::Version;
use crate::xml::Element;

/// Where an operation applies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// No section given: the whole CIB (`cibadmin` without `-o`).
    #[default]
    Whole,
    /// A section by name (`-o`), matched case-insensitively: `cib`, `all`,
    /// `status`, `configuration`, `crm_config`, `nodes`, `resources`,
    /// `constraints`, `op_defaults`, `rsc_defaults`, `acls`,
    /// `fencing-topology`, `tags`, `alerts`.
    Section(String),
    /// An XPath expression (`-A`), in the subset [`crate::xpath`] implements.
    XPath(String),
}

impl Scope {
    /// A section scope.
    pub fn section(name: impl Into<String>) -> Self {
        Scope::Section(name.into())
    }

    /// An XPath scope.
    pub fn xpath(expr: impl Into<String>) -> Self {
        Scope::XPath(expr.into())
    }
}

/// Call options (Pacemaker's `cib_callopt` bits that change what an operation
/// does; the XPath bit is implied by [`Scope::XPath`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallOptions {
    /// XPath forms act on every match instead of the first (`cib_multiple`).
    pub multiple: bool,
    /// `modify` appends the input when nothing matches (`cib_can_create`,
    /// `--allow-create`).
    pub can_create: bool,
    /// `query` returns shallow copies: name and attributes only
    /// (`cib_no_children`).
    pub no_children: bool,
    /// Score arithmetic `attr="attr++"` / `attr="attr+=N"` (`cib_score_update`).
    /// Pacemaker 2.1.5 expands these in every modify whatever this bit says,
    /// and so do we; the bit is carried for wire compatibility.
    pub score_update: bool,
    /// Do not stamp `cib-last-written` / `update-*` (`cib_no_mtime`).
    pub no_mtime: bool,
    /// `cibadmin --force` (required by `cibadmin` for erase; not checked here).
    pub force: bool,
}

/// `cib_callopt` bit values.
pub mod callopt {
    /// XPath scope.
    pub const XPATH: u32 = 1 << 1;
    /// Act on every XPath match.
    pub const MULTIPLE: u32 = 1 << 2;
    /// Modify may create.
    pub const CAN_CREATE: u32 = 1 << 3;
    /// Shallow query results.
    pub const NO_CHILDREN: u32 = 1 << 5;
    /// Score arithmetic.
    pub const SCORE_UPDATE: u32 = 1 << 11;
    /// Do not stamp modification time.
    pub const NO_MTIME: u32 = 1 << 13;
    /// Our own bit for `--force` (unused by Pacemaker's daemon).
    pub const FORCE: u32 = 1 << 20;
}

impl CallOptions {
    /// The options as `cib_callopt` bits (the XPath bit is added by the caller
    /// from the scope).
    pub fn bits(&self) -> u32 {
        let mut b = 0;
        for (set, bit) in [
            (self.multiple, callopt::MULTIPLE),
            (self.can_create, callopt::CAN_CREATE),
            (self.no_children, callopt::NO_CHILDREN),
            (self.score_update, callopt::SCORE_UPDATE),
            (self.no_mtime, callopt::NO_MTIME),
            (self.force, callopt::FORCE),
        ] {
            if set {
                b |= bit;
            }
        }
        b
    }

    /// Options from `cib_callopt` bits; unknown bits are ignored.
    pub fn from_bits(b: u32) -> Self {
        CallOptions {
            multiple: b & callopt::MULTIPLE != 0,
            can_create: b & callopt::CAN_CREATE != 0,
            no_children: b & callopt::NO_CHILDREN != 0,
            score_update: b & callopt::SCORE_UPDATE != 0,
            no_mtime: b & callopt::NO_MTIME != 0,
            force: b & callopt::FORCE != 0,
        }
    }
}

/// One CIB operation (§1.4 of the reference). Inputs are XML elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CibOp {
    /// `cib_query`: the scope's element (or XPath matches), ACL-filtered.
    Query {
        /// What to return.
        scope: Scope,
        /// `no_children` applies.
        options: CallOptions,
    },
    /// `cib_create`: add `input` (or, when `input` is named like the
    /// section, each of its children) under the section.
    Create {
        /// Target section or XPath.
        scope: Scope,
        /// The new object(s).
        input: Element,
        /// Call options.
        options: CallOptions,
    },
    /// `cib_modify`: merge `input` into the element with the same name and id.
    Modify {
        /// Target section or XPath.
        scope: Scope,
        /// The update.
        input: Element,
        /// `can_create`, `multiple`.
        options: CallOptions,
    },
    /// `cib_replace`: replace the element with the same name (and id), or
    /// the whole CIB when `input` is `<cib>`.
    Replace {
        /// Target section or XPath.
        scope: Scope,
        /// The replacement.
        input: Element,
        /// For a whole-CIB replace: the versioned digest the sender computed.
        digest: Option<String>,
        /// `multiple` for the XPath form.
        options: CallOptions,
    },
    /// `cib_delete`: delete the first element whose name matches and whose
    /// attributes include all of `input`'s (or the XPath matches).
    Delete {
        /// Target section or XPath.
        scope: Scope,
        /// The template to delete; may be absent in the XPath form.
        input: Option<Element>,
        /// `multiple` for the XPath form.
        options: CallOptions,
    },
    /// `cib_erase`: empty configuration and status, `admin_epoch + 1`.
    Erase,
    /// `cib_bump`: `epoch + 1`.
    Bump,
    /// `cib_apply_diff`: apply a v2 patchset.
    ApplyPatch {
        /// The `<diff format="2">` element.
        patch: Element,
    },
    /// `cib_commit_transact`: the operations in order, all or nothing.
    Transaction(Vec<CibOp>),
}

impl CibOp {
    /// Pacemaker's wire name for the operation (`cib_op`).
    pub fn wire_name(&self) -> &'static str {
        match self {
            CibOp::Query { .. } => "cib_query",
            CibOp::Create { .. } => "cib_create",
            CibOp::Modify { .. } => "cib_modify",
            CibOp::Replace { .. } => "cib_replace",
            CibOp::Delete { .. } => "cib_delete",
            CibOp::Erase => "cib_erase",
            CibOp::Bump => "cib_bump",
            CibOp::ApplyPatch { .. } => "cib_apply_diff",
            CibOp::Transaction(_) => "cib_commit_transact",
        }
    }

    /// Whether the operation may change the CIB.
    pub fn is_modifying(&self) -> bool {
        !matches!(self, CibOp::Query { .. })
    }
}

/// Who runs an operation, and the inputs a deterministic core cannot make up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpContext {
    /// The requesting user (`cib_user`); `None` means the daemon itself.
    pub user: Option<String>,
    /// The client's name (`cib_clientname`), stamped as `update-client`.
    pub client_name: Option<String>,
    /// The node the request came from (`update-origin`).
    pub origin: Option<String>,
    /// Text for `cib-last-written` when the configuration changes; `None`
    /// leaves `cib-last-written` and the `update-*` attributes alone (what
    /// `cibadmin` does on a `CIB_file`).
    pub now: Option<String>,
    /// Whether ACLs are checked for this request. They then apply only when
    /// the CIB enables them (`enable-acl=true`) and the user is neither
    /// `root` nor `hacluster`.
    pub check_acls: bool,
    /// The operating-system groups the user belongs to (for `acl_group`);
    /// the driver looks them up, the core does not.
    pub user_groups: Vec<String>,
    /// Whether the version counters are managed (the §1.3 bump). `false` for
    /// a replace that is a sync reply: the received versions are kept.
    pub keep_versions: bool,
}

/// What a successful operation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpOutcome {
    /// The query result (for queries), `None` otherwise.
    pub output: Option<Element>,
    /// The CIB's version after the operation.
    pub version: Version,
    /// Whether the CIB changed at all.
    pub changed: bool,
    /// Whether something under `/cib/configuration` changed (the change must
    /// be persisted).
    pub config_changed: bool,
    /// The v2 patchset from the old to the new CIB. `None` until the patch
    /// module is wired in (and for queries and no-op changes).
    pub patchset: Option<Element>,
}
