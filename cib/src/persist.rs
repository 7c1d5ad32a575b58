//! The on-disk format of the CIB (§1.5 of the reference), as pure functions:
//! the driver does the file system calls.
//!
//! * `cib.xml`: the CIB without its `status` section and with
//!   `num_updates="0"`, pretty-printed (lossless XML escaping, so the tree
//!   reads back exactly); `cib.xml.sig`: its on-disk digest
//!   ([`crate::digest::on_disk_digest`], 32 hex digits, no newline).
//! * Before each write the current pair is kept as `cib-N.raw` +
//!   `cib-N.raw.sig`, where `N` is read from `cib.last`; `cib.last` then holds
//!   `N + 1`, wrapping to 0 at [`BACKUPS`] (as Pacemaker's
//!   `cib_file_backup`).
//! * Loading: `cib.xml` if it parses and matches its signature (a missing
//!   signature is accepted, as Pacemaker does); otherwise it is to be
//!   archived and the newest valid backup is used (newest = `cib.last - 1`,
//!   going back), else an empty CIB. The `status` section is always
//!   replaced by an empty one, missing version attributes become 0 and
//!   `dc-uuid` is dropped.

use thiserror::Error;

use crate::digest::on_disk_digest;
use crate::ops::empty_cib;
use crate::version::Version;
use crate::xml::{Element, Escaping, Style, XmlError, parse, to_string};

/// The live file.
pub const LIVE: &str = "cib.xml";
/// Its signature.
pub const LIVE_SIG: &str = "cib.xml.sig";
/// The backup sequence file.
pub const LAST: &str = "cib.last";
/// The copy's quorate lineage ([`crate::service::PersistRequest::quorate_seq`]);
/// ours, not Pacemaker's. One line per recent write, oldest first:
/// `quorate_seq admin_epoch epoch configuration-digest` (decimal, decimal,
/// decimal, 32 hex digits), naming the `cib.xml` content each lineage belongs
/// to, then — only when a sync raised the copy's version past it — the lineage
/// version `admin_epoch epoch num_updates` ([`quorate_file_with`]). Written (atomically) **before** the `cib.xml` it describes, keeping the
/// lines of the previous writes ([`quorate_file`]); at load the newest line that
/// names the loaded content counts ([`quorate_seq_for`]). So the value read is
/// the one of the content on disk whatever write a crash cut: not more (a
/// `cib.xml` not yet replaced has its own, older line) and not less (an older
/// format wrote the file after `cib.xml`, and a crash in between left a lower
/// value that could let an older copy of an older lineage win the merge —
/// swarm seed 60276). A bare number (that older format) is still read.
pub const QUORATE_SEQ: &str = "cib.quorate";

/// Lines of [`QUORATE_SEQ`] kept (the newest write and the ones before it, for a
/// `cib.xml` whose later writes failed or were cut).
pub const QUORATE_LINES: usize = 8;

/// The identity of a CIB's content for [`QUORATE_SEQ`]: `admin_epoch epoch
/// configuration-digest` (what survives the disk round trip unchanged).
fn content_key(cib: &Element) -> String {
    let f = crate::service::Fingerprint::of(cib);
    format!("{} {} {}", f.version.admin_epoch, f.version.epoch, f.config)
}

/// The new [`QUORATE_SEQ`] file to write before `cib` (the disk form about to be
/// written as `cib.xml`) with lineage `quorate_seq`: the lines of `previous` (the
/// file's current bytes) that are well formed, at most [`QUORATE_LINES`] − 1 of
/// them, then the new one.
///
/// ```
/// use phalanx_cib::ops::empty_cib;
/// use phalanx_cib::persist::{Loaded, LoadSource, quorate_file, quorate_seq_for};
/// let mut old = empty_cib(1);
/// old.set_attr("epoch", "4");
/// let first = quorate_file(None, &old, 3);
/// let mut new = old.clone();
/// new.set_attr("epoch", "5");
/// let second = quorate_file(Some(first.as_bytes()), &new, 7);
/// let loaded = |cib| Loaded { cib, source: LoadSource::Live, archive: vec![], refused: vec![] };
/// // A crash after the lineage file but before `cib.xml`: the old content, its lineage.
/// assert_eq!(quorate_seq_for(Some(second.as_bytes()), &loaded(old)), 3);
/// assert_eq!(quorate_seq_for(Some(second.as_bytes()), &loaded(new)), 7);
/// ```
pub fn quorate_file(previous: Option<&[u8]>, cib: &Element, quorate_seq: u64) -> String {
    quorate_file_with(previous, cib, quorate_seq, None)
}

