//! Killing an agent together with everything it started.

/// Sends SIGKILL to the process group `pgid` (the agent was started as the leader
/// of its own group, so its pid is the group id and its children are members).
///
/// Refuses ids ≤ 1: `kill(-1)` would signal every process we may signal, and
/// group 0 is our own group.
#[allow(unsafe_code)]
pub(crate) fn kill_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours; a negative
    // pid addresses the process group, checked above to be a real group id.
    // An error (ESRCH: the group is already gone) needs no handling.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}
