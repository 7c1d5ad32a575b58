//! corosync.conf and TOML parsing: any bytes yield a config or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(l) = phalanx::config::from_corosync_str(&text, "fuzz.conf") {
        for n in &l.config.nodes {
            let _ = l.config.totem_config(n.node_id);
        }
        let _ = l.config.local_node(Some(l.config.nodes[0].node_id));
    }
    let _ = phalanx::config::from_toml_str(&text, "fuzz.toml");
});