/// [`quorate_file`] for a copy whose lineage version differs from its content's
/// ([`crate::service::PersistRequest::lineage_version`]: a sync raised the
/// version of the lineage's copy it adopted): the line then ends with that
/// version, `admin_epoch epoch num_updates`, which [`lineage_for`] gives back.
pub fn quorate_file_with(
    previous: Option<&[u8]>,
    cib: &Element,
    quorate_seq: u64,
    lineage_version: Option<Version>,
) -> String {
    let kept: Vec<&str> = previous
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(|s| {
            s.lines()
                .filter(|l| parse_quorate_line(l).is_some())
                .collect()
        })
        .unwrap_or_default();
    let skip = kept.len().saturating_sub(QUORATE_LINES - 1);
    let mut out = String::new();
    for l in &kept[skip..] {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&format!("{quorate_seq} {}", content_key(cib)));
    if let Some(v) = lineage_version {
        out.push_str(&format!(" {} {} {}", v.admin_epoch, v.epoch, v.num_updates));
    }
    out.push('\n');
    out
}

/// One line of [`QUORATE_SEQ`]: the lineage, unless it is the older bare number
/// the content key it belongs to, and the lineage version when the line has one.
fn parse_quorate_line(line: &str) -> Option<(u64, Option<String>, Option<Version>)> {
    let line = line.trim();
    let (seq, rest) = match line.split_once(' ') {
        Some((seq, rest)) => (seq, Some(rest)),
        None => (line, None),
    };
    let seq = seq.parse().ok()?;
    let Some(rest) = rest else {
        return Some((seq, None, None));
    };
    let parts: Vec<&str> = rest.split(' ').collect();
    let ok = (parts.len() == 3 || parts.len() == 6)
        && parts[0].parse::<i64>().is_ok()
        && parts[1].parse::<i64>().is_ok()
        && parts[2].len() == 32
        && parts[2].bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return None;
    }
    let lineage = if parts.len() == 6 {
        let n = |i: usize| parts[i].parse::<i64>().ok();
        Some(Version::new(n(3)?, n(4)?, n(5)?))
    } else {
        None
    };
    Some((seq, Some(parts[..3].join(" ")), lineage))
}

/// The `quorate_seq` to start from with the CIB `loaded`: 0 unless it came from
/// the live file (a backup may be older than the lineage the file names); then
/// the newest line of `bytes` (the [`QUORATE_SEQ`] file) naming the loaded
/// content, or for the older format the bare number, else 0.
pub fn quorate_seq_for(bytes: Option<&[u8]>, loaded: &Loaded) -> u64 {
    lineage_for(bytes, loaded).0
}

/// [`quorate_seq_for`] and the lineage version the same line names, if any
/// (give both back with [`crate::service::CibService::restore_lineage`]).
pub fn lineage_for(bytes: Option<&[u8]>, loaded: &Loaded) -> (u64, Option<Version>) {
    if loaded.source != LoadSource::Live {
        return (0, None);
    }
    let Some(text) = bytes.and_then(|b| std::str::from_utf8(b).ok()) else {
        return (0, None);
    };
    let key = content_key(&loaded.cib);
    let mut found = None;
    for (seq, k, lineage) in text.lines().filter_map(parse_quorate_line) {
        match k {
            Some(k) if k == key => found = Some((seq, lineage)),
            None => found = Some((seq, None)),
            Some(_) => {}
        }
    }
    found.unwrap_or((0, None))
}

