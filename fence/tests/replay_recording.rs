//! The recorded device the simulator replays (`recordings/fence_dummy.jsonl`):
//! it is what Debian's real `fence_dummy` does (re-recorded live here and
//! compared), and a [`RecordedDevice`] built from it reproduces each recorded
//! outcome and duration, with faults laid over it as documented.
//!
//! Regenerate the file with
//! `PHALANX_FENCE_RERECORD=1 cargo test -p phalanx-fence --test replay_recording`.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::{SYSTEM_DIR, TempDir, require_installed};
use phalanx_fence::Action;
use phalanx_fence::agent::{
    AgentOutcome, AgentRequest, CallRecord, Exit, FailureKind, FenceAgent, PowerState,
    parse_recording,
};
use phalanx_fence::core::{AgentCall, CallId, CallOutcome, SeededRng};
use phalanx_fence::replay::{
    CRASH_SIGNAL, DeviceFault, RecordedDevice, call_outcome, request_of_call,
};
use phalanx_fence::runner::{ProcessAgent, RecordingAgent, load_recording};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// The checked-in recording (the simulator includes the same file).
const RECORDING: &str = include_str!("../recordings/fence_dummy.jsonl");

fn recording_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("recordings/fence_dummy.jsonl")
}

/// The calls recorded, in order: the §2.1 table's rows a fencer uses, on one
/// status file (so `status` answers OFF, then ON after `on`, ...).
fn script(status_file: &str) -> Vec<AgentRequest> {
    let call = |action: Action, extra: &[(&str, &str)]| {
        AgentRequest::new("fence_dummy", action)
            .target("node1")
            .param("status_file", status_file)
            .params(extra.iter().copied())
            .attempts(1)
            .timeout(Duration::from_secs(20))
    };
    vec![
        call(Action::Status, &[]),
        call(Action::On, &[]),
        call(Action::Status, &[]),
        call(Action::Off, &[]),
        call(Action::Status, &[]),
        call(Action::Reboot, &[]),
        call(Action::Status, &[]),
        call(Action::Monitor, &[]),
        call(Action::List, &[]),
        call(Action::ValidateAll, &[]),
        // type=fail never reaches the asked state: the agent's verification times
        // out (power_timeout 2 s to keep the recording short).
        call(
            Action::Off,
            &[("type", "fail"), ("port", "1"), ("power_timeout", "2")],
        ),
    ]
}

/// Runs the script against the real agent through the recorder, into `path`.
fn record_fence_dummy(dir: &TempDir, path: &std::path::Path) -> Vec<CallRecord> {
    require_installed("fence_dummy");
    let agent = RecordingAgent::create(ProcessAgent::new(SYSTEM_DIR), path).expect("recording");
    for request in script(&dir.file("status")) {
        agent.run(&request);
    }
    assert_eq!(agent.write_errors(), 0);
    load_recording(path).expect("the fresh recording loads")
}

/// What must not change between two recordings of the same script: the action,
/// the typed outcome, the exit status and the output text (not durations, not
/// the temporary status file's path).
fn shape(records: &[CallRecord]) -> Vec<(String, AgentOutcome, Vec<Exit>, Vec<String>)> {
    records
        .iter()
        .map(|r| {
            (
                r.request.agent_action().to_string(),
                r.reply.outcome.clone(),
                r.reply.attempts.iter().map(|a| a.exit.clone()).collect(),
                r.reply.attempts.iter().map(|a| a.stdout.clone()).collect(),
            )
        })
        .collect()
}

