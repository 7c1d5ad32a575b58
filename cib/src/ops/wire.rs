//! Requests on the wire: a `cib_command` element in Pacemaker's layout.
//!
//! ```xml
//! <cib_command t="cib" cib_op="cib_modify" cib_section="resources"
//!              cib_callopt="8" cib_user="alice" cib_clientname="cibadmin"
//!              src="node1" phx_now="Sun Dec  6 04:00:00 2026">
//!   <cib_calldata><primitive id="d1" .../></cib_calldata>
//! </cib_command>
//! ```
//!
//! Pacemaker's own attributes are used where they exist (`cib_op`,
//! `cib_section`, `cib_callopt` with its bit values, `cib_user`,
//! `cib_clientname`, `src`, `digest`); the inputs Pacemaker's daemon would
//! make up locally and a deterministic replica must receive instead are
//! `phx_*` attributes. A transaction carries its operations as nested
//! `cib_command` elements inside `<cib_calldata><cib_transaction>`.
//!
//! Decoding is total: any byte string yields a request or a [`CibError`].

use super::error::CibError;
use super::request::{CallOptions, CibOp, OpContext, Scope, callopt};
use crate::xml::{Element, Escaping, Style, parse, to_string};

/// Name of the request element.
pub const COMMAND: &str = "cib_command";
const CALLDATA: &str = "cib_calldata";
const TRANSACTION: &str = "cib_transaction";

/// The request as an element.
pub fn to_element(op: &CibOp, ctx: &OpContext) -> Element {
    let mut e = command(op);
    for (name, value) in [
        ("cib_user", &ctx.user),
        ("cib_clientname", &ctx.client_name),
        ("src", &ctx.origin),
        ("phx_now", &ctx.now),
    ] {
        if let Some(v) = value {
            e.set_attr(name, v.as_str());
        }
    }
    if ctx.check_acls {
        e.set_attr("phx_check_acls", "true");
    }
    if !ctx.user_groups.is_empty() {
        e.set_attr("phx_groups", ctx.user_groups.join(" "));
    }
    if ctx.keep_versions {
        e.set_attr("phx_keep_versions", "true");
    }
    e
}

/// The operation alone (no requester), as nested in a transaction.
fn command(op: &CibOp) -> Element {
    let mut e = Element::new(COMMAND)
        .with_attr("t", "cib")
        .with_attr("cib_op", op.wire_name());
    let (scope, options, input): (Option<&Scope>, CallOptions, Option<Element>) = match op {
        CibOp::Query { scope, options } => (Some(scope), *options, None),
        CibOp::Create {
            scope,
            input,
            options,
        }
        | CibOp::Modify {
            scope,
            input,
            options,
        } => (Some(scope), *options, Some(input.clone())),
        CibOp::Replace {
            scope,
            input,
            digest,
            options,
        } => {
            if let Some(d) = digest {
                e.set_attr("digest", d.as_str());
            }
            (Some(scope), *options, Some(input.clone()))
        }
        CibOp::Delete {
            scope,
            input,
            options,
        } => (Some(scope), *options, input.clone()),
        CibOp::Erase | CibOp::Bump => (None, CallOptions::default(), None),
        CibOp::ApplyPatch { patch } => (None, CallOptions::default(), Some(patch.clone())),
        CibOp::Transaction(ops) => {
            let mut t = Element::new(TRANSACTION);
            for sub in ops {
                t.push_child(command(sub));
            }
            (None, CallOptions::default(), Some(t))
        }
    };
    let mut bits = options.bits();
    match scope {
        Some(Scope::Section(s)) => {
            e.set_attr("cib_section", s.as_str());
        }
        Some(Scope::XPath(x)) => {
            e.set_attr("cib_section", x.as_str());
            bits |= callopt::XPATH;
        }
        Some(Scope::Whole) | None => {}
    }
    e.set_attr("cib_callopt", bits.to_string());
    if let Some(input) = input {
        e.push_child(Element::new(CALLDATA).with_child(input));
    }
    e
}

/// The request as XML text (well-formed and lossless).
pub fn encode(op: &CibOp, ctx: &OpContext) -> String {
    to_string(&to_element(op, ctx), Style::Compact, Escaping::Xml)
}

/// Decodes a request from its XML text.
pub fn decode(bytes: &[u8]) -> Result<(CibOp, OpContext), CibError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| CibError::Malformed(format!("request is not UTF-8: {e}")))?;
    from_element(&parse(text)?)
}

