//! Differential test against the real `crm_diff` 2.1.5: seeded random edits
//! of corpus CIBs (deletes, moves, attribute changes and reorders, comments,
//! duplicated elements, dropped ids, awkward characters), then our diff
//! (plain and `--cib`) must be byte-identical to the real one, and applying
//! the real patch — to the original and to a differently edited copy — must
//! succeed or fail as the real tool does, with the same output.
// Tests drive the world (files, processes); the crate's sans-IO lints are for
// the library.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use phalanx_cib::patch::{ApplyOptions, DiffOptions, apply, diff, to_pretty_text};
use phalanx_cib::xml::{Element, Escaping, Node, Style, parse, to_string};

/// Cases per run: each costs about six `crm_diff` processes. A longer
/// exploration: `CIB_DIFFERENTIAL_CASES=2000 CIB_DIFFERENTIAL_SEED=7 cargo test …`.
const CASES: u64 = 48;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// SplitMix64: a tiny seeded generator, so every run tests the same cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Index paths of every element below the root.
fn element_paths(e: &Element, prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    for (i, c) in e.children().iter().enumerate() {
        if let Node::Element(child) = c {
            prefix.push(i);
            out.push(prefix.clone());
            element_paths(child, prefix, out);
            prefix.pop();
        }
    }
}