#[test]
fn the_checked_in_recording_is_what_fence_dummy_does() {
    let dir = TempDir::new("rerecord");
    let fresh_path = dir.path().join("fence_dummy.jsonl");
    let fresh = record_fence_dummy(&dir, &fresh_path);
    if std::env::var_os("PHALANX_FENCE_RERECORD").is_some() {
        std::fs::copy(&fresh_path, recording_path()).expect("rewrite the recording");
        eprintln!("re-recorded {}", recording_path().display());
    }
    let checked_in = load_recording(&recording_path()).expect("the checked-in recording loads");
    assert_eq!(checked_in.len(), script("x").len());
    assert_eq!(shape(&fresh), shape(&checked_in));
    // The recording holds the §2.1 answers the simulator relies on.
    let outcomes: Vec<&AgentOutcome> = checked_in.iter().map(|r| &r.reply.outcome).collect();
    assert_eq!(*outcomes[0], AgentOutcome::Power(PowerState::Off));
    assert_eq!(*outcomes[2], AgentOutcome::Power(PowerState::On));
    assert_eq!(*outcomes[3], AgentOutcome::Success);
    assert!(matches!(outcomes[8], AgentOutcome::Failed(f) if f.kind == FailureKind::Unsupported));
    assert!(
        matches!(outcomes[10], AgentOutcome::Failed(f) if f.kind == FailureKind::DeviceTimeout)
    );
    // Every call ran the real process and took real time.
    assert!(
        checked_in
            .iter()
            .all(|r| r.reply.attempts.len() == 1 && r.reply.duration > Duration::ZERO)
    );
}

/// The fencer's call matching a recorded request (another target, as the
/// simulator's calls are).
fn call_for(r: &CallRecord, timeout: Duration) -> AgentCall {
    AgentCall {
        call: CallId(1),
        op: None,
        device: "dev".into(),
        agent: r.request.agent.clone(),
        action: r.request.action,
        agent_action: r.request.agent_action().to_string(),
        target: Some("node3".into()),
        port: Some(("port".into(), "3".into())),
        params: Default::default(),
        timeout,
        attempt: 1,
    }
}

#[test]
fn a_replayed_device_reproduces_each_recorded_outcome() {
    let records = parse_recording(RECORDING).expect("recording parses");
    let mut rng = SeededRng::new(5);
    for r in &records {
        // A device holding this one record answers with exactly it.
        let device = RecordedDevice::new([r.clone()]);
        let answer = device.answer(&call_for(r, Duration::from_secs(20)), None, &mut rng);
        assert_eq!(
            answer.reply.outcome, r.reply.outcome,
            "{:?}",
            r.request.action
        );
        assert_eq!(answer.outcome, Some(call_outcome(&r.reply)));
        assert_eq!(answer.after, r.reply.attempts[0].duration);
        assert_eq!(answer.reply.attempts[0].stdout, r.reply.attempts[0].stdout);
        assert_eq!(answer.reply.attempts[0].stderr, r.reply.attempts[0].stderr);
        assert_eq!(
            answer.may_have_powered_off,
            matches!(r.request.action, Action::Off | Action::Reboot)
                && r.reply.outcome.is_success()
        );
        // The stdin is the call's own (its target), through the same translation
        // a real node uses.
        let call = call_for(r, Duration::from_secs(20));
        assert_eq!(
            answer.reply.stdin,
            request_of_call(&call).stdin().expect("stdin")
        );
        assert!(answer.reply.stdin.contains("nodename=node3\nport=3\n"));
    }
}

