//! The cfg service, as far as the Corosync tools need it to start:
//! `corosync_cfg_initialize` (a connection), `corosync_cfg_local_get` and
//! `corosync_cfg_get_node_addrs` (the node's configured IP addresses, one per
//! link). Everything else is answered `CS_ERR_NOT_SUPPORTED`.
//!
//! `res_lib_cfg_get_node_addrs`: family `i32` @24 (`AF_INET` / `AF_INET6`),
//! count `u32` @28, then the raw addresses in 16-byte slots @32.

use super::cs;
use super::wire::{IpcError, RESPONSE_HEADER_LEN, Request, put_u32, response};
use std::collections::BTreeMap;
use std::net::IpAddr;

const REQ_GET_NODE_ADDRS: i32 = 5;
const REQ_LOCAL_GET: i32 = 6;
const RES_GET_NODE_ADDRS: i32 = 11;
const RES_LOCAL_GET: i32 = 12;

/// A decoded libcfg request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CfgCall {
    /// Addresses of a node (0: this node).
    GetNodeAddrs(u32),
    /// This node's id.
    LocalGet,
    /// Anything else (not offered).
    Other(i32),
}

impl CfgCall {
    /// Decodes a request of the cfg service.
    pub fn decode(r: &Request<'_>) -> Result<CfgCall, IpcError> {
        Ok(match r.id {
            REQ_GET_NODE_ADDRS => CfgCall::GetNodeAddrs(r.u32_at(16)?),
            REQ_LOCAL_GET => CfgCall::LocalGet,
            id => CfgCall::Other(id),
        })
    }
}

/// The reply to `call` on node `local`, whose configuration gives `addrs`.
pub fn reply(call: CfgCall, local: u32, addrs: &BTreeMap<u32, Vec<IpAddr>>) -> Vec<u8> {
    match call {
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
        CfgCall::Other(id) => response(id, cs::ERR_NOT_SUPPORTED, RESPONSE_HEADER_LEN),
    }
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
        let out = reply(call, 7, &none);
        assert_eq!(out.len(), 32);
        assert_eq!(u32::from_ne_bytes(out[24..28].try_into().unwrap()), 7);
        let unknown = reply(CfgCall::Other(3), 7, &none);
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
        let out = reply(CfgCall::GetNodeAddrs(2), 1, &addrs);
        assert_eq!(out.len(), 64);
        let u32_at = |o: usize| u32::from_ne_bytes(out[o..o + 4].try_into().unwrap());
        assert_eq!((u32_at(24), u32_at(28)), (libc::AF_INET as u32, 2));
        assert_eq!(&out[32..36], &[10, 0, 0, 2]);
        assert_eq!(&out[48..52], &[10, 1, 0, 2]);
        let missing = reply(CfgCall::GetNodeAddrs(9), 1, &addrs);
        assert_eq!(
            i32::from_ne_bytes(missing[16..20].try_into().unwrap()),
            cs::ERR_NOT_EXIST
        );
    }
}
