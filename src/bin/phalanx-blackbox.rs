//! `phalanx-blackbox [OPTIONS] FILE...` — print flight-recorder files, live or after a
//! crash, one record per line, oldest first; several files merge into one timeline.
//! `--help` tells every option; `phalanx_logsys::dump` does the work. Exit status: 0
//! on success, 1 when a file could not be read (the others are still printed), 2 on
//! bad usage. `--completions SHELL` prints a shell completion script.

#[path = "common/cli.rs"]
mod cli;

use clap::{Parser, ValueEnum};
use clap_complete::Shell;
use phalanx_logsys::Level;
use phalanx_logsys::dump::{self, Options, parse_time};
use std::process::ExitCode;

/// Print flight-recorder files (a node's `<state_dir>/blackbox-<id>`), live or after a
/// crash: one record per line, oldest first. Several files (one per node) are merged
/// into one timeline.
#[derive(Parser, Debug)]
#[command(
    name = "phalanx-blackbox",
    version,
    args_override_self = true,
    after_help = "Exit status: 0 on success, 1 when a file could not be read (the others \
                  are still printed), 2 on bad usage."
)]
struct Cli {
    /// Recorder files to print.
    #[arg(value_name = "FILE", required = true)]
    files: Vec<String>,
    /// Only records at LEVEL or more severe: error, warn, notice, info, debug, trace.
    #[arg(short = 'l', long, value_name = "LEVEL", value_parser = level)]
    level: Option<Level>,
    /// Only these subsystems (comma-separated; repeatable).
    #[arg(
        short = 's',
        long = "subsystem",
        value_name = "NAME[,NAME..]",
        value_delimiter = ','
    )]
    subsystems: Vec<String>,
    /// Only records at or after T: RFC 3339 UTC (2026-11-01T12:00:00.5Z) or seconds
    /// (1730462400.5), on the clock of --clock.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    since: Option<u64>,
    /// Only records at or before T (as --since).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    until: Option<u64>,
    /// Clock that orders, merges and filters: wall time (records without one use their
    /// monotonic time) or the writer's monotonic time.
    #[arg(long, value_name = "CLOCK", value_enum, default_value_t = ClockArg::Wall)]
    clock: ClockArg,
    /// One JSON object per record and line.
    #[arg(long)]
    json: bool,
    /// A summary line per file on stderr.
    #[arg(long)]
    stats: bool,
    /// Print a completion script for SHELL on stdout and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<Shell>,
}

/// `--clock`'s values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ClockArg {
    /// Wall time, the monotonic time for records without one.
    Wall,
    /// The writer-supplied monotonic (or virtual) time.
    Mono,
}

fn level(s: &str) -> Result<Level, String> {
    s.parse()
}

impl Cli {
    fn into_options(self) -> Options {
        Options {
            files: self.files,
            level: self.level,
            subsystems: self
                .subsystems
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            since: self.since,
            until: self.until,
            clock: match self.clock {
                ClockArg::Wall => dump::Clock::Wall,
                ClockArg::Mono => dump::Clock::Mono,
            },
            json: self.json,
            stats: self.stats,
        }
    }
}

fn main() -> ExitCode {
    let cli: Cli = match cli::parse(2) {
        Ok(c) => c,
        Err(status) => return status,
    };
    if let Some(shell) = cli.completions {
        return cli::print_completions::<Cli>(shell);
    }
    let options = cli.into_options();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    dump::run(&options, &mut out, &mut std::io::stderr())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Options, clap::Error> {
        let argv = std::iter::once("phalanx-blackbox").chain(line.split_whitespace());
        Cli::try_parse_from(argv).map(Cli::into_options)
    }

    #[test]
    fn parses_options_and_times() {
        let o =
            parse("-l debug -s totem,cpg -s quorum --since 10.5 --clock mono --json a b").unwrap();
        assert_eq!(o.level, Some(Level::Debug));
        assert_eq!(o.subsystems, ["totem", "cpg", "quorum"]);
        assert_eq!(o.since, Some(10_500_000_000));
        assert_eq!(o.clock, dump::Clock::Mono);
        assert!(o.json && !o.stats);
        assert_eq!(o.files, ["a", "b"]);
        assert_eq!(parse("a").unwrap().clock, dump::Clock::Wall);
        // Files may follow `--` even when they look like options.
        assert_eq!(parse("-- -x").unwrap().files, ["-x"]);
    }

    #[test]
    fn rejects_bad_usage() {
        for bad in [
            "--bogus f",
            "-l",
            "-l loud f",
            "--since x f",
            "--clock sideways f",
            "",
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
    }

    #[test]
    fn completions_need_no_file() {
        let cli = Cli::try_parse_from(["phalanx-blackbox", "--completions", "bash"]).unwrap();
        assert_eq!(cli.completions, Some(Shell::Bash));
    }
}
