//! Evaluating a parsed expression over an element tree.

use std::collections::BTreeSet;

use super::parse::{CompareOp, Expr, Path, Step, StepKind, XPath, XPathError, parse};
use crate::xml::{Element, Node};

/// Where an element sits: the indices (among all children, comments
/// included) leading from the root to it; the root itself is `[]`. The
/// derived ordering of locations is document order.
pub type Location = Vec<usize>;

/// A node during evaluation: the document node (`None`) or an element.
type Ctx = Option<Location>;

/// Parses `expr` and returns the locations of the elements it selects in
/// `root`'s document, in document order.
pub fn select_elements(root: &Element, expr: &str) -> Result<Vec<Location>, XPathError> {
    Ok(select(root, &parse(expr)?))
}

/// The locations of the elements `xpath` selects in `root`'s document, in
/// document order and without duplicates. A relative path is evaluated
/// from the root element.
pub fn select(root: &Element, xpath: &XPath) -> Vec<Location> {
    let mut out = BTreeSet::new();
    for path in &xpath.paths {
        let start: Ctx = if path.absolute {
            None
        } else {
            Some(Vec::new())
        };
        for c in eval_path(root, path, &start).into_iter().flatten() {
            out.insert(c);
        }
    }
    out.into_iter().collect()
}

fn element_at<'a>(root: &'a Element, ctx: &Ctx) -> Option<&'a Element> {
    ctx.as_ref().and_then(|loc| root.descendant(loc))
}

/// Children of a node, in document order.
fn child_elements(root: &Element, ctx: &Ctx) -> Vec<Location> {
    match ctx {
        None => vec![Vec::new()],
        Some(loc) => match root.descendant(loc) {
            Some(e) => e
                .children()
                .iter()
                .enumerate()
                .filter(|(_, n)| matches!(n, Node::Element(_)))
                .map(|(i, _)| {
                    let mut l = loc.clone();
                    l.push(i);
                    l
                })
                .collect(),
            None => Vec::new(),
        },
    }
}

/// The node and all its descendant elements, in document order.
fn descendant_or_self(root: &Element, ctx: &Ctx, out: &mut Vec<Ctx>) {
    out.push(ctx.clone());
    for child in child_elements(root, ctx) {
        descendant_or_self(root, &Some(child), out);
    }
}

fn eval_path(root: &Element, path: &Path, start: &Ctx) -> BTreeSet<Ctx> {
    let mut current: BTreeSet<Ctx> = BTreeSet::from([start.clone()]);
    for step in &path.steps {
        let contexts: Vec<Ctx> = if step.descendant {
            // The union of every context's descendant-or-self set. Contexts
            // inside an earlier context's subtree add nothing, so only the
            // outermost ones are walked: each element is visited once.
            let mut all = Vec::new();
            let mut last_root: Option<&Ctx> = None;
            for ctx in &current {
                if last_root.is_some_and(|r| contains(r, ctx)) {
                    continue;
                }
                last_root = Some(ctx);
                descendant_or_self(root, ctx, &mut all);
            }
            all
        } else {
            current.iter().cloned().collect()
        };
        let mut next = BTreeSet::new();
        for c in &contexts {
            for hit in eval_step(root, step, c) {
                next.insert(hit);
            }
        }
        current = next;
    }
    current
}

/// Whether `inner` is `outer` or inside its subtree.
fn contains(outer: &Ctx, inner: &Ctx) -> bool {
    match (outer, inner) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => i.starts_with(o),
    }
}

fn eval_step(root: &Element, step: &Step, ctx: &Ctx) -> Vec<Ctx> {
    let candidates: Vec<Ctx> = match &step.kind {
        StepKind::SelfNode => vec![ctx.clone()],
        StepKind::Parent => match ctx {
            None => Vec::new(),
            Some(loc) if loc.is_empty() => vec![None],
            Some(loc) => vec![Some(loc[..loc.len() - 1].to_vec())],
        },
        StepKind::Any | StepKind::Name(_) => child_elements(root, ctx)
            .into_iter()
            .filter(|loc| match &step.kind {
                StepKind::Name(n) => root.descendant(loc).is_some_and(|e| e.name() == n),
                _ => true,
            })
            .map(Some)
            .collect(),
    };
    let mut nodes = candidates;
    for pred in &step.predicates {
        let size = nodes.len();
        nodes = nodes
            .into_iter()
            .enumerate()
            .filter(|(i, node)| {
                let cx = Context {
                    root,
                    node,
                    position: i + 1,
                    size,
                };
                match cx.eval(pred) {
                    Value::Number(n) => n == (i + 1) as f64,
                    v => v.truthy(),
                }
            })
            .map(|(_, n)| n)
            .collect();
    }
    nodes
}

