//! Small pieces the handles and tools share.

pub mod handle_table;
pub mod notify_fd;
