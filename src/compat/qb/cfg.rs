//! The cfg service, as far as the Corosync tools and Pacemaker need it:
//! `corosync_cfg_initialize` (a connection), `corosync_cfg_local_get`,
//! `corosync_cfg_get_node_addrs` (the node's configured IP addresses, one per
//! link), `corosync_cfg_node_status_get` (what `corosync-cfgtool -s` and `-n`
//! print: reachability and link state per node) and `reopen_log_files`
//! (nothing to reopen). Shutdown tracking (`corosync_cfg_trackstart` /
//! `trackstop`, `corosync_cfg_try_shutdown`, `corosync_cfg_replyto_shutdown`)
//! is the server's, run by [`ShutdownVote`](super::cfg_shutdown::ShutdownVote)
//! with the messages encoded here ([`shutdown_reply`], [`test_shutdown_callback`]);
//! so is `corosync_cfg_reload_config` (`corosync-cfgtool -R`, [`reload_reply`]).
//! Everything else is answered `CS_ERR_NOT_SUPPORTED`.
//!
//! `req_lib_cfg_tryshutdown`: flags `u32` @16; `req_lib_cfg_replytoshutdown`:
//! response `u32` @16 (1 yes, 0 no); `res_lib_cfg_testshutdown` (the shutdown
//! callback, 32 bytes): flags `u32` @24.
//!
//! `res_lib_cfg_get_node_addrs`: family `i32` @24 (`AF_INET` / `AF_INET6`),
//! count `u32` @28, then the raw addresses in 16-byte slots @32.
//!
//! `req_lib_cfg_nodestatusget`: node id `u32` @16, structure version `u32` @24.
//! `res_lib_cfg_nodestatusget_v1` (4200 bytes): `corosync_cfg_node_status_v1` @24 —
//! version @+0, node id @+4, reachable, remote, external, onwire min/max/cur
//! (bytes @+8..+14), then 8 link slots of 520 bytes @+16: enabled, connected,
//! dynconnected (bytes @+0..+3), mtu `u32` @+4, source and destination address
//! texts (256 bytes each, NUL-terminated) @+8 and @+264.

use super::cs;
use super::wire::{IpcError, RESPONSE_HEADER_LEN, Request, put_u32, response};
use std::collections::BTreeMap;
use std::net::IpAddr;

const REQ_TRY_SHUTDOWN: i32 = 3;
const REQ_REPLY_TO_SHUTDOWN: i32 = 4;
const REQ_GET_NODE_ADDRS: i32 = 5;
const REQ_LOCAL_GET: i32 = 6;
const REQ_RELOAD_CONFIG: i32 = 7;
const REQ_REOPEN_LOG_FILES: i32 = 8;
const REQ_NODE_STATUS_GET: i32 = 9;
const REQ_TRACK_START: i32 = 10;
const REQ_TRACK_STOP: i32 = 11;
const RES_TRACK_START: i32 = 2;
const RES_TRACK_STOP: i32 = 3;
const RES_TRY_SHUTDOWN: i32 = 9;
const RES_TEST_SHUTDOWN: i32 = 10;
const RES_GET_NODE_ADDRS: i32 = 11;
const RES_LOCAL_GET: i32 = 12;
const RES_REPLY_TO_SHUTDOWN: i32 = 13;
const RES_RELOAD_CONFIG: i32 = 14;
const RES_REOPEN_LOG_FILES: i32 = 15;
const RES_NODE_STATUS_GET: i32 = 16;

/// `CFG_NODE_STATUS_V1`, the only node status layout.
const NODE_STATUS_V1: u32 = 1;
/// `CFG_MAX_LINKS`.
pub const MAX_LINKS: usize = 8;
/// `CFG_MAX_HOST_LEN`: each address text's slot.
const HOST_LEN: usize = 256;
const LINK_SLOT: usize = 8 + 2 * HOST_LEN;
/// Where the node status starts in the reply, and where its link slots start.
const STATUS_AT: usize = 24;
const LINKS_AT: usize = STATUS_AT + 16;
/// `sizeof(struct res_lib_cfg_nodestatusget_v1)`.
pub const NODE_STATUS_REPLY_LEN: usize = LINKS_AT + MAX_LINKS * LINK_SLOT;
/// `sizeof(struct res_lib_cfg_nodestatusget_version)`: the reply on error.
const NODE_STATUS_ERROR_LEN: usize = 32;

