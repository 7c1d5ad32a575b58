//! Parsing the supported XPath subset into a small AST.

use thiserror::Error;

/// Longest expression accepted.
pub const MAX_EXPR_LEN: usize = 4096;
/// Deepest nesting of predicates and parentheses accepted.
pub const MAX_NESTING: usize = 32;

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XPathError {
    /// Something other than what the grammar allows at this byte.
    #[error("unexpected {found} at byte {position} of XPath")]
    Unexpected {
        /// What was found (a quoted snippet or "end of expression").
        found: String,
        /// Byte offset in the expression.
        position: usize,
    },
    /// A construct outside the supported subset.
    #[error("unsupported XPath construct: {0}")]
    Unsupported(String),
    /// The expression is too long or nested too deeply.
    #[error("XPath expression exceeds limits")]
    TooComplex,
}

/// A parsed expression: one or more absolute or relative paths (`a | b`).
#[derive(Debug, Clone, PartialEq)]
pub struct XPath {
    /// The alternatives of a union; one for a plain path.
    pub paths: Vec<Path>,
}

/// A location path.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// Starts at the document node (`/...`) rather than the context element.
    pub absolute: bool,
    /// The steps in order.
    pub steps: Vec<Step>,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Preceded by `//`: the step applies to every descendant-or-self of
    /// the context.
    pub descendant: bool,
    /// What the step selects.
    pub kind: StepKind,
    /// Predicates, applied in order.
    pub predicates: Vec<Expr>,
}

/// The node test of a step.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// Child elements with this name.
    Name(String),
    /// Any child element.
    Any,
    /// `.`: the context element itself.
    SelfNode,
    /// `..`: the parent element.
    Parent,
}

/// A predicate expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a or b`.
    Or(Box<Expr>, Box<Expr>),
    /// `a and b`.
    And(Box<Expr>, Box<Expr>),
    /// `not(a)`.
    Not(Box<Expr>),
    /// A comparison between two values.
    Compare(Box<Expr>, CompareOp, Box<Expr>),
    /// `@name`: the attribute's value, or nothing.
    Attr(String),
    /// A string literal.
    Literal(String),
    /// A number (a bare number in a predicate is a position test).
    Number(f64),
    /// `position()`.
    Position,
    /// `last()`.
    Last,
    /// `name()` / `local-name()`.
    Name,
    /// `contains(a, b)`.
    Contains(Box<Expr>, Box<Expr>),
    /// `starts-with(a, b)`.
    StartsWith(Box<Expr>, Box<Expr>),
    /// A relative path: true when it selects something.
    Path(Path),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Parses an expression of the supported subset.
pub fn parse(text: &str) -> Result<XPath, XPathError> {
    if text.len() > MAX_EXPR_LEN {
        return Err(XPathError::TooComplex);
    }
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
        depth: 0,
    };
    let mut paths = vec![p.path()?];
    p.skip_ws();
    while p.eat(b'|') {
        paths.push(p.path()?);
        p.skip_ws();
    }
    if p.pos != p.s.len() {
        return Err(p.unexpected());
    }
    Ok(XPath { paths })
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    depth: usize,
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_name_char(b: u8) -> bool {
    is_name_start(b) || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b':'
}

