//! What a failing run leaves behind besides its files: the verdict with every
//! violation (`verdict.txt`), the controller's faults as operator notes
//! (`faults.txt`, `TIME nID TEXT` on the wall clock) and a `phalanx-report` of
//! the nodes' flight recorders with those notes in its timeline (`report/`).

use crate::record;
use std::path::Path;
use std::process::Command;

/// Writes `faults.txt` from the record: every fault and repair the nemesis
/// applied, on the wall clock (`start`'s wall time plus monotonic elapsed).
pub fn write_fault_notes(dir: &Path) -> Result<std::path::PathBuf, String> {
    let records = record::read(dir)?;
    let start = records
        .iter()
        .find(|r| r.what == "start")
        .ok_or("the record has no start")?;
    let (t0, wall0): (u64, u64) = (start.at, start.num("wall_ns")?);
    let mut out = String::new();
    for r in &records {
        let text = match r.what.as_str() {
            "crash" => format!("nemesis: kill -9 (process #{})", r.get("inc")?),
            "spawn" => format!(
                "nemesis: start process #{} (clock +{} s)",
                r.get("inc")?,
                r.get("clock")?
            ),
            "pause" => "nemesis: SIGSTOP".to_string(),
            "resume" => "nemesis: SIGCONT".to_string(),
            "exit" => "nemesis: the process exited by itself".to_string(),
            "net" => format!("nemesis: network, blocked {}", r.get("blocked")?),
            "repair" => "nemesis: repair everything".to_string(),
            _ => continue,
        };
        let wall = wall0 + r.at.saturating_sub(t0);
        let node = r
            .fields
            .get("node")
            .map(|n| format!(" n{n}"))
            .unwrap_or_default();
        out += &format!(
            "{}.{:09}{node} {text}\n",
            wall / 1_000_000_000,
            wall % 1_000_000_000
        );
    }
    let path = dir.join("faults.txt");
    std::fs::write(&path, out).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Runs `phalanx-report` (next to this program) into `<dir>/report`; what it
/// said, for the verdict.
pub fn run_report(dir: &Path) -> String {
    let notes = match write_fault_notes(dir) {
        Ok(p) => p,
        Err(e) => return format!("no fault notes: {e}"),
    };
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("phalanx-report")))
        .unwrap_or_else(|| "phalanx-report".into());
    let out = Command::new(&exe)
        .arg("-c")
        .arg(dir.join("corosync.conf"))
        .arg("--events")
        .arg(&notes)
        .arg("-o")
        .arg(dir.join("report"))
        .output();
    match out {
        Ok(o) if o.status.success() => format!("report in {}", dir.join("report").display()),
        Ok(o) => format!(
            "phalanx-report failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("cannot run {}: {e}", exe.display()),
    }
}
