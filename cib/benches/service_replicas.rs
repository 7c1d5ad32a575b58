//! Replicated modify cost of the CIB service core: three `CibService` replicas in
//! one process, a loopback sequencer standing in for totem's agreed order (every
//! frame goes to all three, in one order), no network, one thread. What it measures
//! is the service's own per-change work on every replica (encode, decode, apply,
//! patchset, digests), which is what grows with the CIB's size; the network and
//! totem's token rotation are measured elsewhere (`phalanx-bench`).
//!
//! `cargo bench -p phalanx-cib --bench service_replicas [-- SIZES_KB...]`
//! (default 100 1000 10000): for each size, a CIB of that many kilobytes of
//! primitives, then small nvpair modifies from node 1: closed loop (one at a time,
//! latency = request to reply, all three replicas having applied it) and a
//! window of 32 outstanding (throughput).

// A measuring harness outside the sans-IO core: it reads the clock on purpose.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use phalanx_cib::digest::cib_digest;
use phalanx_cib::ops::{CallOptions, CibOp, OpContext, Scope, empty_cib, execute};
use phalanx_cib::persist::disk_form;
use phalanx_cib::service::{CibEvent, CibService, CibServiceConfig, Fingerprint};
use phalanx_cib::xml::{Element, Escaping, Style, to_string};
use phalanx_totem::RingId;

/// A CIB of about `kb` kilobytes: primitives with a few attributes each.
fn cib_of(kb: usize) -> Element {
    let mut cib = empty_cib(1);
    cib.set_attr("validate-with", "pacemaker-3.9");
    let config = cib.find_child_mut("configuration").expect("configuration");
    let resources = config.find_child_mut("resources").expect("resources");
    let mut i = 0;
    let mut size = 0;
    while size < kb * 1000 {
        let id = format!("rsc{i}");
        let mut attrs = Element::new("instance_attributes").with_attr("id", format!("{id}-ia"));
        for k in 0..3 {
            attrs.push_child(
                Element::new("nvpair")
                    .with_attr("id", format!("{id}-ia-p{k}"))
                    .with_attr("name", format!("param{k}"))
                    .with_attr("value", format!("value-{i}-{k}")),
            );
        }
        let p = Element::new("primitive")
            .with_attr("id", id.as_str())
            .with_attr("class", "ocf")
            .with_attr("provider", "heartbeat")
            .with_attr("type", "Dummy")
            .with_child(attrs);
        size += to_string(&p, Style::Compact, Escaping::Xml).len();
        resources.push_child(p);
        i += 1;
    }
    cib
}

struct Cluster {
    nodes: Vec<CibService>,
}

impl Cluster {
    fn new(cib: &Element) -> Self {
        let mut nodes: Vec<CibService> = (1..=3)
            .map(|id| CibService::new(CibServiceConfig::new(id), cib.clone()))
            .collect();
        let ring = RingId { seq: 1, rep: 1 };
        for n in &mut nodes {
            n.handle_config(&[1, 2, 3], &[1, 2, 3], &[], ring);
        }
        let mut c = Cluster { nodes };
        c.pump();
        assert!(c.nodes.iter().all(CibService::is_synced));
        c
    }

    /// Delivers every queued frame to every replica in one order; returns node
    /// 1's replies.
    fn pump(&mut self) -> usize {
        let mut replies = 0;
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(frame) = self.nodes[i].poll_send() {
                    moved = true;
                    let sender = i as u32 + 1;
                    for n in &mut self.nodes {
                        n.handle_message(sender, &frame).expect("frame");
                    }
                }
            }
            for (i, n) in self.nodes.iter_mut().enumerate() {
                while let Some(e) = n.poll_event() {
                    if let (0, CibEvent::Reply { result, .. }) = (i, e) {
                        result.expect("modify succeeds");
                        replies += 1;
                    }
                }
                // Writes are the driver's, off the service's path.
                while let Some(p) = n.poll_persist() {
                    n.persisted(p.id, Ok(())).expect("outstanding");
                }
            }
            if !moved {
                return replies;
            }
        }
    }

    fn modify(&mut self, call: u64) {
        let input = Element::new("cluster_property_set")
            .with_attr("id", "bench-options")
            .with_child(
                Element::new("nvpair")
                    .with_attr("id", "bench-options-counter")
                    .with_attr("name", "counter")
                    .with_attr("value", call.to_string()),
            );
        let op = CibOp::Modify {
            scope: Scope::section("crm_config"),
            input,
            options: CallOptions {
                can_create: true,
                ..Default::default()
            },
        };
        let ctx = OpContext {
            user: Some("hacluster".into()),
            now: Some(format!("t{call}")),
            ..Default::default()
        };
        self.nodes[0].request(1, call, op, ctx).expect("queued");
    }
}

