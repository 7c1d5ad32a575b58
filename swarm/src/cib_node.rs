//! A [`Stack`] node hosting the CIB replication service, with a workload of small
//! CIB requests from every node: marker objects created (the changes whose loss the
//! checkers look for), nvpairs and a shared resource modified, objects deleted,
//! small sections replaced, status updates, epoch bumps and queries. The CIB's
//! durable writes go to the node's simulated disk, and a restarted node loads its
//! copy from there, as `phalanxd` does from its state directory.
//!
//! Each request is named `(node, incarnation, seq)`: the service's client number is
//! the incarnation and its call number the sequence, so every node can name any
//! applied request in its [`CibObservation::Applied`].
//!
//! By default every node runs votequorum (one vote each) and the CIB takes writes
//! only with quorum, as a node does by default when it runs quorum; then no change
//! acknowledged to a client may be lost at all (`cib_quorate_kept`).
//! [`CibFactory::without_quorum`] runs Pacemaker's plain rule (highest version
//! wins, whatever the partition), where a discarded change must be reported.

use crate::stack_node::{LinkPlan, RunPlan, node_of_addr, sim_addr};
use phalanx::stack::{
    CibRequest, CibSetup, Input, InputError, Output, PersistItem, Request, Stack, StackEvent,
    StopReason,
};
use phalanx_cib::ops::{CallOptions, CibOp, OpContext, Scope, empty_cib};
use phalanx_cib::persist;
use phalanx_cib::service::{CibEvent, CibServiceConfig, CibServiceError, DiffCause, ReplyError};
use phalanx_cib::xml::{Element, Escaping, Style, to_string};
use phalanx_logsys::Logger;
use phalanx_quorum::QuorumConfig;
use phalanx_sim::history::{CibObservation, CibVersion};
use phalanx_sim::totem_node::{RING_SEQ_FILE, config_observation, persisted_ring_seq};
use phalanx_sim::{
    Destination, Disk, History, MsgId, NodeFactory, NodeId, NodeStatus, Observation, PersistWrite,
    Rng, SimNode, Transmit, Violation,
};
use phalanx_totem as totem;
use std::collections::{BTreeMap, VecDeque};

/// Persist ids with this bit set are the CIB's writes; the others the Stack's own.
const CIB_WRITE: u64 = 1 << 63;
/// Persist ids with this bit set write the CIB's quorate lineage file (before the
/// CIB write it belongs to, which is issued once it is done; if it fails, the CIB
/// write is reported failed without being made, as the real node's driver does).
const QUORATE_WRITE: u64 = 1 << 62;
/// Requests one process (node incarnation) makes at most.
const REQUESTS_PER_PROCESS: u64 = 40;
/// Marker objects' ids start with this (and nothing else's does).
const MARKER_PREFIX: &str = "m-";

/// Builds [`CibNode`]s: totem, links and crypto drawn per run as for the other
/// layers, and per run the CIB service's frame size (so requests and syncs span
/// many totem messages in some runs) and history length.
#[derive(Default, Debug, Clone)]
pub struct CibFactory {
    run: RunPlan,
    /// No votequorum, and the CIB's plain highest-version-wins rule.
    without_quorum: bool,
}

impl CibFactory {
    /// Nodes with these links and this crypto in every run.
    pub fn with_links(links: LinkPlan) -> Self {
        Self {
            run: RunPlan {
                run_seed: 0,
                links: Some(links),
            },
            without_quorum: false,
        }
    }

    /// Nodes without quorum: the CIB takes writes in any partition and the
    /// highest version wins the merge (Pacemaker's rule); a discarded change
    /// must then be reported, not kept.
    pub fn without_quorum() -> Self {
        Self {
            without_quorum: true,
            ..Self::default()
        }
    }

    /// The CIB service's limits for node `id` in this run.
    fn service_config(&self, id: NodeId) -> CibServiceConfig {
        let mut rng = Rng::new(self.run.run_seed ^ 0x6369_6273_7663);
        let mut cfg = CibServiceConfig::new(id);
        // Totem's messages are at most 64 KiB in the simulator; one byte is the
        // Stack's service id.
        cfg.frame_size = [256usize, 2048, 32 << 10][rng.gen_range(0..3) as usize];
        cfg.history = [8usize, 256][rng.gen_range(0..2) as usize];
        cfg
    }
}

