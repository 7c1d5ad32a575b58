//! `phalanx-fence` end to end, offline: listing installed agents, metadata, a direct
//! run with its exit status, JSON output and a recording.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fence(args: &[&str]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_phalanx-fence"))
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.code().unwrap(),
    )
}

fn test_agents() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fence/test-agents")
        .to_string_lossy()
        .into_owned()
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("phalanx-fence-cli-{}-{name}", std::process::id()))
}

#[test]
fn lists_installed_agents_as_text_and_json() {
    let (out, _, code) = fence(&["--list-installed", "--agent-dir", &test_agents()]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "fence_phalanx_fabric\nfence_phalanx_kill\nfence_phalanx_target\nfence_phalanx_test\n"
    );
    let (out, _, code) = fence(&["--list-installed", "--agent-dir", &test_agents(), "--json"]);
    assert_eq!(code, 0);
    let names: Vec<String> = serde_json::from_str(&out).unwrap();
    assert_eq!(
        names,
        [
            "fence_phalanx_fabric",
            "fence_phalanx_kill",
            "fence_phalanx_target",
            "fence_phalanx_test"
        ]
    );
}

#[test]
fn metadata_as_summary_raw_and_json() {
    let dir = test_agents();
    let (out, _, code) = fence(&[
        "--metadata",
        "--agent",
        "fence_phalanx_kill",
        "--agent-dir",
        &dir,
    ]);
    assert_eq!(code, 0);
    assert!(out.starts_with("fence_phalanx_kill — "), "{out}");
    assert!(out.contains("host argument: port"), "{out}");
    let (out, _, _) = fence(&[
        "--metadata",
        "--agent",
        "fence_phalanx_kill",
        "--agent-dir",
        &dir,
        "--raw",
    ]);
    assert!(out.starts_with("<?xml"), "{out}");
    let (out, _, code) = fence(&[
        "--metadata",
        "--agent",
        "fence_phalanx_kill",
        "--agent-dir",
        &dir,
        "--json",
    ]);
    assert_eq!(code, 0);
    let meta: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(meta["name"], "fence_phalanx_kill");
    let (_, err, code) = fence(&[
        "--metadata",
        "--agent",
        "fence_nowhere",
        "--agent-dir",
        &dir,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("fence_nowhere"), "{err}");
}

#[test]
fn a_direct_run_reports_its_outcome_and_exit_status() {
    let dir = test_agents();
    let pid_dir = tmp("pids");
    std::fs::create_dir_all(&pid_dir).unwrap();
    let mut victim = Command::new("sleep").arg("300").spawn().unwrap();
    std::fs::write(pid_dir.join("n2.pid"), victim.id().to_string()).unwrap();
    let pid_param = format!("pidfile_dir={}", pid_dir.display());
    let run = |action: &str, extra: &[&str]| {
        let mut args = vec![
            "--agent",
            "fence_phalanx_kill",
            "--agent-dir",
            &dir,
            "--action",
            action,
        ];
        args.extend_from_slice(extra);
        fence(&args)
    };
    let (out, _, code) = run(
        "status",
        &[
            "--target",
            "n2",
            "-p",
            &pid_param,
            "-p",
            "pcmk_host_argument=none",
        ],
    );
    assert_eq!((out.as_str(), code), ("power: On\n", 0));
    let record = tmp("calls.jsonl");
    let record_s = record.to_string_lossy().into_owned();
    let (out, _, code) = run(
        "off",
        &[
            "--target", "n2", "-p", &pid_param, "--record", &record_s, "--json",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reply"]["outcome"], "success");
    // The host argument came from the metadata (port), the port from the node name.
    assert!(
        v["reply"]["stdin"].as_str().unwrap().contains("port=n2\n"),
        "{v}"
    );
    let _ = victim.wait();
    let (out, _, code) = run("status", &["--target", "n2", "-p", &pid_param]);
    assert_eq!((out.as_str(), code), ("power: Off\n", 2));
    let (_, _, code) = run("list", &["-p", "bogus\nline=1"]);
    assert_eq!(code, 1, "a parameter with a newline is refused");
    let recorded = std::fs::read_to_string(&record).unwrap();
    assert_eq!(recorded.lines().count(), 1);
    let _ = std::fs::remove_dir_all(&pid_dir);
    let _ = std::fs::remove_file(&record);
}
