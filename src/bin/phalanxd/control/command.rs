//! Controller commands: one per stdin line, words separated by spaces, the first
//! word the verb. A line that is not a valid command is answered with an error
//! line; it never stops the node.

use phalanx::totem::Guarantee;
use std::time::Duration;

/// One command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `mcast agreed|safe TEXT...`: multicast TEXT (the rest of the line).
    Mcast {
        /// Agreed or safe.
        guarantee: Guarantee,
        /// The text, spaces included.
        text: String,
    },
    /// `load INTERVAL_MS MAX_BODY SAFE_EVERY`: multicast a generated message every
    /// INTERVAL_MS while operational; message `seq` has `(seq * 37) % (MAX_BODY + 1)`
    /// body bytes and is safe when SAFE_EVERY > 0 and `seq % SAFE_EVERY == 0`.
    Load {
        /// Time between messages.
        interval: Duration,
        /// Largest body.
        max_body: usize,
        /// Every n-th message is safe (0: none).
        safe_every: u64,
    },
    /// `load-stop`: stop the load; answered once the last message is reported.
    LoadStop,
    /// `status`: operational, ring, members, quiescent, order hash.
    Status,
    /// `stats`: per-link transmit counters and totem's recovery counters.
    Stats,
    /// `quorum`: the quorum state as last decided.
    Quorum,
    /// `recovery-trace on|off`: report totem's recovery counters when they change.
    RecoveryTrace(bool),
    /// `poll MS`: look at links, votes and counters every MS ms (1..=1000).
    Poll(Duration),
    /// `cpg-member [LOCAL]`: a new CPG member handle (answered with its local
    /// id), with local id LOCAL when given (a controller that restarts nodes
    /// names members uniquely across a node's processes, as Corosync's pids do).
    CpgMember(Option<u32>),
    /// `cpg-join MEMBER GROUP`.
    CpgJoin {
        /// Local member id.
        member: u32,
        /// Group name.
        group: String,
    },
    /// `cpg-leave MEMBER GROUP`.
    CpgLeave {
        /// Local member id.
        member: u32,
        /// Group name.
        group: String,
    },
    /// `cpg-mcast MEMBER GROUP agreed|safe TEXT...`: multicast to the group,
    /// waiting for room in the send queue.
    CpgMcast {
        /// Local member id.
        member: u32,
        /// Group name.
        group: String,
        /// Agreed or safe.
        guarantee: Guarantee,
        /// The text, spaces included.
        text: String,
    },
    /// `cpg-drop MEMBER`: drop the member's handle without leaving its groups (the
    /// others see PROCDOWN).
    CpgDrop {
        /// Local member id.
        member: u32,
    },
    /// `dlm-hammer LOCKSPACE RESOURCES SEED THREADS`: join the lockspace, then run
    /// THREADS workers taking, converting and releasing locks on RESOURCES
    /// resources at random (reported as `dlm_grant` / `dlm_release` lines).
    DlmHammer {
        /// Lockspace name.
        lockspace: String,
        /// Resources `r0..r{n-1}`.
        resources: u32,
        /// Seed of the workers' choices.
        seed: u64,
        /// Worker threads.
        threads: u32,
    },
    /// `dlm-hammer-stop`: stop the workers; answered once every lock is released.
    DlmHammerStop,
    /// `dlm-hold LOCKSPACE RESOURCE MODE`: take a lock, wait for the grant
    /// (reported as `dlm_grant`) and keep it until the node stops.
    DlmHold {
        /// Lockspace name.
        lockspace: String,
        /// Resource name.
        resource: String,
        /// NL, CR, CW, PR, PW or EX.
        mode: String,
    },
    /// `dlm-watch LOCKSPACE`: join the lockspace for the benchmark commands below
    /// and report its notices as `dlm_notice` lines (see `dlm_bench.rs`).
    DlmWatch {
        /// Lockspace name.
        lockspace: String,
    },
    /// `dlm-ask TAG RESOURCE MODE`: ask for a lock in the watched lockspace without
    /// waiting; its grant is reported as `dlm_notice kind=granted tag=TAG`.
    DlmAsk {
        /// A word naming the lock in the notice lines.
        tag: String,
        /// Resource name.
        resource: String,
        /// NL, CR, CW, PR, PW or EX.
        mode: String,
    },
    /// `dlm-bulk PREFIX FROM COUNT MODE`: take COUNT locks on PREFIX{FROM..} in the
    /// watched lockspace, many in flight at once; answered when all are granted.
    DlmBulk {
        /// Resource name prefix.
        prefix: String,
        /// First index.
        from: u64,
        /// How many.
        count: u64,
        /// NL, CR, CW, PR, PW or EX.
        mode: String,
    },
    /// `leave`: leave the cluster cleanly and exit.
    Leave,
}

