//! Counters a node keeps about its protocol activity.

/// Statistics of one totem node (the role of Corosync's `stats.srp.*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Tokens received and processed.
    pub tokens_rx: u64,
    /// Tokens sent (forwarded or originated).
    pub tokens_tx: u64,
    /// Tokens re-sent after the retransmit timer expired.
    pub token_retransmits: u64,
    /// Tokens ignored as stale or duplicate.
    pub tokens_stale: u64,
    /// Tokens rejected as impossible (sequence going backwards, too many
    /// outstanding frames).
    pub tokens_invalid: u64,
    /// Data frames rejected for an impossible sequence number.
    pub mcast_invalid: u64,
    /// Join or commit messages rejected for an impossible ring sequence jump.
    pub membership_invalid: u64,
    /// Tokens the representative held on an idle ring.
    pub token_holds: u64,
    /// Visits on which this node kept the token for more messages of its own
    /// ([`Config::send_hold`](crate::Config::send_hold)).
    pub send_holds: u64,
    /// Frames sent while such a hold lasted (each would otherwise have waited
    /// for the token's next visit).
    pub send_hold_frames: u64,
    /// Hold-cancel requests sent.
    pub hold_cancels_tx: u64,
    /// Data frames originated.
    pub mcast_tx: u64,
    /// Data frames received (first copy).
    pub mcast_rx: u64,
    /// Data frames re-sent on request.
    pub mcast_retransmits: u64,
    /// Duplicate data frames ignored.
    pub mcast_duplicates: u64,
    /// Application messages delivered.
    pub delivered: u64,
    /// Of those, messages sent with [`Guarantee::Safe`](crate::Guarantee::Safe):
    /// delivered only once every member held them (or, after a membership
    /// change, in the transitional configuration).
    pub delivered_safe: u64,
    /// Application messages accepted for sending.
    pub sent: u64,
    /// Sends refused with `TryAgain`.
    pub send_try_again: u64,
    /// Join messages sent / received.
    pub joins_tx: u64,
    /// Join messages received.
    pub joins_rx: u64,
    /// Join messages dropped as delayed copies from an earlier round.
    pub joins_stale: u64,
    /// Commit tokens sent.
    pub commits_tx: u64,
    /// Times GATHER was entered.
    pub gathers: u64,
    /// Times COMMIT was entered.
    pub commits: u64,
    /// Times RECOVERY was entered.
    pub recoveries: u64,
    /// Times OPERATIONAL was entered (rings installed).
    pub operationals: u64,
    /// Consensus timeouts.
    pub consensus_timeouts: u64,
    /// Token losses (OPERATIONAL, COMMIT or RECOVERY).
    pub token_losses: u64,
    /// Token timers found due only because this process was not scheduled for
    /// over half a token timeout: re-armed once instead of declaring a loss.
    pub pauses_detected: u64,
    /// Merge-detect probes sent.
    pub merge_detects_tx: u64,
    /// Recovered old-ring frames re-sent in RECOVERY.
    pub recovery_retransmits: u64,
    /// Times this node removed itself because it could not receive.
    pub failed_to_receive: u64,
    /// Datagrams dropped because they did not decode.
    pub rx_malformed: u64,
    /// Datagrams dropped because the sender is not in the node list (or is us).
    pub rx_unknown_sender: u64,
    /// Frames whose packed contents were malformed.
    pub frames_malformed: u64,
    /// Message fragments dropped because their message could not complete.
    pub fragments_dropped: u64,
}