impl NodeFactory for CibFactory {
    fn begin_run(&mut self, run_seed: u64) {
        self.run.run_seed = run_seed;
    }

    fn links(&self) -> u8 {
        self.run.links().links
    }

    fn create(
        &mut self,
        id: NodeId,
        all: &[NodeId],
        incarnation: u32,
        seed: u64,
        now: u64,
        disk: &mut Disk,
        logger: Logger,
    ) -> Box<dyn SimNode> {
        let mut cfg = self.run.config(id, all, incarnation, seed);
        let loaded = persist::load(|name| disk.get(name).cloned());
        let quorate_file = disk.get(persist::QUORATE_SEQ).cloned();
        let (quorate_seq, lineage_version) = persist::lineage_for(quorate_file.as_deref(), &loaded);
        let initial = match loaded.source {
            persist::LoadSource::Empty => start_cib(),
            _ => loaded.cib,
        };
        if !self.without_quorum {
            cfg.quorum = Some(QuorumConfig::new(id, all));
        }
        cfg.cib = Some(CibSetup {
            service: self.service_config(id),
            initial,
            validator: None,
            // On exactly when quorum runs.
            require_quorum: None,
            quorate_seq,
            lineage_version,
        });
        let persisted = persisted_ring_seq(disk);
        let stack = Stack::new(cfg, persisted, totem::Time::from_nanos(now), logger)
            .expect("simulated configs are valid");
        let mut node = CibNode {
            stack,
            plan: self.run.links(),
            id,
            incarnation,
            next_seq: 0,
            open: BTreeMap::new(),
            ring: None,
            last_digest: None,
            writable_in: None,
            out: VecDeque::new(),
            writes: VecDeque::new(),
            cib_writes: BTreeMap::new(),
            quorate_file,
            observations: VecDeque::new(),
            deadline: None,
            stopped: false,
        };
        node.collect();
        Box::new(node)
    }

    fn check(&self, history: &History) -> Vec<Violation> {
        if self.without_quorum {
            phalanx_sim::check::cib::all(history)
        } else {
            phalanx_sim::check::cib::all_with_quorum(history)
        }
    }
}

/// The CIB every node starts from when its disk holds none.
fn start_cib() -> Element {
    let mut c = empty_cib(1);
    c.set_attr("validate-with", "pacemaker-3.9");
    c
}

/// A Stack with the CIB service and the request workload.
pub struct CibNode {
    stack: Stack,
    plan: LinkPlan,
    id: NodeId,
    incarnation: u32,
    /// Next request sequence number of this incarnation.
    next_seq: u64,
    /// Requests waiting for their reply: the marker each one creates, if any.
    open: BTreeMap<u64, Option<String>>,
    /// The configuration the service last synced in.
    ring: Option<(u32, u64)>,
    /// The digest last reported in a [`CibObservation::State`].
    last_digest: Option<[u8; 16]>,
    /// The configuration last reported in a [`CibObservation::Writable`].
    writable_in: Option<(u32, u64)>,
    out: VecDeque<Transmit>,
    writes: VecDeque<PersistWrite>,
    /// CIB writes waiting for their lineage file: the `cib.xml` bytes.
    cib_writes: BTreeMap<u64, Vec<u8>>,
    /// The lineage file as last written (read from the disk at start).
    quorate_file: Option<Vec<u8>>,
    observations: VecDeque<Observation>,
    deadline: Option<u64>,
    stopped: bool,
}

fn version_of(v: phalanx_cib::version::Version) -> CibVersion {
    (v.admin_epoch, v.epoch, v.num_updates)
}

