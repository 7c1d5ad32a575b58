//! `phalanx-cibadmin` — read and change the replicated CIB, with `cibadmin`'s flags.
//!
//! ```text
//! phalanx-cibadmin [--socket PATH | --config FILE [--node-id N]]
//!     (-Q | -C | -M | -R | -D | -d | -E --force | -B | -P)
//!     [-o SECTION | -A XPATH] [-X XML | -x FILE | -p] [-c] [-n] [--score]
//! ```
//!
//! Through a running node's admin socket, a modifying operation answers once it has
//! been applied by every node of the configuration; a query answers from the node's
//! copy. With `CIB_file=FILE` in the environment, as with cibadmin, the operation
//! runs on that file instead (no cluster; the file is rewritten when changed).
//! Exit status: cibadmin's for each error (e.g. 105 no such object, 108 exists,
//! 103 old data), 0 on success, 1 on a usage or connection error.

#[path = "common/admin_target.rs"]
mod admin_target;
#[path = "common/cli.rs"]
mod cli;

use admin_target::AdminTarget;
use clap::{ArgGroup, Parser};
use clap_complete::Shell;
use phalanx::admin::{AdminClient, Request, Response};
use phalanx::cib::ops::{CallOptions, CibOp, OpContext, Scope, execute_validated, wire};
use phalanx::cib::schema::SchemaValidator;
use phalanx::cib::xml::{Element, Escaping, Style, parse, to_string};
use phalanx::relaxng::PacemakerSchemas;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

/// Read or change the replicated CIB like cibadmin.
#[derive(Parser, Debug)]
#[command(
    name = "phalanx-cibadmin",
    version,
    args_override_self = true,
    group(ArgGroup::new("op").args([
        "query", "create", "modify", "replace", "delete", "delete_all", "erase", "bump", "patch",
    ])),
    group(ArgGroup::new("input").args(["xml_text", "xml_file", "xml_pipe"])),
    after_help = "Exit status: 0 on success; cibadmin's status for a failed operation \
                  (105 no such object, 108 exists, 103 old data, 13 permission denied, ...); \
                  1 on a usage or connection error."
)]
struct Cli {
    #[command(flatten)]
    target: AdminTarget,
    /// Query the section, the XPath matches, or the whole CIB (the default).
    #[arg(short = 'Q', long)]
    query: bool,
    /// Create the input's objects under the section.
    #[arg(short = 'C', long)]
    create: bool,
    /// Merge the input into the element with its name and id.
    #[arg(short = 'M', long)]
    modify: bool,
    /// Replace the element with the input's name and id (or the whole CIB).
    #[arg(short = 'R', long)]
    replace: bool,
    /// Delete the first element matching the input (or the XPath).
    #[arg(short = 'D', long)]
    delete: bool,
    /// With an XPath: delete every match.
    #[arg(short = 'd', long = "delete-all")]
    delete_all: bool,
    /// Erase the configuration and status (needs --force).
    #[arg(short = 'E', long)]
    erase: bool,
    /// Increase the epoch.
    #[arg(short = 'B', long)]
    bump: bool,
    /// Apply a v2 patchset (the input).
    #[arg(short = 'P', long)]
    patch: bool,
    /// The section (cib, configuration, nodes, resources, constraints, crm_config,
    /// status, ...).
    #[arg(
        short = 'o',
        long = "scope",
        value_name = "SECTION",
        conflicts_with = "xpath"
    )]
    scope: Option<String>,
    /// An XPath expression instead of a section.
    #[arg(short = 'A', long, value_name = "XPATH")]
    xpath: Option<String>,
    /// The input as XML text.
    #[arg(short = 'X', long = "xml-text", value_name = "XML")]
    xml_text: Option<String>,
    /// The input from a file.
    #[arg(short = 'x', long = "xml-file", value_name = "FILE")]
    xml_file: Option<PathBuf>,
    /// The input from stdin.
    #[arg(short = 'p', long = "xml-pipe")]
    xml_pipe: bool,
    /// With -M: create the object when nothing matches.
    #[arg(short = 'c', long = "allow-create")]
    allow_create: bool,
    /// With -Q: the matches without their children.
    #[arg(short = 'n', long = "no-children")]
    no_children: bool,
    /// With -M: `attr="attr++"` and `attr="attr+=N"` are score arithmetic.
    #[arg(long)]
    score: bool,
    /// Needed by -E.
    #[arg(short = 'f', long)]
    force: bool,
    /// Print a completion script for SHELL on stdout and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<Shell>,
}

/// A failure and the status to exit with.
struct Failure(u8, String);

fn usage(msg: impl Into<String>) -> Failure {
    Failure(1, msg.into())
}

fn input(cli: &Cli) -> Result<Option<Element>, Failure> {
    let text = if let Some(t) = &cli.xml_text {
        t.clone()
    } else if let Some(f) = &cli.xml_file {
        std::fs::read_to_string(f).map_err(|e| usage(format!("{}: {e}", f.display())))?
    } else if cli.xml_pipe {
        let mut t = String::new();
        std::io::stdin()
            .read_to_string(&mut t)
            .map_err(|e| usage(format!("stdin: {e}")))?;
        t
    } else {
        return Ok(None);
    };
    parse(&text)
        .map(Some)
        .map_err(|e| Failure(65, format!("invalid XML input: {e}")))
}

