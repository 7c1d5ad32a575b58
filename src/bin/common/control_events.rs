//! The event lines of `phalanxd --control` (docs/phalanxd.md), parsed:
//! `<mono_ns> <event> key=value ...`. Shared by `phalanx-nemesis` and the
//! multi-process tests (`tests/common`), each including this file as a module.

use std::collections::BTreeMap;

/// A ring id, (representative, sequence).
pub type Ring = (u32, u64);
/// A CPG member, (node, local id).
pub type Mid = (u32, u32);

/// One event a node reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The node is up and takes commands.
    Ready {
        /// Its process id.
        pid: u32,
        /// It found its predecessor's DLM marker of an earlier boot
        /// (`dlm_predecessor=power-cycled`): every earlier process of its node
        /// ran before a power cycle, i.e. a fencing (docs/dlm.md).
        power_cycled: bool,
    },
    /// A totem configuration.
    Config(Config),
    /// A message this node multicast.
    Sent {
        /// Its sequence number.
        seq: u64,
        /// Safe (else agreed).
        safe: bool,
    },
    /// The multicast of the message reported `sent` just before was refused
    /// (send queue full): it was never sent.
    Unsent {
        /// Its sequence number.
        seq: u64,
    },
    /// A message delivered.
    Deliver(Deliver),
    /// A link to a peer first seen, or changed state.
    Link {
        /// The peer.
        peer: u32,
        /// The link number.
        link: u8,
        /// Up (else down).
        up: bool,
    },
    /// A quorum notification (or the state at subscription).
    Quorum(QuorumState),
    /// The polled vote count changed.
    Votes(Votes),
    /// Totem's recovery counters changed (with `recovery-trace on`); the fields.
    Recovery(String),
    /// A CPG view.
    CpgView(CpgView),
    /// A CPG message.
    CpgDeliver(CpgDeliver),
    /// A CPG member's totem membership event.
    CpgTotem {
        /// The observing member.
        member: u32,
        /// The ring.
        ring: Ring,
        /// Its members.
        members: Vec<u32>,
    },
    /// A CPG member's event stream ended.
    CpgEnd {
        /// The member.
        member: u32,
    },
    /// The answer to a command.
    Reply(Reply),
    /// A service event — fencing (`fence_unclean`, `fence_fenced`,
    /// `fence_result`, `fence_done`) or the CIB (`cib_synced`, `cib_divergence`) —
    /// and its fields, values unescaped.
    Service {
        /// The event name.
        kind: String,
        /// Its fields.
        fields: BTreeMap<String, String>,
    },
    /// The node left the cluster cleanly.
    Left,
    /// The process's output ended (not printed: the harness adds it).
    Eof,
}

/// A totem configuration change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Regular (else transitional).
    pub regular: bool,
    /// The new ring.
    pub ring: Ring,
    /// The regular ring left, if any.
    pub prev: Option<Ring>,
    /// Members, ascending.
    pub members: Vec<u32>,
    /// Members not in the previous regular configuration.
    pub joined: Vec<u32>,
    /// Members of the previous regular configuration not in this one.
    pub left: Vec<u32>,
    /// The node driver's step that produced it (quorum notifications of the
    /// same step came from the same Stack inputs).
    pub step: u64,
}

/// A delivered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deliver {
    /// The sender, as totem says.
    pub from: u32,
    /// Safe (else agreed).
    pub safe: bool,
    /// Bytes.
    pub len: usize,
    /// (incarnation, seq) from the message header; `None` when it had none.
    pub msg: Option<(u32, u64)>,
    /// The header names `from` and the checksum matches.
    pub intact: bool,
    /// Deliveries since the latest regular configuration, this one included.
    pub count: u64,
    /// The order hash over those deliveries.
    pub order: u64,
    /// The text of a `mcast` command's message.
    pub text: Option<String>,
}

/// A quorum state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumState {
    /// Quorate or not.
    pub quorate: bool,
    /// The ring decided on.
    pub ring: Ring,
    /// Member nodes.
    pub members: Vec<u32>,
    /// The node driver's step that decided it (see [`Config::step`]).
    pub step: u64,
}