/// The marker ids in `text` (a serialised CIB or patchset), sorted.
fn markers_in(text: &str) -> Vec<String> {
    let needle = format!("id=\"{MARKER_PREFIX}");
    let mut out: Vec<String> = text
        .match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &text[i + 4..];
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

impl CibNode {
    fn now(now: u64) -> totem::Time {
        totem::Time::from_nanos(now)
    }

    /// Drains the Stack's outputs into the engine's queues, up to its deadline,
    /// then reports the copy if it changed.
    fn collect(&mut self) {
        loop {
            match self.stack.poll_output() {
                Output::Transmit(t) => match node_of_addr(t.to) {
                    Some((node, _)) => self.out.push_back(Transmit {
                        dest: Destination::Node(node),
                        link: t.link,
                        data: t.data.to_vec(),
                    }),
                    None => unreachable!("simulated links have only simulated addresses"),
                },
                Output::Persist(p) => {
                    let (file, bytes) = match p.item {
                        PersistItem::RingSeq(seq) => {
                            (RING_SEQ_FILE.to_string(), seq.to_le_bytes().to_vec())
                        }
                        other => (format!("{other:?}"), Vec::new()),
                    };
                    self.writes.push_back(PersistWrite {
                        id: p.id.0,
                        file,
                        bytes,
                    });
                }
                Output::CibPersist(p) => {
                    // The live file only (no signature: a missing one is accepted
                    // at load, as by Pacemaker); the engine's disk write is atomic.
                    // The lineage file first (`persist::QUORATE_SEQ`).
                    let text = to_string(&p.cib, Style::Pretty, Escaping::Xml);
                    let lineage = persist::quorate_file_with(
                        self.quorate_file.as_deref(),
                        &p.cib,
                        p.quorate_seq,
                        p.lineage_version,
                    )
                    .into_bytes();
                    self.quorate_file = Some(lineage.clone());
                    self.cib_writes.insert(p.id, text.into_bytes());
                    self.writes.push_back(PersistWrite {
                        id: QUORATE_WRITE | p.id,
                        file: persist::QUORATE_SEQ.to_string(),
                        bytes: lineage,
                    });
                }
                Output::Event(e) => self.observe(e),
                Output::Stopped(StopReason::Left) => {}
                Output::Stopped(_) => self.stopped = true,
                Output::Timeout(t) => {
                    self.deadline = t.map(totem::Time::as_nanos);
                    break;
                }
                _ => {}
            }
        }
        self.report_state();
        self.report_writable();
    }

    /// A [`CibObservation::Writable`] once per configuration in which the copy
    /// became writable with quorum (its quorate lineage is that configuration's).
    /// The quorum checker needs it to tell a lineage that lost a change through
    /// crashes (the documented gap) from one that dropped it.
    ///
    /// Asked of the service (`writable_ring`), not inferred from the current
    /// configuration: the gate can open in the old configuration's transitional
    /// deliveries and the next regular configuration follow within the same
    /// input (seed 50390), so the current configuration after the input is
    /// already the next one.
    fn report_writable(&mut self) {
        let Some(svc) = self.stack.cib() else { return };
        let Some(ring) = svc.writable_ring() else {
            return;
        };
        let ring = (ring.rep, ring.seq);
        if svc.requires_quorum() && self.writable_in != Some(ring) {
            self.writable_in = Some(ring);
            self.observations
                .push_back(Observation::Cib(CibObservation::Writable { ring }));
        }
    }

    /// A [`CibObservation::State`] when the copy's digest changed since the last.
    /// Not while the Stack holds events behind a ring-sequence write: the copy is
    /// then ahead of the events the application has seen.
    fn report_state(&mut self) {
        if self.stack.held_outputs() > 0 {
            return;
        }
        let Some(svc) = self.stack.cib() else { return };
        let digest = svc.digest().0;
        if self.last_digest == Some(digest) {
            return;
        }
        self.last_digest = Some(digest);
        let markers = svc
            .cib()
            .find_child("configuration")
            .and_then(|c| c.find_child("crm_config"))
            .map(|c| {
                let mut m: Vec<String> = c
                    .child_elements()
                    .filter_map(|e| e.id())
                    .filter(|id| id.starts_with(MARKER_PREFIX))
                    .map(str::to_string)
                    .collect();
                m.sort_unstable();
                m
            })
            .unwrap_or_default();
        self.observations
            .push_back(Observation::Cib(CibObservation::State {
                version: version_of(svc.version()),
                digest,
                markers,
            }));
    }

    fn observe(&mut self, e: StackEvent) {
        match e {
            StackEvent::Config(c) => self.observations.push_back(config_observation(c)),
            StackEvent::Cib(e) => self.observe_cib(e),
            _ => {}
        }
    }

    fn observe_cib(&mut self, e: CibEvent) {
        let obs = match e {
            CibEvent::Synced { ring, .. } => {
                self.ring = Some((ring.rep, ring.seq));
                return;
            }
            CibEvent::Diff {
                patchset,
                version,
                cause:
                    DiffCause::Request {
                        origin,
                        client,
                        call,
                    },
            } => {
                let Some(ring) = self.ring else {
                    // Requests are applied only once synced in a configuration.
                    unreachable!("n{}: a request applied before any sync", self.id)
                };
                CibObservation::Applied {
                    ring,
                    op: MsgId {
                        sender: origin,
                        incarnation: client as u32,
                        seq: call,
                    },
                    version: version_of(version),
                    digest: patchset.attr("digest").unwrap_or_default().to_string(),
                }
            }
            CibEvent::Diff { .. } | CibEvent::PersistFailed { .. } => return,
            CibEvent::Reply {
                client,
                call,
                result,
            } => {
                let marker = self.open.remove(&call).flatten();
                match result {
                    Ok(r) if r.changed && client == u64::from(self.incarnation) => {
                        CibObservation::Acked {
                            op: MsgId {
                                sender: self.id,
                                incarnation: self.incarnation,
                                seq: call,
                            },
                            marker,
                        }
                    }
                    // Not acknowledged: refused, interrupted, or applied during a
                    // membership change without confirmation.
                    Ok(_)
                    | Err(ReplyError::Interrupted | ReplyError::Op(_) | ReplyError::Unconfirmed) => {
                        return;
                    }
                }
            }
            CibEvent::Divergence(d) => {
                let text = d
                    .discarded
                    .map(|p| to_string(&p, Style::Compact, Escaping::Xml))
                    .unwrap_or_default();
                CibObservation::Divergence {
                    markers: markers_in(&text),
                }
            }
        };
        self.observations.push_back(Observation::Cib(obs));
    }

    /// One random request.
    fn act(&mut self, now: u64, rng: &mut Rng) {
        let seq = self.next_seq;
        let node = self.id;
        let inc = self.incarnation;
        let mut marker = None;
        let create = |input| CibOp::Create {
            scope: Scope::section("crm_config"),
            input,
            options: CallOptions::default(),
        };
        let modify = |section: &str, input| CibOp::Modify {
            scope: Scope::section(section),
            input,
            options: CallOptions {
                can_create: true,
                ..Default::default()
            },
        };
        let op = match rng.gen_range(0..100) {
            // A marker: a property set no other request touches.
            0..=29 => {
                let id = format!("{MARKER_PREFIX}{node}-{inc}-{seq}");
                marker = Some(id.clone());
                create(
                    Element::new("cluster_property_set")
                        .with_attr("id", id.as_str())
                        .with_child(
                            Element::new("nvpair")
                                .with_attr("id", format!("v-{id}"))
                                .with_attr("name", format!("p-{id}"))
                                .with_attr("value", "1"),
                        ),
                )
            }
            // An nvpair change in a shared set.
            30..=44 => {
                let k = rng.gen_range(0..4);
                modify(
                    "crm_config",
                    Element::new("cluster_property_set")
                        .with_attr("id", "shared-options")
                        .with_child(
                            Element::new("nvpair")
                                .with_attr("id", format!("shared-options-{k}"))
                                .with_attr("name", format!("opt-{k}"))
                                .with_attr("value", format!("{node}-{inc}-{seq}")),
                        ),
                )
            }
            // A shared resource both sides of a partition may change.
            45..=59 => {
                let r = rng.gen_range(0..3);
                modify(
                    "resources",
                    Element::new("primitive")
                        .with_attr("id", format!("rsc{r}"))
                        .with_attr("class", "ocf")
                        .with_attr("provider", "heartbeat")
                        .with_attr("type", "Dummy")
                        .with_attr("description", format!("{node}-{inc}-{seq}")),
                )
            }
            60..=67 => CibOp::Delete {
                scope: Scope::xpath(format!("//primitive[@id='rsc{}']", rng.gen_range(0..3))),
                input: None,
                options: CallOptions::default(),
            },
            // A small section replaced whole.
            68..=75 => {
                let n = rng.gen_range(0..3);
                let mut section = Element::new("rsc_defaults");
                if n > 0 {
                    let mut meta = Element::new("meta_attributes").with_attr("id", "rsc-options");
                    for k in 0..n {
                        meta.push_child(
                            Element::new("nvpair")
                                .with_attr("id", format!("rsc-options-{k}"))
                                .with_attr("name", format!("d-{k}"))
                                .with_attr("value", format!("{node}-{inc}-{seq}")),
                        );
                    }
                    section.push_child(meta);
                }
                CibOp::Replace {
                    scope: Scope::section("rsc_defaults"),
                    input: section,
                    digest: None,
                    options: CallOptions::default(),
                }
            }
            76..=91 => modify(
                "status",
                Element::new("node_state")
                    .with_attr("id", format!("{}", rng.gen_range(1..4)))
                    .with_attr("uname", format!("node{node}"))
                    .with_attr("counter", format!("{seq}")),
            ),
            92..=94 => CibOp::Bump,
            _ => CibOp::Query {
                scope: Scope::section("crm_config"),
                options: CallOptions::default(),
            },
        };
        let ctx = OpContext {
            user: Some("hacluster".into()),
            client_name: Some("swarm".into()),
            origin: Some(format!("node{node}")),
            now: Some(format!("t{now}")),
            ..Default::default()
        };
        let request = CibRequest {
            client: u64::from(inc),
            call: seq,
            op,
            ctx,
        };
        let input = Input::Request(Request::Cib(Box::new(request)));
        match self.stack.handle_input(Self::now(now), input) {
            Ok(()) => {
                self.next_seq += 1;
                self.open.insert(seq, marker);
            }
            // A full queue, or (with quorum) a partition without quorum.
            Err(InputError::Cib(CibServiceError::TryAgain | CibServiceError::NoQuorum)) => {}
            Err(e) => panic!("n{node}: CIB request refused: {e}"),
        }
    }
}

impl SimNode for CibNode {
    fn handle_datagram(&mut self, now: u64, from: NodeId, link: u8, data: &[u8]) -> bool {
        let input = Input::Datagram {
            link,
            from: sim_addr(from, link),
            data,
        };
        let accepted = self.stack.handle_input(Self::now(now), input).is_ok();
        self.collect();
        accepted
    }

    fn handle_timeout(&mut self, now: u64) {
        let _ = self.stack.handle_input(Self::now(now), Input::Timeout);
        self.collect();
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.deadline
    }

    fn app_tick(&mut self, now: u64, rng: &mut Rng) {
        if self.stopped {
            return;
        }
        // A bounded budget per process keeps the CIB small (every applied request
        // costs a copy, a diff and a digest of the whole CIB on every node), so a
        // seed stays cheap enough to run 100 000 of them.
        if self.next_seq < REQUESTS_PER_PROCESS && rng.gen_bool(0.3) {
            self.act(now, rng);
            self.collect();
        }
    }

    fn leave(&mut self, now: u64) {
        let _ = self
            .stack
            .handle_input(Self::now(now), Input::Request(Request::Leave));
        self.collect();
    }

    fn poll_observation(&mut self) -> Option<Observation> {
        self.observations.pop_front()
    }

    fn status(&self) -> NodeStatus {
        crate::stack_node::status_of(&self.stack)
    }

    fn poll_persist(&mut self) -> Option<PersistWrite> {
        self.writes.pop_front()
    }

    fn persist_done(&mut self, now: u64, id: u64, ok: bool) {
        if id & QUORATE_WRITE != 0 {
            let cib_id = id & !QUORATE_WRITE;
            let Some(bytes) = self.cib_writes.remove(&cib_id) else {
                return;
            };
            if ok {
                self.writes.push_back(PersistWrite {
                    id: CIB_WRITE | cib_id,
                    file: persist::LIVE.to_string(),
                    bytes,
                });
                return;
            }
            // The CIB write is not made: report it failed.
            self.persist_done(now, CIB_WRITE | cib_id, false);
            return;
        }
        let input = if id & CIB_WRITE != 0 {
            Input::CibPersisted {
                id: id & !CIB_WRITE,
                result: if ok {
                    Ok(())
                } else {
                    Err("simulated disk error".into())
                },
            }
        } else {
            Input::Persisted {
                id: phalanx::stack::PersistId(id),
                result: if ok {
                    Ok(())
                } else {
                    Err(phalanx::stack::PersistFailed("simulated disk error".into()))
                },
            }
        };
        let _ = self.stack.handle_input(Self::now(now), input);
        self.collect();
    }

    fn stopped(&self) -> bool {
        self.stopped
    }

    fn authenticates(&self) -> bool {
        self.plan.cipher.is_some()
    }
}