fn mutate(root: &mut Element, rng: &mut Rng) {
    let mut paths = Vec::new();
    element_paths(root, &mut Vec::new(), &mut paths);
    if paths.is_empty() {
        return;
    }
    let path = paths[rng.below(paths.len())].clone();
    let (parent_path, index) = path.split_at(path.len() - 1);
    let index = index[0];
    let kind = rng.below(13);
    let parent = root.descendant_mut(parent_path).expect("parent exists");
    match kind {
        0 => {
            parent.remove_child(index);
        }
        1 => {
            if let Some(node) = parent.remove_child(index) {
                let to = rng.below(parent.children().len() + 1);
                parent.insert_child(to, node);
            }
        }
        2 => {
            let copy = parent.children()[index].clone();
            let to = rng.below(parent.children().len() + 1);
            parent.insert_child(to, copy);
        }
        3 => {
            let tag = ["nvpair", "primitive", "op"][rng.below(3)];
            let id = format!("n{}", rng.below(50));
            let to = rng.below(parent.children().len() + 1);
            parent.insert_child(to, Element::new(tag).with_attr("id", id));
        }
        _ => {
            let e = parent.children_mut()[index]
                .as_element_mut()
                .expect("an element path");
            let names: Vec<String> = e.attrs().iter().map(|a| a.name.clone()).collect();
            match kind {
                4 | 5 if !names.is_empty() => {
                    let name = &names[rng.below(names.len())];
                    let extra =
                        ["x", "", "1", " <&>'\"", "\t", "a\nb", "\u{e9}>x", "\u{7f}"][rng.below(8)];
                    let value = format!("{}{extra}", e.attr(name).unwrap_or(""));
                    e.set_attr(name.clone(), value);
                }
                6 if names.len() > 1 => {
                    let mut pairs: Vec<(String, String)> =
                        e.attr_pairs().map(|(n, v)| (n.into(), v.into())).collect();
                    let k = 1 + rng.below(pairs.len() - 1);
                    pairs.rotate_left(k);
                    e.clear_attrs();
                    for (n, v) in pairs {
                        e.set_attr(n, v);
                    }
                }
                7 if !names.is_empty() => {
                    let name = names[rng.below(names.len())].clone();
                    e.remove_attr(&name);
                }
                8 => {
                    e.remove_attr("id");
                }
                9 => {
                    e.set_attr(format!("new{}", rng.below(4)), "v");
                }
                10 => {
                    let text = [" c ", "Hello", " hello ", "x"][rng.below(4)];
                    let to = rng.below(e.children().len() + 1);
                    e.insert_child(to, Node::Comment(text.to_string()));
                }
                _ => {
                    // Drop, re-case or move an existing comment child.
                    if let Some(c) = e.children().iter().position(|n| n.as_comment().is_some()) {
                        let Some(Node::Comment(text)) = e.remove_child(c) else {
                            return;
                        };
                        match rng.below(3) {
                            0 => {}
                            1 => e.insert_child(c, Node::Comment(text.to_uppercase())),
                            _ => {
                                let to = rng.below(e.children().len() + 1);
                                e.insert_child(to, Node::Comment(text));
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn random_edits_match_real_crm_diff() {
    let crm_diff = common::tool("crm_diff");
    let files = common::scheduler_files();
    let scratch = common::scratch("differential");
    let (a_file, b_file, c_file, p_file) = (
        scratch.join("A.xml"),
        scratch.join("B.xml"),
        scratch.join("C.xml"),
        scratch.join("P.xml"),
    );
    let s = |p: &std::path::PathBuf| p.to_str().expect("utf-8 path").to_string();
    let mut rng = Rng(env_u64("CIB_DIFFERENTIAL_SEED", 0x5eed_c1b5));
    let cases = env_u64("CIB_DIFFERENTIAL_CASES", CASES);
    let (mut diffs, mut applies, mut refused) = (0, 0, 0);
    for case in 0..cases {
        let file = &files[rng.below(files.len())];
        let mut a = parse(&common::read(file)).expect("corpus parses");
        a.set_attr("crm_feature_set", "3.16.1");
        let mut b = a.clone();
        for _ in 0..1 + rng.below(4) {
            mutate(&mut b, &mut rng);
        }
        let mut c = a.clone();
        for _ in 0..1 + rng.below(2) {
            mutate(&mut c, &mut rng);
        }
        std::fs::write(&a_file, to_string(&a, Style::Pretty, Escaping::Xml)).expect("write");
        std::fs::write(&b_file, to_string(&b, Style::Pretty, Escaping::Xml)).expect("write");
        std::fs::write(&c_file, to_string(&c, Style::Pretty, Escaping::Xml)).expect("write");
        let what = format!("case {case} ({})", file.display());
        for cib in [false, true] {
            let flag: &[&str] = if cib { &["--cib"] } else { &[] };
            let mut args: Vec<String> = flag.iter().map(|f| f.to_string()).collect();
            args.extend(["--original".into(), s(&a_file), "--new".into(), s(&b_file)]);
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let real = common::run(&crm_diff, &argv, None);
            let ours = diff(
                &a,
                &b,
                &DiffOptions {
                    cib,
                    no_version: false,
                },
            );
            let ours_text = ours.as_ref().map(to_pretty_text).unwrap_or_default();
            assert_eq!(
                real.status.code(),
                Some(if ours.is_some() { 1 } else { 0 }),
                "{what} cib={cib}: exit status"
            );
            assert_eq!(
                String::from_utf8_lossy(&real.stdout),
                ours_text,
                "{what} cib={cib}: diff"
            );
            diffs += 1;
            let Some(_) = ours else { continue };
            std::fs::write(&p_file, &real.stdout).expect("write");
            let patch = parse(&String::from_utf8_lossy(&real.stdout));
            for (target, target_file) in [(&a, &a_file), (&c, &c_file)] {
                let mut args: Vec<String> = flag.iter().map(|f| f.to_string()).collect();
                args.extend([
                    "--original".into(),
                    s(target_file),
                    "--patch".into(),
                    s(&p_file),
                ]);
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let real = common::run(&crm_diff, &argv, None);
                let Ok(patch) = &patch else {
                    // Pacemaker's own escaping can print a value our parser
                    // refuses (markup after a non-ASCII character).
                    refused += 1;
                    continue;
                };
                let ours = apply(
                    target,
                    patch,
                    &ApplyOptions {
                        check_versions: cib,
                    },
                );
                match (real.status.success(), ours) {
                    (true, Ok(result)) => assert_eq!(
                        String::from_utf8_lossy(&real.stdout),
                        to_pretty_text(&result),
                        "{what} cib={cib}: applied result"
                    ),
                    (false, Err(_)) => {}
                    (real_ok, ours) => panic!(
                        "{what} cib={cib}: real apply ok={real_ok}, ours {:?}",
                        ours.map(|_| "ok")
                    ),
                }
                applies += 1;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    eprintln!(
        "differential: {diffs} diffs byte-identical, {applies} applies agreeing, {refused} patches refused by our parser"
    );
    assert!(
        applies > cases as usize,
        "too few applies exercised: {applies}"
    );
}
