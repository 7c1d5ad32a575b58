//! Admin-socket requests: any line decodes to a request or an error, and every
//! request re-encodes to one that decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx::admin::Request;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(req) = serde_json::from_str::<Request>(text.trim()) {
        let again = serde_json::to_string(&req).expect("a request encodes");
        assert_eq!(serde_json::from_str::<Request>(&again).ok(), Some(req));
    }
});
