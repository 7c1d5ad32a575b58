//! Agent metadata (`action=metadata`, §2.2 of the fencing reference) as typed values.

use crate::Action;
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde::{Deserialize, Serialize};

/// Largest metadata document read (the runner caps stdout at the same size).
pub const MAX_METADATA_BYTES: usize = 1024 * 1024;
/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 32;
/// Most parameters, actions, symlinks or select options kept per list.
pub const MAX_ITEMS: usize = 2000;

/// Metadata that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// Not well-formed XML.
    #[error("metadata XML: {0}")]
    Xml(String),
    /// The root element is not `resource-agent`.
    #[error("metadata root element is <{0}>, not <resource-agent>")]
    NotAnAgent(String),
    /// No root element at all.
    #[error("metadata is empty")]
    Empty,
    /// A required attribute is missing.
    #[error("<{element}> without {attribute}=")]
    MissingAttribute {
        /// The element.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
    },
    /// Larger, deeper or longer than the bounds above.
    #[error("metadata exceeds a bound: {0}")]
    TooLarge(&'static str),
}

/// What an agent says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMetadata {
    /// `resource-agent name=`.
    pub name: String,
    /// `resource-agent shortdesc=`.
    pub shortdesc: String,
    /// `<longdesc>` text.
    pub longdesc: String,
    /// `<vendor-url>` text.
    pub vendor_url: Option<String>,
    /// Other names of the same agent (`<symlink name= shortdesc=>`).
    pub symlinks: Vec<Symlink>,
    /// The parameters, in document order.
    pub parameters: Vec<Parameter>,
    /// The actions, in document order.
    pub actions: Vec<ActionSpec>,
}

/// Another name the agent is installed under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symlink {
    /// Its name.
    pub name: String,
    /// Its description.
    pub shortdesc: String,
}

/// One `<parameter>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    /// `name=`.
    pub name: String,
    /// `unique="1"`.
    pub unique: bool,
    /// `required="1"`.
    pub required: bool,
    /// `deprecated="1"`: an old name kept for compatibility.
    pub deprecated: bool,
    /// `obsoletes=`: the old name this parameter replaces.
    pub obsoletes: Option<String>,
    /// `<getopt mixed=>`: the command-line form.
    pub getopt: Option<String>,
    /// `<content>`.
    pub content: Content,
    /// `<shortdesc>` (English or unlabelled).
    pub shortdesc: String,
}

/// A parameter's `<content type= default=>` with its `<option value=>`s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// `type=`.
    pub kind: ContentType,
    /// `default=`.
    pub default: Option<String>,
    /// The allowed values of a `select`.
    pub options: Vec<String>,
}

/// A parameter's value type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentType {
    /// `boolean`.
    Boolean,
    /// `string` (also what a missing `type=` means).
    #[default]
    String,
    /// `second`: a duration in seconds.
    Second,
    /// `integer`.
    Integer,
    /// `select`: one of [`Content::options`].
    Select,
    /// Anything else, as written.
    Other(String),
}

/// One `<action>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionSpec {
    /// `name=` as written (may be an action we have no [`Action`] for, e.g.
    /// `manpage` or `diag`).
    pub name: String,
    /// `on_target="1"`: must run on the target itself (`on` of fence_scsi).
    pub on_target: bool,
    /// `automatic="1"`: the target must be unfenced before it runs resources.
    pub automatic: bool,
}

impl ActionSpec {
    /// The action, when it is one we know.
    pub fn action(&self) -> Option<Action> {
        self.name.parse().ok()
    }
}

impl AgentMetadata {
    /// Reads `action=metadata` output.
    pub fn parse(xml: &str) -> Result<AgentMetadata, MetadataError> {
        if xml.len() > MAX_METADATA_BYTES {
            return Err(MetadataError::TooLarge("document size"));
        }
        Parser::default().run(xml)
    }

