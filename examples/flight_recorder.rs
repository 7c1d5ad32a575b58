//! Writes flight-recorder records `tick 0`, `tick 1`, ... as fast as it can until it is
//! killed; read the file back with `phalanx-blackbox`.
//!
//! ```text
//! cargo run --release --example flight_recorder -- --file /tmp/fr [--size BYTES]
//! # elsewhere: kill -9 <pid>; then
//! cargo run --release --bin phalanx-blackbox -- /tmp/fr | tail
//! ```

use phalanx_logsys::{DEFAULT_SIZE, Logger, install_panic_hook, monotonic_ns, record};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut file = None;
    let mut size = DEFAULT_SIZE;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--file", Some(v)) => file = Some(v),
            ("--size", Some(v)) => match v.parse() {
                Ok(s) => size = s,
                Err(_) => return usage(),
            },
            _ => return usage(),
        }
    }
    let Some(file) = file else { return usage() };
    let log = match Logger::file(&file, size) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("flight_recorder: {e}");
            return ExitCode::FAILURE;
        }
    };
    install_panic_hook(log.clone());
    eprintln!("flight_recorder: pid {} writing {file}", std::process::id());
    let mut n: u64 = 0;
    loop {
        record!(log, monotonic_ns(), 1, Info, "example", "tick {}", n);
        n += 1;
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: flight_recorder --file PATH [--size BYTES]");
    ExitCode::from(2)
}
