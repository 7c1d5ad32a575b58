//! The `phalanx-cib` tool against the conformance contract: its stdout and
//! exit status equal the real `crm_diff` 2.1.5's recorded answers on the
//! corpus pairs and the upstream vectors, the real `crm_diff` accepts its
//! canonical form and its patches, and bad input gives a message and a
//! non-zero status, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TOOL: &str = env!("CARGO_BIN_EXE_phalanx-cib");

/// `shared/cib-corpus` beside the checkout, or under `PHALANX_SHARED_DIR`.
fn corpus() -> PathBuf {
    let shared = std::env::var_os("PHALANX_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let dir = shared.join("cib-corpus");
    assert!(
        dir.join("pairs-sample").is_dir(),
        "CIB corpus not found at {} (the checkout must sit beside shared/)",
        dir.display()
    );
    dir
}

fn crm_diff() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin"] {
        let p = Path::new(dir).join("crm_diff");
        if p.is_file() {
            return p;
        }
    }
    panic!("the real crm_diff is required (apt-get install pacemaker-cli-utils)");
}

fn run(program: &Path, args: &[&Path]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "{} panicked: {stderr}",
        program.display()
    );
    out
}

fn tool(args: &[&str], files: &[&Path]) -> Output {
    let mut all: Vec<&Path> = args.iter().map(Path::new).collect();
    all.extend_from_slice(files);
    run(Path::new(TOOL), &all)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn pair_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus().join("pairs-sample"))
        .expect("pairs-sample")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 40);
    dirs
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("phalanx-cib-tool-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

#[test]
fn diff_and_patch_reproduce_real_crm_diff_on_the_pairs() {
    let mut diffs = 0;
    let mut patches = 0;
    for dir in pair_dirs() {
        let (a, b) = (dir.join("A.xml"), dir.join("B.xml"));
        let meta = read(&dir.join("meta.json"));
        let out = tool(&["diff", "--original"], &[&a, Path::new("--new"), &b]);
        let want_rc = if meta.contains("\"real_diff_rc\": 0") {
            0
        } else {
            1
        };
        assert_eq!(
            out.status.code(),
            Some(want_rc),
            "{}: diff exit",
            dir.display()
        );
        if want_rc == 1 {
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                read(&dir.join("patch.xml")),
                "{}: diff output",
                dir.display()
            );
            let out = tool(
                &["patch", "--original"],
                &[&a, Path::new("--patch"), &dir.join("patch.xml")],
            );
            assert_eq!(out.status.code(), Some(0), "{}: patch exit", dir.display());
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                read(&dir.join("result.xml")),
                "{}: patch output",
                dir.display()
            );
            patches += 1;
        } else {
            assert!(out.stdout.is_empty());
        }
        let cib = dir.join("patch-cib.xml");
        if cib.exists() {
            let out = tool(
                &["diff", "--cib", "--original"],
                &[&a, Path::new("--new"), &b],
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                read(&cib),
                "{}: --cib",
                dir.display()
            );
        }
        diffs += 1;
    }
    eprintln!(
        "tool: {diffs}/40 diffs and {patches}/38 patches byte-identical to the real crm_diff"
    );
}

