//! Walking one section. Every section of corosync.conf is read the same way: each
//! `key: value` converted to the type its field needs, with an error naming the
//! file, line and key when it does not convert; a key given twice, a Corosync
//! option without effect, an unknown key or subsection reported as a warning. That
//! is written once, here; each section only says what its keys mean.

use super::Mapper;
use super::syntax::{Item, Kv, Section};
use crate::config::error::ConfigError;
use crate::config::model::DebugLevel;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Keys a section accepts without mapping them onto the model.
#[derive(Clone, Copy, Default)]
pub(super) struct Unmapped {
    /// Corosync options Phalanx does not implement: accepted with a warning.
    pub(super) no_effect: &'static [&'static str],
    /// Options that ask for what Phalanx does anyway: accepted silently.
    pub(super) silent: &'static [&'static str],
}

impl Unmapped {
    /// Every key of the section is mapped or unknown.
    pub(super) const NONE: Unmapped = Unmapped {
        no_effect: &[],
        silent: &[],
    };

    /// Only Corosync options without effect besides the mapped keys.
    pub(super) const fn no_effect(keys: &'static [&'static str]) -> Unmapped {
        Unmapped {
            no_effect: keys,
            silent: &[],
        }
    }
}

/// One entry of a section, as the section's mapping sees it.
pub(super) enum Entry<'s> {
    /// A `key: value` line (not one of the section's [`Unmapped`] keys).
    Key(Key<'s>),
    /// A `name { ... }` subsection.
    Section(&'s Section),
}

/// What a section's mapping did with an entry.
pub(super) enum Mapped {
    /// Taken into the model (or deliberately dropped with its own warning).
    Used,
    /// Not a key or subsection of this section: warned about, ignored.
    Unknown,
}

/// A `key: value` line and its dotted name (`totem.token`): the value as the type a
/// field needs, or an error that names the file, the line and the key.
pub(super) struct Key<'s> {
    kv: &'s Kv,
    full: String,
    file: &'s str,
}

impl<'s> Key<'s> {
    /// The line `kv` of section `path` (`quorum.device`) of `file`.
    pub(super) fn new(file: &'s str, path: &str, kv: &'s Kv) -> Self {
        Key {
            kv,
            full: format!("{path}.{}", kv.key),
            file,
        }
    }

    /// The key as written (`token`).
    pub(super) fn name(&self) -> &'s str {
        &self.kv.key
    }

    /// The key with its section path (`totem.token`), as messages name it.
    pub(super) fn full(&self) -> &str {
        &self.full
    }

    /// Its 1-based line.
    pub(super) fn line(&self) -> u32 {
        self.kv.line
    }

    /// The value as written (quotes removed).
    pub(super) fn text(&self) -> &'s str {
        &self.kv.value
    }

    /// The value as an owned string.
    pub(super) fn string(&self) -> String {
        self.kv.value.clone()
    }

    /// The value as a file system path.
    pub(super) fn file_path(&self) -> PathBuf {
        PathBuf::from(&self.kv.value)
    }

    /// An error about this key.
    pub(super) fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(
            self.file,
            Some(self.kv.line),
            Some(self.full.clone()),
            message,
        )
    }

    /// The value as milliseconds.
    pub(super) fn ms(&self) -> Result<Duration, ConfigError> {
        self.text()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| self.error(format!("expected milliseconds, got {:?}", self.text())))
    }

    /// The value as an integer that fits `T`.
    pub(super) fn num<T: FromStr>(&self) -> Result<T, ConfigError> {
        self.text().parse::<T>().map_err(|_| {
            self.error(format!(
                "expected a non-negative integer in range, got {:?}",
                self.text()
            ))
        })
    }

    /// The value as a Corosync boolean (`yes`/`no`, `on`/`off`, `true`/`false`,
    /// `1`/`0`, any case).
    pub(super) fn boolean(&self) -> Result<bool, ConfigError> {
        match self.text().to_ascii_lowercase().as_str() {
            "yes" | "on" | "true" | "1" => Ok(true),
            "no" | "off" | "false" | "0" => Ok(false),
            _ => Err(self.error(format!(
                "expected yes/no, on/off or 1/0, got {:?}",
                self.text()
            ))),
        }
    }

    /// The value as a debug level (`off`, `on` or `trace`, any case; booleans
    /// mean `off`/`on`).
    pub(super) fn debug_level(&self) -> Result<DebugLevel, ConfigError> {
        match self.text().to_ascii_lowercase().as_str() {
            "off" | "no" | "0" => Ok(DebugLevel::Off),
            "on" | "yes" | "1" => Ok(DebugLevel::On),
            "trace" => Ok(DebugLevel::Trace),
            _ => Err(self.error(format!("expected off, on or trace, got {:?}", self.text()))),
        }
    }

    /// The value as an IP address.
    pub(super) fn ip(&self) -> Result<IpAddr, ConfigError> {
        self.text()
            .parse()
            .map_err(|_| self.error(format!("expected an IP address, got {:?}", self.text())))
    }

    /// The value of `choices` whose name the value is (exact spelling); the error
    /// lists the names.
    pub(super) fn one_of<T: Clone>(&self, choices: &[(&str, T)]) -> Result<T, ConfigError> {
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == self.text()) {
            return Ok(v.clone());
        }
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        let expected = match names.split_last() {
            Some((last, [])) => (*last).to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::from("nothing"),
        };
        Err(self.error(format!("expected {expected}, got {:?}", self.text())))
    }
}

impl<'a> Mapper<'a> {
    /// Walks section `s`, named `path` in messages (`quorum.device`): warns about a
    /// key given twice (the last value is used), passes over the section's
    /// `unmapped` keys (warning about those without effect), hands every other
    /// entry to `map` in file order and warns about those it reports
    /// [`Mapped::Unknown`]. Stops at `map`'s first error.
    pub(super) fn walk<'s>(
        &mut self,
        s: &'s Section,
        path: &str,
        unmapped: Unmapped,
        mut map: impl FnMut(&mut Self, Entry<'s>) -> Result<Mapped, ConfigError>,
    ) -> Result<(), ConfigError>
    where
        'a: 's,
    {
        let mut seen = BTreeSet::new();
        for item in &s.items {
            let entry = match item {
                Item::Section(sub) => Entry::Section(sub),
                Item::Kv(kv) => {
                    let key = Key::new(self.file, path, kv);
                    if !seen.insert(key.name()) {
                        self.warn(
                            key.line(),
                            key.full(),
                            "given again; the last value is used",
                        );
                    }
                    if unmapped.silent.contains(&key.name()) {
                        continue;
                    }
                    if unmapped.no_effect.contains(&key.name()) {
                        self.warn(
                            key.line(),
                            key.full(),
                            "Corosync option with no effect in Phalanx, ignored",
                        );
                        continue;
                    }
                    Entry::Key(key)
                }
            };
            if let Mapped::Unknown = map(self, entry)? {
                self.unknown(path, item);
            }
        }
        Ok(())
    }

    fn unknown(&mut self, path: &str, item: &Item) {
        match item {
            Item::Kv(kv) => self.warn(
                kv.line,
                &format!("{path}.{}", kv.key),
                "unknown key, ignored",
            ),
            Item::Section(s) => self.warn(
                s.line,
                &format!("{path}.{}", s.name),
                "unknown section, ignored",
            ),
        }
    }
}