impl Parser<'_> {
    fn unexpected(&self) -> XPathError {
        let found = if self.pos >= self.s.len() {
            "end of expression".to_string()
        } else {
            let end = (self.pos + 10).min(self.s.len());
            let snippet = String::from_utf8_lossy(&self.s[self.pos..end]).into_owned();
            format!("{snippet:?}")
        };
        XPathError::Unexpected {
            found,
            position: self.pos,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_str(&mut self, s: &str) -> bool {
        self.skip_ws();
        if self.s[self.pos..].starts_with(s.as_bytes()) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), XPathError> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn enter(&mut self) -> Result<(), XPathError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            Err(XPathError::TooComplex)
        } else {
            Ok(())
        }
    }

    fn name(&mut self) -> Result<String, XPathError> {
        self.skip_ws();
        let start = self.pos;
        if !self.peek().is_some_and(is_name_start) {
            return Err(self.unexpected());
        }
        while self.peek().is_some_and(is_name_char) {
            self.pos += 1;
        }
        Ok(self.text[start..self.pos].to_string())
    }

    /// A location path, absolute or relative.
    fn path(&mut self) -> Result<Path, XPathError> {
        self.skip_ws();
        let mut steps = Vec::new();
        let absolute = self.peek() == Some(b'/');
        let mut descendant = false;
        if absolute {
            if self.eat_str("//") {
                descendant = true;
            } else {
                self.pos += 1;
                self.skip_ws();
                if self.pos == self.s.len() || self.peek() == Some(b'|') {
                    return Err(XPathError::Unsupported("the document node '/'".into()));
                }
            }
        }
        loop {
            steps.push(self.step(descendant)?);
            self.skip_ws();
            if self.s[self.pos..].starts_with(b"//") {
                self.pos += 2;
                descendant = true;
            } else if self.peek() == Some(b'/') {
                self.pos += 1;
                descendant = false;
            } else {
                break;
            }
        }
        Ok(Path { absolute, steps })
    }

    fn step(&mut self, descendant: bool) -> Result<Step, XPathError> {
        self.skip_ws();
        let kind = if self.eat_str("..") {
            StepKind::Parent
        } else if self.eat(b'.') {
            StepKind::SelfNode
        } else if self.eat(b'*') {
            StepKind::Any
        } else if self.peek() == Some(b'@') {
            return Err(XPathError::Unsupported(
                "selecting attribute nodes (use a predicate)".into(),
            ));
        } else {
            let name = self.name()?;
            if name.contains("::") || self.s[self.pos..].starts_with(b"::") {
                return Err(XPathError::Unsupported(format!("axis in '{name}'")));
            }
            if self.peek() == Some(b'(') {
                return Err(XPathError::Unsupported(format!("node test '{name}()'")));
            }
            StepKind::Name(name)
        };
        let mut predicates = Vec::new();
        while self.eat(b'[') {
            self.enter()?;
            predicates.push(self.or_expr()?);
            self.expect(b']')?;
            self.depth -= 1;
        }
        Ok(Step {
            descendant,
            kind,
            predicates,
        })
    }

    fn keyword(&mut self, word: &str) -> bool {
        self.skip_ws();
        let rest = &self.s[self.pos..];
        if rest.starts_with(word.as_bytes())
            && !rest.get(word.len()).copied().is_some_and(is_name_char)
        {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn or_expr(&mut self) -> Result<Expr, XPathError> {
        let mut left = self.and_expr()?;
        while self.keyword("or") {
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, XPathError> {
        let mut left = self.compare_expr()?;
        while self.keyword("and") {
            let right = self.compare_expr()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn compare_expr(&mut self) -> Result<Expr, XPathError> {
        let left = self.primary()?;
        self.skip_ws();
        let op = if self.eat_str("!=") {
            CompareOp::Ne
        } else if self.eat_str("<=") {
            CompareOp::Le
        } else if self.eat_str(">=") {
            CompareOp::Ge
        } else if self.eat(b'=') {
            CompareOp::Eq
        } else if self.eat(b'<') {
            CompareOp::Lt
        } else if self.eat(b'>') {
            CompareOp::Gt
        } else {
            return Ok(left);
        };
        let right = self.primary()?;
        Ok(Expr::Compare(Box::new(left), op, Box::new(right)))
    }

    fn args2(&mut self) -> Result<(Expr, Expr), XPathError> {
        self.expect(b'(')?;
        let a = self.or_expr()?;
        self.expect(b',')?;
        let b = self.or_expr()?;
        self.expect(b')')?;
        Ok((a, b))
    }

    fn primary(&mut self) -> Result<Expr, XPathError> {
        self.enter()?;
        let e = self.primary_inner();
        self.depth -= 1;
        e
    }

    fn primary_inner(&mut self) -> Result<Expr, XPathError> {
        self.skip_ws();
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                let e = self.or_expr()?;
                self.expect(b')')?;
                Ok(e)
            }
            Some(b'@') => {
                self.pos += 1;
                Ok(Expr::Attr(self.name()?))
            }
            Some(q @ (b'\'' | b'"')) => {
                self.pos += 1;
                let start = self.pos;
                while self.peek().is_some_and(|b| b != q) {
                    self.pos += 1;
                }
                if self.peek().is_none() {
                    return Err(self.unexpected());
                }
                let lit = self.text[start..self.pos].to_string();
                self.pos += 1;
                Ok(Expr::Literal(lit))
            }
            Some(b'0'..=b'9') => {
                let start = self.pos;
                while matches!(self.peek(), Some(b'0'..=b'9' | b'.')) {
                    self.pos += 1;
                }
                self.text[start..self.pos]
                    .parse()
                    .map(Expr::Number)
                    .map_err(|_| XPathError::Unexpected {
                        found: self.text[start..self.pos].to_string(),
                        position: start,
                    })
            }
            Some(b'.' | b'*' | b'/') => Ok(Expr::Path(self.path()?)),
            Some(b) if is_name_start(b) => {
                let save = self.pos;
                let name = self.name()?;
                self.skip_ws();
                if self.peek() != Some(b'(') {
                    self.pos = save;
                    return Ok(Expr::Path(self.path()?));
                }
                match name.as_str() {
                    "last" | "position" | "name" | "local-name" => {
                        self.expect(b'(')?;
                        self.expect(b')')?;
                        Ok(match name.as_str() {
                            "last" => Expr::Last,
                            "position" => Expr::Position,
                            _ => Expr::Name,
                        })
                    }
                    "not" => {
                        self.expect(b'(')?;
                        let e = self.or_expr()?;
                        self.expect(b')')?;
                        Ok(Expr::Not(Box::new(e)))
                    }
                    "contains" => {
                        let (a, b) = self.args2()?;
                        Ok(Expr::Contains(Box::new(a), Box::new(b)))
                    }
                    "starts-with" => {
                        let (a, b) = self.args2()?;
                        Ok(Expr::StartsWith(Box::new(a), Box::new(b)))
                    }
                    other => Err(XPathError::Unsupported(format!("function '{other}()'"))),
                }
            }
            _ => Err(self.unexpected()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        for ok in [
            "/cib",
            "//primitive[@id='d1']",
            "/cib/configuration//nvpair[@name=\"target-role\" and @value='Stopped']",
            "//resources/*[last()]",
            "//primitive[@id='a' or @id='b']/..",
            "//node_state[lrm/lrm_resources]",
            "//nvpair[not(@value)] | //op",
            "//op[position() <= 2]",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_and_unsupported() {
        for bad in [
            "",
            "/",
            "//",
            "///[",
            "//a[",
            "//a[@]",
            "//a]",
            "//a[@x='1]",
            "//@id",
            "//a[foo()]",
            "child::a",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let deep = format!("//a{}", "[b".repeat(100));
        assert_eq!(parse(&deep), Err(XPathError::TooComplex));
        assert_eq!(parse(&"a".repeat(5000)), Err(XPathError::TooComplex));
    }
}
