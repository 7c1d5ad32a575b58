//! Reading a child's output pipe with a size cap.

use std::io::Read;

/// How much of each of stdout and stderr is kept by default (1 MiB); the rest is
/// read (so the agent never blocks on a full pipe), counted and dropped.
pub const DEFAULT_OUTPUT_CAP: usize = 1024 * 1024;

/// Bytes kept and bytes dropped from one pipe.
pub(crate) struct Captured {
    pub kept: Vec<u8>,
    pub dropped: u64,
}

/// Reads `pipe` to its end, keeping the first `cap` bytes. A read error ends the
/// capture (what was read is kept).
pub(crate) fn read_capped(mut pipe: impl Read, cap: usize) -> Captured {
    let mut kept = Vec::new();
    let mut dropped = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
                dropped += (n - room) as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    Captured { kept, dropped }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_cap_and_counts_the_rest() {
        let c = read_capped(&[7u8; 200_000][..], 100_000);
        assert_eq!((c.kept.len(), c.dropped), (100_000, 100_000));
        let c = read_capped(&b"short"[..], 100);
        assert_eq!((c.kept.as_slice(), c.dropped), (&b"short"[..], 0));
    }
}