/// The older reading of [`QUORATE_SEQ`] (a bare number, written after
/// `cib.xml`): the value when the CIB was loaded from the live file, else 0.
/// Unreadable text counts as 0. Prefer [`quorate_seq_for`], which also reads
/// the current format.
///
/// ```
/// use phalanx_cib::persist::{LoadSource, quorate_seq_of};
/// assert_eq!(quorate_seq_of(Some(b"12\n"), &LoadSource::Live), 12);
/// assert_eq!(quorate_seq_of(Some(b"12\n"), &LoadSource::Empty), 0);
/// assert_eq!(quorate_seq_of(Some(b"x"), &LoadSource::Live), 0);
/// ```
pub fn quorate_seq_of(bytes: Option<&[u8]>, source: &LoadSource) -> u64 {
    if *source != LoadSource::Live {
        return 0;
    }
    bytes
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}
/// Backups kept (`cib-0.raw` … `cib-99.raw`).
pub const BACKUPS: u32 = 100;

/// The CIB as it is written: a copy without `status` and with
/// `num_updates="0"`.
pub fn disk_form(cib: &Element) -> Element {
    let mut c = cib.clone();
    while let Some(i) = c.child_index("status", None) {
        c.remove_child(i);
    }
    c.set_attr("num_updates", "0");
    c
}

/// The backup file names for sequence number `n`.
pub fn backup_names(n: u32) -> (String, String) {
    let raw = format!("cib-{n}.raw");
    let sig = format!("{raw}.sig");
    (raw, sig)
}

/// Reads `cib.last` as Pacemaker does (`%u` after optional whitespace);
/// anything else counts as 0.
pub fn read_last(bytes: Option<&[u8]>) -> u32 {
    let Some(text) = bytes.and_then(|b| std::str::from_utf8(b).ok()) else {
        return 0;
    };
    let digits: String = text
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(0)
}

/// What the driver does to write a CIB, in this order:
///
/// 1. remove `backup.0` and `backup.1` if present;
/// 2. hard-link (or copy) `cib.xml` → `backup.0` and `cib.xml.sig` →
///    `backup.1` (a missing file is skipped);
/// 3. write `cib.last` with `last`;
/// 4. write `xml` and `sig` to temporary files, fsync, rename them to
///    `cib.xml` and `cib.xml.sig`, fsync the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritePlan {
    /// Backup names for the current `cib.xml` and `cib.xml.sig`.
    pub backup: (String, String),
    /// New contents of `cib.last`.
    pub last: String,
    /// New contents of `cib.xml`.
    pub xml: String,
    /// New contents of `cib.xml.sig`.
    pub sig: String,
}

/// The plan for writing `cib` (in [`disk_form`] or not: it is applied
/// again). `last_written` is stamped as `cib-last-written` (the driver
/// formats its clock; Pacemaker stamps at write time). `cib_last` is the
/// current content of `cib.last`, if any.
pub fn plan_write(cib: &Element, last_written: Option<&str>, cib_last: Option<&[u8]>) -> WritePlan {
    let mut c = disk_form(cib);
    if let Some(t) = last_written {
        c.set_attr("cib-last-written", t);
    }
    let n = read_last(cib_last) % BACKUPS;
    let next = (n + 1) % BACKUPS;
    WritePlan {
        backup: backup_names(n),
        last: next.to_string(),
        xml: to_string(&c, Style::Pretty, Escaping::Xml),
        sig: on_disk_digest(&c),
    }
}

/// Why a file was not used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoadProblem {
    /// Empty file.
    #[error("empty file")]
    Empty,
    /// Not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// Did not parse.
    #[error("unparsable: {0}")]
    Unparsable(XmlError),
    /// The root element is not `<cib>`.
    #[error("root element is <{0}>, not <cib>")]
    NotACib(String),
    /// The signature does not match the content.
    #[error("digest mismatch: signature {expected}, content {actual}")]
    DigestMismatch {
        /// The signature file's digest.
        expected: String,
        /// The content's digest.
        actual: String,
    },
}

