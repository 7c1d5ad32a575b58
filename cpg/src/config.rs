//! Configuration of the CPG core.

/// Limits and options. All queues are bounded by these numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpgConfig {
    /// Largest application payload accepted by [`crate::Cpg::mcast`]
    /// (default 1 MiB). Totem's own maximum must leave room for the CPG header
    /// ([`crate::wire::MAX_HEADER`]).
    pub max_message_size: usize,
    /// Bytes of encoded messages the send queue may hold before requests answer
    /// `TryAgain` (default 4 MiB; at least one maximal message always fits).
    pub send_queue_bytes: usize,
    /// Messages the send queue may hold (default 4096).
    pub send_queue_messages: usize,
    /// Also report transitional configurations to the application (Corosync hides
    /// them). Default off.
    pub deliver_transitional: bool,
    /// Identifies this run of the node: must differ after every restart (a random
    /// number drawn by the driver, or a persisted counter). Lets the others report a
    /// fast restart as NODEDOWN + NODEUP instead of confusing old and new members.
    pub incarnation: u64,
    /// A byte written before every encoded message and expected to be stripped
    /// before [`crate::Cpg::handle_deliver`]: the service id of a composition that
    /// multiplexes several services on one totem stream. Written here so that the
    /// payload is copied once, into the final buffer.
    pub wire_prefix: Option<u8>,
}

impl Default for CpgConfig {
    fn default() -> Self {
        Self {
            max_message_size: 1 << 20,
            send_queue_bytes: 4 << 20,
            send_queue_messages: 4096,
            deliver_transitional: false,
            incarnation: 0,
            wire_prefix: None,
        }
    }
}