    /// The parameter called `name`.
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }

    /// The host argument Pacemaker uses when `pcmk_host_argument` is unset: `port`
    /// if the agent has that parameter, else `plug`, else none (the rule of
    /// Pacemaker ≤ 3.0.0; 3.0.1 and later try `plug` first — agents that have
    /// both treat them as the same parameter).
    pub fn default_host_argument(&self) -> Option<&'static str> {
        if self.parameter("port").is_some() {
            Some("port")
        } else if self.parameter("plug").is_some() {
            Some("plug")
        } else {
            None
        }
    }

    /// The `<action>` for `action`.
    pub fn action(&self, action: Action) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.action() == Some(action))
    }

    /// Whether the agent lists `action`.
    pub fn supports(&self, action: Action) -> bool {
        self.action(action).is_some()
    }

    /// Whether targets must be unfenced (`on` is `automatic="1"`: fabric agents).
    pub fn requires_unfencing(&self) -> bool {
        self.action(Action::On).is_some_and(|a| a.automatic)
    }

    /// Whether `on` must run on the target itself.
    pub fn on_runs_on_target(&self) -> bool {
        self.action(Action::On).is_some_and(|a| a.on_target)
    }

    /// The facts the fencer core needs about this agent.
    pub fn capabilities(&self) -> crate::core::AgentCapabilities {
        crate::core::AgentCapabilities {
            list: self.supports(Action::List),
            status: self.supports(Action::Status),
            reboot: self.supports(Action::Reboot),
            on: self.supports(Action::On),
            on_automatic: self.requires_unfencing(),
            on_target: self.on_runs_on_target(),
            host_argument: self.default_host_argument().map(str::to_string),
        }
    }
}

/// Which element's text is being collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextSlot {
    Longdesc,
    VendorUrl,
    ParamShortdesc,
}

#[derive(Default)]
struct Parser {
    meta: AgentMetadata,
    stack: Vec<String>,
    param: Option<Parameter>,
    text: Option<(TextSlot, String)>,
    seen_root: bool,
}

fn flag(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

fn xml_err(e: impl std::fmt::Display) -> MetadataError {
    MetadataError::Xml(e.to_string())
}

/// The attributes of `e` as (name, unescaped value) pairs.
fn attrs(e: &BytesStart<'_>) -> Result<Vec<(String, String)>, MetadataError> {
    let mut out = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(xml_err)?;
        let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(xml_err)?
            .into_owned();
        out.push((key, value));
        if out.len() > 64 {
            return Err(MetadataError::TooLarge("attributes per element"));
        }
    }
    Ok(out)
}