#[test]
fn upstream_vectors_in_all_modes() {
    let cli = corpus().join("upstream-cli");
    let real = cli.join("real-2.1.5");
    let (old, new) = (cli.join("crm_diff_old.xml"), cli.join("crm_diff_new.xml"));
    for (flags, expected) in [
        (vec!["diff"], "patchset.xml"),
        (vec!["diff", "--cib"], "patchset-cib.xml"),
        (vec!["diff", "--no-version"], "patchset-no-version.xml"),
    ] {
        let mut args = flags.clone();
        args.push("--original");
        let out = tool(&args, &[&old, Path::new("--new"), &new]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            read(&real.join(expected)),
            "{flags:?}"
        );
    }
    let out = tool(
        &["patch", "--original"],
        &[&old, Path::new("--patch"), &real.join("patchset.xml")],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        read(&real.join("applied-own-patchset.xml"))
    );
    // Real exit 1 ("Application of update diff failed"): digest mismatch.
    let out = tool(
        &["patch", "--original"],
        &[&old, Path::new("--patch"), &real.join("patchset-cib.xml")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("digest"));
}

#[test]
fn canonical_form_is_equal_for_the_real_crm_diff() {
    let crm_diff = crm_diff();
    let scratch = scratch("canon");
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus().join("scheduler"))
        .expect("scheduler")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    // A sample through the tool (the library test covers all 436).
    let sample: Vec<&PathBuf> = files.iter().step_by(29).collect();
    for file in &sample {
        for compact in [false, true] {
            let out = if compact {
                tool(&["canon", "--compact"], &[file])
            } else {
                tool(&["canon"], &[file])
            };
            assert_eq!(out.status.code(), Some(0));
            let canon = scratch.join("canon.xml");
            std::fs::write(&canon, &out.stdout).expect("write");
            let cmp = run(
                &crm_diff,
                &[Path::new("--original"), file, Path::new("--new"), &canon],
            );
            // A few corpus files are unequal to themselves for Pacemaker
            // (repeated ids); for those, canon(X) must give X-vs-X's patch.
            let itself = run(
                &crm_diff,
                &[Path::new("--original"), file, Path::new("--new"), file],
            );
            assert_eq!(
                cmp.status.code(),
                itself.status.code(),
                "{}: real crm_diff",
                file.display()
            );
            assert_eq!(
                cmp.stdout,
                itself.stdout,
                "{}: real crm_diff output",
                file.display()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    eprintln!(
        "tool canon: {}/{} sampled files: real crm_diff answers X-vs-canon(X) exactly as X-vs-X",
        sample.len(),
        sample.len()
    );
}

#[test]
fn bad_input_is_a_message_and_a_nonzero_status() {
    let scratch = scratch("bad");
    let cases: [(&str, &[u8]); 6] = [
        ("truncated.xml", b"<cib><configuration>"),
        (
            "doctype.xml",
            b"<!DOCTYPE cib [<!ENTITY x \"y\">]><cib a=\"&x;\"/>",
        ),
        ("binary.xml", b"\xff\xfe<\x00c\x00"),
        ("empty.xml", b""),
        ("lone-angle.xml", b"<"),
        ("entity.xml", b"<cib a=\"&nope;\"/>"),
    ];
    let good = corpus().join("pairs-sample/p003/A.xml");
    for (name, bytes) in cases {
        let path = scratch.join(name);
        std::fs::write(&path, bytes).expect("write");
        for args in [
            vec![Path::new("canon"), &path],
            vec![
                Path::new("diff"),
                Path::new("--original"),
                &good,
                Path::new("--new"),
                &path,
            ],
            vec![
                Path::new("patch"),
                Path::new("--original"),
                &good,
                Path::new("--patch"),
                &path,
            ],
        ] {
            let out = run(Path::new(TOOL), &args);
            assert_eq!(out.status.code(), Some(2), "{name} {args:?}");
            assert!(out.stdout.is_empty(), "{name}: no output on error");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(name),
                "{name}: the message names the file"
            );
        }
    }
    let deep = scratch.join("nested.xml");
    std::fs::write(&deep, "<a>".repeat(10_000)).expect("write");
    let out = run(Path::new(TOOL), &[Path::new("canon"), &deep]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("deeper"));
    let missing = scratch.join("missing.xml");
    let out = run(Path::new(TOOL), &[Path::new("canon"), &missing]);
    assert_eq!(out.status.code(), Some(2));
    // A patch that does not apply: exit 1, message, no output.
    let patch = scratch.join("patch.xml");
    std::fs::write(
        &patch,
        "<diff format=\"2\"><change operation=\"modify\" path=\"/cib/none\"><change-result><none/></change-result></change></diff>",
    )
    .expect("write");
    let out = run(
        Path::new(TOOL),
        &[
            Path::new("patch"),
            Path::new("-o"),
            &good,
            Path::new("-p"),
            &patch,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not apply"));
    let _ = std::fs::remove_dir_all(&scratch);
}