/// Decodes a request from its element.
pub fn from_element(e: &Element) -> Result<(CibOp, OpContext), CibError> {
    let op = op_from(e, true)?;
    let flag = |name: &str| e.attr(name) == Some("true");
    let owned = |name: &str| e.attr(name).map(str::to_string);
    let ctx = OpContext {
        user: owned("cib_user"),
        client_name: owned("cib_clientname"),
        origin: owned("src"),
        now: owned("phx_now"),
        check_acls: flag("phx_check_acls"),
        user_groups: e
            .attr("phx_groups")
            .map(|g| g.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        keep_versions: flag("phx_keep_versions"),
    };
    Ok((op, ctx))
}

fn op_from(e: &Element, top: bool) -> Result<CibOp, CibError> {
    if e.name() != COMMAND {
        return Err(CibError::Malformed(format!(
            "expected <{COMMAND}>, found <{}>",
            e.name()
        )));
    }
    let name = e
        .attr("cib_op")
        .ok_or_else(|| CibError::Malformed("no cib_op".into()))?;
    let bits = match e.attr("cib_callopt") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<u32>()
            .map_err(|_| CibError::Malformed(format!("bad cib_callopt {v:?}")))?,
    };
    let options = CallOptions::from_bits(bits);
    let scope = match e.attr("cib_section") {
        None => Scope::Whole,
        Some(s) if bits & callopt::XPATH != 0 => Scope::XPath(s.to_string()),
        Some(s) => Scope::Section(s.to_string()),
    };
    let input = e
        .find_child(CALLDATA)
        .and_then(|d| d.child_elements().next())
        .cloned();
    let need = |input: Option<Element>| {
        input.ok_or_else(|| CibError::Malformed(format!("{name} needs an input element")))
    };
    Ok(match name {
        "cib_query" => CibOp::Query { scope, options },
        "cib_create" => CibOp::Create {
            scope,
            input: need(input)?,
            options,
        },
        "cib_modify" => CibOp::Modify {
            scope,
            input: need(input)?,
            options,
        },
        "cib_replace" => CibOp::Replace {
            scope,
            input: need(input)?,
            digest: e.attr("digest").map(str::to_string),
            options,
        },
        "cib_delete" => CibOp::Delete {
            scope,
            input,
            options,
        },
        "cib_erase" => CibOp::Erase,
        "cib_bump" => CibOp::Bump,
        "cib_apply_diff" => CibOp::ApplyPatch {
            patch: need(input)?,
        },
        "cib_commit_transact" if top => {
            let t = need(input)?;
            if t.name() != TRANSACTION {
                return Err(CibError::Malformed(format!(
                    "transaction data is <{}>, not <{TRANSACTION}>",
                    t.name()
                )));
            }
            CibOp::Transaction(
                t.child_elements()
                    .map(|c| op_from(c, false))
                    .collect::<Result<_, _>>()?,
            )
        }
        "cib_commit_transact" => {
            return Err(CibError::Malformed("nested transaction".into()));
        }
        other => return Err(CibError::Malformed(format!("unknown cib_op {other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    #[test]
    fn round_trips() {
        let p = parse(r#"<primitive id="d&amp;1" note="a&#10;b"/>"#).unwrap();
        let ops = [
            CibOp::Query {
                scope: Scope::xpath("//primitive[@id='x']"),
                options: CallOptions {
                    no_children: true,
                    ..Default::default()
                },
            },
            CibOp::Modify {
                scope: Scope::section("resources"),
                input: p.clone(),
                options: CallOptions {
                    can_create: true,
                    multiple: true,
                    ..Default::default()
                },
            },
            CibOp::Replace {
                scope: Scope::Whole,
                input: p.clone(),
                digest: Some("abc".into()),
                options: CallOptions::default(),
            },
            CibOp::Delete {
                scope: Scope::xpath("//x"),
                input: None,
                options: CallOptions::default(),
            },
            CibOp::Transaction(vec![
                CibOp::Bump,
                CibOp::Erase,
                CibOp::Create {
                    scope: Scope::section("resources"),
                    input: p,
                    options: CallOptions::default(),
                },
            ]),
        ];
        let ctx = OpContext {
            user: Some("alice".into()),
            client_name: Some("cibadmin".into()),
            origin: Some("n1".into()),
            now: Some("Sun Dec  6 04:00:00 2026".into()),
            check_acls: true,
            user_groups: vec!["haclient".into(), "ops".into()],
            keep_versions: false,
        };
        for op in ops {
            let text = encode(&op, &ctx);
            assert_eq!(decode(text.as_bytes()), Ok((op, ctx.clone())), "{text}");
        }
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            &b"\xff\xfe"[..],
            b"",
            b"<cib/>",
            b"<cib_command/>",
            b"<cib_command cib_op='cib_frob'/>",
            b"<cib_command cib_op='cib_modify'/>",
            b"<cib_command cib_op='cib_query' cib_callopt='x'/>",
            b"<cib_command cib_op='cib_commit_transact'><cib_calldata><cib_transaction><cib_command cib_op='cib_commit_transact'/></cib_transaction></cib_calldata></cib_command>",
        ] {
            assert!(decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
