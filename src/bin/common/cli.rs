//! What the command-line tools of this package share: parsing with clap while each
//! tool keeps its own exit status for usage errors, and `--completions SHELL`.
//!
//! Each tool includes this file as a module (`#[path = ...] mod cli;`): it is not a
//! binary of its own, and clap stays out of the library's API.

use clap::{CommandFactory, Parser};
use clap_complete::Shell;
use std::process::ExitCode;

/// Parses the process's command line into `C`. `--help` and `--version` print and
/// give `Err(ExitCode::SUCCESS)`; a usage error prints clap's message and gives
/// `Err(usage_status)`, the status the tool has always used for bad usage.
pub fn parse<C: Parser>(usage_status: u8) -> Result<C, ExitCode> {
    C::try_parse().map_err(|e| {
        // Printing can only fail on a closed stdout/stderr; the status still tells.
        let _ = e.print();
        if e.use_stderr() {
            ExitCode::from(usage_status)
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// Prints the completion script of `C`'s command line for `shell` on stdout.
pub fn print_completions<C: CommandFactory>(shell: Shell) -> ExitCode {
    let mut cmd = C::command();
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, &mut std::io::stdout());
    ExitCode::SUCCESS
}
