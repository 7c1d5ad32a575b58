//! Checks of one run, and the summary (Markdown table, SVG plots) of an output
//! directory. The table uses `summarize.sh`'s rules: per run the mean over nodes
//! (for `raw`, over the receivers: the rate that arrived), then the median over
//! repetitions; a cell is `ok` only if every run of it passed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Parses `key=value` fields of a `RESULT` (or `RTTQ`) line.
pub fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

/// Checks one run's lines: every node reported, equal `order_hash` and
/// `delivered`, `errors=0`, no membership change. `raw` runs only need every node
/// and no errors (UDP may drop). Appends the reasons for a failure to `why`.
pub fn check_run(lines: &[String], n: usize, raw: bool, why: &mut String) -> bool {
    let f: Vec<_> = lines.iter().map(|l| fields(l)).collect();
    let mut ok = true;
    if f.len() != n {
        let _ = write!(why, "results={}/{n} ", f.len());
        ok = false;
    }
    for r in &f {
        if r.get("errors") != Some(&"0") {
            let _ = write!(
                why,
                "node{}_errors={} ",
                r.get("node").unwrap_or(&"?"),
                r.get("errors").unwrap_or(&"?")
            );
            ok = false;
        }
        if !raw && r.get("member_changes") != Some(&"0") {
            let _ = write!(why, "node{}_member_changes ", r.get("node").unwrap_or(&"?"));
            ok = false;
        }
    }
    if !raw && !f.is_empty() {
        let h0 = f[0].get("order_hash");
        let d0 = f[0].get("delivered");
        if f.iter().any(|r| r.get("order_hash") != h0) {
            why.push_str("order_hash_differs ");
            ok = false;
        }
        if f.iter().any(|r| r.get("delivered") != d0) {
            why.push_str("delivered_differs ");
            ok = false;
        }
    }
    ok
}

/// The API behind an implementation field of a label: Phalanx's `--api cpg`
/// (`phalanx-cpg`, `phalanx-cpg-crypto`) or `--api totem` (`phalanx`,
/// `phalanx-crypto`, the labels from before the flag existed), Corosync's libcpg
/// (`knet`, `udpu` from cpgperf's `bench.sh`), none for raw UDP (`udp`); names
/// given with `--name` are recognised when they contain `cpg` or `totem`.
pub fn api_of(imp: &str) -> &'static str {
    // Loopback runs are labelled `<impl>-loopback`; the API is the same.
    let imp = imp.strip_suffix("-loopback").unwrap_or(imp);
    match imp {
        "phalanx" | "phalanx-crypto" => "totem",
        "knet" | "udpu" => "cpg",
        "udp" => "-",
        _ if imp.contains("cpg") => "cpg",
        _ if imp.contains("totem") => "totem",
        _ => "?",
    }
}

/// An implementation field for plot legends, with the API where the name alone
/// does not show it.
fn legend_name(imp: &str) -> String {
    match imp {
        "knet" | "udpu" => format!("corosync-{imp}"),
        _ if api_of(imp) == "totem" && !imp.contains("totem") => format!("{imp} (totem)"),
        _ => imp.to_string(),
    }
}

#[derive(Default, Clone)]
struct Run {
    nodes_seen: usize,
    msgs: Vec<f64>,
    mb: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    failed: bool,
    hash: Option<String>,
    delivered: Option<String>,
    lost: u64,
    delivered_sum: u64,
}

struct Cell {
    runs: Vec<Run>,
}