#[test]
fn the_whole_recording_answers_each_action_with_its_healthy_replies() {
    let records = parse_recording(RECORDING).expect("recording parses");
    let device = RecordedDevice::new(records.clone());
    let actions: BTreeSet<&str> = device.actions().collect();
    assert_eq!(
        actions,
        BTreeSet::from([
            "list",
            "monitor",
            "off",
            "on",
            "reboot",
            "status",
            "validate-all"
        ])
    );
    let status = records
        .iter()
        .find(|r| r.request.action == Action::Status)
        .expect("a status");
    let off = records
        .iter()
        .find(|r| r.request.action == Action::Off)
        .expect("an off");
    let list = records
        .iter()
        .find(|r| r.request.action == Action::List)
        .expect("a list");
    let mut rng = SeededRng::new(11);
    let mut states = BTreeSet::new();
    for _ in 0..200 {
        let a = device.answer(&call_for(status, Duration::from_secs(20)), None, &mut rng);
        match a.reply.outcome {
            AgentOutcome::Power(s) => states.insert(format!("{s:?}")),
            other => panic!("status answered {other:?}"),
        };
        // An off without faults is always the recorded success, never the
        // recorded type=fail failure.
        let a = device.answer(&call_for(off, Duration::from_secs(20)), None, &mut rng);
        assert_eq!(a.reply.outcome, AgentOutcome::Success);
        assert!(a.may_have_powered_off);
    }
    // Both recorded states come back.
    assert_eq!(
        states,
        BTreeSet::from(["Off".to_string(), "On".to_string()])
    );
    // fence_dummy has no list: the replayed device says so, as the agent did.
    let a = device.answer(&call_for(list, Duration::from_secs(20)), None, &mut rng);
    assert!(
        matches!(a.reply.outcome, AgentOutcome::Failed(ref f) if f.kind == FailureKind::Unsupported)
    );
}

#[test]
fn faults_lay_over_the_recorded_replies() {
    let records = parse_recording(RECORDING).expect("recording parses");
    let device = RecordedDevice::new(records.clone());
    let find = |action: Action| {
        records
            .iter()
            .find(|r| r.request.action == action)
            .expect("recorded")
    };
    let mut rng = SeededRng::new(3);
    let timeout = Duration::from_secs(20);
    let off = call_for(find(Action::Off), timeout);

    let hang = device.answer(&off, Some(DeviceFault::Hang), &mut rng);
    assert_eq!(hang.outcome, None);

    let t = device.answer(&off, Some(DeviceFault::Timeout), &mut rng);
    assert_eq!((t.after, t.outcome), (timeout, Some(CallOutcome::TimedOut)));

    let crash = device.answer(&off, Some(DeviceFault::Crash), &mut rng);
    assert_eq!(
        crash.reply.attempts[0].exit,
        Exit::Signal(CRASH_SIGNAL),
        "{crash:?}"
    );
    assert!(matches!(
        crash.outcome,
        Some(CallOutcome::Failed {
            exit_code: None,
            ..
        })
    ));
    assert!(!crash.may_have_powered_off);

    // After off, the verification reads the old state: fence_dummy's recorded
    // "Timed out waiting to power OFF".
    let wrong = device.answer(&off, Some(DeviceFault::WrongStatus), &mut rng);
    assert!(
        matches!(wrong.reply.outcome, AgentOutcome::Failed(ref f) if f.kind == FailureKind::DeviceTimeout),
        "{wrong:?}"
    );
    assert!(
        wrong.reply.attempts[0]
            .stderr
            .contains("Timed out waiting to power OFF")
    );
    // A status that lies says the opposite of the recorded state.
    let status = call_for(find(Action::Status), timeout);
    for _ in 0..20 {
        let a = device.answer(&status, Some(DeviceFault::WrongStatus), &mut rng);
        let code = a.reply.attempts[0].exit.clone();
        let said = a.reply.attempts[0].stdout.clone();
        match code {
            Exit::Code(0) => assert_eq!(said, "Status: ON\n"),
            Exit::Code(2) => assert_eq!(said, "Status: OFF\n"),
            other => panic!("status exit {other:?}"),
        }
    }

    // A slow power-off takes factor × the recorded time; past the timeout the
    // runner kills the agent.
    let recorded = find(Action::Off).reply.attempts[0].duration;
    let slow = device.answer(&off, Some(DeviceFault::SlowPowerOff(3)), &mut rng);
    assert_eq!(slow.after, recorded * 3);
    assert!(matches!(slow.outcome, Some(CallOutcome::Success { .. })));
    let short = call_for(find(Action::Off), recorded * 2);
    let cut = device.answer(&short, Some(DeviceFault::SlowPowerOff(3)), &mut rng);
    assert_eq!(
        (cut.after, cut.outcome),
        (recorded * 2, Some(CallOutcome::TimedOut))
    );
}
