//! The process runner against the test agents (fence/test-agents): timeouts kill
//! the whole process group, retries share one timeout, output is capped, stdin is
//! exact, the worker pool delivers completions, record then replay is identical,
//! and fence_phalanx_kill really kills a process.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::{TempDir, process_is_dead, test_agents_dir};
use phalanx_fence::Action;
use phalanx_fence::agent::{
    AgentMetadata, AgentOutcome, AgentReply, AgentRequest, Exit, FailureKind, FenceAgent, Port,
    PowerState, ReplayAgent,
};
use phalanx_fence::runner::{
    AgentCompletion, AgentPool, PoolError, ProcessAgent, RecordingAgent, RunnerLimits,
    load_recording,
};
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn test_runner() -> ProcessAgent {
    ProcessAgent::new(test_agents_dir()).with_limits(RunnerLimits {
        retry_pause: Duration::from_millis(50),
        ..RunnerLimits::default()
    })
}

fn test_request(action: Action, mode: &str) -> AgentRequest {
    AgentRequest::new("fence_phalanx_test", action).param("mode", mode)
}

#[test]
fn a_hanging_agent_and_its_child_are_killed_at_the_timeout() {
    let dir = TempDir::new("hang");
    let child_pid_file = dir.file("child.pid");
    let timeout = Duration::from_secs(1);
    let request = test_request(Action::Off, "hang")
        .param("child_pid_file", &child_pid_file)
        .timeout(timeout)
        .attempts(3);
    let start = Instant::now();
    let reply = test_runner().run(&request);
    let elapsed = start.elapsed();
    assert_eq!(
        reply.attempts.len(),
        1,
        "a timed-out call is not retried: {reply:?}"
    );
    assert_eq!(reply.attempts[0].exit, Exit::TimedOut);
    assert!(
        matches!(reply.outcome, AgentOutcome::Failed(ref f) if f.kind == FailureKind::TimedOut)
    );
    assert!(
        elapsed >= timeout && elapsed < timeout + Duration::from_millis(1500),
        "killed after {elapsed:?} for a {timeout:?} timeout"
    );
    let child: u32 = std::fs::read_to_string(&child_pid_file)
        .expect("the hang agent wrote its child's pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(
        process_is_dead(child),
        "the agent's child {child} survived the group kill"
    );
    println!("hang agent killed after {elapsed:?} (timeout {timeout:?}); child {child} dead");
}