/// Mean time of `f` over `n` runs.
fn time_of(n: u32, mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed() / n
}

/// What one replica's apply of one modify spends its time on, at this size:
/// the operation itself (`ops::execute`: in place for a section-scoped modify,
/// with the patchset and its `--cib` digest of the result), the service's exact
/// fingerprint of the result, and the copy a persist request carries.
fn breakdown(cib: &Element) -> String {
    let n = 5;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut live = cib.clone();
    let mut call = 0u64;
    let execute = time_of(n, || {
        call += 1;
        let op = CibOp::Modify {
            scope: Scope::section("crm_config"),
            input: Element::new("cluster_property_set")
                .with_attr("id", "bench-options")
                .with_child(
                    Element::new("nvpair")
                        .with_attr("id", "bench-options-counter")
                        .with_attr("name", "counter")
                        .with_attr("value", call.to_string()),
                ),
            options: CallOptions {
                can_create: true,
                ..Default::default()
            },
        };
        let outcome = execute(&mut live, &op, &OpContext::default()).expect("modify");
        assert!(outcome.patchset.is_some());
    });
    let digest = time_of(n, || {
        std::hint::black_box(cib_digest(cib));
    });
    let fingerprint = time_of(n, || {
        std::hint::black_box(Fingerprint::of(cib));
    });
    let disk = time_of(n, || {
        std::hint::black_box(disk_form(cib));
    });
    let clone = time_of(n, || drop(std::hint::black_box(cib.clone())));
    format!(
        "execute {:.2} ms (its --cib digest alone: {:.2} ms), fingerprint {:.2} ms, \
         persist copy {:.2} ms; a whole clone {:.2} ms",
        ms(execute),
        ms(digest),
        ms(fingerprint),
        ms(disk),
        ms(clone)
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100, 1000, 10_000]
    } else {
        sizes
    };
    println!("size_kb  bytes      closed_ops/s  p50_ms   p99_ms   window32_ops/s");
    for kb in sizes {
        let cib = cib_of(kb);
        let bytes = to_string(&cib, Style::Compact, Escaping::Xml).len();
        let mut c = Cluster::new(&cib);
        // Closed loop: one request at a time, until ~3 s or 200 requests.
        let mut lat = Vec::new();
        let began = Instant::now();
        let mut call = 0;
        while lat.len() < 200 && (began.elapsed() < Duration::from_secs(3) || lat.len() < 20) {
            let t = Instant::now();
            c.modify(call);
            call += 1;
            assert_eq!(c.pump(), 1);
            lat.push(t.elapsed());
        }
        let closed = lat.len() as f64 / began.elapsed().as_secs_f64();
        lat.sort_unstable();
        // Window of 32 outstanding requests.
        let n = lat.len().max(32);
        let began = Instant::now();
        let mut done = 0;
        while done < n {
            for _ in 0..32 {
                c.modify(call);
                call += 1;
            }
            done += c.pump();
        }
        let window = done as f64 / began.elapsed().as_secs_f64();
        println!(
            "{kb:<8} {bytes:<10} {closed:<13.1} {:<8.3} {:<8.3} {window:.1}",
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
        );
        println!("         per replica: {}", breakdown(&cib));
    }
}
