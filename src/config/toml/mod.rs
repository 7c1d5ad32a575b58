//! The TOML syntax: the same model in natural snake_case (`[totem] token_ms = 300`,
//! `[[nodes]] id = 1 addrs = ["127.0.0.1:5405"]`). Unknown keys are warnings.
//!
//! Loading is three steps: [`parse`] the text into the file's shape ([`schema`])
//! with the line of every key ([`lines`]); [`build`] the model from it, one section
//! at a time; then the model's own validation and lint.

mod build;
mod lines;
mod schema;

use super::error::{ConfigError, Warning};
use super::model::ClusterConfig;
use lines::{Lines, pretty};
use schema::Root;
use toml::de::DeTable;

/// Parses TOML text and maps it onto the model.
pub(crate) fn load(text: &str, file: &str) -> Result<(ClusterConfig, Vec<Warning>), ConfigError> {
    let parsed = parse(text, file)?;
    let mut warnings = parsed.unknown_keys(file);
    let cfg = build::Build::new(file, &parsed.lines).config(parsed.root, &mut warnings)?;
    cfg.validate()?;
    warnings.extend(cfg.lint());
    Ok((cfg, warnings))
}

/// A TOML file read into its shape.
struct Parsed {
    root: Root,
    lines: Lines,
    /// Dotted paths of the keys the shape has no place for.
    unknown: Vec<String>,
}

impl Parsed {
    /// One warning per unknown key, at its line.
    fn unknown_keys(&self, file: &str) -> Vec<Warning> {
        self.unknown
            .iter()
            .map(|p| Warning {
                file: file.to_string(),
                line: self.lines.line(p),
                key: pretty(p),
                message: "unknown key, ignored".into(),
            })
            .collect()
    }
}

/// Reads the text as TOML, then into [`Root`]; errors carry the line and, for a
/// value of the wrong type, the key.
fn parse(text: &str, file: &str) -> Result<Parsed, ConfigError> {
    let mut lines = Lines::new(text);
    let table = DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| lines.line_at(s.start));
        ConfigError::new(file, line, None, e.message().trim().to_string())
    })?;
    lines.walk_table("", table.get_ref());
    let mut unknown = Vec::new();
    let de = toml::Deserializer::from(table);
    let root = serde_ignored::deserialize(de, |p| unknown.push(p.to_string())).map_err(
        |e: toml::de::Error| {
            let at = e.span().map(|s| s.start);
            let path = at.and_then(|o| lines.path_at(o)).map(pretty);
            let line = at.map(|o| lines.line_at(o));
            ConfigError::new(file, line, path, e.message().trim().to_string())
        },
    )?;
    Ok(Parsed {
        root,
        lines,
        unknown,
    })
}
