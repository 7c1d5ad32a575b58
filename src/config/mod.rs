//! Cluster configuration: loading a corosync.conf or a TOML file into one
//! [`ClusterConfig`].
//!
//! Two syntaxes describe the same model (see `docs/config.md` for every key):
//!
//! - **corosync.conf** — the file a Corosync user already has loads as is:
//!   `totem`, `nodelist`, `quorum`, `logging`, `system` sections (and Phalanx's own
//!   `fencing` section) with Corosync's key
//!   names. Keys and sections Phalanx does not know or does not use are returned as
//!   [`Warning`]s, not errors.
//! - **TOML** — the same model in snake_case (`[totem] token_ms = 300`,
//!   `[[nodes]] id = 1 addrs = ["127.0.0.1:5405"]`).
//!
//! [`load`] picks the syntax from the file extension (`.toml` → TOML, anything else
//! → corosync.conf). A bad file yields a [`ConfigError`] naming the file, the line
//! and the key.
//!
//! ```
//! use phalanx::config::{self, Transport};
//!
//! let text = "
//! totem {
//!     version: 2
//!     cluster_name: demo
//!     transport: knet
//!     crypto_cipher: none
//!     crypto_hash: none
//! }
//! nodelist {
//!     node { ring0_addr: 127.0.0.1 nodeid: 1 name: a }
//! }
//! ";
//! // One `key: value` per line, as in Corosync: the line above is an error.
//! let err = config::from_corosync_str(text, "corosync.conf").unwrap_err();
//! assert_eq!(err.line, Some(10));
//!
//! let text = "
//! totem {
//!     cluster_name: demo
//!     transport: knet
//!     crypto_cipher: none
//!     crypto_hash: none
//!     future_option: 1
//! }
//! nodelist {
//!     node {
//!         ring0_addr: 127.0.0.1
//!         nodeid: 1
//!     }
//!     node {
//!         ring0_addr: 127.0.0.2
//!         nodeid: 2
//!     }
//! }
//! ";
//! let loaded = config::from_corosync_str(text, "corosync.conf")?;
//! let cfg = &loaded.config;
//! assert_eq!(cfg.cluster_name, "demo");
//! assert_eq!(cfg.transport, Transport::Knet);
//! assert_eq!(cfg.nodes.len(), 2);
//! assert!(!cfg.crypto.enabled);
//! // Unknown keys are warnings, with their line.
//! assert_eq!(loaded.warnings[0].key, "totem.future_option");
//! assert_eq!(loaded.warnings[0].line, Some(7));
//! // No `token` in the file: Phalanx's fast default (300 ms) applies.
//! let totem = cfg.totem_config(1)?;
//! assert_eq!(totem.token_timeout.as_millis(), 300);
//! # Ok::<(), config::ConfigError>(())
//! ```

mod corosync;
mod error;
mod fencing;
mod model;
mod toml;

#[cfg(test)]
mod fencing_tests;
#[cfg(test)]
mod tests;

pub use error::{ConfigError, Warning};
pub use fencing::{
    DEFAULT_AGENT_DIR, DEFAULT_DC_DEADTIME, DEFAULT_FENCING_MAX_ATTEMPTS, DEFAULT_FENCING_TIMEOUT,
    FenceDeviceConfig, FenceLevelConfig, FencingAction, FencingConfig, LevelTarget,
    MAX_DEVICE_PARAMS, MAX_DEVICES, MAX_LEVEL_INDEX, NoQuorumPolicy,
};
pub use fencing::{DEFAULT_WATCHDOG_TIMEOUT, WatchdogConfig};
pub use model::{
    CRYPTO_OVERHEAD, Cipher, ClusterConfig, CryptoConfig, DEFAULT_KEY_FILE, DEFAULT_NETMTU,
    DEFAULT_PORT, DEFAULT_STATE_DIR, DEFAULT_TOKEN_COEFFICIENT, DebugLevel, DlmLockTraffic,
    IP_UDP_OVERHEAD, LinkConfig, LinkMode, LoggerSubsys, LoggingConfig, MAX_LINKS, MIN_KEY_LEN,
    NodeAddr, NodeEntry, QdeviceHeuristics, QdeviceNet, QuorumConfig, QuorumDevice, SourceInfo,
    TieBreakerNode, TotemTimings, Transport,
};

use std::path::Path;

/// A loaded configuration and what was accepted but not used.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Loaded {
    /// The validated configuration.
    pub config: ClusterConfig,
    /// Unknown keys and sections, Corosync options without effect, mapped values.
    pub warnings: Vec<Warning>,
}

/// Loads a configuration file: `.toml` as TOML, anything else as corosync.conf.
/// Errors name the file as given.
pub fn load(path: impl AsRef<Path>) -> Result<Loaded, ConfigError> {
    let path = path.as_ref();
    let label = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::new(&label, None, None, format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = bytes_line(e.as_bytes(), e.utf8_error().valid_up_to());
        ConfigError::new(&label, Some(line), None, "not valid UTF-8")
    })?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
    {
        from_toml_str(&text, &label)
    } else {
        from_corosync_str(&text, &label)
    }
}

fn bytes_line(b: &[u8], offset: usize) -> u32 {
    let n = b[..offset.min(b.len())]
        .iter()
        .filter(|&&c| c == b'\n')
        .count();
    u32::try_from(n + 1).unwrap_or(u32::MAX)
}

/// Parses corosync.conf text; `file` labels errors and warnings.
pub fn from_corosync_str(text: &str, file: &str) -> Result<Loaded, ConfigError> {
    corosync::load(text, file).map(|(config, warnings)| Loaded { config, warnings })
}

/// Parses TOML text; `file` labels errors and warnings.
pub fn from_toml_str(text: &str, file: &str) -> Result<Loaded, ConfigError> {
    toml::load(text, file).map(|(config, warnings)| Loaded { config, warnings })
}