/// One link of a node, as `corosync_cfg_node_status_get` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// The link number (0..8).
    pub link: u8,
    /// Configured and in use.
    pub enabled: bool,
    /// Carrying traffic to that node (the local node: always).
    pub connected: bool,
    /// The link's MTU.
    pub mtu: u32,
    /// This node's address on the link (`addr` in `corosync-cfgtool -s`).
    pub src: String,
    /// The other node's address on the link.
    pub dst: String,
}

/// A node's status (`struct corosync_cfg_node_status_v1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node.
    pub node_id: u32,
    /// A member of the current ring.
    pub reachable: bool,
    /// Its links.
    pub links: Vec<LinkStatus>,
}

/// A decoded libcfg request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CfgCall {
    /// Addresses of a node (0: this node).
    GetNodeAddrs(u32),
    /// This node's id.
    LocalGet,
    /// A node's reachability and links (`corosync_cfg_node_status_get`).
    NodeStatusGet {
        /// The node.
        node_id: u32,
        /// The layout asked for (only 1, `CFG_NODE_STATUS_V1`, exists).
        version: u32,
    },
    /// Shutdown tracking on (`corosync_cfg_trackstart`).
    TrackStart,
    /// Shutdown tracking off.
    TrackStop,
    /// A tracker's answer to a shutdown request (`corosync_cfg_replyto_shutdown`).
    ReplyToShutdown {
        /// `COROSYNC_CFG_SHUTDOWN_FLAG_YES` (1) rather than `NO` (0).
        yes: bool,
    },
    /// Reopen log files (the node keeps none open).
    ReopenLogFiles,
    /// Re-read the configuration file (`corosync_cfg_reload_config`).
    ReloadConfig,
    /// Shut the node down (`corosync_cfg_try_shutdown`, `corosync-cfgtool -H`).
    TryShutdown {
        /// `CFG_SHUTDOWN_FLAG_REQUEST` 0, `REGARDLESS` 1, `IMMEDIATE` 2.
        flags: u32,
    },
    /// Anything else (not offered).
    Other(i32),
}

impl CfgCall {
    /// Decodes a request of the cfg service.
    pub fn decode(r: &Request<'_>) -> Result<CfgCall, IpcError> {
        Ok(match r.id {
            REQ_GET_NODE_ADDRS => CfgCall::GetNodeAddrs(r.u32_at(16)?),
            REQ_LOCAL_GET => CfgCall::LocalGet,
            REQ_NODE_STATUS_GET => CfgCall::NodeStatusGet {
                node_id: r.u32_at(16)?,
                version: r.u32_at(24)?,
            },
            REQ_TRACK_START => CfgCall::TrackStart,
            REQ_TRACK_STOP => CfgCall::TrackStop,
            REQ_REPLY_TO_SHUTDOWN => CfgCall::ReplyToShutdown {
                yes: r.u32_at(16)? != 0,
            },
            REQ_REOPEN_LOG_FILES => CfgCall::ReopenLogFiles,
            REQ_RELOAD_CONFIG => CfgCall::ReloadConfig,
            REQ_TRY_SHUTDOWN => CfgCall::TryShutdown {
                flags: r.u32_at(16)?,
            },
            id => CfgCall::Other(id),
        })
    }
}

/// The reply to a reload: `error` is `CS_OK` when the file reads as the
/// configuration the node runs (Corosync's answer when nothing changed),
/// `CS_ERR_INVALID_PARAM` when it does not parse (as Corosync), and
/// `CS_ERR_NOT_SUPPORTED` when it changed (Phalanx applies changes only on a
/// restart).
pub fn reload_reply(error: i32) -> Vec<u8> {
    response(RES_RELOAD_CONFIG, error, RESPONSE_HEADER_LEN)
}

