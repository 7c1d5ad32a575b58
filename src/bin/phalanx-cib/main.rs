//! `phalanx-cib` — Pacemaker-compatible CIB diff/patch/canonicalisation, with
//! the command-line contract of the CIB conformance corpus:
//!
//! ```text
//! phalanx-cib diff  --original A.xml --new B.xml    # v2 patchset on stdout; exit 0 same, 1 different
//! phalanx-cib patch --original A.xml --patch P.xml  # patched CIB on stdout; exit 0
//! phalanx-cib canon FILE.xml                        # normalised XML on stdout
//! phalanx-cib digest FILE.xml                       # Pacemaker's digests
//! ```
//!
//! Output is byte-for-byte what Pacemaker 2.1.5's `crm_diff` prints. Exit
//! status 2 means bad usage or unreadable/malformed input; `patch` exits 1
//! when the patch cannot be applied. See `docs/cib.md`.

#[path = "../common/cli.rs"]
mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use clap_complete::Shell;
use phalanx::cib::digest::{cib_digest, on_disk_digest};
use phalanx::cib::patch::{ApplyOptions, DiffOptions, apply, diff, to_pretty_text};
use phalanx::cib::xml::{Element, Escaping, ParseLimits, Style, parse_with_limits, to_string};

/// Compare, patch and normalise Pacemaker CIB XML (v2 patchsets, as crm_diff 2.1.5).
#[derive(Parser, Debug)]
#[command(name = "phalanx-cib", version, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Print a completion script for SHELL on stdout and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<Shell>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the v2 patchset turning ORIGINAL into NEW; exit 0 if Pacemaker
    /// sees no difference, 1 if it does.
    Diff {
        /// The original CIB.
        #[arg(short = 'o', long, value_name = "FILE")]
        original: String,
        /// The new CIB.
        #[arg(short = 'n', long, value_name = "FILE")]
        new: String,
        /// As `crm_diff --cib`: ignore attribute order, add a digest of NEW.
        #[arg(short = 'c', long)]
        cib: bool,
        /// As `crm_diff --no-version`: no version block, version attributes not compared.
        #[arg(short = 'u', long)]
        no_version: bool,
    },
    /// Apply a v2 patchset to ORIGINAL and print the result.
    Patch {
        /// The CIB to patch.
        #[arg(short = 'o', long, value_name = "FILE")]
        original: String,
        /// The patchset.
        #[arg(short = 'p', long, value_name = "FILE")]
        patch: String,
        /// As `crm_diff --cib --patch`: check the patch's versions against ORIGINAL first.
        #[arg(short = 'c', long)]
        cib: bool,
    },
    /// Print FILE in canonical form (attribute order kept, comments kept, text dropped).
    Canon {
        /// The XML file.
        file: String,
        /// One line without indentation (the form digests hash) instead of
        /// Pacemaker's pretty layout.
        #[arg(long)]
        compact: bool,
    },
    /// Print Pacemaker's on-disk digest (cib.xml.sig) and versioned digest of FILE.
    Digest {
        /// The XML file.
        file: String,
    },
}

/// Exit status for bad usage or bad input.
const BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli: Cli = match cli::parse(BAD_INPUT) {
        Ok(c) => c,
        Err(status) => return status,
    };
    if let Some(shell) = cli.completions {
        return cli::print_completions::<Cli>(shell);
    }
    let Some(command) = cli.command else {
        eprintln!("phalanx-cib: a command is required (diff, patch, canon, digest); see --help");
        return ExitCode::from(BAD_INPUT);
    };
    match run(command) {
        Ok(status) => status,
        Err(message) => {
            eprintln!("phalanx-cib: {message}");
            ExitCode::from(BAD_INPUT)
        }
    }
}

fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Diff {
            original,
            new,
            cib,
            no_version,
        } => {
            let (a, b) = (load(&original)?, load(&new)?);
            match diff(&a, &b, &DiffOptions { cib, no_version }) {
                None => Ok(ExitCode::SUCCESS),
                Some(patch) => {
                    emit(&to_pretty_text(&patch))?;
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Patch {
            original,
            patch,
            cib,
        } => {
            let (doc, patch) = (load(&original)?, load(&patch)?);
            match apply(
                &doc,
                &patch,
                &ApplyOptions {
                    check_versions: cib,
                },
            ) {
                Ok(result) => {
                    emit(&to_pretty_text(&result))?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("phalanx-cib: could not apply patch: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Canon { file, compact } => {
            let doc = load(&file)?;
            let style = if compact {
                Style::Compact
            } else {
                Style::Pretty
            };
            let mut text = to_string(&doc, style, Escaping::Xml);
            if compact {
                text.push('\n');
            }
            emit(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Digest { file } => {
            let doc = load(&file)?;
            emit(&format!(
                "on-disk {}\nversioned {}\n",
                on_disk_digest(&doc),
                cib_digest(&doc)
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads and parses an XML file, refusing anything over the parser's limits
/// before reading it whole.
fn load(path: &str) -> Result<Element, String> {
    let limits = ParseLimits::default();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {path}: {e}"))?
        .len();
    if size > limits.max_document_bytes as u64 {
        return Err(format!(
            "{path}: {size} bytes, more than the limit of {}",
            limits.max_document_bytes
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{path}: not valid UTF-8"))?;
    parse_with_limits(&text, &limits).map_err(|e| format!("{path}: {e}"))
}

/// Writes to stdout; a closed pipe is reported, not a panic.
fn emit(text: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write output: {e}"))
}
