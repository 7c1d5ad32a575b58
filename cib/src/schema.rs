//! Schema validation of a CIB against the schema its `validate-with` names
//! (Pacemaker's `validate_xml`): the hook the operations call after every change
//! (`ops::execute_validated`, `service::CibService::set_validator`).
//!
//! The core stays free of I/O: a validator is given in, compiled from schema
//! files by the driver (the facade's `phalanx::relaxng` loads Pacemaker's own
//! RelaxNG schemas). It must be a pure function of its schemas and the document,
//! since every node applies every change: nodes with the same schemas reach the
//! same verdict, as Pacemaker's nodes do with the same `pacemaker-schemas`.
//!
//! ```
//! use phalanx_cib::schema::{SchemaValidator, schema_of};
//! use phalanx_cib::xml::Element;
//!
//! /// A validator that accepts only CIBs with a `configuration` section.
//! #[derive(Debug)]
//! struct NeedsConfiguration;
//! impl SchemaValidator for NeedsConfiguration {
//!     fn validate(&self, _schema: &str, cib: &Element) -> Result<(), String> {
//!         cib.find_child("configuration").map(|_| ()).ok_or("no configuration".into())
//!     }
//! }
//! let cib = phalanx_cib::ops::empty_cib(1);
//! assert_eq!(schema_of(&cib), Some(phalanx_cib::ops::LATEST_SCHEMA));
//! assert!(NeedsConfiguration.validate("pacemaker-3.9", &cib).is_ok());
//! ```

use crate::xml::Element;

/// Validates whole CIBs against named schemas (`pacemaker-3.9`, ...).
pub trait SchemaValidator: Send + Sync + std::fmt::Debug {
    /// `Ok` when `cib` is valid against schema `schema`; otherwise why not (the
    /// validator's first messages). An unknown schema name is an error.
    ///
    /// # Errors
    /// The document does not validate, or the schema is unknown.
    fn validate(&self, schema: &str, cib: &Element) -> Result<(), String>;
}

/// The schema a CIB asks to be validated with: its `validate-with`, unless that
/// is missing or `none` (Pacemaker's way to turn validation off).
pub fn schema_of(cib: &Element) -> Option<&str> {
    cib.attr("validate-with").filter(|s| *s != "none")
}

/// Runs `validator` (if any) on `cib` for the schema it names.
pub(crate) fn check(validator: Option<&dyn SchemaValidator>, cib: &Element) -> Result<(), String> {
    match (validator, schema_of(cib)) {
        (Some(v), Some(schema)) => v.validate(schema, cib),
        _ => Ok(()),
    }
}