fn num(m: &BTreeMap<&str, &str>, k: &str) -> f64 {
    m.get(k).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median per-run values of one cell.
#[derive(Clone, Copy, Default)]
struct Med {
    runs: usize,
    bad: usize,
    msgs: f64,
    mb: f64,
    p50: f64,
    p99: f64,
    loss: f64,
}

fn cells(raw: &str) -> (Vec<String>, BTreeMap<String, Cell>) {
    let mut runs: BTreeMap<String, Run> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for line in raw.lines() {
        if let Some(rest) = line.strip_prefix("# FAILED ") {
            let label = rest.split_whitespace().next().unwrap_or("");
            runs.entry(label.to_string()).or_default().failed = true;
            continue;
        }
        if !line.starts_with("RESULT ") {
            continue;
        }
        let f = fields(line);
        let Some(label) = f.get("label") else {
            continue;
        };
        if !runs.contains_key(*label) {
            order.push(label.to_string());
        }
        let r = runs.entry(label.to_string()).or_default();
        r.nodes_seen += 1;
        let is_raw = label
            .split(':')
            .nth(2)
            .is_some_and(|s| s.starts_with("raw"));
        if !is_raw || f.get("mode") == Some(&"recv") {
            r.msgs.push(num(&f, "deliv_msgs_s"));
            r.mb.push(num(&f, "deliv_MB_s"));
        }
        if f.get("mode") == Some(&"lat") {
            r.p50.push(num(&f, "rtt_p50_us"));
            r.p99.push(num(&f, "rtt_p99_us"));
        }
        if is_raw && f.get("mode") == Some(&"recv") {
            r.lost += num(&f, "lost") as u64;
            r.delivered_sum += num(&f, "delivered") as u64;
        }
        let h = f.get("order_hash").map(|s| s.to_string());
        let d = f.get("delivered").map(|s| s.to_string());
        if r.hash.is_none() {
            r.hash = h.clone();
            r.delivered = d.clone();
        }
        if f.get("errors") != Some(&"0") || (!is_raw && (r.hash != h || r.delivered != d)) {
            r.failed = true;
        }
    }
    let mut cells: BTreeMap<String, Cell> = BTreeMap::new();
    let mut corder = Vec::new();
    for label in order {
        let parts: Vec<&str> = label.split(':').collect();
        if parts.len() < 5 {
            continue;
        }
        let cfg = parts[..4].join(":");
        let mut run = runs[&label].clone();
        if parts[1].parse::<usize>().ok() != Some(run.nodes_seen) {
            run.failed = true;
        }
        if !cells.contains_key(&cfg) {
            corder.push(cfg.clone());
        }
        cells
            .entry(cfg)
            .or_insert(Cell { runs: vec![] })
            .runs
            .push(run);
    }
    (corder, cells)
}

fn med(c: &Cell) -> Med {
    // Numbers come from passing runs only; failed runs are just counted.
    let good: Vec<&Run> = c.runs.iter().filter(|r| !r.failed).collect();
    Med {
        runs: c.runs.len(),
        bad: c.runs.iter().filter(|r| r.failed).count(),
        msgs: median(good.iter().map(|r| mean(&r.msgs)).collect()),
        mb: median(good.iter().map(|r| mean(&r.mb)).collect()),
        p50: median(good.iter().map(|r| mean(&r.p50)).collect()),
        p99: median(good.iter().map(|r| mean(&r.p99)).collect()),
        loss: median(
            good.iter()
                .map(|r| {
                    let tot = r.lost + r.delivered_sum;
                    if tot == 0 {
                        0.0
                    } else {
                        r.lost as f64 / tot as f64 * 100.0
                    }
                })
                .collect(),
        ),
    }
}

/// Rewrites `dir/summary.md`, `dir/throughput.svg` and `dir/latency-cdf-<size>.svg` from
/// `dir/raw.txt` (and `dir/rtt.txt`).
pub fn write(dir: &Path) -> std::io::Result<()> {
    let raw = std::fs::read_to_string(dir.join("raw.txt"))?;
    let (order, cells) = cells(&raw);
    let mut md = String::new();
    md.push_str("| impl | api | nodes | scenario | size B | runs | deliv msgs/s | deliv MB/s | RTT p50 us | RTT p99 us | raw UDP MB/s (same size, best of raw and rawgso) | % of raw | check |\n");
    md.push_str("|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|\n");
    for cfg in &order {
        let p: Vec<&str> = cfg.split(':').collect();
        let m = med(&cells[cfg]);
        let lat = p[2].starts_with("lat");
        // The ceiling is the better of plain and segmented raw UDP: the best the
        // kernel can do on this path.
        let ceiling = ["raw", "rawgso"]
            .iter()
            .filter_map(|sc| cells.get(&format!("udp:{}:{sc}:{}", p[1], p[3])))
            .map(med)
            .filter(|m| m.bad < m.runs)
            .max_by(|a, b| a.mb.total_cmp(&b.mb));
        let (rc, pct) = match (ceiling, p[2].starts_with("tput")) {
            (Some(c), true) if c.mb > 0.0 => (
                format!("{:.2}", c.mb),
                format!("{:.0}", m.mb / c.mb * 100.0),
            ),
            _ => ("-".into(), "-".into()),
        };
        let check = if m.bad > 0 {
            format!(
                "{} bad (figures from the {} passing runs)",
                m.bad,
                m.runs - m.bad
            )
        } else if p[2].starts_with("raw") {
            format!("ok (UDP loss {:.1}%)", m.loss)
        } else {
            "ok".into()
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {} | {} | {rc} | {pct} | {check} |",
            p[0],
            api_of(p[0]),
            p[1],
            p[2],
            p[3],
            m.runs,
            m.msgs,
            m.mb,
            if lat {
                format!("{:.0}", m.p50)
            } else {
                "-".into()
            },
            if lat {
                format!("{:.0}", m.p99)
            } else {
                "-".into()
            },
        );
    }
    md.push_str("\napi: `cpg` = one process-group member per process (Phalanx `--api cpg`; Corosync's cpgperf), `totem` = raw totem messages (Phalanx `--api totem`). Medians over repetitions of the per-run mean over nodes (raw: over receivers). `N bad`: N runs of the cell failed a check (missing node, differing order_hash or delivered, errors, membership change); the figures come from the passing runs only.\n");
    md.push_str(&comparison(&order, &cells));
    std::fs::write(dir.join("summary.md"), md)?;
    std::fs::write(dir.join("throughput.svg"), throughput_svg(&order, &cells))?;
    let rtt = std::fs::read_to_string(dir.join("rtt.txt")).unwrap_or_default();
    let mut sizes: Vec<u64> = order
        .iter()
        .filter(|c| c.split(':').nth(2).is_some_and(|s| s.starts_with("lat")))
        .filter_map(|c| c.split(':').nth(3)?.parse().ok())
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        std::fs::write(
            dir.join(format!("latency-cdf-{size}.svg")),
            latency_svg(&rtt, &raw, size),
        )?;
    }
    Ok(())
}

