//! The cfg service, as far as the Corosync tools need it to start:
//! `corosync_cfg_initialize` (a connection), `corosync_cfg_local_get` and
//! `corosync_cfg_get_node_addrs` (answered with no addresses). Everything else
//! is answered `CS_ERR_NOT_SUPPORTED`.

use super::cs;
use super::wire::{IpcError, RESPONSE_HEADER_LEN, Request, put_u32, response};

const REQ_GET_NODE_ADDRS: i32 = 5;
const REQ_LOCAL_GET: i32 = 6;
const RES_GET_NODE_ADDRS: i32 = 11;
const RES_LOCAL_GET: i32 = 12;

/// A decoded libcfg request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CfgCall {
    /// Addresses of a node.
    GetNodeAddrs,
    /// This node's id.
    LocalGet,
    /// Anything else (not offered).
    Other(i32),
}

impl CfgCall {
    /// Decodes a request of the cfg service.
    pub fn decode(r: &Request<'_>) -> Result<CfgCall, IpcError> {
        Ok(match r.id {
            REQ_GET_NODE_ADDRS => {
                r.u32_at(16)?;
                CfgCall::GetNodeAddrs
            }
            REQ_LOCAL_GET => CfgCall::LocalGet,
            id => CfgCall::Other(id),
        })
    }
}

/// The reply to `call` on node `local`.
pub fn reply(call: CfgCall, local: u32) -> Vec<u8> {
    match call {
        CfgCall::GetNodeAddrs => {
            // family 0, no addresses: the tools then print no address.
            response(RES_GET_NODE_ADDRS, cs::OK, 32)
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
        let out = reply(call, 7);
        assert_eq!(out.len(), 32);
        assert_eq!(u32::from_ne_bytes(out[24..28].try_into().unwrap()), 7);
        let unknown = reply(CfgCall::Other(3), 7);
        assert_eq!(
            i32::from_ne_bytes(unknown[16..20].try_into().unwrap()),
            cs::ERR_NOT_SUPPORTED
        );
    }
}