/// A vote count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Votes {
    /// Quorate or not.
    pub quorate: bool,
    /// The ring, once there is one.
    pub ring: Option<Ring>,
    /// Votes present.
    pub total: u32,
    /// Expected votes.
    pub expected: u32,
    /// Votes needed.
    pub quorum: u32,
    /// The quorum device casts its vote.
    pub device: bool,
}

/// A CPG view as one member saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpgView {
    /// The observing local member.
    pub member: u32,
    /// The group.
    pub group: String,
    /// The view id (the same on every node that installs the view).
    pub view: String,
    /// Members after the change.
    pub members: Vec<Mid>,
    /// (member, reason) that left.
    pub left: Vec<(Mid, String)>,
    /// (member, reason) that joined.
    pub joined: Vec<(Mid, String)>,
}

/// A CPG message as one member received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpgDeliver {
    /// The receiving local member.
    pub member: u32,
    /// The group.
    pub group: String,
    /// The sender.
    pub from: Mid,
    /// Safe (else agreed).
    pub safe: bool,
    /// The payload.
    pub text: String,
}

/// The answer to a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The command's verb.
    pub verb: String,
    /// `ok` (else `error`).
    pub ok: bool,
    /// Its fields (`reason` for an error).
    pub fields: BTreeMap<String, String>,
}

impl Reply {
    /// Field `key`; fails the test when missing.
    pub fn get(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("reply to {} has no {key}: {self:?}", self.verb))
    }
}

/// Parses one line into (timestamp, event).
pub fn parse(line: &str) -> Result<(u64, Event), String> {
    let mut words = line.split(' ');
    let t: u64 = words
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or("no timestamp")?;
    let event = words.next().ok_or("no event")?;
    let rest: Vec<&str> = words.collect();
    let (verb, kv) = match event {
        "ok" | "error" => (Some(*rest.first().ok_or("reply without verb")?), &rest[1..]),
        _ => (None, &rest[..]),
    };
    let mut f = Fields(BTreeMap::new());
    for w in kv {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("not key=value: {w:?}"))?;
        f.0.insert(k, v);
    }
    let ev = match event {
        "ready" => Event::Ready {
            pid: f.num("pid")?,
            // Absent from histories written before it existed.
            power_cycled: f.get("dlm_predecessor").ok() == Some("power-cycled"),
        },
        "config" => Event::Config(Config {
            regular: f.get("kind")? == "regular",
            ring: ring(f.get("ring")?)?,
            prev: match f.get("prev")? {
                "-" => None,
                r => Some(ring(r)?),
            },
            members: ids(f.get("members")?)?,
            joined: ids(f.get("joined")?)?,
            left: ids(f.get("left")?)?,
            step: f.num("step")?,
        }),
        "sent" => Event::Sent {
            seq: f.num("seq")?,
            safe: f.safe()?,
        },
        "unsent" => Event::Unsent { seq: f.num("seq")? },
        "deliver" => Event::Deliver(Deliver {
            from: f.num("from")?,
            safe: f.safe()?,
            len: f.num("len")?,
            msg: match (f.get("inc")?, f.get("seq")?) {
                ("-", _) | (_, "-") => None,
                (i, s) => Some((num(i)?, num(s)?)),
            },
            intact: f.get("intact")? == "1",
            count: f.num("count")?,
            order: u64::from_str_radix(f.get("order")?, 16).map_err(|e| e.to_string())?,
            text: f.0.get("text").map(|t| unpct(t)).transpose()?,
        }),
        "link" => Event::Link {
            peer: f.num("peer")?,
            link: f.num("link")?,
            up: f.get("state")? == "up",
        },
        "quorum" => Event::Quorum(QuorumState {
            quorate: f.get("quorate")? == "1",
            ring: ring(f.get("ring")?)?,
            members: ids(f.get("members")?)?,
            step: f.num("step")?,
        }),
        "votes" => Event::Votes(Votes {
            quorate: f.get("quorate")? == "1",
            ring: match f.get("ring")? {
                "-" => None,
                r => Some(ring(r)?),
            },
            total: f.num("total")?,
            expected: f.num("expected")?,
            quorum: f.num("quorum")?,
            device: f.get("device")? == "1",
        }),
        "recovery" => Event::Recovery(kv.join(" ")),
        "cpg-view" => Event::CpgView(CpgView {
            member: f.num("member")?,
            group: unpct(f.get("group")?)?,
            view: f.get("view")?.to_string(),
            members: list(f.get("members")?, mid)?,
            left: list(f.get("left")?, change)?,
            joined: list(f.get("joined")?, change)?,
        }),
        "cpg-deliver" => Event::CpgDeliver(CpgDeliver {
            member: f.num("member")?,
            group: unpct(f.get("group")?)?,
            from: mid(f.get("from")?)?,
            safe: f.safe()?,
            text: unpct(f.get("text")?)?,
        }),
        "cpg-totem" => Event::CpgTotem {
            member: f.num("member")?,
            ring: ring(f.get("ring")?)?,
            members: ids(f.get("members")?)?,
        },
        "cpg-end" => Event::CpgEnd {
            member: f.num("member")?,
        },
        "ok" | "error" => Event::Reply(Reply {
            verb: verb.unwrap_or_default().to_string(),
            ok: event == "ok",
            fields: f
                .0
                .iter()
                .map(|(k, v)| Ok((k.to_string(), unpct(v)?)))
                .collect::<Result<_, String>>()?,
        }),
        "left" => Event::Left,
        kind if kind.starts_with("fence_")
            || kind.starts_with("cib_")
            || kind.starts_with("dlm_") =>
        {
            Event::Service {
                kind: kind.to_string(),
                fields: f
                    .0
                    .iter()
                    .map(|(k, v)| Ok((k.to_string(), unpct(v)?)))
                    .collect::<Result<_, String>>()?,
            }
        }
        other => return Err(format!("unknown event {other:?}")),
    };
    Ok((t, ev))
}

