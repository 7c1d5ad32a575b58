//! The metadata of every installed /usr/sbin/fence_* agent parses into typed values.
//!
//! An agent whose metadata fails is reported with its exit and stderr. The only
//! accepted failure is `fence_ack_manual`: it is not a fence agent but an
//! interactive operator script (`fence_ack_manual <nodename>`, reads a confirmation
//! from the terminal) that has no stdin protocol and no metadata; Pacemaker never
//! runs it. Any other failure — e.g. a Python module the agent imports is missing —
//! fails the test with the agent's stderr.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::{SYSTEM_DIR, require_installed};
use phalanx_fence::Action;
use phalanx_fence::agent::{AgentMetadata, AgentOutcome, AgentRequest};
use phalanx_fence::runner::{AgentCompletion, AgentPool, ProcessAgent, installed_agents};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Installed `fence_*` programs that are not stdin-protocol agents (see the top).
const NOT_AGENTS: [&str; 1] = ["fence_ack_manual"];

#[test]
fn metadata_of_every_installed_agent_parses() {
    require_installed("fence_dummy");
    let agents = installed_agents(Path::new(SYSTEM_DIR)).expect("read /usr/sbin");
    assert!(!agents.is_empty(), "no fence_* agents in {SYSTEM_DIR}");
    let (done_tx, done) = crossbeam_channel::unbounded::<AgentCompletion>();
    let start = Instant::now();
    let pool = AgentPool::new(
        Arc::new(ProcessAgent::new(SYSTEM_DIR)),
        2,
        agents.len(),
        done_tx,
    )
    .unwrap();
    for (i, name) in agents.iter().enumerate() {
        let request = AgentRequest::new(name.clone(), Action::Metadata)
            .attempts(1)
            .timeout(Duration::from_secs(30));
        pool.submit(i as u64, request)
            .expect("queue sized for every agent");
    }
    let mut parsed = Vec::new();
    let mut problems = Vec::new();
    let mut not_agents = Vec::new();
    for _ in 0..agents.len() {
        let c = done.recv().expect("a completion per agent");
        let name = c.request.agent.clone();
        let result = match &c.reply.outcome {
            AgentOutcome::Metadata(xml) => AgentMetadata::parse(xml).map_err(|e| e.to_string()),
            other => Err(format!(
                "{other:?}; stderr: {:?}; stdout starts: {:?}",
                c.reply.attempts.first().map_or("", |a| a.stderr.trim()),
                c.reply
                    .attempts
                    .first()
                    .and_then(|a| a.stdout.lines().next())
                    .unwrap_or("")
            )),
        };
        match result {
            Ok(meta) => parsed.push((name, meta)),
            Err(why) if NOT_AGENTS.contains(&name.as_str()) => {
                not_agents.push(format!("{name}: {why}"))
            }
            Err(why) => problems.push(format!("{name}: {why}")),
        }
    }
    drop(pool);
    assert!(
        problems.is_empty(),
        "metadata failed for:\n{}",
        problems.join("\n")
    );
    for (name, meta) in &parsed {
        assert!(
            meta.name.starts_with("fence_"),
            "{name}: name {:?}",
            meta.name
        );
        assert!(
            meta.parameter("action").is_some(),
            "{name}: no action parameter"
        );
        assert!(!meta.actions.is_empty(), "{name}: no actions");
    }
    let unfencing: Vec<&str> = parsed
        .iter()
        .filter(|(_, m)| m.requires_unfencing())
        .map(|(n, _)| n.as_str())
        .collect();
    let on_target: Vec<&str> = parsed
        .iter()
        .filter(|(_, m)| m.on_runs_on_target())
        .map(|(n, _)| n.as_str())
        .collect();
    println!(
        "metadata parsed for {}/{} installed agents in {:?}; not agents: {not_agents:?}",
        parsed.len(),
        agents.len(),
        start.elapsed()
    );
    println!("automatic unfencing: {unfencing:?}; on runs on target: {on_target:?}");
    assert_eq!(parsed.len() + not_agents.len(), agents.len());
    // fence_scsi ships in the same package: a fabric agent whose `on` is automatic
    // (unfencing) and runs on the target (§2.2).
    let scsi = parsed
        .iter()
        .find(|(n, _)| n == "fence_scsi")
        .map(|(_, m)| m);
    let scsi = scsi.expect("fence_scsi (fence-agents package) parsed");
    assert!(scsi.requires_unfencing() && scsi.on_runs_on_target());
    assert!(!unfencing.contains(&"fence_dummy"));
}
