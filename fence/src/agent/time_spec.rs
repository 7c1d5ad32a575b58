//! Pacemaker-style durations in device parameters (`pcmk_off_timeout="90s"`).

use std::time::Duration;

/// A duration parameter that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?} (expected e.g. 90, 90s, 1500ms, 2min, 1h)")]
pub struct BadDuration(pub String);

/// Longest duration accepted (a week): larger values are configuration mistakes,
/// and bounding them keeps deadline arithmetic far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Reads `N` (seconds), `Nms`, `Ns`/`Nsec`, `Nm`/`Nmin`, `Nh`/`Nhr` — the units
/// Pacemaker accepts for timeouts — with optional spaces around.
///
/// ```
/// use phalanx_fence::agent::parse_duration;
/// use std::time::Duration;
/// assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_duration(" 1500ms "), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
/// assert!(parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, BadDuration> {
    let bad = || BadDuration(text.to_string());
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 12 {
        return Err(bad());
    }
    let n: u64 = t[..digits].parse().map_err(|_| bad())?;
    let unit = t[digits..].trim().to_ascii_lowercase();
    let d = match unit.as_str() {
        "ms" | "msec" => Duration::from_millis(n),
        "" | "s" | "sec" | "secs" => Duration::from_secs(n),
        "m" | "min" | "mins" => Duration::from_secs(n.saturating_mul(60)),
        "h" | "hr" | "hrs" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(bad()),
    };
    if d > MAX_DURATION {
        return Err(bad());
    }
    Ok(d)
}
