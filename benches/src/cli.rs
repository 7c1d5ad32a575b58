//! The command line of `phalanx-bench`.

use crate::{Api, Scenario, worker};
use clap::{Args, Parser, ValueEnum};
use clap_complete::Shell;
use std::path::PathBuf;

/// Ordered-multicast throughput and latency of Phalanx nodes running as separate
/// processes on loopback UDP, measured with the method of Corosync's cpgperf, plus
/// the raw UDP ceiling of the same machine.
#[derive(Parser, Debug)]
#[command(
    name = "phalanx-bench",
    version,
    args_override_self = true,
    after_help = "The list options take comma-separated values; every combination runs, \
repetitions being the outer loop. Each worker prints one RESULT line in cpgperf's format; a run \
that fails a check (a node missing, differing order_hash or delivered, errors, a membership \
change) is marked `# FAILED <label> <reasons>`.\n\n\
The Corosync rig (cpgperf, bench.sh, summarize.sh) is looked for in --corosync-bench DIR, else \
$PHALANX_COROSYNC_BENCH, else ../shared/bench beside the repository this binary was built \
from. When found, --out and --report also write DIR/summarize-sh.md with its summarize.sh, an \
independent check of the summary.\n\n\
Exit status: 0 when every run passed its checks, 2 when one failed, 1 on an error or bad usage."
)]
pub struct Cli {
    /// What to run.
    #[command(flatten)]
    pub run: RunOptions,
    /// Rewrite DIR/summary.md and the SVG plots from the lines in DIR, running nothing.
    #[arg(long, value_name = "DIR", conflicts_with = "run")]
    pub report: Option<PathBuf>,
    /// The Corosync bench rig: the directory with summarize.sh [default:
    /// ../shared/bench beside the repository, when it exists].
    #[arg(long, value_name = "DIR", env = "PHALANX_COROSYNC_BENCH")]
    pub corosync_bench: Option<PathBuf>,
    /// Print a completion script for SHELL on stdout and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    pub completions: Option<Shell>,
    /// Internal: run as one node of a cluster (the parent re-executes itself so).
    #[arg(
        long,
        hide = true,
        exclusive = true,
        num_args = worker::Spec::ARGS,
        allow_hyphen_values = true,
        value_name = "SPEC"
    )]
    pub worker: Option<Vec<String>>,
}

/// The measurement matrix and the settings of every run.
#[derive(Args, Debug)]
#[group(id = "run", multiple = true)]
pub struct RunOptions {
    /// Cluster sizes, 2 to 64 nodes each.
    #[arg(long, value_name = "N[,N..]", value_delimiter = ',', default_value = "3",
          value_parser = node_count)]
    pub nodes: Vec<u32>,
    /// Scenarios: tput1 (node 1 floods), tputN (every node floods), lat1 (node 1 pings
    /// back to back), lat1idle (node 1 pings every 10 ms), latN (every node pings), raw
    /// (plain UDP from node 1 to the others, no ordering).
    #[arg(
        long = "scenario",
        visible_alias = "scenarios",
        value_name = "S[,S..]",
        value_delimiter = ',',
        value_enum,
        default_value = "tput1",
        hide_possible_values = true
    )]
    pub scenarios: Vec<Scenario>,
    /// Message sizes in bytes, cpgperf's 32-byte header included (32 to 1048576).
    #[arg(long = "size", visible_alias = "sizes", value_name = "B[,B..]", value_delimiter = ',',
          default_value = "64", value_parser = message_size)]
    pub sizes: Vec<usize>,
    /// Seconds each run sends for (more than 0, less than 3600).
    #[arg(long, value_name = "T", default_value_t = 5.0, value_parser = run_secs)]
    pub secs: f64,
    /// cpg: one process-group member per worker, like cpgperf on Corosync (labels
    /// phalanx-cpg, phalanx-cpg-crypto); totem: raw totem messages (labels phalanx,
    /// phalanx-crypto).
    #[arg(
        long,
        value_name = "API[,API..]",
        value_delimiter = ',',
        value_enum,
        default_value = "cpg",
        hide_possible_values = true
    )]
    pub api: Vec<Api>,
    /// Datagram encryption off, on, or both in turn.
    #[arg(
        long,
        value_name = "on|off[,..]",
        value_delimiter = ',',
        value_enum,
        default_value = "off",
        hide_possible_values = true
    )]
    pub crypto: Vec<OnOff>,
    /// The cipher when --crypto is on.
    #[arg(long, value_enum, default_value_t = CipherArg::Aes)]
    pub cipher: CipherArg,
    /// Delivery guarantee of every message.
    #[arg(long, value_enum, default_value_t = GuaranteeArg::Agreed)]
    pub guarantee: GuaranteeArg,
    /// Repetitions of the whole matrix.
    #[arg(long, value_name = "R", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: u32,
    /// Number of the first repetition in the labels (to continue an earlier series).
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub rep_start: u32,
    /// Append the RESULT lines to DIR/raw.txt and latency quantiles to DIR/rtt.txt, then
    /// rewrite DIR/summary.md and the plots from everything in DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Where the workers run: netns — one network namespace per node on veths
    /// into a bridge, the topology of the Corosync rig (../shared/bench), every
    /// figure compared with Corosync is measured so (needs root); loopback — all
    /// on 127.0.0.1, labelled `-loopback`, never put beside Corosync's figures.
    #[arg(long, value_enum, default_value_t = TopologyArg::Netns)]
    pub topology: TopologyArg,
    /// Link MTU of the netns topology (the Corosync rig uses the veth default, 1500).
    #[arg(long, value_name = "BYTES", default_value_t = 1500,
          value_parser = clap::value_parser!(u32).range(1280..=65535))]
    pub mtu: u32,
    /// Largest totem frame in bytes [default: MTU − 100 with the netns topology,
    /// so a frame fits one datagram; 65000 on loopback].
    #[arg(long, value_name = "BYTES")]
    pub max_frame: Option<usize>,
    /// How a flooding sender waits after TryAgain: block on the event channel (up to
    /// 1 ms), or yield-spin on send_room() (cpg: drain, yield, retry).
    #[arg(long, value_enum, default_value_t = Wait::Block)]
    pub wait: Wait,
    /// The implementation field of the labels, instead of the one --api and --crypto give.
    #[arg(long, value_name = "IMPL")]
    pub name: Option<String>,
    /// A receiving process with nothing queued naps this long instead of blocking on the
    /// event channel (0: block).
    #[arg(long, value_name = "US", default_value_t = 0)]
    pub recv_nap_us: u64,
    /// A pinger polls for its own delivery this long before blocking.
    #[arg(long, value_name = "US", default_value_t = 0)]
    pub spin_us: u64,
    /// Many datagrams per system call in the nodes' drivers (sendmmsg/recvmmsg);
    /// off sends and reads one datagram per call, for comparison.
    #[arg(long, value_name = "on|off", value_enum, default_value_t = OnOff::Off,
          hide_possible_values = true)]
    pub batch_io: OnOff,
    /// Segmentation offload in the nodes' drivers (UDP_SEGMENT sends of a
    /// peer's frames, UDP_GRO reads; the library's default is off); off sends
    /// and reads datagram by datagram.
    #[arg(long, value_name = "on|off", value_enum, default_value_t = OnOff::On,
          hide_possible_values = true)]
    pub gso: OnOff,
    /// The nodes' driver threads poll without sleeping this long before they
    /// sleep (`NodeOptions::spin_before_park`; 0: sleep at once).
    #[arg(long, value_name = "US", default_value_t = 0)]
    pub driver_spin_us: u64,
    /// Totem's `max_messages`: frames a node may send per token visit (the
    /// window grows to at least twice it); 0: the library's default (64).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_messages: u32,
    /// Totem's `send_hold`, microseconds: a node that has sent everything it had
    /// keeps the token this long for more of its own messages (0: pass it on at
    /// once, the library's default).
    #[arg(long, value_name = "US", default_value_t = 0)]
    pub send_hold_us: u64,
    /// Each worker prints its driver's counters on stderr at the end.
    #[arg(long, value_name = "on|off", value_enum, default_value_t = OnOff::Off,
          hide_possible_values = true)]
    pub driver_stats: OnOff,
}

