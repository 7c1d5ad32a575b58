//! `phalanx-watchdog --pid N --timeout-ms T` — the process-level watchdog: started
//! by a node (its parent, `--pid`) with `fencing { watchdog: process }`, fed one
//! byte at a time on stdin from the node's driver loop. When nothing arrives for
//! `T` ms it SIGKILLs the node and says so on stderr; a `V` as the last byte
//! before stdin ends disarms it (the node stopped cleanly); stdin ending without
//! it keeps the countdown going while the node lives. It exits when the node is
//! gone. See docs/fence.md, "3. Watchdog".

use clap::Parser;
use phalanx::fence::watchdog::io::{SuperviseEnd, Target, supervise};
use std::process::ExitCode;
use std::time::Duration;

/// The process-level watchdog a node starts for itself (fencing { watchdog: process }).
#[derive(Parser, Debug)]
#[command(name = "phalanx-watchdog", version)]
struct Cli {
    /// The node's process id: must be this process's parent.
    #[arg(long, value_name = "N")]
    pid: u32,
    /// SIGKILL the node when not fed for this long.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // SAFETY: getppid(2) takes nothing and cannot fail.
    let parent = unsafe { libc::getppid() } as u32;
    if parent != cli.pid {
        eprintln!(
            "phalanx-watchdog: pid {} is not my parent ({parent}): refusing",
            cli.pid
        );
        return ExitCode::from(2);
    }
    // Ctrl-C at a terminal reaches the whole foreground group: the node leaves
    // cleanly and disarms us; dying first would make that disarm fail.
    // SAFETY: setting SIGINT's disposition to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    let target = Target {
        pid: cli.pid,
        is_parent: true,
    };
    let timeout = Duration::from_millis(cli.timeout_ms);
    match supervise(std::io::stdin(), target, timeout, &mut std::io::stderr()) {
        Ok(SuperviseEnd::Killed { .. }) => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            // A supervisor that cannot supervise must not look like a disarmed
            // one: the node learns it from its next feed failing.
            eprintln!("phalanx-watchdog: {e}");
            ExitCode::from(3)
        }
    }
}