fn build(cli: &Cli) -> Result<CibOp, Failure> {
    let scope = match (&cli.scope, &cli.xpath) {
        (Some(s), _) => Scope::Section(s.clone()),
        (None, Some(x)) => Scope::XPath(x.clone()),
        (None, None) => Scope::Whole,
    };
    let options = CallOptions {
        multiple: cli.delete_all,
        can_create: cli.allow_create,
        no_children: cli.no_children,
        score_update: cli.score,
        force: cli.force,
        ..CallOptions::default()
    };
    let need = |what: &str| -> Result<Element, Failure> {
        input(cli)?.ok_or_else(|| usage(format!("{what} needs an input (-X, -x or -p)")))
    };
    Ok(if cli.create {
        CibOp::Create {
            scope,
            input: need("-C")?,
            options,
        }
    } else if cli.modify {
        CibOp::Modify {
            scope,
            input: need("-M")?,
            options,
        }
    } else if cli.replace {
        CibOp::Replace {
            scope,
            input: need("-R")?,
            digest: None,
            options,
        }
    } else if cli.delete || cli.delete_all {
        CibOp::Delete {
            scope,
            input: input(cli)?,
            options,
        }
    } else if cli.erase {
        if !cli.force {
            return Err(Failure(
                107,
                "erasing the CIB needs --force (as cibadmin)".into(),
            ));
        }
        CibOp::Erase
    } else if cli.bump {
        CibOp::Bump
    } else if cli.patch {
        CibOp::ApplyPatch { patch: need("-P")? }
    } else {
        CibOp::Query { scope, options }
    })
}

fn print_output(output: &str) {
    print!("{output}");
    if !output.ends_with('\n') {
        println!();
    }
}

/// Runs `op` on the file `CIB_file` names, as cibadmin does offline.
fn offline(path: &str, op: CibOp) -> Result<(), Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("{path}: {e}")))?;
    let mut cib = parse(&text).map_err(|e| Failure(65, format!("{path}: {e}")))?;
    let modifying = op.is_modifying();
    let schemas = offline_schemas()?;
    let out = execute_validated(
        &mut cib,
        &op,
        &OpContext::default(),
        schemas.as_ref().map(|s| s as &dyn SchemaValidator),
    )
    .map_err(|e| Failure(e.exit_code(), e.to_string()))?;
    if let Some(o) = &out.output {
        print_output(&to_string(o, Style::Pretty, Escaping::Xml));
    }
    if modifying && out.changed {
        let text = to_string(&cib, Style::Pretty, Escaping::Xml);
        let tmp = format!("{path}.phalanx-tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| usage(format!("{path}: {e}")))?;
    }
    Ok(())
}

/// The schemas a change to a file is validated with, as `cibadmin` does
/// offline: `$PCMK_schema_directory` (Pacemaker's variable) or
/// `/usr/share/pacemaker`; none when that directory does not exist.
fn offline_schemas() -> Result<Option<PacemakerSchemas>, Failure> {
    let dir = std::env::var_os("PCMK_schema_directory")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/share/pacemaker".into());
    if !dir.is_dir() {
        return Ok(None);
    }
    PacemakerSchemas::open(&dir)
        .map(Some)
        .map_err(|e| Failure(78, format!("schemas: {e}")))
}

fn online(target: &AdminTarget, op: CibOp) -> Result<(), Failure> {
    let socket = target.socket_path().map_err(usage)?;
    let mut client = AdminClient::connect(&socket).map_err(|e| usage(e.to_string()))?;
    // A modifying request answers once applied everywhere; a sync can delay it.
    client
        .set_timeout(std::time::Duration::from_secs(120))
        .map_err(|e| usage(e.to_string()))?;
    let command = wire::encode(&op, &OpContext::default());
    match client
        .request(&Request::Cib { command })
        .map_err(|e| usage(e.to_string()))?
    {
        Response::Cib(a) if a.exit_code == 0 => {
            if let Some(o) = &a.output {
                print_output(o);
            }
            Ok(())
        }
        Response::Cib(a) => Err(Failure(
            a.exit_code,
            a.error.unwrap_or_else(|| "failed".into()),
        )),
        Response::Error { message } => Err(usage(message)),
        other => Err(usage(format!("unexpected answer {other:?}"))),
    }
}

fn main() -> ExitCode {
    let cli: Cli = match cli::parse(1) {
        Ok(c) => c,
        Err(status) => return status,
    };
    if let Some(shell) = cli.completions {
        return cli::print_completions::<Cli>(shell);
    }
    let result = build(&cli).and_then(|op| match std::env::var("CIB_file") {
        Ok(path) if !path.is_empty() => offline(&path, op),
        _ => online(&cli.target, op),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, msg)) => {
            eprintln!("phalanx-cibadmin: {msg}");
            ExitCode::from(code.max(1))
        }
    }
}