/// A value during predicate evaluation.
#[derive(Debug, Clone)]
enum Value {
    /// A node-set, by the string values of its members.
    Set(Vec<String>),
    Str(String),
    Number(f64),
    Bool(bool),
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Set(s) => !s.is_empty(),
            Value::Str(s) => !s.is_empty(),
            Value::Number(n) => *n != 0.0 && !n.is_nan(),
            Value::Bool(b) => *b,
        }
    }

    fn string(&self) -> String {
        match self {
            Value::Set(s) => s.first().cloned().unwrap_or_default(),
            Value::Str(s) => s.clone(),
            Value::Number(n) => format_number(*n),
            Value::Bool(b) => b.to_string(),
        }
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn to_number(s: &str) -> f64 {
    s.trim().parse().unwrap_or(f64::NAN)
}

/// Compares two atomic values the XPath 1.0 way.
fn compare_atoms(a: &Value, op: CompareOp, b: &Value) -> bool {
    match op {
        CompareOp::Eq | CompareOp::Ne => {
            let eq = match (a, b) {
                (Value::Bool(_), _) | (_, Value::Bool(_)) => a.truthy() == b.truthy(),
                (Value::Number(_), _) | (_, Value::Number(_)) => {
                    num_of(a) == num_of(b) && !num_of(a).is_nan()
                }
                _ => a.string() == b.string(),
            };
            eq == (op == CompareOp::Eq)
        }
        _ => {
            let (x, y) = (num_of(a), num_of(b));
            match op {
                CompareOp::Lt => x < y,
                CompareOp::Le => x <= y,
                CompareOp::Gt => x > y,
                _ => x >= y,
            }
        }
    }
}

fn num_of(v: &Value) -> f64 {
    match v {
        Value::Number(n) => *n,
        Value::Bool(b) => f64::from(u8::from(*b)),
        other => to_number(&other.string()),
    }
}

fn compare(a: &Value, op: CompareOp, b: &Value) -> bool {
    match (a, b) {
        (Value::Set(xs), Value::Set(ys)) => xs.iter().any(|x| {
            ys.iter()
                .any(|y| compare_atoms(&Value::Str(x.clone()), op, &Value::Str(y.clone())))
        }),
        (Value::Set(xs), Value::Bool(_)) => compare_atoms(&Value::Bool(!xs.is_empty()), op, b),
        (Value::Bool(_), Value::Set(ys)) => compare_atoms(a, op, &Value::Bool(!ys.is_empty())),
        (Value::Set(xs), other) => xs
            .iter()
            .any(|x| compare_atoms(&Value::Str(x.clone()), op, other)),
        (other, Value::Set(ys)) => ys
            .iter()
            .any(|y| compare_atoms(other, op, &Value::Str(y.clone()))),
        _ => compare_atoms(a, op, b),
    }
}

struct Context<'a> {
    root: &'a Element,
    node: &'a Ctx,
    position: usize,
    size: usize,
}