/// Why a line is not a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but spaces.
    #[error("empty command")]
    Empty,
    /// The verb is not known.
    #[error("unknown command")]
    Unknown,
    /// An argument is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// An argument does not parse.
    #[error("bad {what}: {value:?}")]
    Bad {
        /// Which argument.
        what: &'static str,
        /// What was given.
        value: String,
    },
    /// Words after the last argument.
    #[error("unexpected {0:?}")]
    Extra(String),
}

/// The verb of a line (its first word), for the answer to a line that does not
/// parse.
pub fn verb(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or("-")
}

/// Parses one line.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let mut words = Words::new(line);
    let verb = words.next().ok_or(ParseError::Empty)?;
    let cmd = match verb {
        "mcast" => Command::Mcast {
            guarantee: words.guarantee()?,
            text: words.rest("text")?,
        },
        "load" => Command::Load {
            interval: Duration::from_millis(words.number("interval in ms")?),
            max_body: words.number("largest body")?,
            safe_every: words.number("safe interval")?,
        },
        "load-stop" => Command::LoadStop,
        "status" => Command::Status,
        "stats" => Command::Stats,
        "quorum" => Command::Quorum,
        "recovery-trace" => match words.word("on or off")? {
            "on" => Command::RecoveryTrace(true),
            "off" => Command::RecoveryTrace(false),
            other => return Err(bad("on or off", other)),
        },
        "poll" => {
            let ms: u64 = words.number("interval in ms")?;
            if !(1..=1000).contains(&ms) {
                return Err(bad("interval in ms (1..=1000)", &ms.to_string()));
            }
            Command::Poll(Duration::from_millis(ms))
        }
        "cpg-member" => match words.next() {
            Some(w) => Command::CpgMember(Some(w.parse().map_err(|_| bad("member", w))?)),
            None => Command::CpgMember(None),
        },
        "cpg-join" => Command::CpgJoin {
            member: words.number("member")?,
            group: words.word("group")?.to_string(),
        },
        "cpg-leave" => Command::CpgLeave {
            member: words.number("member")?,
            group: words.word("group")?.to_string(),
        },
        "cpg-mcast" => Command::CpgMcast {
            member: words.number("member")?,
            group: words.word("group")?.to_string(),
            guarantee: words.guarantee()?,
            text: words.rest("text")?,
        },
        "cpg-drop" => Command::CpgDrop {
            member: words.number("member")?,
        },
        "dlm-hammer" => Command::DlmHammer {
            lockspace: words.word("lockspace")?.to_string(),
            resources: words.number("resources")?,
            seed: words.number("seed")?,
            threads: words.number("threads")?,
        },
        "dlm-hammer-stop" => Command::DlmHammerStop,
        "dlm-hold" => Command::DlmHold {
            lockspace: words.word("lockspace")?.to_string(),
            resource: words.word("resource")?.to_string(),
            mode: words.word("mode")?.to_string(),
        },
        "dlm-watch" => Command::DlmWatch {
            lockspace: words.word("lockspace")?.to_string(),
        },
        "dlm-ask" => Command::DlmAsk {
            tag: words.word("tag")?.to_string(),
            resource: words.word("resource")?.to_string(),
            mode: words.word("mode")?.to_string(),
        },
        "dlm-bulk" => Command::DlmBulk {
            prefix: words.word("prefix")?.to_string(),
            from: words.number("first index")?,
            count: words.number("count")?,
            mode: words.word("mode")?.to_string(),
        },
        "leave" => Command::Leave,
        _ => return Err(ParseError::Unknown),
    };
    match words.next() {
        Some(w) => Err(ParseError::Extra(w.to_string())),
        None => Ok(cmd),
    }
}

