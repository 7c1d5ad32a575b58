//! A small XPath 1.0 subset for addressing CIB elements.
//!
//! Pacemaker hands `cibadmin --xpath` expressions to libxml2. Clients in
//! practice use a narrow part of XPath, which this module implements over
//! [`Element`](crate::xml::Element) trees:
//!
//! * absolute paths (`/cib/configuration`), `//` anywhere (`//primitive`,
//!   `/cib//nvpair`), relative steps `.` and `..`;
//! * name tests and `*`;
//! * predicates: `[@a]`, `[@a='v']`, `[@a!='v']`, positions `[N]`,
//!   `[last()]`, `[position() < N]` (all comparisons), `and`, `or`,
//!   `not(...)`, parentheses, `contains(@a,'v')`, `starts-with(@a,'v')`,
//!   `name()='x'`, and relative child paths as existence tests
//!   (`[nvpair[@name='x']]`, `[meta_attributes/nvpair]`);
//! * unions of paths with `|`.
//!
//! Results are element locations (child-index paths from the root, see
//! [`Location`]) in document order without duplicates. No crate was used:
//! the XPath crates on crates.io bring their own DOM, and converting the CIB
//! to it and mapping results back costs more than this engine.

mod eval;
mod parse;

pub use eval::{Location, select, select_elements};
pub use parse::{Expr, Path, Step, StepKind, XPath, XPathError, parse};
