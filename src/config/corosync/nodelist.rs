//! The `nodelist` section: each `node`'s id, name, votes and ring addresses.

use super::walk::{Entry, Key, Mapped, Unmapped};
use super::{Mapper, syntax::Section};
use crate::config::error::ConfigError;
use crate::config::model::*;
use Mapped::{Unknown, Used};

impl Mapper<'_> {
    pub(super) fn nodelist(&mut self, s: &Section) -> Result<(), ConfigError> {
        self.record_at("nodes", "nodelist", s.line);
        self.walk(s, "nodelist", Unmapped::NONE, |m, entry| {
            match entry {
                Entry::Section(node) if node.name == "node" => m.node(node)?,
                Entry::Key(key) if key.name() == "local_node_pos" => {
                    m.cfg.local_node_pos = Some(key.num()?);
                    m.record("local_node_pos", &key);
                }
                _ => return Ok(Unknown),
            }
            Ok(Used)
        })
    }

    fn node(&mut self, s: &Section) -> Result<(), ConfigError> {
        let i = self.cfg.nodes.len();
        let disp = format!("nodelist.node.{i}");
        let canon = format!("nodes.{i}");
        self.record_at(&canon, &disp, s.line);
        for l in 0..MAX_LINKS {
            self.cfg.source.set(
                format!("{canon}.addrs.{l}"),
                format!("{disp}.ring{l}_addr"),
                None,
            );
        }
        self.cfg
            .source
            .set(format!("{canon}.node_id"), format!("{disp}.nodeid"), None);
        let mut node = NodeEntry {
            node_id: 0,
            name: None,
            addrs: Vec::new(),
            quorum_votes: 1,
        };
        let mut have_id = false;
        self.walk(s, &disp, Unmapped::NONE, |m, entry| {
            let Entry::Key(key) = entry else {
                return Ok(Unknown);
            };
            let canonical = match key.name() {
                "nodeid" => {
                    node.node_id = key.num()?;
                    have_id = true;
                    format!("{canon}.node_id")
                }
                "name" => {
                    node.name = Some(key.string());
                    format!("{canon}.name")
                }
                "quorum_votes" => {
                    node.quorum_votes = key.num()?;
                    format!("{canon}.quorum_votes")
                }
                name => match ring_link(name) {
                    Some(link) => {
                        m.node_addr(&mut node, link, &key)?;
                        format!("{canon}.addrs.{link}")
                    }
                    None => return Ok(Unknown),
                },
            };
            m.record(&canonical, &key);
            Ok(Used)
        })?;
        if !have_id {
            node.node_id = self.derived_node_id(s, &disp, &node)?;
        }
        self.cfg.nodes.push(node);
        Ok(())
    }

    /// `ring<link>_addr`: the node's address on `link`, with the link's port unless
    /// the address names one.
    fn node_addr(
        &self,
        node: &mut NodeEntry,
        link: usize,
        key: &Key<'_>,
    ) -> Result<(), ConfigError> {
        if link >= MAX_LINKS {
            return Err(key.error(format!("link number {link} above 7")));
        }
        let addr =
            NodeAddr::parse(key.text(), self.link_port(link as u8)).map_err(|e| key.error(e))?;
        if node.addrs.len() <= link {
            node.addrs.resize(link + 1, None);
        }
        node.addrs[link] = Some(addr);
        Ok(())
    }

    /// The id of a node without `nodeid`: derived from an IPv4 ring0_addr as
    /// Corosync (udpu) does, with a warning; an error otherwise.
    fn derived_node_id(
        &mut self,
        s: &Section,
        disp: &str,
        node: &NodeEntry,
    ) -> Result<u32, ConfigError> {
        let key = format!("{disp}.nodeid");
        match node
            .addrs
            .first()
            .and_then(|a| a.as_ref())
            .and_then(NodeAddr::ip)
        {
            Some(std::net::IpAddr::V4(v4)) => {
                let id = u32::from(v4) & 0x7fff_ffff;
                self.warn(
                    s.line,
                    &key,
                    format!("no nodeid; derived {id} from ring0_addr as Corosync does"),
                );
                Ok(id)
            }
            _ => Err(self.err(
                s.line,
                &key,
                "node has no nodeid (required unless ring0_addr is an IPv4 address)",
            )),
        }
    }
}

/// The link of a `ring<N>_addr` key (one or two digits), `None` for other keys.
fn ring_link(name: &str) -> Option<usize> {
    let n = name.strip_prefix("ring")?.strip_suffix("_addr")?;
    match n.parse() {
        Ok(link) if n.len() <= 2 => Some(link),
        _ => None,
    }
}
