//! The report as text (`report.txt`) and as one self-contained HTML page
//! (`report.html`: no external files, the timeline as a table with a column per
//! node).

use crate::collect::Collected;
use crate::state;
use crate::timeline::Entry;
use phalanx::logsys::format_wall;
use std::fmt::Write as _;

/// What the report is about, besides the nodes and the timeline.
pub struct Header {
    /// When the report was made, ns since the Unix epoch.
    pub generated_ns: u64,
    /// The host it was made on.
    pub host: String,
    /// The window, as the operator gave it.
    pub window: String,
    /// Where external events came from, if anywhere.
    pub events_from: Option<String>,
}

fn node_summary(c: &Collected) -> String {
    let rec = match &c.recorder {
        Ok(s) => format!(
            "{} records{}",
            s.records.len(),
            if s.damaged > 0 {
                format!(", {} damaged regions", s.damaged)
            } else {
                String::new()
            }
        ),
        Err(e) => format!("no recorder: {e}"),
    };
    let live = match (&c.live, &c.unreachable) {
        (Some(_), _) => "answering".to_string(),
        (None, Some(why)) => format!("not answering ({why})"),
        (None, None) => "not asked".to_string(),
    };
    format!(
        "node {}: {}, {rec}, admin socket {live}",
        c.source.id,
        c.source.state_dir.display()
    )
}

fn entry_where(e: &Entry) -> String {
    let node = e.node.map_or("-".to_string(), |n| format!("n{n}"));
    let boot = if e.boot > 0 {
        format!("#{}", e.boot)
    } else {
        String::new()
    };
    let ring = e.ring.map_or("-".to_string(), |(r, s)| format!("{r}.{s}"));
    format!("{node:<5}{boot:<3} ring {ring:<8}")
}

fn level_name(e: &Entry) -> &'static str {
    e.level.map_or("event", |l| l.as_str())
}

/// The text report.
pub fn text(h: &Header, nodes: &[Collected], timeline: &[Entry]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Phalanx cluster report");
    let _ = writeln!(
        s,
        "generated {} on {} by phalanx-report {}",
        format_wall(h.generated_ns),
        h.host,
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(s, "window: {}", h.window);
    for c in nodes {
        let _ = writeln!(s, "{}", node_summary(c));
    }
    if let Some(f) = &h.events_from {
        let _ = writeln!(s, "external events from {f}");
    }
    let _ = writeln!(
        s,
        "times are wall clock (UTC) of each writer; #N is the process's boot in its recorder"
    );

    let _ = writeln!(s, "\n== Key events ==");
    for e in timeline.iter().filter(|e| e.key.is_some()) {
        let _ = writeln!(
            s,
            "{} {} {:<10} {}: {}",
            format_wall(e.at_ns),
            entry_where(e),
            e.key.map_or("", |k| k.tag()),
            e.subsystem,
            e.message
        );
    }

    for c in nodes {
        let _ = writeln!(s, "\n== Node {} ==", c.source.id);
        match &c.live {
            Some(answers) => {
                for (title, a) in answers {
                    let _ = writeln!(s, "-- {title} --");
                    for l in state::lines(a) {
                        let _ = writeln!(s, "{l}");
                    }
                }
            }
            None => {
                let _ = writeln!(
                    s,
                    "not answering: {}",
                    c.unreachable.as_deref().unwrap_or("not asked")
                );
            }
        }
    }

    let _ = writeln!(s, "\n== Timeline ({} entries) ==", timeline.len());
    for e in timeline {
        let _ = writeln!(
            s,
            "{} {} {:<6} {:<8} {}{}",
            format_wall(e.at_ns),
            entry_where(e),
            level_name(e),
            e.subsystem,
            e.key.map_or(String::new(), |k| format!("[{}] ", k.tag())),
            e.message
        );
    }
    s
}

/// `s` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em}\
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 4px;\
vertical-align:top}th{background:#eee;position:sticky;top:0}pre{background:#f6f6f6;\
padding:4px;font-size:12px}.key td{font-weight:bold}.EXTERNAL{background:#fdd}\
.TOKEN-LOSS{background:#fec}.RING{background:#dfd}.QUORUM{background:#def}\
.START,.STOP{background:#eef}.FENCE{background:#fcf}.PROBLEM{background:#ffd}\
.LINK{background:#eff}td.t{white-space:nowrap;font-family:monospace}";

const SCRIPT: &str = "function onlyKey(on){for(const r of document.querySelectorAll\
('#timeline tr.rec')){r.style.display=(on&&!r.classList.contains('key'))?'none':''}}";

/// The HTML page.
pub fn html(h: &Header, nodes: &[Collected], timeline: &[Entry]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Phalanx cluster report \
         {}</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body>",
        escape(&format_wall(h.generated_ns))
    );
    let _ = write!(
        s,
        "<h1>Phalanx cluster report</h1><p>generated {} on {} by phalanx-report {}<br>\
         window: {}</p><ul>",
        escape(&format_wall(h.generated_ns)),
        escape(&h.host),
        env!("CARGO_PKG_VERSION"),
        escape(&h.window)
    );
    for c in nodes {
        let _ = write!(s, "<li>{}</li>", escape(&node_summary(c)));
    }
    if let Some(f) = &h.events_from {
        let _ = write!(s, "<li>external events from {}</li>", escape(f));
    }
    s.push_str("</ul>");

    // Timeline: one column per node (and one for events naming no node).
    let mut columns: Vec<Option<u32>> = nodes.iter().map(|c| Some(c.source.id)).collect();
    for e in timeline {
        if !columns.contains(&e.node) {
            columns.push(e.node);
        }
    }
    let _ = write!(
        s,
        "<h2>Timeline</h2><p>{} entries, wall clock UTC; <label><input type=\"checkbox\" \
         onchange=\"onlyKey(this.checked)\"> key events only</label></p>\
         <table id=\"timeline\"><tr><th>time</th>",
        timeline.len()
    );
    for col in &columns {
        let _ = write!(
            s,
            "<th>{}</th>",
            col.map_or("external".to_string(), |n| format!("node {n}"))
        );
    }
    s.push_str("</tr>");
    for e in timeline {
        let class = match e.key {
            Some(k) => format!("rec key {}", k.tag()),
            None => "rec".to_string(),
        };
        let _ = write!(
            s,
            "<tr class=\"{class}\"><td class=\"t\">{}</td>",
            escape(&format_wall(e.at_ns))
        );
        for col in &columns {
            if *col == e.node {
                let ring = e
                    .ring
                    .map_or(String::new(), |(r, q)| format!(" ring {r}.{q}"));
                let boot = if e.boot > 0 {
                    format!(" #{}", e.boot)
                } else {
                    String::new()
                };
                let _ = write!(
                    s,
                    "<td title=\"{}{}{}\">{}: {}</td>",
                    escape(level_name(e)),
                    escape(&boot),
                    escape(&ring),
                    escape(&e.subsystem),
                    escape(&e.message)
                );
            } else {
                s.push_str("<td></td>");
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");

    for c in nodes {
        let _ = write!(s, "<h2>Node {}</h2>", c.source.id);
        match &c.live {
            Some(answers) => {
                for (title, a) in answers {
                    let _ = write!(
                        s,
                        "<h3>{}</h3><pre>{}</pre>",
                        escape(title),
                        escape(&state::lines(a).join("\n"))
                    );
                }
            }
            None => {
                let _ = write!(
                    s,
                    "<p>not answering: {}</p>",
                    escape(c.unreachable.as_deref().unwrap_or("not asked"))
                );
            }
        }
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_messages_is_escaped() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
