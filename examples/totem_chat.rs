//! Chat over Totem between terminals on one machine (or several).
//!
//! ```sh
//! cargo run --release --bin phalanx-keygen -- -k /tmp/phalanx-demo/authkey   # once
//! cargo run --release --example totem_chat -- examples/conf/demo-3node.conf 1   # terminal 1
//! cargo run --release --example totem_chat -- examples/conf/demo-3node.conf 2   # terminal 2
//! cargo run --release --example totem_chat -- examples/conf/demo-3node.conf 3   # terminal 3
//! ```
//!
//! Every line typed is multicast with agreed delivery; every terminal prints every
//! line in the same order, and membership changes as they happen. Ctrl-D leaves.

use phalanx::config;
use phalanx::node::{Node, NodeEvent, NodeOptions};
use phalanx::totem::{ConfigKind, Guarantee};
use std::io::BufRead;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(id)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: totem_chat CONFIG NODE_ID");
        std::process::exit(2);
    };
    let cfg = config::load(path)?.config;
    let node = Node::start(NodeOptions::from_config(&cfg, id.parse()?)?)?;
    let events = node.events().clone();
    std::thread::spawn(move || {
        for ev in events {
            match ev {
                NodeEvent::Deliver(d) => {
                    println!("{}> {}", d.sender, String::from_utf8_lossy(&d.data))
                }
                NodeEvent::Config(c, _) if c.kind == ConfigKind::Regular => {
                    println!(
                        "* ring {} members {:?} (joined {:?}, left {:?})",
                        c.ring, c.members, c.joined, c.left
                    )
                }
                NodeEvent::Config(..) => {}
                _ => {}
            }
        }
    });
    let h = node.handle();
    for line in std::io::stdin().lock().lines() {
        h.mcast(Guarantee::Agreed, line?.as_bytes())?;
    }
    node.leave()?;
    Ok(())
}
