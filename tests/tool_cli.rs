//! The operator tools' command lines: `--help` names every flag, `--completions`
//! prints a script without the tool's required arguments, and bad usage exits with
//! each tool's documented status (quorumtool's 2 stays "not quorate").

use std::process::{Command, Output};

/// (binary, flags its `--help` must name, exit status on bad usage)
const TOOLS: &[(&str, &[&str], i32)] = &[
    (
        env!("CARGO_BIN_EXE_phalanx-cpgtool"),
        &["--socket", "--config", "--node-id", "-n", "-e", "--json"],
        1,
    ),
    (
        env!("CARGO_BIN_EXE_phalanx-quorumtool"),
        &[
            "--socket",
            "--config",
            "--node-id",
            "-s",
            "-l",
            "-e <VOTES>",
            "-v <VOTES>",
            "-n <NODEID>",
            "--cancel-wait-for-all",
            "--json",
        ],
        1,
    ),
    (
        env!("CARGO_BIN_EXE_phalanx-keygen"),
        &["-k, --key-file", "-f, --force"],
        2,
    ),
    (
        env!("CARGO_BIN_EXE_phalanx-qnetd"),
        &[
            "-c, --cluster <NAME=KEYFILE>",
            "-l, --listen",
            "--lease-ms",
            "--max-clients",
        ],
        2,
    ),
    (
        env!("CARGO_BIN_EXE_phalanx-blackbox"),
        &[
            "-l, --level",
            "-s, --subsystem",
            "--since",
            "--until",
            "--clock",
            "--json",
            "--stats",
        ],
        2,
    ),
    (
        env!("CARGO_BIN_EXE_phalanx-stats"),
        &["--socket", "--config", "--node-id", "[PREFIX]", "--json"],
        1,
    ),
    (
        env!("CARGO_BIN_EXE_phalanx-cibadmin"),
        &[
            "-Q, --query",
            "-M, --modify",
            "-C, --create",
            "-D, --delete",
            "-o, --scope <SECTION>",
            "-A, --xpath <XPATH>",
            "-X, --xml-text <XML>",
            "-c, --allow-create",
            "--socket",
        ],
        1,
    ),
];

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().expect("tool runs")
}

#[test]
fn help_names_every_flag() {
    for &(bin, flags, _) in TOOLS {
        let out = run(bin, &["--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{bin}: {help}");
        for flag in flags.iter().chain(&["--completions <SHELL>", "-h, --help"]) {
            assert!(help.contains(flag), "{bin} --help lacks {flag}:\n{help}");
        }
    }
}

#[test]
fn completions_need_no_other_argument() {
    for &(bin, _, _) in TOOLS {
        let name = std::path::Path::new(bin)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let out = run(bin, &["--completions", "bash"]);
        let script = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{bin}");
        // bash's `complete -F <function> ... <command>` registers it for this tool.
        assert!(
            script
                .lines()
                .any(|l| l.trim_start().starts_with("complete -F ")
                    && l.ends_with(&format!(" {name}"))),
            "{bin}: {script}"
        );
        let out = run(bin, &["--completions", "tcsh"]);
        assert_ne!(out.status.code(), Some(0), "{bin}: unknown shell accepted");
    }
}

#[test]
fn bad_usage_exits_with_the_tools_status_and_says_why() {
    for &(bin, _, status) in TOOLS {
        let out = run(bin, &["--no-such-flag"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{bin}: {err}");
        assert!(
            err.contains("unexpected argument '--no-such-flag'"),
            "{bin}: {err}"
        );
    }
    let quorumtool = TOOLS[1].0;
    // The actions exclude each other, and -n belongs to -v.
    for args in [
        &["-s", "-l"][..],
        &["-e", "2", "--cancel-wait-for-all"],
        &["-n", "3"],
    ] {
        let out = run(quorumtool, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
}

#[test]
fn keygen_writes_a_key_and_keeps_it_unless_forced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("phalanx-tool-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let key = dir.join("sub/authkey");
    let keygen = TOOLS[2].0;
    let path = key.to_str().unwrap();
    assert_eq!(run(keygen, &["-k", path]).status.code(), Some(0));
    let first = std::fs::read(&key).unwrap();
    assert_eq!(first.len(), 256);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o400);
    let out = run(keygen, &["--key-file", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read(&key).unwrap(), first, "kept without --force");
    assert_eq!(run(keygen, &["-k", path, "-f"]).status.code(), Some(0));
    assert_ne!(std::fs::read(&key).unwrap(), first, "replaced with --force");
    let _ = std::fs::remove_dir_all(&dir);
}
