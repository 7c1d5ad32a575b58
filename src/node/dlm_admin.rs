//! The node's answers to `phalanx-dlm-tool` on the admin socket: lockspace
//! listing and lock dump from the driver, and joins, leaves, locks and unlocks
//! made on behalf of scripts (the locks belong to the node's process).

use super::admin::NodeAdmin;
use super::{DlmCallError, Lockspace};
use crate::admin::{DlmAdmin, DlmAnswer};
use phalanx_dlm::{LockFlags, LockId, Mode};
use std::fmt::Write as _;

/// A mode by its name (case-insensitive).
pub fn parse_mode(s: &str) -> Option<Mode> {
    let m = match s.to_ascii_uppercase().as_str() {
        "NL" => 0,
        "CR" => 1,
        "CW" => 2,
        "PR" => 3,
        "PW" => 4,
        "EX" => 5,
        _ => return None,
    };
    Mode::try_from(m).ok()
}

fn ok(output: String) -> DlmAnswer {
    DlmAnswer {
        exit_code: 0,
        error: None,
        output,
    }
}

fn failed(e: &DlmCallError) -> DlmAnswer {
    DlmAnswer {
        exit_code: if e.errno() == phalanx_dlm::EAGAIN {
            11
        } else {
            1
        },
        error: Some(e.to_string()),
        output: String::new(),
    }
}

fn mode_name(m: Option<Mode>) -> &'static str {
    m.map_or("--", Mode::name)
}

impl NodeAdmin {
    fn admin_lockspace(&self, name: &str) -> Result<Lockspace, DlmCallError> {
        if let Some(ls) = self.dlm_lockspaces.lock().get(name) {
            return Ok(ls.clone());
        }
        let ls = self.dlm.lockspace(name)?;
        self.dlm_lockspaces
            .lock()
            .insert(name.to_string(), ls.clone());
        Ok(ls)
    }

    pub(super) fn dlm_command(&self, c: DlmAdmin) -> DlmAnswer {
        match c {
            DlmAdmin::Ls => match self.dlm.dump() {
                Ok(d) => {
                    let mut out = String::new();
                    for (name, members, recovering) in d.lockspaces {
                        let members: Vec<String> = members.iter().map(u32::to_string).collect();
                        let _ = writeln!(
                            out,
                            "{name} members {} {}",
                            members.join(","),
                            if recovering { "recovering" } else { "running" }
                        );
                    }
                    ok(out)
                }
                Err(e) => failed(&e),
            },
            DlmAdmin::Lockdump => match self.dlm.dump() {
                Ok(d) => {
                    let mut out = String::new();
                    for l in &d.own {
                        let _ = writeln!(
                            out,
                            "own {} {} id {:#x} granted {} requested {} master {}",
                            l.lockspace,
                            l.resource,
                            l.id,
                            mode_name(l.granted),
                            mode_name(l.requested),
                            l.master.map_or("-".into(), |m| m.to_string())
                        );
                    }
                    for l in &d.mastered {
                        let _ = writeln!(
                            out,
                            "master {} {} node {} id {:#x} granted {}",
                            l.lockspace,
                            l.resource,
                            l.node,
                            l.id,
                            mode_name(l.granted)
                        );
                    }
                    ok(out)
                }
                Err(e) => failed(&e),
            },
            DlmAdmin::Join { lockspace } => match self.admin_lockspace(&lockspace) {
                Ok(_) => ok(String::new()),
                Err(e) => failed(&e),
            },
            DlmAdmin::Leave { lockspace } => {
                let ls = self.dlm_lockspaces.lock().remove(&lockspace);
                let ls = match ls {
                    Some(ls) => ls,
                    None => match self.dlm.lockspace(&lockspace) {
                        Ok(ls) => ls,
                        Err(e) => return failed(&e),
                    },
                };
                match ls.clone().leave() {
                    Ok(()) => ok(String::new()),
                    Err(e) => {
                        self.dlm_lockspaces.lock().insert(lockspace, ls);
                        failed(&e)
                    }
                }
            }
            DlmAdmin::Lock {
                lockspace,
                resource,
                mode,
                noqueue,
            } => {
                let Some(mode) = parse_mode(&mode) else {
                    return DlmAnswer {
                        exit_code: 2,
                        error: Some(format!("unknown mode {mode:?} (NL CR CW PR PW EX)")),
                        output: String::new(),
                    };
                };
                let flags = if noqueue {
                    LockFlags::NOQUEUE
                } else {
                    LockFlags::EMPTY
                };
                match self
                    .admin_lockspace(&lockspace)
                    .and_then(|ls| ls.lock_wait(resource.as_bytes(), mode, flags, None))
                {
                    Ok(g) => ok(format!("{}\n", g.id.get())),
                    Err(e) => failed(&e),
                }
            }
            DlmAdmin::Unlock { lockspace, lock } => match self
                .admin_lockspace(&lockspace)
                .and_then(|ls| ls.unlock_wait(LockId::from_raw(lock), LockFlags::EMPTY, None))
            {
                Ok(_) => ok(String::new()),
                Err(e) => failed(&e),
            },
        }
    }
}