fn get(attrs: &[(String, String)], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn push_bounded<T>(list: &mut Vec<T>, item: T, what: &'static str) -> Result<(), MetadataError> {
    if list.len() >= MAX_ITEMS {
        return Err(MetadataError::TooLarge(what));
    }
    list.push(item);
    Ok(())
}

impl Parser {
    fn run(mut self, xml: &str) -> Result<AgentMetadata, MetadataError> {
        let mut reader = Reader::from_str(xml);
        reader.config_mut().expand_empty_elements = true;
        reader.config_mut().check_end_names = true;
        loop {
            match reader.read_event().map_err(xml_err)? {
                Event::Start(e) => self.start(&e)?,
                Event::End(_) => self.end(),
                Event::Text(t) => self.text(&t.decode().map_err(xml_err)?),
                Event::CData(t) => self.text(&t.decode().map_err(xml_err)?),
                Event::GeneralRef(r) => {
                    let c = match r.resolve_char_ref().map_err(xml_err)? {
                        Some(c) => c,
                        None => match r.decode().map_err(xml_err)?.as_ref() {
                            "amp" => '&',
                            "lt" => '<',
                            "gt" => '>',
                            "quot" => '"',
                            "apos" => '\'',
                            other => {
                                return Err(MetadataError::Xml(format!(
                                    "unknown entity &{other};"
                                )));
                            }
                        },
                    };
                    self.text(c.encode_utf8(&mut [0; 4]));
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if !self.seen_root {
            return Err(MetadataError::Empty);
        }
        if let Some(open) = self.stack.last() {
            return Err(MetadataError::Xml(format!("document ends inside <{open}>")));
        }
        Ok(self.meta)
    }

    fn path_is(&self, path: &[&str]) -> bool {
        self.stack.len() == path.len() && self.stack.iter().zip(path).all(|(a, b)| a == b)
    }

    fn start(&mut self, e: &BytesStart<'_>) -> Result<(), MetadataError> {
        let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
        if self.stack.len() >= MAX_DEPTH {
            return Err(MetadataError::TooLarge("element depth"));
        }
        if !self.seen_root {
            if name != "resource-agent" {
                return Err(MetadataError::NotAnAgent(name));
            }
            self.seen_root = true;
        }
        self.stack.push(name);
        let a = attrs(e)?;
        const RA: &str = "resource-agent";
        if self.path_is(&[RA]) {
            self.meta.name = get(&a, "name").ok_or(MetadataError::MissingAttribute {
                element: "resource-agent",
                attribute: "name",
            })?;
            self.meta.shortdesc = get(&a, "shortdesc").unwrap_or_default();
        } else if self.path_is(&[RA, "symlink"]) {
            let name = get(&a, "name").ok_or(MetadataError::MissingAttribute {
                element: "symlink",
                attribute: "name",
            })?;
            let shortdesc = get(&a, "shortdesc").unwrap_or_default();
            push_bounded(
                &mut self.meta.symlinks,
                Symlink { name, shortdesc },
                "symlinks",
            )?;
        } else if self.path_is(&[RA, "longdesc"]) {
            self.text = Some((TextSlot::Longdesc, String::new()));
        } else if self.path_is(&[RA, "vendor-url"]) {
            self.text = Some((TextSlot::VendorUrl, String::new()));
        } else if self.path_is(&[RA, "parameters", "parameter"]) {
            let name = get(&a, "name").ok_or(MetadataError::MissingAttribute {
                element: "parameter",
                attribute: "name",
            })?;
            self.param = Some(Parameter {
                name,
                unique: get(&a, "unique").is_some_and(|v| flag(&v)),
                required: get(&a, "required").is_some_and(|v| flag(&v)),
                deprecated: get(&a, "deprecated").is_some_and(|v| flag(&v)),
                obsoletes: get(&a, "obsoletes").filter(|v| !v.is_empty()),
                getopt: None,
                content: Content::default(),
                shortdesc: String::new(),
            });
        } else if let Some(p) = self.param.as_mut() {
            if self.stack.len() == 4 && self.stack[3] == "getopt" {
                p.getopt = get(&a, "mixed");
            } else if self.stack.len() == 4 && self.stack[3] == "content" {
                p.content.kind = match get(&a, "type").as_deref() {
                    Some("boolean") => ContentType::Boolean,
                    Some("string") | None => ContentType::String,
                    Some("second") => ContentType::Second,
                    Some("integer") => ContentType::Integer,
                    Some("select") => ContentType::Select,
                    Some(other) => ContentType::Other(other.to_string()),
                };
                p.content.default = get(&a, "default");
            } else if self.stack.len() == 5
                && self.stack[3] == "content"
                && self.stack[4] == "option"
            {
                if let Some(v) = get(&a, "value") {
                    push_bounded(&mut p.content.options, v, "select options")?;
                }
            } else if self.stack.len() == 4 && self.stack[3] == "shortdesc" {
                // Keep the English (or unlabelled) description, the first one.
                let english = get(&a, "lang").is_none_or(|l| l.starts_with("en"));
                if english && p.shortdesc.is_empty() {
                    self.text = Some((TextSlot::ParamShortdesc, String::new()));
                }
            }
        } else if self.path_is(&[RA, "actions", "action"]) {
            let name = get(&a, "name").ok_or(MetadataError::MissingAttribute {
                element: "action",
                attribute: "name",
            })?;
            let spec = ActionSpec {
                name,
                on_target: get(&a, "on_target").is_some_and(|v| flag(&v)),
                automatic: get(&a, "automatic").is_some_and(|v| flag(&v)),
            };
            push_bounded(&mut self.meta.actions, spec, "actions")?;
        }
        Ok(())
    }

    fn text(&mut self, t: &str) {
        if let Some((_, buf)) = self.text.as_mut() {
            if buf.len() + t.len() <= MAX_METADATA_BYTES {
                buf.push_str(t);
            }
        }
    }

    fn end(&mut self) {
        let depth = self.stack.len();
        // A text slot belongs to the element that opened it: longdesc and
        // vendor-url sit at depth 2, a parameter's shortdesc at depth 4.
        let closes_text = match self.text {
            Some((TextSlot::Longdesc | TextSlot::VendorUrl, _)) => depth == 2,
            Some((TextSlot::ParamShortdesc, _)) => depth == 4,
            None => false,
        };
        if closes_text {
            if let Some((slot, text)) = self.text.take() {
                let text = text.trim().to_string();
                match slot {
                    TextSlot::Longdesc => self.meta.longdesc = text,
                    TextSlot::VendorUrl => self.meta.vendor_url = Some(text),
                    TextSlot::ParamShortdesc => {
                        if let Some(p) = self.param.as_mut() {
                            p.shortdesc = text;
                        }
                    }
                }
            }
        }
        if depth == 3 && self.stack[1] == "parameters" {
            if let Some(p) = self.param.take() {
                // Bound checked here too: a failure would surface on the next
                // parameter, so only keep the first MAX_ITEMS.
                if self.meta.parameters.len() < MAX_ITEMS {
                    self.meta.parameters.push(p);
                }
            }
        }
        self.stack.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0" ?>
<resource-agent name="fence_fabric" shortdesc="A fabric &amp; switch agent" >
<symlink name="fence_fabric2" shortdesc="Same"/>
<longdesc>Cuts a node off the &lt;fabric&gt;.</longdesc>
<vendor-url>http://example.com</vendor-url>
<parameters>
	<parameter name="port" unique="0" required="1" deprecated="1">
		<getopt mixed="-n, --plug=[id]" />
		<content type="string"  />
		<shortdesc lang="en">Port</shortdesc>
	</parameter>
	<parameter name="plug" unique="0" required="1" obsoletes="port">
		<getopt mixed="-n, --plug=[id]" />
		<content type="select" default="a">
			<option value="a" />
			<option value="b" />
		</content>
		<shortdesc lang="fr">Prise</shortdesc>
		<shortdesc lang="en">Plug</shortdesc>
	</parameter>
</parameters>
<actions>
	<action name="on" automatic="1" on_target="1"/>
	<action name="off" />
	<action name="manpage" />
</actions>
</resource-agent>
"#;

    #[test]
    fn sample_parses_into_typed_values() {
        let m = AgentMetadata::parse(SAMPLE).unwrap();
        assert_eq!(m.name, "fence_fabric");
        assert_eq!(m.shortdesc, "A fabric & switch agent");
        assert_eq!(m.longdesc, "Cuts a node off the <fabric>.");
        assert_eq!(m.vendor_url.as_deref(), Some("http://example.com"));
        assert_eq!(
            m.symlinks,
            [Symlink {
                name: "fence_fabric2".into(),
                shortdesc: "Same".into()
            }]
        );
        assert_eq!(m.parameters.len(), 2);
        let port = m.parameter("port").unwrap();
        assert!(port.deprecated && port.required && !port.unique);
        assert_eq!(port.shortdesc, "Port");
        let plug = m.parameter("plug").unwrap();
        assert_eq!(plug.obsoletes.as_deref(), Some("port"));
        assert_eq!(plug.content.kind, ContentType::Select);
        assert_eq!(plug.content.default.as_deref(), Some("a"));
        assert_eq!(plug.content.options, ["a", "b"]);
        assert_eq!(plug.shortdesc, "Plug");
        assert_eq!(plug.getopt.as_deref(), Some("-n, --plug=[id]"));
        assert_eq!(m.actions.len(), 3);
        assert!(m.requires_unfencing() && m.on_runs_on_target());
        assert!(m.supports(Action::Off) && !m.supports(Action::Reboot));
        assert_eq!(m.actions[2].action(), None);
        assert_eq!(m.default_host_argument(), Some("port"));
    }

    #[test]
    fn bad_documents_are_typed_errors() {
        assert_eq!(AgentMetadata::parse(""), Err(MetadataError::Empty));
        assert_eq!(
            AgentMetadata::parse("<resource-agents/>"),
            Err(MetadataError::NotAnAgent("resource-agents".into()))
        );
        assert!(matches!(
            AgentMetadata::parse("<resource-agent name='x'><a></b>"),
            Err(MetadataError::Xml(_))
        ));
        assert_eq!(
            AgentMetadata::parse("<resource-agent/>"),
            Err(MetadataError::MissingAttribute {
                element: "resource-agent",
                attribute: "name"
            })
        );
        let deep = format!("<resource-agent name='x'>{}", "<a>".repeat(100));
        assert_eq!(
            AgentMetadata::parse(&deep),
            Err(MetadataError::TooLarge("element depth"))
        );
    }

    #[test]
    fn truncated_input_is_an_error_never_a_panic() {
        let end_of_root = SAMPLE.rfind("</resource-agent>").unwrap();
        for end in 0..end_of_root {
            if SAMPLE.is_char_boundary(end) {
                assert!(
                    AgentMetadata::parse(&SAMPLE[..end]).is_err(),
                    "prefix of {end} bytes"
                );
            }
        }
    }
}
