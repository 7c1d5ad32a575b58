//! CIB schema validation with Pacemaker's own RelaxNG schemas
//! (`/usr/share/pacemaker/pacemaker-<version>.rng` from Debian's
//! `pacemaker-common`), through libxml2 — the validator Pacemaker uses, so a CIB
//! change is refused here exactly when Pacemaker's CIB manager would refuse it.
//!
//! [`PacemakerSchemas`] implements the CIB core's
//! [`SchemaValidator`](phalanx_cib::schema::SchemaValidator): give it to a node
//! with `cib { schemas: /usr/share/pacemaker }` (or
//! [`crate::node::NodeOptions::cib_schemas`]), and to `phalanx-cibadmin` working
//! on a file. Each schema is compiled on first use and kept.
//!
//! ```no_run
//! use phalanx::relaxng::PacemakerSchemas;
//! use phalanx_cib::schema::SchemaValidator;
//!
//! let schemas = PacemakerSchemas::open("/usr/share/pacemaker").unwrap();
//! let cib = phalanx_cib::ops::empty_cib(1);
//! assert!(schemas.validate("pacemaker-3.9", &cib).is_ok());
//! ```

mod libxml2;

use phalanx_cib::schema::SchemaValidator;
use phalanx_cib::xml::Element;
use phalanx_cib::xml::{Escaping, Style, to_string};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Pacemaker's schemas in one directory, compiled on demand.
pub struct PacemakerSchemas {
    dir: PathBuf,
    /// Compiled schemas by name; also serialises every use of libxml2.
    compiled: parking_lot::Mutex<BTreeMap<String, libxml2::Schema<'static>>>,
}

impl std::fmt::Debug for PacemakerSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacemakerSchemas")
            .field("dir", &self.dir)
            .finish()
    }
}

impl PacemakerSchemas {
    /// The schemas in `dir`, which must hold at least one `pacemaker-*.rng`.
    ///
    /// # Errors
    /// libxml2 cannot be loaded, or `dir` holds no Pacemaker schema.
    pub fn open(dir: impl AsRef<Path>) -> Result<PacemakerSchemas, String> {
        let dir = dir.as_ref().to_path_buf();
        libxml2::libxml2()?;
        let has_schema = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(Result::ok)
            .any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with("pacemaker-") && n.ends_with(".rng")
            });
        if !has_schema {
            return Err(format!(
                "{}: no pacemaker-*.rng schema in it",
                dir.display()
            ));
        }
        Ok(PacemakerSchemas {
            dir,
            compiled: parking_lot::Mutex::new(BTreeMap::new()),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Validates XML text (a whole CIB) against schema `name`.
    ///
    /// # Errors
    /// As [`SchemaValidator::validate`].
    pub fn validate_text(&self, name: &str, text: &str) -> Result<(), String> {
        if !is_schema_name(name) {
            return Err(format!("unknown schema {name:?}"));
        }
        let lib = libxml2::libxml2()?;
        let mut compiled = self.compiled.lock();
        if !compiled.contains_key(name) {
            let path = self.dir.join(format!("{name}.rng"));
            if !path.is_file() {
                return Err(format!("unknown schema {name:?} (no {})", path.display()));
            }
            compiled.insert(name.to_string(), lib.compile(&path)?);
        }
        lib.validate(&compiled[name], text)
    }
}

/// `pacemaker-X.Y` or `pacemaker-next`: the names `validate-with` takes, and
/// nothing that could name a file outside the schema directory.
fn is_schema_name(name: &str) -> bool {
    name.strip_prefix("pacemaker-").is_some_and(|v| {
        v == "next"
            || v.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            })
    })
}

impl SchemaValidator for PacemakerSchemas {
    fn validate(&self, schema: &str, cib: &Element) -> Result<(), String> {
        self.validate_text(schema, &to_string(cib, Style::Compact, Escaping::Xml))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pacemaker_schema_names_are_looked_up() {
        for ok in [
            "pacemaker-3.9",
            "pacemaker-1.0",
            "pacemaker-next",
            "pacemaker-10.22",
        ] {
            assert!(is_schema_name(ok), "{ok}");
        }
        for bad in [
            "pacemaker-../../etc/passwd",
            "pacemaker-3",
            "pacemaker-3.",
            "pacemaker-.9",
            "pacemaker-3.9/x",
            "transitional-0.6",
            "none",
            "",
        ] {
            assert!(!is_schema_name(bad), "{bad}");
        }
    }
}