struct Fields<'a>(BTreeMap<&'a str, &'a str>);

impl<'a> Fields<'a> {
    fn get(&self, k: &str) -> Result<&'a str, String> {
        self.0.get(k).copied().ok_or_else(|| format!("no {k}"))
    }

    fn num<T: std::str::FromStr>(&self, k: &str) -> Result<T, String> {
        num(self.get(k)?)
    }

    fn safe(&self) -> Result<bool, String> {
        match self.get("guarantee")? {
            "safe" => Ok(true),
            "agreed" => Ok(false),
            g => Err(format!("guarantee {g:?}")),
        }
    }
}

fn num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("not a number: {s:?}"))
}

fn ring(s: &str) -> Result<Ring, String> {
    let (a, b) = s
        .split_once('.')
        .ok_or_else(|| format!("not a ring: {s:?}"))?;
    Ok((num(a)?, num(b)?))
}

fn list<T>(s: &str, item: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    if s == "-" {
        return Ok(vec![]);
    }
    s.split(',').map(item).collect()
}

fn ids(s: &str) -> Result<Vec<u32>, String> {
    list(s, num)
}

fn mid(s: &str) -> Result<Mid, String> {
    let (n, l) = s
        .split_once('/')
        .ok_or_else(|| format!("not a member: {s:?}"))?;
    Ok((num(n)?, num(l)?))
}

fn change(s: &str) -> Result<(Mid, String), String> {
    let (m, r) = s
        .split_once(':')
        .ok_or_else(|| format!("not a change: {s:?}"))?;
    Ok((mid(m)?, r.to_string()))
}

/// Undoes the daemon's `%XX` escapes (`-` is the empty value).
fn unpct(s: &str) -> Result<String, String> {
    if s == "-" {
        return Ok(String::new());
    }
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("truncated escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|e| e.to_string())
}
