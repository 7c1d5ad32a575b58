//! The DLM's point-to-point messages from untrusted bytes: decoding never panics,
//! and a decoded message survives an encode/decode round trip unchanged. The bytes
//! are also fed to a `DlmNode` in a lockspace as a message from a member, and then,
//! read as records (`phalanx_fuzz::records`), as a conversation: each record is a
//! message from node `2 + ctl % 2` (2 is a member, 3 is not), so that replies can
//! follow requests; handling any message must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx_dlm::cluster::{DlmConfig, DlmNode, Input, decode, encode};
use phalanx_fuzz::records;

fn node() -> Option<DlmNode> {
    let mut node = DlmNode::new(1, DlmConfig::default()).ok()?;
    let members = Input::Members {
        lockspace: 1,
        epoch: 1,
        members: vec![1, 2],
        failed: vec![],
    };
    let _ = node.handle_input(members);
    Some(node)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode(data) {
        let again = encode(&msg);
        assert_eq!(decode(&again).ok(), Some(msg));
    }
    let Some(mut one) = node() else {
        return;
    };
    let _ = one.handle_input(Input::Message {
        from: 2,
        bytes: data.to_vec(),
    });
    while one.poll_output().is_some() {}
    let Some(mut node) = node() else {
        return;
    };
    for r in records(data, 64) {
        let _ = node.handle_input(Input::Message {
            from: 2 + u32::from(r.ctl % 2),
            bytes: r.bytes.to_vec(),
        });
        while node.poll_output().is_some() {}
    }
});
