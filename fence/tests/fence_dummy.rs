//! The §2.1 table of Debian's fence_dummy (fence-agents 4.12.1, file mode) through
//! our runner: each row's exit status, typed outcome and output text.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::{SYSTEM_DIR, TempDir, require_installed};
use phalanx_fence::Action;
use phalanx_fence::agent::{AgentOutcome, AgentRequest, Exit, FailureKind, FenceAgent, PowerState};
use phalanx_fence::runner::ProcessAgent;
use std::time::Duration;

struct Row {
    what: &'static str,
    action: Action,
    extra: &'static [(&'static str, &'static str)],
    exit: i32,
    outcome: fn(&AgentOutcome) -> bool,
    stdout: &'static str,
    stderr_has: &'static str,
}

fn failed(kind: FailureKind) -> impl Fn(&AgentOutcome) -> bool {
    move |o| matches!(o, AgentOutcome::Failed(f) if f.kind == kind)
}

#[test]
fn fence_dummy_golden_table() {
    require_installed("fence_dummy");
    let dir = TempDir::new("dummy");
    let status_file = dir.file("status");
    let agent = ProcessAgent::new(SYSTEM_DIR);
    let rows = [
        Row {
            what: "status, no file",
            action: Action::Status,
            extra: &[],
            exit: 2,
            outcome: |o| *o == AgentOutcome::Power(PowerState::Off),
            stdout: "Status: OFF\n",
            stderr_has: "",
        },
        Row {
            what: "on",
            action: Action::On,
            extra: &[],
            exit: 0,
            outcome: |o| *o == AgentOutcome::Success,
            stdout: "Success: Powered ON\n",
            stderr_has: "",
        },
        Row {
            what: "status after on",
            action: Action::Status,
            extra: &[],
            exit: 0,
            outcome: |o| *o == AgentOutcome::Power(PowerState::On),
            stdout: "Status: ON\n",
            stderr_has: "",
        },
        Row {
            what: "off",
            action: Action::Off,
            extra: &[],
            exit: 0,
            outcome: |o| *o == AgentOutcome::Success,
            stdout: "Success: Powered OFF\n",
            stderr_has: "",
        },
        Row {
            what: "reboot",
            action: Action::Reboot,
            extra: &[],
            exit: 0,
            outcome: |o| *o == AgentOutcome::Success,
            stdout: "Success: Rebooted\n",
            stderr_has: "",
        },
        Row {
            what: "monitor",
            action: Action::Monitor,
            extra: &[],
            exit: 0,
            outcome: |o| *o == AgentOutcome::Reachable,
            stdout: "",
            stderr_has: "",
        },
        Row {
            what: "validate-all",
            action: Action::ValidateAll,
            extra: &[],
            exit: 0,
            outcome: |o| *o == AgentOutcome::Success,
            stdout: "",
            stderr_has: "",
        },
        Row {
            what: "list",
            action: Action::List,
            extra: &[],
            exit: 1,
            outcome: |o| failed(FailureKind::Unsupported)(o),
            stdout: "",
            stderr_has: "Failed: Unrecognised action 'list'",
        },
        Row {
            what: "list-status",
            action: Action::ListStatus,
            extra: &[],
            exit: 1,
            outcome: |o| failed(FailureKind::Unsupported)(o),
            stdout: "",
            stderr_has: "Failed: Unrecognised action 'list-status'",
        },
        // A bogus action name, written through Pacemaker's action substitution.
        Row {
            what: "bogus action",
            action: Action::Status,
            extra: &[("pcmk_status_action", "bogus")],
            exit: 1,
            outcome: |o| failed(FailureKind::Unsupported)(o),
            stdout: "",
            stderr_has: "Failed: Unrecognised action 'bogus'",
        },
        // Unknown option: warned about, otherwise normal (the reboot left it ON).
        Row {
            what: "unknown option foo=5",
            action: Action::Status,
            extra: &[("foo", "5")],
            exit: 0,
            outcome: |o| *o == AgentOutcome::Power(PowerState::On),
            stdout: "Status: ON\n",
            stderr_has: "Ignoring unknown option 'foo=5'",
        },
        // type=fail never reaches the asked state (power_timeout 1 s, not 3, to keep the test short).
        Row {
            what: "type=fail off",
            action: Action::Off,
            extra: &[("type", "fail"), ("port", "1"), ("power_timeout", "1")],
            exit: 1,
            outcome: |o| failed(FailureKind::DeviceTimeout)(o),
            stdout: "",
            stderr_has: "Failed: Timed out waiting to power OFF",
        },
    ];
    let mut passed = 0;
    let mut fast_calls = Duration::ZERO;
    let mut fast_count = 0u32;
    for row in &rows {
        let request = AgentRequest::new("fence_dummy", row.action)
            .param("status_file", &status_file)
            .params(row.extra.iter().copied())
            .attempts(1)
            .timeout(Duration::from_secs(20));
        let reply = agent.run(&request);
        assert_eq!(reply.attempts.len(), 1, "{}: {reply:?}", row.what);
        let a = &reply.attempts[0];
        assert_eq!(a.exit, Exit::Code(row.exit), "{}: {a:?}", row.what);
        assert!(
            (row.outcome)(&reply.outcome),
            "{}: outcome {:?}",
            row.what,
            reply.outcome
        );
        assert_eq!(a.stdout, row.stdout, "{}: stdout", row.what);
        if row.stderr_has.is_empty() {
            assert!(
                !a.stderr.contains("Failed"),
                "{}: unexpected stderr {:?}",
                row.what,
                a.stderr
            );
        } else {
            assert!(
                a.stderr.contains(row.stderr_has),
                "{}: stderr {:?}",
                row.what,
                a.stderr
            );
        }
        // The exact stdin: action first, then the parameters by name.
        assert!(
            reply
                .stdin
                .starts_with(&format!("action={}\n", request.agent_action())),
            "{}",
            row.what
        );
        assert!(
            reply
                .stdin
                .contains(&format!("status_file={status_file}\n")),
            "{}",
            row.what
        );
        if row.what != "type=fail off" {
            fast_calls += a.duration;
            fast_count += 1;
        }
        passed += 1;
    }
    assert_eq!(passed, rows.len());
    println!(
        "fence_dummy table: {passed}/{} rows passed; mean cost of a call {:?} over {fast_count} calls",
        rows.len(),
        fast_calls / fast_count
    );
}

#[test]
fn fence_dummy_metadata_parses_into_typed_values() {
    require_installed("fence_dummy");
    let agent = ProcessAgent::new(SYSTEM_DIR);
    let reply = agent.run(&AgentRequest::new("fence_dummy", Action::Metadata).attempts(1));
    let AgentOutcome::Metadata(xml) = &reply.outcome else {
        panic!("fence_dummy metadata failed: {reply:?}");
    };
    let meta =
        phalanx_fence::agent::AgentMetadata::parse(xml).expect("fence_dummy metadata parses");
    assert_eq!(meta.name, "fence_dummy");
    let status_file = meta
        .parameter("status_file")
        .expect("status_file parameter");
    assert_eq!(
        status_file.content.default.as_deref(),
        Some("/tmp/fence_dummy.status")
    );
    assert!(meta.parameter("action").is_some_and(|p| p.required));
    assert!(meta.supports(Action::Off) && meta.supports(Action::Status));
}