/// Phalanx against Corosync (labels `knet:` / `udpu:` from cpgperf's `bench.sh`)
/// and the raw UDP ceiling, per node count, scenario, size and Phalanx API (one
/// row per API measured: `phalanx-cpg*` and `phalanx*` labels).
fn comparison(order: &[String], cells: &BTreeMap<String, Cell>) -> String {
    let get = |imp: &str, n: &str, sc: &str, size: &str| -> Option<Med> {
        cells.get(&format!("{imp}:{n}:{sc}:{size}")).map(med)
    };
    let mut keys: Vec<(u32, String, u32)> = Vec::new();
    for cfg in order {
        let p: Vec<&str> = cfg.split(':').collect();
        if p[2].starts_with("raw") {
            continue;
        }
        let k = (
            p[1].parse().unwrap_or(0),
            p[2].to_string(),
            p[3].parse().unwrap_or(0),
        );
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.sort();
    let mut out = String::from(
        "\n### Phalanx vs Corosync\n\nThroughput: delivered msgs/s and MB/s per node (median). Latency: RTT p50 / p99 in µs (median). Ratio: Phalanx (crypto off) over the best Corosync transport measured (throughput: higher is better; latency: Corosync p50 over Phalanx p50, higher is better). api: the Phalanx API of the row (`cpg`: process-group members, like for like with Corosync's CPG; `totem`: raw totem messages). Raw: plain UDP from node 1 to the others, same processes and size.\n\n| nodes | scenario | size B | api | Phalanx | Phalanx + crypto | Corosync knet | Corosync udpu | ratio | raw UDP ceiling |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let apis = [
        ("cpg", "phalanx-cpg", "phalanx-cpg-crypto"),
        ("totem", "phalanx", "phalanx-crypto"),
    ];
    for (n, sc, size) in keys {
        let (n, size) = (n.to_string(), size.to_string());
        let mut rows: Vec<_> = apis
            .iter()
            .map(|(api, plain, crypto)| {
                (
                    *api,
                    get(plain, &n, &sc, &size),
                    get(crypto, &n, &sc, &size),
                )
            })
            .filter(|(_, ph, pc)| ph.is_some() || pc.is_some())
            .collect();
        if rows.is_empty() {
            // Only Corosync (or only other names) measured here.
            rows.push(("-", None, None));
        }
        for (api, ph, pc) in rows {
            comparison_row(&mut out, (&n, &sc, &size), api, ph, pc, &get);
        }
    }
    out
}

/// One row of [`comparison`].
fn comparison_row(
    out: &mut String,
    (n, sc, size): (&str, &str, &str),
    api: &str,
    ph: Option<Med>,
    pc: Option<Med>,
    get: &dyn Fn(&str, &str, &str, &str) -> Option<Med>,
) {
    let note = |m: &Med| {
        if m.bad > 0 {
            format!(" ({} of {} runs failed checks, excluded)", m.bad, m.runs)
        } else {
            String::new()
        }
    };
    let tput = |m: Option<Med>| match m {
        Some(m) if m.bad < m.runs => {
            format!("{:.0} msg/s, {:.1} MB/s{}", m.msgs, m.mb, note(&m))
        }
        Some(m) => format!("(all {} runs failed checks)", m.bad),
        None => "-".into(),
    };
    let lat = |m: Option<Med>| match m {
        Some(m) if m.bad < m.runs => format!("{:.0} / {:.0}{}", m.p50, m.p99, note(&m)),
        Some(m) => format!("(all {} runs failed checks)", m.bad),
        None => "-".into(),
    };
    let kn = get("knet", n, sc, size);
    let ud = get("udpu", n, sc, size);
    let raw = [get("udp", n, "raw", size), get("udp", n, "rawgso", size)]
        .into_iter()
        .flatten()
        .filter(|m| m.bad < m.runs)
        .max_by(|a, b| a.mb.total_cmp(&b.mb));
    let is_lat = sc.starts_with("lat");
    let good = |m: &Option<Med>| m.filter(|m| m.bad < m.runs);
    let ratio = if is_lat {
        let best = [good(&kn), good(&ud)]
            .into_iter()
            .flatten()
            .map(|m| m.p50)
            .fold(f64::MAX, f64::min);
        match good(&ph) {
            Some(p) if best < f64::MAX && p.p50 > 0.0 => format!("{:.1}x", best / p.p50),
            _ => "-".into(),
        }
    } else {
        let best = [good(&kn), good(&ud)]
            .into_iter()
            .flatten()
            .map(|m| m.msgs)
            .fold(0.0, f64::max);
        match good(&ph) {
            Some(p) if best > 0.0 => format!("{:.1}x", p.msgs / best),
            _ => "-".into(),
        }
    };
    let rawc = match raw {
        _ if is_lat => "-".into(),
        Some(r) if r.bad < r.runs => format!("{:.0} msg/s, {:.1} MB/s", r.msgs, r.mb),
        Some(r) => format!("(all {} runs failed)", r.bad),
        None => "-".into(),
    };
    let f = |m| if is_lat { lat(m) } else { tput(m) };
    let _ = writeln!(
        out,
        "| {n} | {sc} | {size} | {api} | {} | {} | {} | {} | {ratio} | {rawc} |",
        f(ph),
        f(pc),
        f(kn),
        f(ud)
    );
}

const COLORS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

struct Plot {
    svg: String,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

const W: f64 = 760.0;
const H: f64 = 460.0;
const L: f64 = 70.0;
const R: f64 = 250.0;
const T: f64 = 40.0;
const B: f64 = 50.0;

impl Plot {
    fn new(title: &str, xlabel: &str, ylabel: &str, x: (f64, f64), y: (f64, f64)) -> Plot {
        let mut svg = String::new();
        let _ = write!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n<line x1=\"{L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{}\" stroke=\"black\"/>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n<text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">{}</text>\n",
            (L + W - R) / 2.0,
            esc(title),
            H - B,
            W - R,
            H - B,
            H - B,
            (L + W - R) / 2.0,
            H - 12.0,
            esc(xlabel),
            (T + H - B) / 2.0,
            (T + H - B) / 2.0,
            esc(ylabel)
        );
        Plot {
            svg,
            x0: x.0,
            x1: x.1,
            y0: y.0,
            y1: y.1,
        }
    }
    fn px(&self, x: f64) -> f64 {
        L + (x - self.x0) / (self.x1 - self.x0).max(1e-9) * (W - R - L)
    }
    fn py(&self, y: f64) -> f64 {
        H - B - (y - self.y0) / (self.y1 - self.y0).max(1e-9) * (H - B - T)
    }
    fn xtick(&mut self, x: f64, label: &str) {
        let px = self.px(x);
        let _ = writeln!(
            self.svg,
            "<line x1=\"{px:.1}\" y1=\"{}\" x2=\"{px:.1}\" y2=\"{}\" stroke=\"#ddd\"/><text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            T,
            H - B,
            H - B + 16.0,
            esc(label)
        );
    }
    fn ytick(&mut self, y: f64, label: &str) {
        let py = self.py(y);
        let _ = writeln!(
            self.svg,
            "<line x1=\"{L}\" y1=\"{py:.1}\" x2=\"{}\" y2=\"{py:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - R,
            L - 4.0,
            py + 4.0,
            esc(label)
        );
    }
    fn series(&mut self, i: usize, name: &str, pts: &[(f64, f64)], dashed: bool) {
        let c = COLORS[i % COLORS.len()];
        let p: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", self.px(*x), self.py(*y)))
            .collect();
        let dash = if dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let _ = writeln!(
            self.svg,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
            p.join(" ")
        );
        for (x, y) in pts.iter().filter(|_| pts.len() < 12) {
            let _ = writeln!(
                self.svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{c}\"/>",
                self.px(*x),
                self.py(*y)
            );
        }
        let ly = T + 10.0 + i as f64 * 18.0;
        let _ = writeln!(
            self.svg,
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{c}\" stroke-width=\"2\"{dash}/><text x=\"{}\" y=\"{}\">{}</text>",
            W - R + 12.0,
            W - R + 36.0,
            W - R + 42.0,
            ly + 4.0,
            esc(name)
        );
    }
    fn finish(mut self) -> String {
        self.svg.push_str("</svg>\n");
        self.svg
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let e = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * e >= v {
            return m * e;
        }
    }
    10.0 * e
}

/// Delivered MB/s against message size (log2 axis), one line per implementation,
/// node count and throughput scenario; raw UDP dashed.
fn throughput_svg(order: &[String], cells: &BTreeMap<String, Cell>) -> String {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for cfg in order {
        let p: Vec<&str> = cfg.split(':').collect();
        if !(p[2].starts_with("tput") || p[2].starts_with("raw")) {
            continue;
        }
        let Ok(size) = p[3].parse::<f64>() else {
            continue;
        };
        let m = med(&cells[cfg]);
        if m.bad == m.runs {
            continue; // only passing runs are plotted
        }
        series
            .entry(format!("{} {}n {}", legend_name(p[0]), p[1], p[2]))
            .or_default()
            .push((size.log2(), m.mb));
    }
    let (mut xmin, mut xmax, mut ymax) = (f64::MAX, f64::MIN, 0.0f64);
    for pts in series.values_mut() {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (x, y) in pts.iter() {
            xmin = xmin.min(*x);
            xmax = xmax.max(*x);
            ymax = ymax.max(*y);
        }
    }
    if series.is_empty() {
        (xmin, xmax) = (5.0, 14.0);
    }
    if xmax <= xmin {
        xmax = xmin + 1.0;
    }
    let ymax = nice_max(ymax);
    let mut plot = Plot::new(
        "Delivered throughput vs message size",
        "message size (bytes, log scale)",
        "MB/s delivered per node",
        (xmin - 0.3, xmax + 0.3),
        (0.0, ymax),
    );
    let mut x = xmin.ceil();
    while x <= xmax {
        plot.xtick(x, &format!("{}", 2f64.powf(x) as u64));
        x += 1.0;
    }
    for i in 0..=5 {
        let y = ymax * i as f64 / 5.0;
        plot.ytick(y, &format!("{y:.0}"));
    }
    for (i, (name, pts)) in series.iter().enumerate() {
        plot.series(i, name, pts, name.starts_with("udp"));
    }
    plot.finish()
}

/// Round-trip latency CDF of every latency cell (node 1's quantiles, averaged
/// over repetitions), log x axis.
fn latency_svg(rtt: &str, raw: &str, size: u64) -> String {
    let mut acc: BTreeMap<String, (Vec<f64>, usize)> = BTreeMap::new();
    // Implementations without per-ping samples (cpgperf): a CDF through the five
    // percentiles of their RESULT lines (min, p50, p90, p99, max), linear between.
    let with_samples: std::collections::BTreeSet<String> = rtt
        .lines()
        .filter_map(|l| {
            fields(l)
                .get("label")
                .and_then(|x| x.split(':').next())
                .map(String::from)
        })
        .collect();
    let mut lines: Vec<String> = rtt.lines().map(String::from).collect();
    for line in raw.lines().filter(|l| l.starts_with("RESULT ")) {
        let f = fields(line);
        let Some(label) = f.get("label") else {
            continue;
        };
        if f.get("mode") != Some(&"lat")
            || f.get("node") != Some(&"1")
            || with_samples.contains(label.split(':').next().unwrap_or(""))
        {
            continue;
        }
        let anchors = [
            (0.0, num(&f, "rtt_min_us")),
            (50.0, num(&f, "rtt_p50_us")),
            (90.0, num(&f, "rtt_p90_us")),
            (99.0, num(&f, "rtt_p99_us")),
            (100.0, num(&f, "rtt_max_us")),
        ];
        let q: Vec<String> = (0..=200)
            .map(|j| {
                let p = j as f64 / 2.0;
                let k = anchors.iter().position(|a| a.0 >= p).unwrap_or(4).max(1);
                let (p0, v0) = anchors[k - 1];
                let (p1, v1) = anchors[k];
                let t = if p1 > p0 { (p - p0) / (p1 - p0) } else { 1.0 };
                format!("{:.1}", v0 + (v1 - v0) * t.clamp(0.0, 1.0))
            })
            .collect();
        lines.push(format!(
            "RTTQ label={label}(5-point) node=1 q={}",
            q.join(",")
        ));
    }
    for line in lines.iter().filter(|l| l.starts_with("RTTQ ")) {
        let f = fields(line);
        let (Some(label), Some(q)) = (f.get("label"), f.get("q")) else {
            continue;
        };
        if f.get("node") != Some(&"1") {
            continue;
        }
        let parts: Vec<&str> = label.split(':').collect();
        if parts.len() < 5 {
            continue;
        }
        if !parts[2].starts_with("lat") || parts[3].parse::<u64>().ok() != Some(size) {
            continue;
        }
        let cfg = [legend_name(parts[0]).as_str(), parts[1], parts[2], parts[3]].join(":")
            + if parts[4].contains("(5-point)") {
                " (5-point)"
            } else {
                ""
            };
        let q: Vec<f64> = q.split(',').filter_map(|v| v.parse().ok()).collect();
        let e = acc.entry(cfg).or_insert((vec![0.0; q.len()], 0));
        if e.0.len() == q.len() {
            for (a, b) in e.0.iter_mut().zip(&q) {
                *a += b;
            }
            e.1 += 1;
        }
    }
    let (mut lo, mut hi) = (f64::MAX, 1.0f64);
    let series: Vec<(String, Vec<f64>)> = acc
        .into_iter()
        .filter(|(_, (_, n))| *n > 0)
        .map(|(k, (q, n))| (k, q.iter().map(|v| (v / n as f64).max(1.0)).collect()))
        .collect();
    for (_, q) in &series {
        lo = lo.min(q.first().copied().unwrap_or(1.0));
        // Up to p99.5: the single maximum would squash the plot.
        hi = hi.max(q.get(q.len().saturating_sub(2)).copied().unwrap_or(1.0));
    }
    if series.is_empty() {
        lo = 1.0;
        hi = 1000.0;
    }
    let (x0, x1) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let mut plot = Plot::new(
        &format!("Round-trip latency CDF, {size} B (send to own delivery, node 1)"),
        "RTT (µs, log scale)",
        "fraction of pings",
        (x0, x1),
        (0.0, 1.0),
    );
    let mut d = x0;
    while d <= x1 {
        plot.xtick(d, &format!("{}", 10f64.powf(d) as u64));
        d += 1.0;
    }
    for i in 0..=4 {
        let y = i as f64 / 4.0;
        plot.ytick(y, &format!("{y:.2}"));
    }
    for (i, (name, q)) in series.iter().enumerate() {
        let n = q.len().saturating_sub(1).max(1);
        let pts: Vec<(f64, f64)> = q
            .iter()
            .enumerate()
            .map(|(j, v)| (v.log10().clamp(x0, x1), j as f64 / n as f64))
            .collect();
        plot.series(i, name, &pts, false);
    }
    plot.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(label: &str, node: u32, mode: &str, msgs: f64, mb: f64) -> String {
        format!(
            "RESULT label={label} node={node} mode={mode} deliv_msgs_s={msgs} deliv_MB_s={mb} \
             delivered=100 errors=0 member_changes=0 order_hash=1 lost=0\n"
        )
    }

    /// "% of raw" is measured against the better of plain and segmented raw UDP,
    /// whichever it is, and a failed ceiling run is not a ceiling.
    #[test]
    fn the_ceiling_is_the_best_passing_raw_variant() {
        let dir = std::env::temp_dir().join(format!("phx-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut raw = String::new();
        for n in 1..=3 {
            raw += &line("phalanx-cpg:3:tput1:1024:r0", n, "tput", 100_000.0, 100.0);
        }
        raw += &line("udp:3:raw:1024:r0", 1, "tput", 0.0, 0.0);
        raw += &line("udp:3:rawgso:1024:r0", 1, "tput", 0.0, 0.0);
        for n in 2..=3 {
            raw += &line("udp:3:raw:1024:r0", n, "recv", 150_000.0, 150.0);
            raw += &line("udp:3:rawgso:1024:r0", n, "recv", 400_000.0, 400.0);
        }
        std::fs::write(dir.join("raw.txt"), &raw).unwrap();
        write(&dir).unwrap();
        let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
        let row = md
            .lines()
            .find(|l| l.starts_with("| phalanx-cpg |"))
            .expect("the CPG row");
        assert!(row.contains("| 400.00 | 25 |"), "{row}");

        // The segmented run failed (a node missing): the plain ceiling is used.
        let without_gso: String = raw
            .lines()
            .filter(|l| !(l.contains("rawgso") && l.contains("node=3")))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(dir.join("raw.txt"), without_gso).unwrap();
        write(&dir).unwrap();
        let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
        let row = md
            .lines()
            .find(|l| l.starts_with("| phalanx-cpg |"))
            .expect("the CPG row");
        assert!(row.contains("| 150.00 | 67 |"), "{row}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
