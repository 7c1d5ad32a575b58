//! # phalanx-dlm — distributed lock manager (skeleton)
//!
//! **Status: not yet implemented.** This crate will own lockspaces, resources, the
//! six modes NL CR CW PR PW EX with the VMS compatibility matrix, grant/convert/wait
//! queues, conversions and conversion deadlock, lock value blocks, blocking
//! notifications, a hashed resource directory, and recovery after a node failure that
//! waits until the failed node is fenced.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
