//! The condition grammar of Sigma rules: `and`, `or`, `not`, parentheses,
//! `1 of pattern`, `all of pattern`, `1 of them`, `all of them`.
//!
//! Precedence, least binding first: `or`, `and`, `not`, `x of`, parentheses.
//! Identifiers are resolved to selection indices when the rule is compiled, so a
//! condition never looks a name up while matching.

use std::fmt;

/// A parsed condition over selection names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    Ident(String),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    /// `1 of pattern` / `any of pattern` (`them` is the pattern `*`).
    OneOf(String),
    /// `all of pattern`.
    AllOf(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionError {
    pub condition: String,
    pub at: usize,
    pub reason: String,
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "condition {:?}: {} (at character {})",
            self.condition,
            self.reason,
            self.at + 1
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    LParen,
    RParen,
    /// `|` pipes (aggregations of Sigma 1.0): no longer part of the standard.
    Pipe,
}

fn tokenize(s: &str) -> Result<Vec<(usize, Tok)>, ConditionError> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((i, Tok::LParen));
                i += 1;
            }
            b')' => {
                out.push((i, Tok::RParen));
                i += 1;
            }
            b'|' => {
                out.push((i, Tok::Pipe));
                i += 1;
            }
            _ => {
                let start = i;
                while i < b.len()
                    && !matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b'(' | b')' | b'|')
                {
                    i += 1;
                }
                out.push((start, Tok::Word(s[start..i].to_owned())));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(usize, Tok)>,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, reason: impl Into<String>) -> ConditionError {
        let at = self.toks.get(self.pos).map_or(self.src.len(), |t| t.0);
        ConditionError {
            condition: self.src.to_owned(),
            at,
            reason: reason.into(),
        }
    }

    fn peek_word(&self) -> Option<&str> {
        match self.toks.get(self.pos) {
            Some((_, Tok::Word(w))) => Some(w),
            _ => None,
        }
    }

    fn keyword(&self, kw: &str) -> bool {
        self.peek_word().is_some_and(|w| w.eq_ignore_ascii_case(kw))
    }

    fn or(&mut self) -> Result<Cond, ConditionError> {
        let mut items = vec![self.and()?];
        while self.keyword("or") {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Cond::Or(vec![]))
        } else {
            Cond::Or(items)
        })
    }

    fn and(&mut self) -> Result<Cond, ConditionError> {
        let mut items = vec![self.not()?];
        while self.keyword("and") {
            self.pos += 1;
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Cond::And(vec![]))
        } else {
            Cond::And(items)
        })
    }

    fn not(&mut self) -> Result<Cond, ConditionError> {
        if self.keyword("not") {
            self.pos += 1;
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Cond, ConditionError> {
        match self.toks.get(self.pos).cloned() {
            None => Err(self.err("expected a selection name, `not`, `(` or `x of`, found the end")),
            Some((_, Tok::LParen)) => {
                self.pos += 1;
                let inner = self.or()?;
                match self.toks.get(self.pos) {
                    Some((_, Tok::RParen)) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err(self.err("expected `)`")),
                }
            }
            Some((_, Tok::RParen)) => Err(self.err("unexpected `)`")),
            Some((_, Tok::Pipe)) => {
                Err(self
                    .err("`|` aggregations are Sigma 1.0 syntax; write them as a correlation rule"))
            }
            Some((_, Tok::Word(w))) => {
                let lower = w.to_ascii_lowercase();
                if matches!(lower.as_str(), "and" | "or") {
                    return Err(self.err(format!("`{w}` needs something before it")));
                }
                let quantifier = match lower.as_str() {
                    "1" | "any" => Some(true),
                    "all" => Some(false),
                    _ => None,
                };
                let next_is_of = matches!(self.toks.get(self.pos + 1), Some((_, Tok::Word(o))) if o.eq_ignore_ascii_case("of"));
                if let (Some(one), true) = (quantifier, next_is_of) {
                    self.pos += 2;
                    let target = match self.toks.get(self.pos) {
                        Some((_, Tok::Word(t))) => t.clone(),
                        _ => return Err(self.err("expected a pattern or `them` after `of`")),
                    };
                    self.pos += 1;
                    let pattern = if target.eq_ignore_ascii_case("them") {
                        "*".to_owned()
                    } else {
                        target
                    };
                    return Ok(if one {
                        Cond::OneOf(pattern)
                    } else {
                        Cond::AllOf(pattern)
                    });
                }
                if next_is_of {
                    return Err(self.err(format!(
                        "`{w} of` is not supported: only `1 of` and `all of` are in the standard"
                    )));
                }
                self.pos += 1;
                Ok(Cond::Ident(w))
            }
        }
    }
}

pub fn parse(condition: &str) -> Result<Cond, ConditionError> {
    let toks = tokenize(condition)?;
    let mut p = Parser {
        src: condition,
        toks,
        pos: 0,
    };
    let c = p.or()?;
    match p.toks.get(p.pos) {
        None => {}
        Some((_, Tok::Pipe)) => {
            return Err(
                p.err("`|` aggregations are Sigma 1.0 syntax; write them as a correlation rule")
            )
        }
        Some(_) => return Err(p.err("unexpected text after the condition")),
    }
    Ok(c)
}

/// Does `name` match a `1 of`/`all of` pattern (`*` any run of characters)?
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    fn rec(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| rec(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && rec(rest, &n[1..]),
        }
    }
    rec(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Cond {
        Cond::Ident(s.into())
    }

    #[test]
    fn precedence() {
        assert_eq!(
            parse("a or b and not c").unwrap(),
            Cond::Or(vec![
                id("a"),
                Cond::And(vec![id("b"), Cond::Not(Box::new(id("c")))])
            ])
        );
        assert_eq!(
            parse("(a or b) and c").unwrap(),
            Cond::And(vec![Cond::Or(vec![id("a"), id("b")]), id("c")])
        );
        assert_eq!(
            parse("selection and not 1 of filter_main_*").unwrap(),
            Cond::And(vec![
                id("selection"),
                Cond::Not(Box::new(Cond::OneOf("filter_main_*".into())))
            ])
        );
        assert_eq!(parse("all of them").unwrap(), Cond::AllOf("*".into()));
        assert_eq!(
            parse("not not a").unwrap(),
            Cond::Not(Box::new(Cond::Not(Box::new(id("a")))))
        );
    }

    #[test]
    fn errors_say_where() {
        let e = parse("a and (b or c").unwrap_err();
        assert!(e.reason.contains("expected `)`"), "{e}");
        assert!(parse("a and").is_err());
        assert!(parse("or a").is_err());
        assert!(parse("a b").unwrap_err().reason.contains("unexpected text"));
        assert!(parse("selection | count() > 5")
            .unwrap_err()
            .reason
            .contains("correlation rule"));
        assert!(parse("2 of sel*")
            .unwrap_err()
            .reason
            .contains("only `1 of` and `all of`"));
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("filter_*", "filter_main_generic"));
        assert!(pattern_matches("*", "anything"));
        assert!(!pattern_matches("sel*", "filter"));
        assert!(pattern_matches("a*b*c", "axxbyyc"));
    }
}
