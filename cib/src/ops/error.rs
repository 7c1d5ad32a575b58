//! Why a CIB operation failed, with Pacemaker's codes.

use thiserror::Error;

use crate::version::Version;
use crate::xml::XmlError;
use crate::xpath::XPathError;

/// A refused or failed CIB operation. A failed modifying operation leaves the
/// CIB untouched (operations run on a scratch copy).
///
/// [`CibError::pacemaker_rc`] gives the legacy negative code a Pacemaker
/// client sees in `cib_rc`; [`CibError::exit_code`] the exit status of
/// `cibadmin` for the same failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CibError {
    /// The result would be older than the current copy, or a whole-CIB
    /// replacement carries an older version (`pcmk_err_old_data`).
    #[error("update would go back in time: current {current}, offered {offered}")]
    OldData {
        /// Version of the current copy.
        current: Version,
        /// Version of the result or replacement.
        offered: Version,
    },
    /// A whole-CIB replacement whose `digest` does not match its content.
    #[error("digest mismatch: request says {expected}, content hashes to {actual}")]
    DigestMismatch {
        /// Digest carried by the request.
        expected: String,
        /// Digest of the payload.
        actual: String,
    },
    /// A patch could not be applied (`pcmk_err_diff_failed`).
    #[error("patch could not be applied: {0}")]
    DiffFailed(String),
    /// The copy missed updates and needs a full resync (`pcmk_err_diff_resync`).
    #[error("copy is behind the patch source: resync needed")]
    DiffResync,
    /// `create` of an object whose name and id already exist (`EEXIST`).
    #[error("<{name}> with id {id:?} already exists")]
    Exists {
        /// Element name.
        name: String,
        /// Its id, if it has one.
        id: Option<String>,
    },
    /// The section, element or XPath target does not exist (`ENXIO`).
    #[error("no such object: {0}")]
    NoSuchObject(String),
    /// ACLs refuse the read or the write (`EACCES`).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A request that makes no sense: missing input, unknown section for a
    /// write, deleting the root... (`EINVAL`).
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// The XPath expression is outside the supported subset or malformed.
    /// Pacemaker reports an unparsable XPath as "no such object".
    #[error("invalid XPath: {0}")]
    InvalidXPath(#[from] XPathError),
    /// The request's XML could not be parsed.
    #[error("invalid XML: {0}")]
    InvalidXml(#[from] XmlError),
    /// The request could not be decoded from its wire form.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The result does not validate against the schema (`pcmk_err_schema_validation`).
    #[error("result does not validate: {0}")]
    SchemaValidation(String),
    /// The result carries a `crm_feature_set` newer than ours (`EPROTONOSUPPORT`).
    #[error("feature set {theirs} is newer than ours ({ours})")]
    FeatureSetTooNew {
        /// The result's feature set.
        theirs: String,
        /// The feature set this implementation speaks.
        ours: String,
    },
    /// The operation is not supported (`EOPNOTSUPP`).
    #[error("operation not supported: {0}")]
    Unsupported(String),
}

/// Pacemaker's private error numbers (`pcmk_err_*`), negated on the wire.
mod pcmk {
    pub const SCHEMA_VALIDATION: i32 = 203;
    pub const OLD_DATA: i32 = 205;
    pub const DIFF_FAILED: i32 = 206;
    pub const DIFF_RESYNC: i32 = 207;
}

/// Linux errno values Pacemaker reports (negated on the wire).
mod errno {
    pub const ENXIO: i32 = 6;
    pub const EACCES: i32 = 13;
    pub const EEXIST: i32 = 17;
    pub const EINVAL: i32 = 22;
    pub const EBADMSG: i32 = 74;
    pub const EPROTONOSUPPORT: i32 = 93;
    pub const EOPNOTSUPP: i32 = 95;
}

impl CibError {
    /// The legacy return code Pacemaker puts in a reply's `cib_rc`
    /// (negative errno or negative `pcmk_err_*`).
    pub fn pacemaker_rc(&self) -> i32 {
        -match self {
            CibError::OldData { .. } | CibError::DigestMismatch { .. } => pcmk::OLD_DATA,
            CibError::DiffFailed(_) => pcmk::DIFF_FAILED,
            CibError::DiffResync => pcmk::DIFF_RESYNC,
            CibError::Exists { .. } => errno::EEXIST,
            CibError::NoSuchObject(_) | CibError::InvalidXPath(_) => errno::ENXIO,
            CibError::PermissionDenied(_) => errno::EACCES,
            CibError::InvalidArgument(_) => errno::EINVAL,
            CibError::InvalidXml(_) | CibError::Malformed(_) => errno::EBADMSG,
            CibError::SchemaValidation(_) => pcmk::SCHEMA_VALIDATION,
            CibError::FeatureSetTooNew { .. } => errno::EPROTONOSUPPORT,
            CibError::Unsupported(_) => errno::EOPNOTSUPP,
        }
    }

    /// The exit status `cibadmin` 2.1.5 ends with for this failure
    /// (Pacemaker's `crm_exit_t`; the common ones were measured against the
    /// real tool).
    pub fn exit_code(&self) -> u8 {
        match self {
            CibError::OldData { .. } | CibError::DigestMismatch { .. } => 103, // CRM_EX_OLD
            CibError::DiffFailed(_) | CibError::DiffResync => 103,
            CibError::Exists { .. } => 108, // CRM_EX_EXISTS
            CibError::NoSuchObject(_) | CibError::InvalidXPath(_) => 105, // CRM_EX_NOSUCH
            CibError::PermissionDenied(_) => 4, // CRM_EX_INSUFFICIENT_PRIV
            CibError::InvalidArgument(_) => 70, // CRM_EX_SOFTWARE
            CibError::InvalidXml(_) | CibError::Malformed(_) => 65, // CRM_EX_DATAERR
            CibError::SchemaValidation(_) => 78, // CRM_EX_CONFIG
            CibError::FeatureSetTooNew { .. } => 76, // CRM_EX_PROTOCOL
            CibError::Unsupported(_) => 3,  // CRM_EX_UNIMPLEMENT_FEATURE
        }
    }
}