/// Checks one file against its signature (`sig` absent: accepted).
pub fn verify(xml: &[u8], sig: Option<&[u8]>) -> Result<Element, LoadProblem> {
    if xml.is_empty() {
        return Err(LoadProblem::Empty);
    }
    let text = std::str::from_utf8(xml).map_err(|_| LoadProblem::NotUtf8)?;
    let cib = parse(text).map_err(LoadProblem::Unparsable)?;
    if cib.name() != "cib" {
        return Err(LoadProblem::NotACib(cib.name().to_string()));
    }
    if let Some(sig) = sig {
        let expected = String::from_utf8_lossy(sig).trim().to_string();
        let actual = on_disk_digest(&cib);
        if expected != actual {
            return Err(LoadProblem::DigestMismatch { expected, actual });
        }
    }
    Ok(cib)
}

/// Where the loaded CIB came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadSource {
    /// `cib.xml`.
    Live,
    /// A backup (its file name).
    Backup(String),
    /// Nothing usable: an empty CIB.
    Empty,
}

/// The outcome of [`load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The CIB to start from (empty `status`).
    pub cib: Element,
    /// Where it came from.
    pub source: LoadSource,
    /// Files the driver should move aside (renamed, not deleted: an
    /// unusable live file and its signature).
    pub archive: Vec<String>,
    /// Files tried and refused, with the reason.
    pub refused: Vec<(String, LoadProblem)>,
}

