//! What fence agents and operators hand the fencing code as text: an agent's
//! metadata XML, a recording file, `pcmk_host_map` / `pcmk_delay_base` maps, host
//! lists and durations. Every parser answers a value or a typed error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx_fence::agent::{AgentMetadata, parse_duration, parse_recording};
use phalanx_fence::core::{NodeMap, parse_duration_ms, parse_targets};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(meta) = AgentMetadata::parse(text) {
        let _ = meta.capabilities();
    }
    let _ = parse_recording(text);
    let _ = NodeMap::parse_host_map(text);
    let _ = NodeMap::parse_node_values(text);
    let _ = parse_targets(text);
    let _ = parse_duration(text);
    let _ = parse_duration_ms(text);
});
