//! Counters of the CPG core.

/// What the core counted. Nothing here changes behaviour.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpgStats {
    /// Messages that did not decode (dropped).
    pub malformed: u64,
    /// Group messages dropped because the sender was not a member.
    pub dropped_not_member: u64,
    /// Control messages from a node outside the applied configuration (dropped).
    pub dropped_unknown_node: u64,
    /// JOINLISTs of another ring, or duplicates (ignored).
    pub stale_joinlists: u64,
    /// State exchanges completed.
    pub syncs_completed: u64,
    /// State exchanges interrupted by a new configuration.
    pub syncs_interrupted: u64,
    /// Application messages accepted.
    pub mcasts_sent: u64,
    /// Requests refused with `TryAgain`.
    pub try_again: u64,
}
