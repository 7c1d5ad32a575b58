//! Durations as Pacemaker writes them in device parameters: `"5"` (seconds),
//! `"5s"`, `"500ms"`, `"1min"`, `"2h"`, `" 3 sec "`, or an ISO 8601 period such as
//! `"PT1M30S"`, and the two ways the fencer turns milliseconds into whole seconds
//! (timeouts round, delays truncate).

use thiserror::Error;

/// Longest duration text we look at (a parameter value is short; a long one is an
/// error, not a reason to scan megabytes).
pub const MAX_DURATION_TEXT: usize = 64;

/// A duration that could not be parsed. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DurationError {
    /// No digits where a number was expected.
    #[error("no number in duration {0:?}")]
    NoNumber(String),
    /// A unit other than s, sec, ms, msec, us, usec, m, min, h, hr.
    #[error("unknown unit in duration {0:?}")]
    BadUnit(String),
    /// Negative durations are refused.
    #[error("negative duration {0:?}")]
    Negative(String),
    /// Too long a text, or a value beyond `u64` milliseconds.
    #[error("duration {0:?} out of range")]
    OutOfRange(String),
}

/// Parses a duration into milliseconds.
///
/// Pacemaker's rules: optional blanks, a non-negative number (a decimal part is
/// accepted and ignored, as Pacemaker does: `"3.9s"` is 3 s), optional blanks, an
/// optional unit (case-insensitive; none means seconds), optional blanks. We accept
/// the documented unit names exactly; Pacemaker matches them by prefix (so it takes
/// `"5mins"` as minutes), which is a compatibility wart we do not copy.
///
/// ```
/// use phalanx_fence::core::parse_duration_ms;
/// assert_eq!(parse_duration_ms("5"), Ok(5_000));
/// assert_eq!(parse_duration_ms("500ms"), Ok(500));
/// assert_eq!(parse_duration_ms("1min"), Ok(60_000));
/// assert_eq!(parse_duration_ms("PT1M30S"), Ok(90_000));
/// ```
pub fn parse_duration_ms(text: &str) -> Result<u64, DurationError> {
    let err_text = || text.chars().take(MAX_DURATION_TEXT).collect::<String>();
    if text.len() > MAX_DURATION_TEXT {
        return Err(DurationError::OutOfRange(err_text()));
    }
    let t = text.trim();
    if let Some(period) = t.strip_prefix('P') {
        return parse_iso8601(period).ok_or_else(|| DurationError::BadUnit(err_text()));
    }
    if t.starts_with('-') {
        return Err(DurationError::Negative(err_text()));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits_end == 0 {
        return Err(DurationError::NoNumber(err_text()));
    }
    let number: u64 = t[..digits_end]
        .parse()
        .map_err(|_| DurationError::OutOfRange(err_text()))?;
    // Skip a decimal part, as Pacemaker does (it reads only the integer part).
    let rest = t[digits_end..].trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    let unit = rest.trim().to_ascii_lowercase();
    let (mul, div) = match unit.as_str() {
        "" | "s" | "sec" => (1000, 1),
        "ms" | "msec" => (1, 1),
        "us" | "usec" => (1, 1000),
        "m" | "min" => (60_000, 1),
        "h" | "hr" => (3_600_000, 1),
        _ => return Err(DurationError::BadUnit(err_text())),
    };
    number
        .checked_mul(mul)
        .map(|v| v / div)
        .ok_or_else(|| DurationError::OutOfRange(err_text()))
}

/// `[nW][nD][T[nH][nM][nS]]` (after the `P`). Years and months have no fixed length
/// and are refused.
fn parse_iso8601(period: &str) -> Option<u64> {
    let mut secs: u64 = 0;
    let mut in_time = false;
    let mut num: Option<u64> = None;
    let mut any = false;
    for c in period.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(
                num.unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(u64::from(d))?,
            );
            continue;
        }
        if c == 'T' && num.is_none() && !in_time {
            in_time = true;
            continue;
        }
        let n = num.take()?;
        let unit = match (in_time, c) {
            (false, 'W') => 7 * 86_400,
            (false, 'D') => 86_400,
            (true, 'H') => 3600,
            (true, 'M') => 60,
            (true, 'S') => 1,
            _ => return None,
        };
        secs = secs.checked_add(n.checked_mul(unit)?)?;
        any = true;
    }
    if num.is_some() || !any {
        return None;
    }
    secs.checked_mul(1000)
}

/// Milliseconds to whole seconds the way the fencer converts *timeouts*: 0 stays 0,
/// anything below a second is 1 s, otherwise rounded half up.
pub fn timeout_ms_to_secs(ms: u64) -> u64 {
    match ms {
        0 => 0,
        1..1000 => 1,
        _ => ms / 1000 + u64::from(ms % 1000 >= 500),
    }
}

/// Milliseconds to whole seconds the way the fencer converts *delays*: truncated
/// (a 500 ms `pcmk_delay_base` is no delay).
pub fn delay_ms_to_secs(ms: u64) -> u64 {
    ms / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_table() {
        let ok: &[(&str, u64)] = &[
            ("5", 5_000),
            ("5s", 5_000),
            (" 5 s ", 5_000),
            ("5sec", 5_000),
            ("5S", 5_000),
            ("500ms", 500),
            ("500msec", 500),
            ("1000ms", 1_000),
            ("2500us", 2),
            ("1min", 60_000),
            ("1m", 60_000),
            ("2h", 7_200_000),
            ("1hr", 3_600_000),
            ("3.9s", 3_000),
            ("4000s", 4_000_000),
            ("0", 0),
            ("PT5S", 5_000),
            ("PT1M30S", 90_000),
            ("P1D", 86_400_000),
            ("P1W", 604_800_000),
            ("P1DT1H", 90_000_000),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration_ms(text), Ok(*want), "{text:?}");
        }
        let bad = [
            "",
            "s",
            "5 parsecs",
            "-5",
            "5mins",
            "P",
            "P1Y",
            "PT",
            "P5",
            "x5",
        ];
        for text in bad {
            assert!(parse_duration_ms(text).is_err(), "{text:?} must be refused");
        }
        assert!(matches!(
            parse_duration_ms(&"9".repeat(40)),
            Err(DurationError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_duration_ms(&"1".repeat(100)),
            Err(DurationError::OutOfRange(_))
        ));
    }

    #[test]
    fn seconds_conversions() {
        for (ms, timeout, delay) in [
            (0, 0, 0),
            (1, 1, 0),
            (499, 1, 0),
            (999, 1, 0),
            (1000, 1, 1),
            (1499, 1, 1),
            (1500, 2, 1),
            (4_000_000, 4000, 4000),
        ] {
            assert_eq!(timeout_ms_to_secs(ms), timeout, "timeout {ms}");
            assert_eq!(delay_ms_to_secs(ms), delay, "delay {ms}");
        }
    }
}