/// `--topology`'s values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TopologyArg {
    /// Network namespaces, veths and a bridge, as the Corosync rig.
    Netns,
    /// 127.0.0.1.
    Loopback,
}

impl RunOptions {
    /// The totem frame size of the runs: given, or derived from the topology.
    pub fn frame(&self) -> usize {
        self.max_frame.unwrap_or(match self.topology {
            TopologyArg::Netns => self.mtu as usize - 100,
            TopologyArg::Loopback => worker::DEFAULT_MAX_FRAME,
        })
    }

    /// The frame size of one run: [`frame`](Self::frame), less the crypto header
    /// and tag when the run seals its datagrams and the size comes from the MTU —
    /// so a sealed full frame still fits one packet rather than two fragments.
    pub fn frame_for(&self, crypto: bool) -> usize {
        let frame = self.frame();
        if crypto && self.max_frame.is_none() && self.topology == TopologyArg::Netns {
            frame - phalanx::crypto::OVERHEAD
        } else {
            frame
        }
    }
}

/// An on/off switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

impl OnOff {
    /// Whether it is on.
    pub fn on(self) -> bool {
        self == OnOff::On
    }
}

/// `--cipher`'s values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CipherArg {
    /// AES-256-GCM.
    Aes,
    /// ChaCha20-Poly1305.
    Chacha,
}

/// `--guarantee`'s values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GuaranteeArg {
    /// Agreed order: delivered once ordered.
    Agreed,
    /// Safe: delivered once every member has it.
    Safe,
}

/// `--wait`'s values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Wait {
    /// Block on the event channel.
    Block,
    /// Yield-spin.
    Yield,
}

impl Wait {
    /// The name on the command line and in the header line.
    pub fn name(self) -> &'static str {
        match self {
            Wait::Block => "block",
            Wait::Yield => "yield",
        }
    }
}

fn node_count(s: &str) -> Result<u32, String> {
    s.parse()
        .ok()
        .filter(|n| (2..=64).contains(n))
        .ok_or_else(|| format!("{s:?} is not a node count from 2 to 64"))
}

fn message_size(s: &str) -> Result<usize, String> {
    s.parse()
        .ok()
        .filter(|b| (worker::HDR..=1 << 20).contains(b))
        .ok_or_else(|| format!("{s:?} is not a size from {} to {}", worker::HDR, 1 << 20))
}

fn run_secs(s: &str) -> Result<f64, String> {
    s.parse()
        .ok()
        .filter(|t: &f64| *t > 0.0 && *t < 3600.0)
        .ok_or_else(|| format!("{s:?} is not a number of seconds above 0 and below 3600"))
}
