//! Replies on the wire: a `cib-reply` element in Pacemaker's layout.
//!
//! ```xml
//! <cib-reply t="cib" cib_op="cib_query" cib_callid="7" cib_rc="0"
//!            admin_epoch="0" epoch="12" num_updates="3">
//!   <cib_calldata><resources>...</resources></cib_calldata>
//! </cib-reply>
//! ```
//!
//! `cib_rc` is Pacemaker's legacy code ([`CibError::pacemaker_rc`], 0 for
//! success); a failure also carries its message as `cib_error`. The version
//! attributes are ours (the version after the operation), so a client learns
//! what its write produced. Decoding is total.

use super::error::CibError;
use super::request::{CibOp, OpOutcome};
use crate::version::{VERSION_ATTRIBUTES, Version, parse_component};
use crate::xml::{Element, Escaping, Style, parse, to_string};

/// Name of the reply element.
pub const REPLY: &str = "cib-reply";
const CALLDATA: &str = "cib_calldata";

/// A reply as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The operation's wire name (`cib_query`, ...).
    pub op: String,
    /// The caller's call id, echoed.
    pub call_id: u64,
    /// Pacemaker's legacy code: 0, or [`CibError::pacemaker_rc`].
    pub rc: i32,
    /// The error's text, for failures.
    pub error: Option<String>,
    /// The CIB version after the operation (successes only).
    pub version: Option<Version>,
    /// The query result, if any.
    pub output: Option<Element>,
}

impl Reply {
    /// The reply to `op` (call `call_id`) that ended with `result`.
    pub fn new(op: &CibOp, call_id: u64, result: &Result<OpOutcome, CibError>) -> Self {
        match result {
            Ok(out) => Reply {
                op: op.wire_name().to_string(),
                call_id,
                rc: 0,
                error: None,
                version: Some(out.version),
                output: out.output.clone(),
            },
            Err(e) => Reply {
                op: op.wire_name().to_string(),
                call_id,
                rc: e.pacemaker_rc(),
                error: Some(e.to_string()),
                version: None,
                output: None,
            },
        }
    }

    /// The reply as an element.
    pub fn to_element(&self) -> Element {
        let mut e = Element::new(REPLY)
            .with_attr("t", "cib")
            .with_attr("cib_op", self.op.as_str())
            .with_attr("cib_callid", self.call_id.to_string())
            .with_attr("cib_rc", self.rc.to_string());
        if let Some(msg) = &self.error {
            e.set_attr("cib_error", msg.as_str());
        }
        if let Some(v) = self.version {
            for (name, value) in VERSION_ATTRIBUTES.iter().zip(v.components()) {
                e.set_attr(*name, value.to_string());
            }
        }
        if let Some(out) = &self.output {
            e.push_child(Element::new(CALLDATA).with_child(out.clone()));
        }
        e
    }

    /// The reply as XML text.
    pub fn encode(&self) -> String {
        to_string(&self.to_element(), Style::Compact, Escaping::Xml)
    }

    /// Decodes a reply from its XML text.
    pub fn decode(bytes: &[u8]) -> Result<Reply, CibError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| CibError::Malformed(format!("reply is not UTF-8: {e}")))?;
        Reply::from_element(&parse(text)?)
    }

    /// Decodes a reply from its element.
    pub fn from_element(e: &Element) -> Result<Reply, CibError> {
        if e.name() != REPLY {
            return Err(CibError::Malformed(format!(
                "expected <{REPLY}>, found <{}>",
                e.name()
            )));
        }
        let number = |name: &str| -> Result<&str, CibError> {
            e.attr(name)
                .ok_or_else(|| CibError::Malformed(format!("reply without {name}")))
        };
        let call_id = number("cib_callid")?
            .parse::<u64>()
            .map_err(|_| CibError::Malformed("bad cib_callid".into()))?;
        let rc = number("cib_rc")?
            .parse::<i32>()
            .map_err(|_| CibError::Malformed("bad cib_rc".into()))?;
        let version = if VERSION_ATTRIBUTES.iter().all(|n| e.has_attr(n)) {
            let c = VERSION_ATTRIBUTES.map(|n| e.attr(n).map_or(0, parse_component));
            Some(Version::from_components(c))
        } else {
            None
        };
        Ok(Reply {
            op: e.attr("cib_op").unwrap_or_default().to_string(),
            call_id,
            rc,
            error: e.attr("cib_error").map(str::to_string),
            version,
            output: e
                .find_child(CALLDATA)
                .and_then(|d| d.child_elements().next())
                .cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{CallOptions, Scope};

    #[test]
    fn replies_round_trip() {
        let op = CibOp::Query {
            scope: Scope::section("nodes"),
            options: CallOptions::default(),
        };
        let ok = Ok(OpOutcome {
            output: Some(
                Element::new("nodes").with_child(Element::new("node").with_attr("id", "1")),
            ),
            version: Version::new(0, 12, 3),
            changed: false,
            config_changed: false,
            patchset: None,
        });
        let err: Result<OpOutcome, CibError> = Err(CibError::NoSuchObject("acls".into()));
        for (result, rc) in [(ok, 0), (err, -6)] {
            let reply = Reply::new(&op, 7, &result);
            assert_eq!(reply.rc, rc);
            assert_eq!(Reply::decode(reply.encode().as_bytes()), Ok(reply));
        }
        for bad in [
            &b"<cib-reply/>"[..],
            b"<x/>",
            b"<cib-reply cib_callid='-1' cib_rc='0'/>",
            b"\xff",
        ] {
            assert!(Reply::decode(bad).is_err());
        }
    }
}