impl Context<'_> {
    fn eval(&self, e: &Expr) -> Value {
        match e {
            Expr::Or(a, b) => Value::Bool(self.eval(a).truthy() || self.eval(b).truthy()),
            Expr::And(a, b) => Value::Bool(self.eval(a).truthy() && self.eval(b).truthy()),
            Expr::Not(a) => Value::Bool(!self.eval(a).truthy()),
            Expr::Compare(a, op, b) => Value::Bool(compare(&self.eval(a), *op, &self.eval(b))),
            Expr::Attr(name) => Value::Set(
                element_at(self.root, self.node)
                    .and_then(|el| el.attr(name))
                    .map(str::to_string)
                    .into_iter()
                    .collect(),
            ),
            Expr::Literal(s) => Value::Str(s.clone()),
            Expr::Number(n) => Value::Number(*n),
            Expr::Position => Value::Number(self.position as f64),
            Expr::Last => Value::Number(self.size as f64),
            Expr::Name => Value::Str(
                element_at(self.root, self.node)
                    .map(|el| el.name().to_string())
                    .unwrap_or_default(),
            ),
            Expr::Contains(a, b) => {
                Value::Bool(self.eval(a).string().contains(&self.eval(b).string()))
            }
            Expr::StartsWith(a, b) => {
                Value::Bool(self.eval(a).string().starts_with(&self.eval(b).string()))
            }
            Expr::Path(p) => {
                let start: Ctx = if p.absolute { None } else { self.node.clone() };
                // Elements carry no text in this model, so their string
                // value is empty.
                Value::Set(
                    eval_path(self.root, p, &start)
                        .into_iter()
                        .map(|_| String::new())
                        .collect(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse as parse_xml;

    fn ids(root: &Element, expr: &str) -> Vec<String> {
        select_elements(root, expr)
            .unwrap()
            .iter()
            .map(|l| {
                let e = root.descendant(l).unwrap();
                e.id().unwrap_or(e.name()).to_string()
            })
            .collect()
    }

    #[test]
    fn selects_in_document_order() {
        let doc = parse_xml(
            r#"<cib><configuration><resources>
                <primitive id="a"><meta_attributes id="a-m"><nvpair id="a1" name="x" value="1"/></meta_attributes></primitive>
                <!-- c -->
                <group id="g"><primitive id="b"/><primitive id="c"/></group>
                <primitive id="d"/>
            </resources></configuration><status/></cib>"#,
        )
        .unwrap();
        assert_eq!(ids(&doc, "/cib"), ["cib"]);
        assert_eq!(ids(&doc, "//primitive"), ["a", "b", "c", "d"]);
        assert_eq!(ids(&doc, "//primitive[1]"), ["a", "b"]);
        assert_eq!(ids(&doc, "//primitive[last()]"), ["c", "d"]);
        assert_eq!(ids(&doc, "/cib/configuration/resources/*"), ["a", "g", "d"]);
        assert_eq!(ids(&doc, "//primitive[@id='b' or @id='d']"), ["b", "d"]);
        assert_eq!(ids(&doc, "//primitive[@id='b']/.."), ["g"]);
        assert_eq!(
            ids(&doc, "//primitive[meta_attributes/nvpair[@name='x']]"),
            ["a"]
        );
        assert_eq!(ids(&doc, "//nvpair[@value=1]"), ["a1"]);
        assert_eq!(ids(&doc, "//nvpair[@value!='1']"), Vec::<String>::new());
        assert_eq!(ids(&doc, "//*[starts-with(@id,'a')]"), ["a", "a-m", "a1"]);
        assert_eq!(ids(&doc, "//group/primitive[position()>1]"), ["c"]);
        assert_eq!(ids(&doc, "//status | /cib"), ["cib", "status"]);
        assert_eq!(ids(&doc, "//nope"), Vec::<String>::new());
        assert_eq!(ids(&doc, "/resources"), Vec::<String>::new());
        assert_eq!(ids(&doc, "//primitive[not(@id='a')][2]"), ["c"]);
    }
}

#[cfg(test)]
mod scale_tests {
    use super::*;

    /// Nested descendant steps stay linear per step: a 20 000-element tree
    /// answers `//*//*//*` quickly (the naive walk is quadratic).
    #[test]
    fn nested_descendant_steps_visit_each_element_once_per_step() {
        let mut root = Element::new("cib");
        let mut level = Element::new("a");
        for i in 0..200 {
            let mut child = Element::new("b").with_attr("id", i.to_string());
            for j in 0..99 {
                child.push_child(Element::new("c").with_attr("id", format!("{i}-{j}")));
            }
            level.push_child(child);
        }
        root.push_child(level);
        let hits = select_elements(&root, "//*//*//*").unwrap();
        assert_eq!(hits.len(), 200 + 200 * 99, "every b and c");
        let hits = select_elements(&root, "//b[last()]//c[1]").unwrap();
        assert_eq!(hits.len(), 1);
    }
}