/// Loads the CIB. `read(name)` returns a file's bytes, `None` when it does
/// not exist; it is asked for [`LIVE`], [`LIVE_SIG`], [`LAST`] and backups
/// newest first, and only as far as needed.
pub fn load(mut read: impl FnMut(&str) -> Option<Vec<u8>>) -> Loaded {
    let mut refused = Vec::new();
    let mut archive = Vec::new();
    let mut found = None;
    if let Some(xml) = read(LIVE) {
        match verify(&xml, read(LIVE_SIG).as_deref()) {
            Ok(cib) => found = Some((cib, LoadSource::Live)),
            Err(p) => {
                refused.push((LIVE.to_string(), p));
                archive = vec![LIVE.to_string(), LIVE_SIG.to_string()];
            }
        }
    }
    if found.is_none() {
        let next = read_last(read(LAST).as_deref()) % BACKUPS;
        for back in 1..=BACKUPS {
            let n = (next + BACKUPS - back) % BACKUPS;
            let (raw, sig) = backup_names(n);
            let Some(xml) = read(&raw) else { continue };
            match verify(&xml, read(&sig).as_deref()) {
                Ok(cib) => {
                    found = Some((cib, LoadSource::Backup(raw)));
                    break;
                }
                Err(p) => refused.push((raw, p)),
            }
        }
    }
    let (mut cib, source) = found.unwrap_or_else(|| (empty_cib(0), LoadSource::Empty));
    while let Some(i) = cib.child_index("status", None) {
        cib.remove_child(i);
    }
    cib.push_child(Element::new("status"));
    for name in crate::version::VERSION_ATTRIBUTES {
        if cib.attr(name).is_none() {
            cib.set_attr(name, "0");
        }
    }
    cib.remove_attr("dc-uuid");
    Loaded {
        cib,
        source,
        archive,
        refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn cib(epoch: i64) -> Element {
        let mut c = empty_cib(epoch);
        c.set_attr("num_updates", "7");
        c.find_child_mut("status")
            .unwrap()
            .push_child(Element::new("node_state").with_attr("id", "1"));
        c
    }

    /// Writes `c` with lineage `q` as the driver does: the lineage file, then
    /// (unless `cut`, a crash in between) the plan.
    fn write_with_lineage(dir: &mut BTreeMap<String, Vec<u8>>, c: &Element, q: u64, cut: bool) {
        let file = quorate_file(dir.get(QUORATE_SEQ).map(Vec::as_slice), &disk_form(c), q);
        dir.insert(QUORATE_SEQ.into(), file.into_bytes());
        if !cut {
            let plan = plan_write(&disk_form(c), Some("Sun Dec  6 05:00:00 2026"), None);
            apply(dir, &plan);
        }
    }

    fn lineage_at_start(dir: &BTreeMap<String, Vec<u8>>) -> u64 {
        let loaded = load(|n| dir.get(n).cloned());
        quorate_seq_for(dir.get(QUORATE_SEQ).map(Vec::as_slice), &loaded)
    }

    #[test]
    fn the_lineage_read_at_start_is_the_one_of_the_content_on_disk() {
        let mut dir = BTreeMap::new();
        assert_eq!(lineage_at_start(&dir), 0, "no files");
        write_with_lineage(&mut dir, &cib(3), 2, false);
        assert_eq!(lineage_at_start(&dir), 2);
        // Cut between the lineage file and `cib.xml`: the old content keeps
        // its own lineage (not the new, higher one).
        write_with_lineage(&mut dir, &cib(4), 7, true);
        assert_eq!(lineage_at_start(&dir), 2);
        // The same write completed: the new content's lineage (the older format
        // wrote it after `cib.xml` and a crash in between left 2: seed 60276).
        write_with_lineage(&mut dir, &cib(4), 7, false);
        assert_eq!(lineage_at_start(&dir), 7);
        // The same content written again in a newer lineage: the newest line.
        write_with_lineage(&mut dir, &cib(4), 9, false);
        assert_eq!(lineage_at_start(&dir), 9);
        // Content no line names (its lineage write was lost): nothing claimed.
        let plan = plan_write(&disk_form(&cib(5)), None, None);
        apply(&mut dir, &plan);
        assert_eq!(lineage_at_start(&dir), 0);
        // A backup is older than any line: nothing claimed.
        let mut backup = BTreeMap::new();
        write_with_lineage(&mut backup, &cib(3), 2, false);
        write_with_lineage(&mut backup, &cib(4), 7, false);
        backup.insert(LIVE.into(), b"not xml".to_vec());
        let loaded = load(|n| backup.get(n).cloned());
        assert!(matches!(loaded.source, LoadSource::Backup(_)), "{loaded:?}");
        assert_eq!(
            quorate_seq_for(backup.get(QUORATE_SEQ).map(Vec::as_slice), &loaded),
            0
        );
    }

    #[test]
    fn the_lineage_file_is_bounded_and_reads_the_older_format() {
        let mut file = String::from("garbage line\n");
        for q in 0..20 {
            file = quorate_file(Some(file.as_bytes()), &cib(q), q as u64);
        }
        let lines: Vec<&str> = file.lines().collect();
        assert_eq!(lines.len(), QUORATE_LINES);
        assert!(lines.iter().all(|l| parse_quorate_line(l).is_some()));
        assert!(lines[QUORATE_LINES - 1].starts_with("19 0 19 "));
        let loaded = |c: Element| Loaded {
            cib: c,
            source: LoadSource::Live,
            archive: vec![],
            refused: vec![],
        };
        // The older format: a bare number, written after `cib.xml`.
        assert_eq!(quorate_seq_for(Some(b"12\n"), &loaded(cib(1))), 12);
        assert_eq!(quorate_seq_for(Some(b"x y\n"), &loaded(cib(1))), 0);
        assert_eq!(quorate_seq_for(Some(&[0xff, 0xfe]), &loaded(cib(1))), 0);
        assert_eq!(quorate_seq_for(None, &loaded(cib(1))), 0);
    }

    #[test]
    fn a_lineage_version_is_written_and_read_back_with_its_line() {
        let loaded = |c: Element| Loaded {
            cib: c,
            source: LoadSource::Live,
            archive: vec![],
            refused: vec![],
        };
        let raised = Version::new(0, 3, 2);
        let first = quorate_file_with(None, &cib(7), 4, Some(raised));
        let second = quorate_file(Some(first.as_bytes()), &cib(8), 9);
        // Each content keeps its own line: the raised copy its lineage version,
        // the next one none (its own version).
        assert_eq!(
            lineage_for(Some(second.as_bytes()), &loaded(cib(7))),
            (4, Some(raised))
        );
        assert_eq!(
            lineage_for(Some(second.as_bytes()), &loaded(cib(8))),
            (9, None)
        );
        // A malformed lineage version makes the line unreadable, not a guess.
        let bad = first.trim_end().replace(" 0 3 2", " 0 x 2");
        assert_eq!(
            lineage_for(Some(bad.as_bytes()), &loaded(cib(7))),
            (0, None)
        );
    }

    /// Applies a plan to an in-memory directory the way the driver would.
    fn apply(dir: &mut BTreeMap<String, Vec<u8>>, plan: &WritePlan) {
        dir.remove(&plan.backup.0);
        dir.remove(&plan.backup.1);
        if let Some(x) = dir.get(LIVE).cloned() {
            dir.insert(plan.backup.0.clone(), x);
        }
        if let Some(x) = dir.get(LIVE_SIG).cloned() {
            dir.insert(plan.backup.1.clone(), x);
        }
        dir.insert(LAST.into(), plan.last.clone().into_bytes());
        dir.insert(LIVE.into(), plan.xml.clone().into_bytes());
        dir.insert(LIVE_SIG.into(), plan.sig.clone().into_bytes());
    }

    #[test]
    fn write_then_load_round_trips_without_status() {
        let mut dir = BTreeMap::new();
        let plan = plan_write(&cib(3), Some("Sun Dec  6 04:00:00 2026"), None);
        assert_eq!(plan.backup, ("cib-0.raw".into(), "cib-0.raw.sig".into()));
        assert_eq!(plan.last, "1");
        apply(&mut dir, &plan);
        let l = load(|n| dir.get(n).cloned());
        assert_eq!(l.source, LoadSource::Live);
        assert!(l.refused.is_empty() && l.archive.is_empty());
        assert_eq!(l.cib.attr("num_updates"), Some("0"));
        assert_eq!(l.cib.attr("epoch"), Some("3"));
        assert_eq!(
            l.cib.attr("cib-last-written"),
            Some("Sun Dec  6 04:00:00 2026")
        );
        assert!(l.cib.find_child("status").unwrap().is_empty());
    }

    #[test]
    fn corrupt_live_file_falls_back_to_newest_valid_backup() {
        let mut dir = BTreeMap::new();
        for e in 1..=4 {
            let plan = plan_write(&cib(e), None, dir.get(LAST).map(Vec::as_slice));
            apply(&mut dir, &plan);
        }
        // Backups cib-1 (epoch 1), cib-2 (epoch 2), cib-3 (epoch 3); live = 4.
        assert_eq!(dir.get(LAST).map(Vec::as_slice), Some(&b"4"[..]));
        dir.insert(LIVE.into(), b"<cib epoch=\"99\"/>".to_vec());
        // Newest backup corrupt too: its signature is wrong.
        dir.insert("cib-3.raw.sig".into(), b"0123".to_vec());
        let l = load(|n| dir.get(n).cloned());
        assert_eq!(l.source, LoadSource::Backup("cib-2.raw".into()));
        assert_eq!(l.cib.attr("epoch"), Some("2"));
        assert_eq!(l.archive, vec![LIVE.to_string(), LIVE_SIG.to_string()]);
        assert_eq!(l.refused.len(), 2);
        assert!(matches!(l.refused[0].1, LoadProblem::DigestMismatch { .. }));
    }

    #[test]
    fn nothing_usable_gives_an_empty_cib_and_wrap_at_100() {
        let l = load(|n| (n == LIVE).then(|| b"garbage".to_vec()));
        assert_eq!(l.source, LoadSource::Empty);
        assert!(matches!(l.refused[0].1, LoadProblem::Unparsable(_)));
        assert_eq!(l.cib.attr("epoch"), Some("0"));
        let plan = plan_write(&cib(1), None, Some(b" 99"));
        assert_eq!(plan.backup.0, "cib-99.raw");
        assert_eq!(plan.last, "0");
        assert_eq!(read_last(Some(b"x")), 0);
    }

    #[test]
    fn missing_signature_is_accepted_as_pacemaker_does() {
        let plan = plan_write(&cib(5), None, None);
        let l = load(|n| (n == LIVE).then(|| plan.xml.clone().into_bytes()));
        assert_eq!(l.source, LoadSource::Live);
        assert_eq!(l.cib.attr("epoch"), Some("5"));
    }
}
