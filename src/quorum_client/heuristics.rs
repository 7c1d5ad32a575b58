//! Heuristics: operator commands run on every membership change; all must exit 0
//! within the timeout for a pass. They run on a helper thread, never the driver's.

use phalanx_quorum::qdevice::Heuristics;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often a running command is checked. Commands are expected to take
/// milliseconds to seconds; 10 ms keeps the added latency negligible.
const CHECK: Duration = Duration::from_millis(10);

/// Runs every command (`sh -c`) in parallel; `Pass` if all exit 0 before `timeout`,
/// `Fail` otherwise (a command still running at the deadline is killed), `Undefined`
/// when there are no commands.
pub fn run(commands: &[String], timeout: Duration) -> Heuristics {
    if commands.is_empty() {
        return Heuristics::Undefined;
    }
    let mut children: Vec<Child> = Vec::new();
    for c in commands {
        match Command::new("sh")
            .arg("-c")
            .arg(c)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(ch) => children.push(ch),
            Err(_) => {
                kill_all(&mut children);
                return Heuristics::Fail;
            }
        }
    }
    let deadline = Instant::now() + timeout;
    let mut pass = true;
    let mut running: Vec<Child> = children;
    while !running.is_empty() {
        let mut still = Vec::new();
        for mut ch in running {
            match ch.try_wait() {
                Ok(Some(st)) => pass &= st.success(),
                Ok(None) => still.push(ch),
                Err(_) => pass = false,
            }
        }
        running = still;
        if !pass {
            kill_all(&mut running);
            return Heuristics::Fail;
        }
        if running.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            kill_all(&mut running);
            return Heuristics::Fail;
        }
        std::thread::sleep(CHECK);
    }
    Heuristics::Pass
}

fn kill_all(children: &mut [Child]) {
    for ch in children.iter_mut() {
        let _ = ch.kill();
        let _ = ch.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results() {
        let t = Duration::from_secs(5);
        assert_eq!(run(&[], t), Heuristics::Undefined);
        assert_eq!(run(&["true".into(), "exit 0".into()], t), Heuristics::Pass);
        assert_eq!(run(&["true".into(), "exit 3".into()], t), Heuristics::Fail);
        assert_eq!(
            run(&["sleep 5".into()], Duration::from_millis(50)),
            Heuristics::Fail
        );
    }
}
