//! `phalanx-keygen [-k PATH] [--force]` — write a new cluster key file: 256 random
//! bytes from the operating system, mode 0400 (like `corosync-keygen`). Default path
//! `/etc/phalanx/authkey`; copy the same file to every node. See `docs/crypto.md`.
//! `--completions SHELL` prints a shell completion script.

#[path = "common/cli.rs"]
mod cli;

use clap::Parser;
use clap_complete::Shell;
use phalanx::crypto::{DEFAULT_KEY_PATH, KEY_FILE_LEN, generate_key_file};
use std::process::ExitCode;

/// Write a new cluster key file: 256 random bytes, mode 0400, like corosync-keygen.
/// Copy the same file to every node of the cluster.
#[derive(Parser, Debug)]
#[command(name = "phalanx-keygen", version, args_override_self = true)]
struct Cli {
    /// Where to write the key; missing directories are created.
    #[arg(short = 'k', long = "key-file", value_name = "PATH", default_value = DEFAULT_KEY_PATH)]
    key_file: String,
    /// Replace an existing key file (the cluster's nodes then need the new one).
    #[arg(short = 'f', long)]
    force: bool,
    /// Print a completion script for SHELL on stdout and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<Shell>,
}

fn main() -> ExitCode {
    let cli: Cli = match cli::parse(2) {
        Ok(c) => c,
        Err(status) => return status,
    };
    if let Some(shell) = cli.completions {
        return cli::print_completions::<Cli>(shell);
    }
    let (path, force) = (cli.key_file, cli.force);
    let p = std::path::Path::new(&path);
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("phalanx-keygen: cannot create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    match generate_key_file(p, force) {
        Ok(()) => {
            println!(
                "Wrote {KEY_FILE_LEN} random bytes to {path} (mode 0400). \
                 Copy it to every node of the cluster."
            );
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!("phalanx-keygen: {path} exists; use --force to replace it");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("phalanx-keygen: cannot write {path}: {e}");
            ExitCode::FAILURE
        }
    }
}
