//! The DLM's point-to-point messages from untrusted bytes: decoding never panics,
//! and a decoded message survives an encode/decode round trip unchanged. The bytes
//! are also fed to a `DlmNode` in a lockspace as a message from a member: handling
//! any decodable message must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx_dlm::cluster::{DlmConfig, DlmNode, Input, decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode(data) {
        let again = encode(&msg);
        assert_eq!(decode(&again).ok(), Some(msg));
    }
    let Ok(mut node) = DlmNode::new(1, DlmConfig::default()) else {
        return;
    };
    let members = Input::Members {
        lockspace: 1,
        epoch: 1,
        members: vec![1, 2],
        failed: vec![],
    };
    let _ = node.handle_input(members);
    let _ = node.handle_input(Input::Message {
        from: 2,
        bytes: data.to_vec(),
    });
    while node.poll_output().is_some() {}
});