/// The reply to a shutdown request: `CS_OK` when the node is stopping,
/// `CS_ERR_BUSY` when a tracker vetoed it, `CS_ERR_EXIST` while another vote
/// runs, `CS_ERR_NOT_SUPPORTED` when the server was given no way to stop it.
pub fn shutdown_reply(error: i32) -> Vec<u8> {
    response(RES_TRY_SHUTDOWN, error, RESPONSE_HEADER_LEN)
}

/// The reply to `corosync_cfg_replyto_shutdown`.
pub fn reply_to_shutdown_reply(error: i32) -> Vec<u8> {
    response(RES_REPLY_TO_SHUTDOWN, error, RESPONSE_HEADER_LEN)
}

/// The reply to `corosync_cfg_trackstart` (`start`) or `trackstop`.
pub fn track_reply(start: bool) -> Vec<u8> {
    let id = if start {
        RES_TRACK_START
    } else {
        RES_TRACK_STOP
    };
    response(id, cs::OK, RESPONSE_HEADER_LEN)
}

/// The shutdown callback (`res_lib_cfg_testshutdown`): libcfg calls the
/// client's `corosync_cfg_shutdown_callback` with `flags`.
pub fn test_shutdown_callback(flags: u32, error: i32) -> Vec<u8> {
    let mut out = response(RES_TEST_SHUTDOWN, error, 32);
    put_u32(&mut out, 24, flags);
    out
}

/// The reply to `call` on node `local`, whose configuration gives `addrs`;
/// `status` tells a node's status (`None`: not a configured node).
pub fn reply(
    call: CfgCall,
    local: u32,
    addrs: &BTreeMap<u32, Vec<IpAddr>>,
    status: impl FnOnce(u32) -> Option<NodeStatus>,
) -> Vec<u8> {
    match call {
        CfgCall::NodeStatusGet { node_id, version } => {
            if version != NODE_STATUS_V1 {
                return response(
                    RES_NODE_STATUS_GET,
                    cs::ERR_NOT_SUPPORTED,
                    NODE_STATUS_ERROR_LEN,
                );
            }
            match status(node_id) {
                Some(s) => node_status_reply(&s),
                None => response(
                    RES_NODE_STATUS_GET,
                    cs::ERR_FAILED_OPERATION,
                    NODE_STATUS_ERROR_LEN,
                ),
            }
        }
        CfgCall::TrackStart => track_reply(true),
        CfgCall::TrackStop => track_reply(false),
        // No vote runs where nothing tracks: Corosync's answer then.
        CfgCall::ReplyToShutdown { .. } => reply_to_shutdown_reply(cs::ERR_ACCESS),
        CfgCall::ReopenLogFiles => response(RES_REOPEN_LOG_FILES, cs::OK, RESPONSE_HEADER_LEN),
        CfgCall::GetNodeAddrs(node) => {
            let node = if node == 0 { local } else { node };
            let Some(list) = addrs.get(&node) else {
                return response(RES_GET_NODE_ADDRS, cs::ERR_NOT_EXIST, 32);
            };
            // One family per reply: the first address's.
            let v6 = list.first().is_some_and(IpAddr::is_ipv6);
            let same: Vec<&IpAddr> = list.iter().filter(|a| a.is_ipv6() == v6).take(8).collect();
            let mut out = response(RES_GET_NODE_ADDRS, cs::OK, 32 + 16 * same.len());
            let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
            put_u32(&mut out, 24, family as u32);
            put_u32(&mut out, 28, same.len() as u32);
            for (i, a) in same.iter().enumerate() {
                let at = 32 + 16 * i;
                match a {
                    IpAddr::V4(v4) => out[at..at + 4].copy_from_slice(&v4.octets()),
                    IpAddr::V6(v6) => out[at..at + 16].copy_from_slice(&v6.octets()),
                }
            }
            out
        }
        CfgCall::LocalGet => {
            let mut out = response(RES_LOCAL_GET, cs::OK, 32);
            put_u32(&mut out, 24, local);
            out
        }
        CfgCall::ReloadConfig => reload_reply(cs::ERR_NOT_SUPPORTED),
        CfgCall::TryShutdown { .. } => shutdown_reply(cs::ERR_NOT_SUPPORTED),
        CfgCall::Other(id) => response(id, cs::ERR_NOT_SUPPORTED, RESPONSE_HEADER_LEN),
    }
}