#[test]
fn a_failed_attempt_is_retried_within_the_one_timeout() {
    let dir = TempDir::new("flaky");
    let flaky = |count: &str, fail_times: &str| {
        test_request(Action::Off, "flaky")
            .param("count_file", dir.file(count))
            .param("fail_times", fail_times)
            .timeout(Duration::from_secs(10))
    };
    // One failure, two attempts allowed (Pacemaker's default): success on the retry.
    let reply = test_runner().run(&flaky("a", "1"));
    assert_eq!(reply.outcome, AgentOutcome::Success, "{reply:?}");
    assert_eq!(reply.attempts.len(), 2);
    assert_eq!(reply.attempts[0].exit, Exit::Code(1));
    assert!(reply.attempts[0].stderr.contains("Failed: flaky attempt 1"));
    assert_eq!(reply.attempts[1].stdout, "Success: Powered OFF\n");
    // pcmk_off_retries=3 and always failing: exactly three attempts, then failure.
    let req = flaky("b", "9")
        .param("pcmk_off_retries", "3")
        .with_device_limits()
        .unwrap();
    let reply = test_runner().run(&req);
    assert_eq!(reply.attempts.len(), 3, "{reply:?}");
    assert!(
        matches!(&reply.outcome, AgentOutcome::Failed(f) if f.message == "Failed: flaky attempt 3")
    );
    // The retries share the timeout: once 70% of it is used no new attempt starts.
    let slow_pause = ProcessAgent::new(test_agents_dir()).with_limits(RunnerLimits {
        retry_pause: Duration::from_millis(800),
        ..RunnerLimits::default()
    });
    let req = flaky("c", "9").timeout(Duration::from_secs(1)).attempts(5);
    let start = Instant::now();
    let reply = slow_pause.run(&req);
    // The first try fails at once; the pause (cut to the time left) leads to a
    // second try past 70% of the timeout: no third one, and no overrun.
    assert_eq!(reply.attempts.len(), 2, "{reply:?}");
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn output_beyond_the_cap_is_counted_and_dropped() {
    let cap = 1024 * 1024;
    let request = test_request(Action::Monitor, "flood").param("bytes", (3 * cap).to_string());
    let reply = test_runner().run(&request);
    let a = &reply.attempts[0];
    assert_eq!(a.exit, Exit::Code(0));
    assert_eq!(a.stdout.len(), cap);
    assert!(a.stdout.bytes().all(|b| b == b'x'));
    assert_eq!(a.stdout_dropped, 2 * cap as u64);
    assert_eq!(reply.outcome, AgentOutcome::Reachable);
}

#[test]
fn the_agent_reads_exactly_the_stdin_we_built() {
    let request = test_request(Action::Reboot, "echo")
        .target("node2")
        .target_nodeid(2)
        .host_argument_default(Some("port"))
        .params([
            ("pcmk_host_map", "node1:1;node2:b2"),
            ("ip", " 10.0.0.1 "),
            ("pcmk_delay_max", "3"),
        ]);
    let reply = test_runner().run(&request);
    assert_eq!(reply.attempts[0].stdout, request.stdin().unwrap());
    assert_eq!(
        reply.attempts[0].stdout,
        "action=reboot\nnodename=node2\nnodeid=2\nport=b2\nip= 10.0.0.1 \nmode=echo\n"
    );
}

#[test]
fn a_missing_agent_fails_to_spawn_without_retrying() {
    let reply = test_runner().run(&AgentRequest::new("fence_phalanx_absent", Action::Off));
    assert_eq!(reply.attempts.len(), 1);
    assert!(matches!(reply.attempts[0].exit, Exit::SpawnFailed(_)));
    assert!(
        matches!(reply.outcome, AgentOutcome::Failed(ref f) if f.kind == FailureKind::SpawnFailed)
    );
    let reply = test_runner().run(&AgentRequest::new(
        "../test-agents/fence_phalanx_test",
        Action::Off,
    ));
    assert!(reply.attempts.is_empty());
    assert!(
        matches!(reply.outcome, AgentOutcome::Failed(ref f) if f.kind == FailureKind::BadRequest)
    );
}

#[test]
fn fence_phalanx_kill_really_kills_the_node_process() {
    let dir = TempDir::new("kill");
    let mut victim = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("spawn sleep");
    let pid_file = dir.file("node2.pid");
    std::fs::write(&pid_file, format!("{}\n", victim.id())).unwrap();
    let runner = ProcessAgent::new(test_agents_dir());
    let meta = match runner
        .run(&AgentRequest::new("fence_phalanx_kill", Action::Metadata))
        .outcome
    {
        AgentOutcome::Metadata(xml) => AgentMetadata::parse(&xml).expect("metadata parses"),
        other => panic!("metadata: {other:?}"),
    };
    // Like Pacemaker: host argument from metadata (port), port from pcmk_host_map.
    let device = |action| {
        AgentRequest::new("fence_phalanx_kill", action)
            .target("node2")
            .host_argument_default(meta.default_host_argument())
            .param("pcmk_host_map", format!("node2:{pid_file}"))
    };
    assert_eq!(
        runner.run(&device(Action::Status)).outcome,
        AgentOutcome::Power(PowerState::On)
    );
    let off = runner.run(&device(Action::Off));
    assert_eq!(off.outcome, AgentOutcome::Success, "{off:?}");
    assert!(off.stdin.contains(&format!("port={pid_file}\n")));
    let status = victim.wait().expect("reap the victim");
    assert_eq!(status.signal(), Some(9), "the victim died of SIGKILL");
    assert_eq!(
        runner.run(&device(Action::Status)).outcome,
        AgentOutcome::Power(PowerState::Off)
    );
    // list-status over a pid-file directory.
    let list = AgentRequest::new("fence_phalanx_kill", Action::ListStatus)
        .param("pidfile_dir", dir.path().to_string_lossy());
    assert_eq!(
        runner.run(&list).outcome,
        AgentOutcome::Ports(vec![Port {
            port: "node2".into(),
            alias: Some("node2".into()),
            state: Some(PowerState::Off)
        }])
    );
}

#[test]
fn record_then_replay_gives_identical_replies() {
    let dir = TempDir::new("record");
    let path = dir.path().join("calls.jsonl");
    let recorder = RecordingAgent::create(test_runner(), &path).expect("create recording");
    let flaky = test_request(Action::Off, "flaky")
        .param("count_file", dir.file("count"))
        .param("fail_times", "2")
        .attempts(1);
    let requests = [
        test_request(Action::Reboot, "echo").target("n1"),
        flaky.clone(), // fails
        flaky.clone(), // fails
        flaky.clone(), // succeeds
        AgentRequest::new("fence_phalanx_kill", Action::Metadata),
        AgentRequest::new("fence_phalanx_kill", Action::List),
        AgentRequest::new("fence_phalanx_absent", Action::Status).target("n1"),
    ];
    let recorded: Vec<AgentReply> = requests.iter().map(|r| recorder.run(r)).collect();
    assert_eq!(recorder.write_errors(), 0);
    assert!(!recorded[1].outcome.is_success() && recorded[3].outcome.is_success());
    let records = load_recording(&path).expect("load recording");
    assert_eq!(records.len(), requests.len());
    let replay = ReplayAgent::new(records);
    let replayed: Vec<AgentReply> = requests.iter().map(|r| replay.run(r)).collect();
    assert_eq!(replayed, recorded);
}

/// An agent that waits for the test's go-ahead, to make pool tests deterministic.
struct Gate {
    started: crossbeam_channel::Sender<()>,
    go: crossbeam_channel::Receiver<()>,
}

impl FenceAgent for Gate {
    fn run(&self, request: &AgentRequest) -> AgentReply {
        let _ = self.started.send(());
        let _ = self.go.recv();
        AgentReply::without_transcript(match request.action {
            Action::Status => AgentOutcome::Power(PowerState::On),
            _ => AgentOutcome::Success,
        })
    }
}

#[test]
fn the_pool_pushes_back_when_full_and_delivers_completions() {
    let (started_tx, started) = crossbeam_channel::unbounded();
    let (go, go_rx) = crossbeam_channel::unbounded();
    let (done_tx, done) = crossbeam_channel::unbounded::<AgentCompletion>();
    let pool = AgentPool::new(
        Arc::new(Gate {
            started: started_tx,
            go: go_rx,
        }),
        1,
        1,
        done_tx,
    )
    .unwrap();
    pool.submit(1, AgentRequest::new("gate", Action::Off))
        .unwrap();
    started.recv().unwrap(); // the worker holds call 1
    pool.submit(2, AgentRequest::new("gate", Action::Status))
        .unwrap(); // queued
    let full = pool.submit(3, AgentRequest::new("gate", Action::On));
    assert!(matches!(full, Err(PoolError::Full(ref r)) if r.action == Action::On));
    go.send(()).unwrap();
    go.send(()).unwrap();
    let mut got: Vec<(u64, AgentOutcome)> = (0..2)
        .map(|_| done.recv().unwrap())
        .map(|c| (c.id, c.reply.outcome))
        .collect();
    got.sort_by_key(|(id, _)| *id);
    assert_eq!(
        got,
        [
            (1, AgentOutcome::Success),
            (2, AgentOutcome::Power(PowerState::On))
        ]
    );
    drop(pool);
    assert!(
        done.try_recv().is_err(),
        "no completion for the refused call"
    );
}
