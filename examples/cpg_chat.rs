//! Chat in a closed process group, between terminals on one machine (or several).
//!
//! ```sh
//! # No key needed: three nodes on 127.0.0.1, .2, .3 (port 5405), no crypto.
//! cargo run --release --example cpg_chat -- --config examples/conf/corosync-3node-loopback.conf --node-id 1
//! cargo run --release --example cpg_chat -- --config examples/conf/corosync-3node-loopback.conf --node-id 2
//! cargo run --release --example cpg_chat -- --config examples/conf/corosync-3node-loopback.conf --node-id 3 --group ops
//! # Or with crypto (key generated once):
//! cargo run --release --bin phalanx-keygen -- -k /tmp/phalanx-demo/authkey
//! cargo run --release --example cpg_chat -- --config examples/conf/demo-3node.conf --node-id 1
//! ```
//!
//! Each terminal is one node with one group member (`--group`, default `chat`).
//! Every line typed is multicast to the group; every member of the group prints it as
//! `<node>/<member>: text`, all in the same order, its own lines included. Members
//! joining and leaving are printed with their reason: JOIN / LEAVE (Ctrl-D leaves the
//! group), PROCDOWN (a member handle dropped without leaving), NODEDOWN (a node
//! killed or cut off), NODEUP (a node arriving, or back after a partition).

use phalanx::config;
use phalanx::cpg::{Change, CpgEvent, Guarantee, Reason};
use phalanx::node::{Node, NodeOptions};
use std::io::BufRead;
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!("usage: cpg_chat --config CONFIG --node-id N [--group NAME]");
    std::process::exit(2);
}

fn reason(r: Reason) -> &'static str {
    match r {
        Reason::Join => "JOIN",
        Reason::Leave => "LEAVE",
        Reason::NodeDown => "NODEDOWN",
        Reason::NodeUp => "NODEUP",
        Reason::ProcDown => "PROCDOWN",
    }
}

fn changes(list: &[Change], verb: &str) {
    for c in list {
        println!(
            "* {}/{} {verb} ({})",
            c.member.node,
            c.member.local,
            reason(c.reason)
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut path, mut id, mut group) = (None, None, "chat".to_string());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => path = args.next(),
            "--node-id" => id = args.next(),
            "--group" => group = args.next().unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    let (Some(path), Some(id)) = (path, id) else {
        usage()
    };
    let cfg = config::load(&path)?.config;
    let node = Node::start(NodeOptions::from_config(&cfg, id.parse()?)?)?;
    let member = node.cpg().member()?;
    let me = member.id();
    println!(
        "* I am {}/{} in group {group:?}; Ctrl-D leaves",
        me.node, me.local
    );

    // Events on a thread of their own; it reports when our own leave completed.
    let (left_tx, left_rx) = crossbeam_channel::bounded(1);
    let events = member.events().clone();
    std::thread::spawn(move || {
        for ev in events {
            match ev {
                CpgEvent::Deliver(d) => println!(
                    "{}/{}: {}",
                    d.sender.node,
                    d.sender.local,
                    String::from_utf8_lossy(&d.data)
                ),
                CpgEvent::Change(c) => {
                    changes(&c.left, "left");
                    changes(&c.joined, "joined");
                    let m: Vec<String> = c.members.iter().map(|m| m.to_string()).collect();
                    println!("* members of {}: [{}]", c.group, m.join(", "));
                    if c.left.iter().any(|l| l.member == me) {
                        let _ = left_tx.send(());
                    }
                }
                CpgEvent::Totem(t) => println!("* ring {} nodes {:?}", t.ring, t.members),
                _ => {}
            }
        }
    });

    member.join(group.as_bytes())?;
    for line in std::io::stdin().lock().lines() {
        // Waits for room instead of failing when the send queue is full.
        member.mcast_wait(group.as_bytes(), Guarantee::Agreed, line?.as_bytes(), None)?;
    }
    // Leave cleanly: the others see LEAVE (not NODEDOWN) if the ring is up.
    member.leave(group.as_bytes())?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let _ = left_rx.recv_deadline(deadline);
    drop(member);
    node.leave()?;
    Ok(())
}
