//! `phalanx-keygen [-k PATH] [--force]` — write a new cluster key file: 256 random
//! bytes from the operating system, mode 0400 (like `corosync-keygen`). Default path
//! `/etc/phalanx/authkey`; copy the same file to every node. See `docs/crypto.md`.

use std::process::ExitCode;

use phalanx::crypto::{DEFAULT_KEY_PATH, KEY_FILE_LEN, generate_key_file};

const USAGE: &str = "usage: phalanx-keygen [-k PATH] [--force]\n\
    \n  -k, --key-file PATH  where to write the key (default /etc/phalanx/authkey)\
    \n  -f, --force          replace an existing key file\
    \n  -h, --help           print this help\n";

fn main() -> ExitCode {
    let mut path = DEFAULT_KEY_PATH.to_string();
    let mut force = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-k" | "--key-file" => match args.next() {
                Some(p) => path = p,
                None => {
                    eprint!("phalanx-keygen: {a} needs a path\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-f" | "--force" => force = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprint!("phalanx-keygen: unknown argument {a:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
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
