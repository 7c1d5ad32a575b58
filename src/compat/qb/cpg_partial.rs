//! Reassembly of libcpg's `PARTIAL_MCAST` fragments: libcpg cuts a message
//! larger than its IPC limit (1 MiB − 1 KiB) into FIRST, CONTINUED… and LAST
//! fragments, each sent with a synchronous reply. The daemon puts them back
//! together (one message per connection at a time, never beyond the node's
//! CPG message limit) and multicasts the whole; receivers get it as partial
//! deliveries, which their libcpg reassembles.
//!
//! Misuse — a CONTINUED or LAST without a FIRST, lengths that disagree, a
//! fragment overrunning the announced length, an unknown kind — drops the
//! reassembly and answers `CS_ERR_INVALID_PARAM`; a message above the limit
//! answers `CS_ERR_TOO_BIG` at its FIRST fragment.
//!
//! ```
//! use phalanx::compat::qb::cpg_partial::Reassembly;
//! use phalanx::compat::qb::cpg_wire::partial::{FIRST, LAST};
//!
//! let mut r = Reassembly::default();
//! assert_eq!(r.push(2, 6, FIRST, b"hel", 100), Ok(None));
//! let done = r.push(2, 6, LAST, b"lo!", 100).unwrap().unwrap();
//! assert_eq!((done.guarantee, done.data.as_slice()), (2, &b"hello!"[..]));
//! ```

use super::cpg_wire::partial::{CONTINUED, FIRST, LAST};
use super::cs;

/// A message put back together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Whole {
    /// `cpg_guarantee_t` of its fragments.
    pub guarantee: u32,
    /// The message.
    pub data: Vec<u8>,
    /// Length of the LAST fragment (to take it back with [`Reassembly::undo_last`]).
    last_len: usize,
}

#[derive(Debug)]
struct InProgress {
    guarantee: u32,
    msglen: usize,
    buf: Vec<u8>,
}

/// One connection's message in reassembly.
#[derive(Debug, Default)]
pub struct Reassembly {
    current: Option<InProgress>,
}

impl Reassembly {
    /// Adds a fragment of kind `kind` (`LIBCPG_PARTIAL_*`) of a `msglen`-byte
    /// message sent with `guarantee`; `max` is the largest message accepted.
    /// `Ok(Some(..))` once the LAST fragment completed it; `Err(cs error)` on
    /// misuse (the reassembly is dropped).
    pub fn push(
        &mut self,
        guarantee: u32,
        msglen: u32,
        kind: u32,
        data: &[u8],
        max: usize,
    ) -> Result<Option<Whole>, i32> {
        let msglen = msglen as usize;
        if kind == FIRST {
            // libcpg starts over after an error: whatever was in progress goes.
            self.current = None;
            if msglen > max {
                return Err(cs::ERR_TOO_BIG);
            }
            if data.is_empty() || data.len() >= msglen {
                return Err(cs::ERR_INVALID_PARAM);
            }
            let mut buf = Vec::with_capacity(msglen);
            buf.extend_from_slice(data);
            self.current = Some(InProgress {
                guarantee,
                msglen,
                buf,
            });
            return Ok(None);
        }
        let Some(mut cur) = self.current.take() else {
            return Err(cs::ERR_INVALID_PARAM);
        };
        let total = cur.buf.len() + data.len();
        let fits = match kind {
            CONTINUED => !data.is_empty() && total < cur.msglen,
            LAST => total == cur.msglen,
            _ => false,
        };
        if !fits || cur.guarantee != guarantee || cur.msglen != msglen {
            return Err(cs::ERR_INVALID_PARAM);
        }
        cur.buf.extend_from_slice(data);
        if kind == CONTINUED {
            self.current = Some(cur);
            return Ok(None);
        }
        Ok(Some(Whole {
            guarantee,
            data: cur.buf,
            last_len: data.len(),
        }))
    }

    /// The completed message could not be sent yet (`CS_ERR_TRY_AGAIN`):
    /// back to waiting for its LAST fragment, which libcpg sends again.
    pub fn undo_last(&mut self, mut whole: Whole) {
        let msglen = whole.data.len();
        whole.data.truncate(msglen - whole.last_len);
        self.current = Some(InProgress {
            guarantee: whole.guarantee,
            msglen,
            buf: whole.data,
        });
    }

    /// Drops a message in progress (the connection left its group).
    pub fn clear(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_make_the_message() {
        let mut r = Reassembly::default();
        assert_eq!(r.push(3, 9, FIRST, b"abc", 9), Ok(None));
        assert_eq!(r.push(3, 9, CONTINUED, b"def", 9), Ok(None));
        let w = r.push(3, 9, LAST, b"ghi", 9).unwrap().unwrap();
        assert_eq!(w.data, b"abcdefghi");
        // Not sent: the LAST comes again and completes it again.
        r.undo_last(w);
        let w = r.push(3, 9, LAST, b"ghi", 9).unwrap().unwrap();
        assert_eq!((w.guarantee, w.data.as_slice()), (3, &b"abcdefghi"[..]));
        assert_eq!(r.push(3, 9, LAST, b"ghi", 9), Err(cs::ERR_INVALID_PARAM));
    }

    #[test]
    fn misuse_is_refused_and_drops_the_message() {
        let mut r = Reassembly::default();
        assert_eq!(
            r.push(2, 9, CONTINUED, b"abc", 9),
            Err(cs::ERR_INVALID_PARAM)
        );
        assert_eq!(r.push(2, 10, FIRST, b"abc", 9), Err(cs::ERR_TOO_BIG));
        assert_eq!(r.push(2, 9, FIRST, b"", 9), Err(cs::ERR_INVALID_PARAM));
        // Overrun, wrong length on LAST, another msglen, an unknown kind.
        for (kind, data, msglen) in [
            (CONTINUED, &b"defghi"[..], 9),
            (LAST, &b"de"[..], 9),
            (LAST, &b"defghi"[..], 8),
            (7, &b"d"[..], 9),
        ] {
            assert_eq!(r.push(2, 9, FIRST, b"abc", 9), Ok(None));
            assert_eq!(
                r.push(2, msglen, kind, data, 9),
                Err(cs::ERR_INVALID_PARAM),
                "{kind} {data:?}"
            );
            assert_eq!(r.push(2, 9, LAST, b"defghi", 9), Err(cs::ERR_INVALID_PARAM));
        }
        // Another guarantee midway.
        assert_eq!(r.push(2, 9, FIRST, b"abc", 9), Ok(None));
        assert_eq!(r.push(3, 9, LAST, b"defghi", 9), Err(cs::ERR_INVALID_PARAM));
        // A new FIRST restarts.
        assert_eq!(r.push(2, 9, FIRST, b"abc", 9), Ok(None));
        assert_eq!(r.push(2, 6, FIRST, b"xyz", 9), Ok(None));
        assert_eq!(
            r.push(2, 6, LAST, b"uvw", 9).unwrap().unwrap().data,
            b"xyzuvw"
        );
    }
}