fn bad(what: &'static str, value: &str) -> ParseError {
    ParseError::Bad {
        what,
        value: value.to_string(),
    }
}

/// Space-separated words, and the rest of the line as one argument.
struct Words<'a> {
    rest: &'a str,
}

impl<'a> Words<'a> {
    fn new(line: &'a str) -> Self {
        Words { rest: line }
    }

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest.trim_start_matches(' ');
        if s.is_empty() {
            self.rest = s;
            return None;
        }
        let end = s.find(' ').unwrap_or(s.len());
        self.rest = &s[end..];
        Some(&s[..end])
    }

    fn word(&mut self, what: &'static str) -> Result<&'a str, ParseError> {
        self.next().ok_or(ParseError::Missing(what))
    }

    fn number<T: std::str::FromStr>(&mut self, what: &'static str) -> Result<T, ParseError> {
        let w = self.word(what)?;
        w.parse().map_err(|_| bad(what, w))
    }

    fn guarantee(&mut self) -> Result<Guarantee, ParseError> {
        match self.word("agreed or safe")? {
            "agreed" => Ok(Guarantee::Agreed),
            "safe" => Ok(Guarantee::Safe),
            other => Err(bad("agreed or safe", other)),
        }
    }

    /// The rest of the line after one separating space (inner spaces kept).
    fn rest(&mut self, what: &'static str) -> Result<String, ParseError> {
        let s = self.rest.strip_prefix(' ').unwrap_or(self.rest);
        self.rest = "";
        if s.is_empty() {
            return Err(ParseError::Missing(what));
        }
        Ok(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse("mcast safe hello  world"),
            Ok(Command::Mcast {
                guarantee: Guarantee::Safe,
                text: "hello  world".into()
            })
        );
        assert_eq!(
            parse("load 2 1500 4"),
            Ok(Command::Load {
                interval: Duration::from_millis(2),
                max_body: 1500,
                safe_every: 4
            })
        );
        assert_eq!(
            parse("cpg-mcast 1 alpha agreed 3/1:b1:0"),
            Ok(Command::CpgMcast {
                member: 1,
                group: "alpha".into(),
                guarantee: Guarantee::Agreed,
                text: "3/1:b1:0".into()
            })
        );
        assert_eq!(parse("recovery-trace on"), Ok(Command::RecoveryTrace(true)));
        assert_eq!(parse("poll 1"), Ok(Command::Poll(Duration::from_millis(1))));
        assert_eq!(parse("leave"), Ok(Command::Leave));
        assert_eq!(parse("cpg-member"), Ok(Command::CpgMember(None)));
        assert_eq!(parse("cpg-member 101"), Ok(Command::CpgMember(Some(101))));
    }

    #[test]
    fn bad_lines_are_typed_errors() {
        assert_eq!(parse("   "), Err(ParseError::Empty));
        assert_eq!(parse("fly"), Err(ParseError::Unknown));
        assert_eq!(parse("mcast"), Err(ParseError::Missing("agreed or safe")));
        assert_eq!(parse("mcast agreed"), Err(ParseError::Missing("text")));
        assert_eq!(parse("mcast loud x"), Err(bad("agreed or safe", "loud")));
        assert_eq!(parse("load 2 x 4"), Err(bad("largest body", "x")));
        assert_eq!(parse("cpg-join -1 g"), Err(bad("member", "-1")));
        assert_eq!(parse("cpg-member x"), Err(bad("member", "x")));
        assert_eq!(parse("status now"), Err(ParseError::Extra("now".into())));
        assert_eq!(parse("poll 0"), Err(bad("interval in ms (1..=1000)", "0")));
        assert_eq!(verb("  cpg-drop 1"), "cpg-drop");
        assert_eq!(verb(""), "-");
    }
}
