//! `phalanx-blackbox [OPTIONS] FILE...` — print flight-recorder files, live or after a
//! crash, one record per line, oldest first; several files merge into one timeline.
//! See `phalanx_logsys::dump` for the options.

fn main() -> std::process::ExitCode {
    phalanx_logsys::dump::run_cli(std::env::args().skip(1))
}
