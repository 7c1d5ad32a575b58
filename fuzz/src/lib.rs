//! Input formats shared by the fuzz targets and the seed generator
//! (`seeds/make_seeds.rs`), so that a seed written by the generator is read by
//! its target exactly as the generator meant.
//!
//! Several decoders sit behind a checksum or an authentication tag; a mutated
//! input almost never passes such a gate, so the fuzzer would only ever see the
//! gate's error path. The targets therefore fix the checksum up (or seal the
//! input with the key the test node holds) and feed *that* to the decoder, next to
//! the raw bytes.

/// A record of a multi-message input: a control byte (what to do with it) and the
/// bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Chosen by the generator or the fuzzer; each target gives it a meaning.
    pub ctl: u8,
    /// The message bytes.
    pub bytes: &'a [u8],
}

/// Splits an input into records: `ctl u8 | len u16 LE | len bytes`, repeated. A
/// last record whose length runs past the end takes the rest. At most `max`
/// records are returned (bounded work per execution).
pub fn records(mut data: &[u8], max: usize) -> Vec<Record<'_>> {
    let mut out = Vec::new();
    while out.len() < max {
        let Some((&ctl, rest)) = data.split_first() else {
            break;
        };
        let (len, rest) = match rest {
            [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
            _ => (rest.len(), &rest[rest.len()..]),
        };
        let n = len.min(rest.len());
        out.push(Record {
            ctl,
            bytes: &rest[..n],
        });
        data = &rest[n..];
    }
    out
}

/// Appends one record in the format [`records`] reads (bytes past `u16::MAX` are
/// cut).
pub fn push_record(out: &mut Vec<u8>, ctl: u8, bytes: &[u8]) {
    let n = bytes.len().min(usize::from(u16::MAX));
    out.push(ctl);
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&bytes[..n]);
}

/// Rewrites the CRC32C trailer of a totem datagram (`header | body | crc32c` over
/// everything before it) so that the body decoder runs on whatever precedes it.
/// Shorter than the trailer: left alone.
pub fn fix_totem_crc(datagram: &mut [u8]) {
    if datagram.len() < 4 {
        return;
    }
    let end = datagram.len() - 4;
    let crc = crc32c::crc32c(&datagram[..end]);
    datagram[end..].copy_from_slice(&crc.to_le_bytes());
}

/// Rewrites the CRC32C of a link ping/pong (bytes 32..36, over bytes 0..32).
/// Datagrams of another length are left alone.
pub fn fix_link_crc(datagram: &mut [u8]) {
    if datagram.len() != 36 {
        return;
    }
    let crc = crc32c::crc32c(&datagram[..32]);
    datagram[32..].copy_from_slice(&crc.to_le_bytes());
}

/// Fixes whichever checksum the datagram's magic announces (`"PX"` totem,
/// `"PL"` link).
pub fn fix_checksum(datagram: &mut [u8]) {
    if datagram.starts_with(b"PL") {
        fix_link_crc(datagram);
    } else {
        fix_totem_crc(datagram);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_take_the_rest() {
        let mut b = Vec::new();
        push_record(&mut b, 1, b"abc");
        push_record(&mut b, 2, b"");
        push_record(&mut b, 3, b"xy");
        let r = records(&b, 10);
        assert_eq!(
            r,
            vec![
                Record {
                    ctl: 1,
                    bytes: b"abc"
                },
                Record { ctl: 2, bytes: b"" },
                Record {
                    ctl: 3,
                    bytes: b"xy"
                },
            ]
        );
        assert_eq!(records(&b, 2).len(), 2);
        // A length past the end takes the rest; a lone control byte is an empty record.
        assert_eq!(
            records(&[9, 200, 0, 1, 2], 10),
            vec![Record {
                ctl: 9,
                bytes: &[1, 2]
            }]
        );
        assert_eq!(records(&[9], 10), vec![Record { ctl: 9, bytes: &[] }]);
    }

    #[test]
    fn fixed_checksums_verify() {
        let mut d = b"PX\x01\x02\x01\x00\x00\x00body____".to_vec();
        fix_checksum(&mut d);
        let n = d.len() - 4;
        assert_eq!(d[n..], crc32c::crc32c(&d[..n]).to_le_bytes());
        let mut l = vec![0u8; 36];
        l[..2].copy_from_slice(b"PL");
        fix_checksum(&mut l);
        assert_eq!(l[32..], crc32c::crc32c(&l[..32]).to_le_bytes());
    }
}
