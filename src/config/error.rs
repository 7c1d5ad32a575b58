//! Errors and warnings of configuration loading.

use std::fmt;

/// A configuration that cannot be used: where it is wrong and why.
///
/// Displayed as `file:line: key: message`, e.g.
/// `corosync.conf:12: totem.token: expected milliseconds, got "abc"`; the line and
/// the key are left out when unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(&self.file, self.line, self.key.as_deref(), &self.message))]
#[non_exhaustive]
pub struct ConfigError {
    /// The file (or label) the configuration came from.
    pub file: String,
    /// 1-based line of the offending text, when known.
    pub line: Option<u32>,
    /// The offending key, in the syntax of the file (`totem.token`,
    /// `nodelist.node.1.ring0_addr`, `nodes[1].addrs[0]`), when there is one.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// A new error.
    pub fn new(
        file: impl Into<String>,
        line: Option<u32>,
        key: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.into(),
            line,
            key,
            message: message.into(),
        }
    }
}

/// Something in the file that was accepted but not used (an unknown key or
/// section, a Corosync option Phalanx does not implement, a value that was mapped
/// to something else). Loading goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Warning {
    /// The file (or label) the configuration came from.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// The key or section concerned, in the syntax of the file.
    pub key: String,
    /// What was done with it.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render(
            &self.file,
            self.line,
            Some(&self.key),
            &self.message,
        ))
    }
}

fn render(file: &str, line: Option<u32>, key: Option<&str>, message: &str) -> String {
    let mut s = String::from(file);
    if let Some(l) = line {
        s.push(':');
        s.push_str(&l.to_string());
    }
    s.push_str(": ");
    if let Some(k) = key {
        s.push_str(k);
        s.push_str(": ");
    }
    s.push_str(message);
    s
}
