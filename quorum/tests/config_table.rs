//! Every option's validation and every forbidden combination, as a table; plus the
//! quorum arithmetic for 1–8 votes.

use phalanx_quorum::votequorum::calc::{self, Decision};
use phalanx_quorum::{
    Algorithm, ConfigError, DeviceConfig, NodeVotes, QuorumConfig, TieBreaker, Votequorum,
};
use std::time::Duration;

fn four(me: u32) -> QuorumConfig {
    QuorumConfig::new(me, &[1, 2, 3, 4])
}
fn two(me: u32) -> QuorumConfig {
    QuorumConfig::new(me, &[1, 2])
}
fn dev(alg: Algorithm, votes: Option<u32>) -> Option<DeviceConfig> {
    Some(DeviceConfig {
        algorithm: alg,
        votes,
    })
}

#[test]
fn forbidden_combinations_and_ranges() {
    type Row = (&'static str, QuorumConfig, Result<(), ConfigError>);
    let rows: Vec<Row> = vec![
        ("plain", four(1), Ok(())),
        (
            "no nodes, no expected",
            QuorumConfig::new(1, &[]),
            Err(ConfigError::NoExpectedVotes),
        ),
        (
            "expected only",
            QuorumConfig {
                expected_votes: Some(3),
                ..QuorumConfig::new(1, &[])
            },
            Ok(()),
        ),
        (
            "expected 0",
            QuorumConfig {
                expected_votes: Some(0),
                ..four(1)
            },
            Err(ConfigError::VotesOutOfRange("expected_votes 0".into())),
        ),
        (
            "local 0",
            QuorumConfig::new(0, &[1]),
            Err(ConfigError::ZeroNodeId),
        ),
        (
            "node 0",
            QuorumConfig::new(1, &[0, 1]),
            Err(ConfigError::ZeroNodeId),
        ),
        (
            "duplicate",
            QuorumConfig::new(1, &[1, 1]),
            Err(ConfigError::DuplicateNode(1)),
        ),
        (
            "local not listed",
            QuorumConfig::new(9, &[1, 2]),
            Err(ConfigError::LocalNotListed(9)),
        ),
        (
            "too many",
            QuorumConfig::new(1, &(1..=400).collect::<Vec<_>>()),
            Err(ConfigError::TooManyNodes(400)),
        ),
        (
            "votes too high",
            QuorumConfig {
                nodes: vec![NodeVotes {
                    node: 1,
                    votes: u32::MAX,
                }],
                ..QuorumConfig::new(1, &[])
            },
            Err(ConfigError::VotesOutOfRange(format!(
                "node 1 has {} votes (max {})",
                u32::MAX,
                phalanx_quorum::limits::MAX_VOTES
            ))),
        ),
        // two_node
        (
            "two_node",
            QuorumConfig {
                two_node: true,
                ..two(1)
            },
            Ok(()),
        ),
        (
            "two_node on 4",
            QuorumConfig {
                two_node: true,
                ..four(1)
            },
            Err(ConfigError::TwoNodeNeedsTwoNodes),
        ),
        (
            "two_node expected 3",
            QuorumConfig {
                two_node: true,
                expected_votes: Some(3),
                ..two(1)
            },
            Err(ConfigError::TwoNodeNeedsTwoNodes),
        ),
        (
            "two_node + device",
            QuorumConfig {
                two_node: true,
                device: dev(Algorithm::Ffsplit, None),
                ..two(1)
            },
            Err(ConfigError::TwoNodeWithDevice),
        ),
        (
            "two_node + atb",
            QuorumConfig {
                two_node: true,
                auto_tie_breaker: true,
                ..two(1)
            },
            Err(ConfigError::TwoNodeWithAutoTieBreaker),
        ),
        // device
        (
            "ffsplit",
            QuorumConfig {
                device: dev(Algorithm::Ffsplit, None),
                ..four(1)
            },
            Ok(()),
        ),
        (
            "ffsplit 2 votes",
            QuorumConfig {
                device: dev(Algorithm::Ffsplit, Some(2)),
                ..four(1)
            },
            Err(ConfigError::FfsplitVotes("device votes 2".into())),
        ),
        (
            "ffsplit node 2 votes",
            QuorumConfig {
                nodes: vec![
                    NodeVotes { node: 1, votes: 2 },
                    NodeVotes { node: 2, votes: 1 },
                ],
                device: dev(Algorithm::Ffsplit, None),
                ..two(1)
            },
            Err(ConfigError::FfsplitVotes("node 1 has 2 votes".into())),
        ),
        (
            "lms device",
            QuorumConfig {
                device: dev(Algorithm::Lms, None),
                ..four(1)
            },
            Ok(()),
        ),
        (
            "lms device 0 votes",
            QuorumConfig {
                device: dev(Algorithm::Lms, Some(0)),
                ..four(1)
            },
            Err(ConfigError::DeviceVotes("0".into())),
        ),
        (
            "device + lms option",
            QuorumConfig {
                device: dev(Algorithm::Lms, None),
                last_man_standing: true,
                ..four(1)
            },
            Err(ConfigError::LastManStandingWithDevice),
        ),
        (
            "device + atb",
            QuorumConfig {
                device: dev(Algorithm::Ffsplit, None),
                auto_tie_breaker: true,
                ..four(1)
            },
            Err(ConfigError::AutoTieBreakerWithDevice),
        ),
        // last_man_standing
        (
            "lms",
            QuorumConfig {
                last_man_standing: true,
                ..four(1)
            },
            Ok(()),
        ),
        (
            "lms window 0",
            QuorumConfig {
                last_man_standing: true,
                last_man_standing_window: Duration::ZERO,
                ..four(1)
            },
            Err(ConfigError::ZeroWindow),
        ),
        (
            "lms multi-vote",
            QuorumConfig {
                last_man_standing: true,
                nodes: vec![
                    NodeVotes { node: 1, votes: 1 },
                    NodeVotes { node: 2, votes: 2 },
                    NodeVotes { node: 3, votes: 1 },
                ],
                ..QuorumConfig::new(1, &[])
            },
            Err(ConfigError::LastManStandingMultiVote { node: 2, votes: 2 }),
        ),
        // auto_tie_breaker
        (
            "atb even",
            QuorumConfig {
                auto_tie_breaker: true,
                ..four(1)
            },
            Ok(()),
        ),
        (
            "atb odd",
            QuorumConfig {
                auto_tie_breaker: true,
                ..QuorumConfig::new(1, &[1, 2, 3])
            },
            Err(ConfigError::AutoTieBreakerOddWithoutWaitForAll(3)),
        ),
        (
            "atb odd + lms",
            QuorumConfig {
                auto_tie_breaker: true,
                last_man_standing: true,
                ..QuorumConfig::new(1, &[1, 2, 3])
            },
            Err(ConfigError::AutoTieBreakerOddWithoutWaitForAll(3)),
        ),
        (
            "atb odd + wfa",
            QuorumConfig {
                auto_tie_breaker: true,
                wait_for_all: Some(true),
                ..QuorumConfig::new(1, &[1, 2, 3])
            },
            Ok(()),
        ),
        (
            "atb no nodelist",
            QuorumConfig {
                auto_tie_breaker: true,
                expected_votes: Some(4),
                ..QuorumConfig::new(1, &[])
            },
            Err(ConfigError::BadTieBreakerList(
                "auto_tie_breaker needs a node list".into(),
            )),
        ),
        (
            "atb empty list",
            QuorumConfig {
                auto_tie_breaker: true,
                auto_tie_breaker_node: TieBreaker::Nodes(vec![]),
                ..four(1)
            },
            Err(ConfigError::BadTieBreakerList("empty list".into())),
        ),
        (
            "atb unknown",
            QuorumConfig {
                auto_tie_breaker: true,
                auto_tie_breaker_node: TieBreaker::Nodes(vec![7]),
                ..four(1)
            },
            Err(ConfigError::BadTieBreakerList(
                "node 7 is not configured".into(),
            )),
        ),
        (
            "atb twice",
            QuorumConfig {
                auto_tie_breaker: true,
                auto_tie_breaker_node: TieBreaker::Nodes(vec![2, 2]),
                ..four(1)
            },
            Err(ConfigError::BadTieBreakerList("node 2 listed twice".into())),
        ),
        (
            "atb highest",
            QuorumConfig {
                auto_tie_breaker: true,
                auto_tie_breaker_node: TieBreaker::Highest,
                ..four(1)
            },
            Ok(()),
        ),
        // allow_downscale / tracking / wait_for_all
        (
            "ad",
            QuorumConfig {
                allow_downscale: true,
                ..four(1)
            },
            Ok(()),
        ),
        (
            "evt",
            QuorumConfig {
                expected_votes_tracking: true,
                tracked_expected_votes: Some(9),
                ..four(1)
            },
            Ok(()),
        ),
        (
            "wfa",
            QuorumConfig {
                wait_for_all: Some(true),
                ..four(1)
            },
            Ok(()),
        ),
    ];
    for (name, cfg, want) in rows {
        assert_eq!(cfg.validate(), want, "{name}");
        assert_eq!(Votequorum::new(cfg).err(), want.err(), "{name} (new)");
    }
}

#[test]
fn implied_options_and_defaults() {
    let c = QuorumConfig {
        two_node: true,
        ..two(1)
    };
    assert!(c.wait_for_all());
    let c = QuorumConfig {
        two_node: true,
        wait_for_all: Some(false),
        ..two(1)
    };
    assert!(!c.wait_for_all());
    let c = QuorumConfig {
        allow_downscale: true,
        ..four(1)
    };
    assert!(c.tracking());
    assert_eq!(
        QuorumConfig {
            device: dev(Algorithm::Lms, None),
            ..four(1)
        }
        .initial_expected_votes(),
        7
    );
    assert_eq!(
        QuorumConfig {
            device: dev(Algorithm::Ffsplit, None),
            ..four(1)
        }
        .initial_expected_votes(),
        5
    );
    assert_eq!(
        QuorumConfig {
            expected_votes: Some(8),
            ..four(1)
        }
        .initial_expected_votes(),
        8
    );
    let evt = QuorumConfig {
        expected_votes_tracking: true,
        tracked_expected_votes: Some(9),
        ..four(1)
    };
    assert_eq!(evt.initial_expected_votes(), 9);
    let no_evt = QuorumConfig {
        tracked_expected_votes: Some(9),
        ..four(1)
    };
    assert_eq!(no_evt.initial_expected_votes(), 4);
}

#[test]
fn quorum_arithmetic_table() {
    // (expected, total, two_node) -> quorum
    let rows = [
        (1, 1, false, 1),
        (2, 2, false, 2),
        (2, 1, true, 1),
        (3, 3, false, 2),
        (3, 2, false, 2),
        (4, 4, false, 3),
        (4, 2, false, 3),
        (5, 5, false, 3),
        (5, 3, false, 3),
        (6, 6, false, 4),
        (7, 4, false, 4),
        (8, 8, false, 5),
        (8, 4, false, 5),
        // V above E (before E is raised): the V term dominates.
        (4, 9, false, 5),
    ];
    for (e, v, two, want) in rows {
        assert_eq!(calc::quorum(e, v, two), want, "E={e} V={v} two_node={two}");
    }
    // (decision, quorate)
    let d = |expected, node_votes, device_votes, wfa, atb| Decision {
        expected,
        node_votes,
        device_votes,
        two_node: false,
        wfa_waiting: wfa,
        atb_holds: atb,
    };
    let rows = [
        (d(4, 2, 0, false, false), false),
        (d(4, 2, 0, false, true), true),  // exact half + tie-breaker
        (d(4, 1, 0, false, true), false), // not half
        (d(4, 2, 0, true, true), false),  // still waiting for all
        (d(3, 2, 0, true, false), false), // waiting: needs all 3
        (d(3, 3, 0, true, false), true),
        (d(5, 2, 1, false, false), true), // ffsplit device
        (d(7, 1, 3, false, false), true), // lms device
        (d(7, 3, 0, false, false), false),
    ];
    for (i, (dec, want)) in rows.iter().enumerate() {
        assert_eq!(dec.outcome().1, *want, "row {i}: {dec:?}");
    }
}
