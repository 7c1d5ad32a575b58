//! CIB section names (`cibadmin -o`) and where they live.

use crate::xml::Element;
use crate::xpath::Location;

/// A section name, its parent's element names from the root and its own.
struct Section {
    name: &'static str,
    /// Element names from `<cib>` (exclusive) to the section (inclusive);
    /// empty for the root itself.
    path: &'static [&'static str],
}

const SECTIONS: &[Section] = &[
    Section {
        name: "cib",
        path: &[],
    },
    Section {
        name: "all",
        path: &[],
    },
    Section {
        name: "status",
        path: &["status"],
    },
    Section {
        name: "configuration",
        path: &["configuration"],
    },
    Section {
        name: "crm_config",
        path: &["configuration", "crm_config"],
    },
    Section {
        name: "nodes",
        path: &["configuration", "nodes"],
    },
    Section {
        name: "resources",
        path: &["configuration", "resources"],
    },
    Section {
        name: "constraints",
        path: &["configuration", "constraints"],
    },
    Section {
        name: "op_defaults",
        path: &["configuration", "op_defaults"],
    },
    Section {
        name: "rsc_defaults",
        path: &["configuration", "rsc_defaults"],
    },
    Section {
        name: "acls",
        path: &["configuration", "acls"],
    },
    Section {
        name: "fencing-topology",
        path: &["configuration", "fencing-topology"],
    },
    Section {
        name: "tags",
        path: &["configuration", "tags"],
    },
    Section {
        name: "alerts",
        path: &["configuration", "alerts"],
    },
];

fn lookup(name: &str) -> Option<&'static Section> {
    SECTIONS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// Whether `name` is a known section name (case-insensitive).
pub fn is_section(name: &str) -> bool {
    lookup(name).is_some()
}

/// Whether `name` designates the whole CIB (`cib` or `all`).
pub fn is_whole(name: &str) -> bool {
    name.eq_ignore_ascii_case("cib") || name.eq_ignore_ascii_case("all")
}

/// Element names leading to the section from the root, if it is known.
pub fn section_path(name: &str) -> Option<&'static [&'static str]> {
    lookup(name).map(|s| s.path)
}

/// Where the section is in `cib`, if it exists. `None` as name means the
/// whole CIB, and so does a name that is not a section (Pacemaker 2.1.5
/// resolves unknown names to `/cib`). The root must be named `cib`.
pub fn find_section(cib: &Element, name: Option<&str>) -> Option<Location> {
    if cib.name() != "cib" {
        return None;
    }
    let path = name.and_then(section_path).unwrap_or(&[]);
    let mut loc = Vec::new();
    let mut cur = cib;
    for step in path {
        let i = cur.child_index(step, None)?;
        loc.push(i);
        cur = cur.descendant(&[i])?;
    }
    Some(loc)
}