/// `res_lib_cfg_nodestatusget_v1` for `s` (links past [`MAX_LINKS`] dropped,
/// address texts cut to 255 bytes).
fn node_status_reply(s: &NodeStatus) -> Vec<u8> {
    let mut out = response(RES_NODE_STATUS_GET, cs::OK, NODE_STATUS_REPLY_LEN);
    put_u32(&mut out, STATUS_AT, NODE_STATUS_V1);
    put_u32(&mut out, STATUS_AT + 4, s.node_id);
    out[STATUS_AT + 8] = u8::from(s.reachable);
    for l in &s.links {
        let slot = usize::from(l.link);
        if slot >= MAX_LINKS {
            continue;
        }
        let at = LINKS_AT + slot * LINK_SLOT;
        out[at] = u8::from(l.enabled);
        out[at + 1] = u8::from(l.connected);
        put_u32(&mut out, at + 4, l.mtu);
        for (text, off) in [(&l.src, 8), (&l.dst, 8 + HOST_LEN)] {
            let b = text.as_bytes();
            let n = b.len().min(HOST_LEN - 1);
            out[at + off..at + off + n].copy_from_slice(&b[..n]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::wire::decode_request;
    use super::*;

    #[test]
    fn local_get_reports_the_node() {
        let mut b = vec![0u8; 16];
        put_u32(&mut b, 0, REQ_LOCAL_GET as u32);
        put_u32(&mut b, 8, 16);
        let call = CfgCall::decode(&decode_request(&b).unwrap()).unwrap();
        let none = BTreeMap::new();
        let out = reply(call, 7, &none, |_| None);
        assert_eq!(out.len(), 32);
        assert_eq!(u32::from_ne_bytes(out[24..28].try_into().unwrap()), 7);
        let unknown = reply(CfgCall::Other(3), 7, &none, |_| None);
        assert_eq!(
            i32::from_ne_bytes(unknown[16..20].try_into().unwrap()),
            cs::ERR_NOT_SUPPORTED
        );
    }

    #[test]
    fn node_addresses_in_16_byte_slots() {
        let addrs: BTreeMap<u32, Vec<IpAddr>> = [(
            2,
            vec!["10.0.0.2".parse().unwrap(), "10.1.0.2".parse().unwrap()],
        )]
        .into();
        let out = reply(CfgCall::GetNodeAddrs(2), 1, &addrs, |_| None);
        assert_eq!(out.len(), 64);
        let u32_at = |o: usize| u32::from_ne_bytes(out[o..o + 4].try_into().unwrap());
        assert_eq!((u32_at(24), u32_at(28)), (libc::AF_INET as u32, 2));
        assert_eq!(&out[32..36], &[10, 0, 0, 2]);
        assert_eq!(&out[48..52], &[10, 1, 0, 2]);
        let missing = reply(CfgCall::GetNodeAddrs(9), 1, &addrs, |_| None);
        assert_eq!(
            i32::from_ne_bytes(missing[16..20].try_into().unwrap()),
            cs::ERR_NOT_EXIST
        );
    }

    #[test]
    fn node_status_in_the_v1_layout() {
        let mut b = vec![0u8; 32];
        put_u32(&mut b, 0, REQ_NODE_STATUS_GET as u32);
        put_u32(&mut b, 8, 32);
        put_u32(&mut b, 16, 2);
        put_u32(&mut b, 24, NODE_STATUS_V1);
        let call = CfgCall::decode(&decode_request(&b).unwrap()).unwrap();
        let status = |n: u32| {
            (n == 2).then(|| NodeStatus {
                node_id: 2,
                reachable: true,
                links: vec![LinkStatus {
                    link: 1,
                    enabled: true,
                    connected: true,
                    mtu: 1400,
                    src: "10.0.0.1".into(),
                    dst: "10.0.0.2".into(),
                }],
            })
        };
        let out = reply(call, 1, &BTreeMap::new(), status);
        assert_eq!(out.len(), 4200, "sizeof(res_lib_cfg_nodestatusget_v1)");
        let u32_at = |o: usize| u32::from_ne_bytes(out[o..o + 4].try_into().unwrap());
        assert_eq!(u32_at(16), cs::OK as u32);
        assert_eq!((u32_at(24), u32_at(28), out[32]), (1, 2, 1));
        let link1 = 40 + 520;
        assert_eq!(out[40], 0, "link 0 not enabled");
        assert_eq!((out[link1], out[link1 + 1]), (1, 1));
        assert_eq!(u32_at(link1 + 4), 1400);
        assert_eq!(&out[link1 + 8..link1 + 17], b"10.0.0.1\0");
        assert_eq!(&out[link1 + 264..link1 + 273], b"10.0.0.2\0");
        // An unknown node and an unknown layout are errors, in the short reply.
        let missing = CfgCall::NodeStatusGet {
            node_id: 9,
            version: 1,
        };
        let out = reply(missing, 1, &BTreeMap::new(), status);
        assert_eq!(out.len(), 32);
        assert_eq!(
            i32::from_ne_bytes(out[16..20].try_into().unwrap()),
            cs::ERR_FAILED_OPERATION
        );
        let v2 = CfgCall::NodeStatusGet {
            node_id: 2,
            version: 2,
        };
        let out = reply(v2, 1, &BTreeMap::new(), status);
        assert_eq!(
            i32::from_ne_bytes(out[16..20].try_into().unwrap()),
            cs::ERR_NOT_SUPPORTED
        );
    }

    #[test]
    fn shutdown_messages_in_their_layouts() {
        let mut b = vec![0u8; 24];
        put_u32(&mut b, 0, REQ_REPLY_TO_SHUTDOWN as u32);
        put_u32(&mut b, 8, 24);
        put_u32(&mut b, 16, 1);
        let call = CfgCall::decode(&decode_request(&b).unwrap()).unwrap();
        assert_eq!(call, CfgCall::ReplyToShutdown { yes: true });
        put_u32(&mut b, 16, 0);
        let call = CfgCall::decode(&decode_request(&b).unwrap()).unwrap();
        assert_eq!(call, CfgCall::ReplyToShutdown { yes: false });
        let cb = test_shutdown_callback(1, cs::OK);
        let u32_at = |o: usize| u32::from_ne_bytes(cb[o..o + 4].try_into().unwrap());
        assert_eq!(cb.len(), 32, "sizeof(res_lib_cfg_testshutdown)");
        assert_eq!(
            (u32_at(0), u32_at(8), u32_at(16), u32_at(24)),
            (10, 32, 1, 1)
        );
    }

    #[test]
    fn shutdown_tracking_is_accepted() {
        for (id, call) in [
            (REQ_TRACK_START, CfgCall::TrackStart),
            (REQ_TRACK_STOP, CfgCall::TrackStop),
        ] {
            let mut b = vec![0u8; 24];
            put_u32(&mut b, 0, id as u32);
            put_u32(&mut b, 8, 24);
            assert_eq!(CfgCall::decode(&decode_request(&b).unwrap()).unwrap(), call);
            let out = reply(call, 1, &BTreeMap::new(), |_| None);
            assert_eq!(out.len(), 24);
            assert_eq!(i32::from_ne_bytes(out[16..20].try_into().unwrap()), cs::OK);
        }
    }
}
