//! Rules that read nothing but typed fields, compiled together into one flat
//! program. Every distinct field test is numbered once across all the rules, a
//! rule's condition is a chain of steps that each ask one test and go on to another
//! step or to the verdict, and an event's answers are remembered while it is being
//! matched: the private-address test two flow rules share runs once per flow. A
//! field with a handful of possible values (a flow's action or log status) has its
//! answer for each of them worked out when the program is built, so testing it is
//! one table read; plain small numbers are a bit set, address ranges masks.
//!
//! The answers are those of the rule's own matchers on the same typed values: a
//! program gives exactly what [`CompiledRule::matches_hybrid`] gives.

use std::collections::HashMap;
use std::net::IpAddr;

use super::rule::{CompiledRule, Node, Selection};
use super::value::{Cidr, FieldMatcher, Pattern, StrMatch, Typed};

/// An event as a program reads it.
pub trait Row {
    /// The value of typed field `id`, `None` when the event has none.
    fn value(&self, id: u8) -> Option<Typed<'_>>;
    /// For a field with few values (see [`Program::add`]): 0 when the event has
    /// none, else one more than the value's place in that field's list.
    fn code(&self, id: u8) -> usize;
}

enum Test {
    /// The answer for each code of a field with few values.
    Few {
        id: u8,
        answers: Box<[bool]>,
    },
    /// Any of a few small numbers (`network.dst_port: [22, 3389]`): bit `n` for
    /// number `n`; `none` when there is no value.
    Small {
        id: u8,
        bits: Box<[u64]>,
        none: bool,
        m: FieldMatcher,
    },
    /// An address in any of these networks (`|cidr`), as (network, mask) pairs.
    Networks {
        id: u8,
        v4: Box<[(u32, u32)]>,
        v6: Box<[(u128, u128)]>,
        none: bool,
        m: FieldMatcher,
    },
    Field {
        id: u8,
        m: FieldMatcher,
    },
}

/// The bit set of `nums` when they are all below 2¹⁶.
fn small_bits(nums: &[u64]) -> Option<Box<[u64]>> {
    let max = *nums.iter().max()?;
    if max >= 1 << 16 {
        return None;
    }
    let mut bits = vec![0u64; max as usize / 64 + 1];
    for &n in nums {
        bits[n as usize / 64] |= 1 << (n % 64);
    }
    Some(bits.into())
}

/// The test matcher `m` makes on field `id`, as a bit set (any of some small
/// numbers) or a list of masks (any of some networks) when it is one of those;
/// values of another kind still go to `m`.
fn special(id: u8, m: &FieldMatcher) -> Option<Test> {
    if m.all || m.neq {
        return None;
    }
    let none = m.matches_typed(None);
    if let Some(bits) = m.nums.as_deref().and_then(small_bits) {
        return Some(Test::Small {
            id,
            bits,
            none,
            m: m.clone(),
        });
    }
    if !m.direct {
        return None;
    }
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for p in &m.patterns {
        match p {
            Pattern::Cidr(Cidr::V4 { net, mask }) => v4.push((*net, *mask)),
            Pattern::Cidr(Cidr::V6 { net, mask }) => v6.push((*net, *mask)),
            _ => return None,
        }
    }
    Some(Test::Networks {
        id,
        v4: v4.into(),
        v6: v6.into(),
        none,
        m: m.clone(),
    })
}

/// One step of a program: ask a test, then go on to step `yes` or `no`, or stop
/// at [`MATCH`] or [`NO_MATCH`]. A step only ever leads to steps made before it,
/// so every run ends.
#[derive(Clone, Copy)]
struct Step {
    test: u16,
    yes: u32,
    no: u32,
}

const MATCH: u32 = u32::MAX;
const NO_MATCH: u32 = u32::MAX - 1;

struct Compiled {
    /// The rule's number in its rule set.
    rule: u32,
    /// Its first step (or straight [`MATCH`] / [`NO_MATCH`]).
    start: u32,
}

/// A set of rules compiled into one program.
#[derive(Default)]
pub struct Program {
    tests: Vec<Test>,
    steps: Vec<Step>,
    rules: Vec<Compiled>,
    /// Tests by what they test (see `same_test_key`), to share them.
    keys: HashMap<String, u16>,
}

/// Per-event answers of a program's tests: 0 not yet asked, 1 no, 2 yes.
pub type Answers = Vec<u8>;

impl Program {
    /// Adds rule number `rule` when every field it reads is typed (by
    /// [`super::rule::typed_field`] number) and accepted by `takes`; `few(id)` lists
    /// the texts a field can only take (as the typed model gives them), when it has
    /// just a handful. Returns whether the rule was added; tests already in the
    /// program are shared.
    pub fn add(
        &mut self,
        rule: u32,
        r: &CompiledRule,
        takes: impl Fn(u8) -> bool,
        few: impl Fn(u8) -> Option<Vec<&'static str>>,
    ) -> bool {
        let typed_only = r.selections.iter().all(|(_, s)| match s {
            Selection::Maps(maps) => maps.iter().flatten().all(|f| f.typed.is_some_and(&takes)),
            Selection::Keywords(_) => false,
        });
        if !typed_only {
            return false;
        }
        let (tests, steps) = (self.tests.len(), self.steps.len());
        match self.emit(&r.condition, r, &few, MATCH, NO_MATCH) {
            Some(start) => {
                self.rules.push(Compiled { rule, start });
                true
            }
            None => {
                // Too many tests or steps: leave the program as it was.
                self.tests.truncate(tests);
                self.steps.truncate(steps);
                self.keys.retain(|_, t| usize::from(*t) < tests);
                false
            }
        }
    }

    /// Emits the steps that decide `n`, going on to `yes` or `no`, and returns the
    /// first. Conditions are laid out back to front, so each step's successors exist
    /// before it: `a and b` is `a`, on yes to `b`, on no to `no`.
    fn emit(
        &mut self,
        n: &Node,
        r: &CompiledRule,
        few: &impl Fn(u8) -> Option<Vec<&'static str>>,
        yes: u32,
        no: u32,
    ) -> Option<u32> {
        match n {
            Node::Sel(i) => {
                let Selection::Maps(maps) = &r.selections[*i].1 else {
                    return None;
                };
                // Any of the maps, each needing all its fields.
                let mut next_map = no;
                for fields in maps.iter().rev() {
                    let mut next = yes;
                    for f in fields.iter().rev() {
                        let test = self.test(f, few)?;
                        next = self.step(test, next, next_map)?;
                    }
                    next_map = next;
                }
                Some(next_map)
            }
            Node::Not(x) => self.emit(x, r, few, no, yes),
            Node::And(xs) => xs
                .iter()
                .rev()
                .try_fold(yes, |next, x| self.emit(x, r, few, next, no)),
            Node::Or(xs) => xs
                .iter()
                .rev()
                .try_fold(no, |next, x| self.emit(x, r, few, yes, next)),
        }
    }

    fn step(&mut self, test: u16, yes: u32, no: u32) -> Option<u32> {
        let at = u32::try_from(self.steps.len())
            .ok()
            .filter(|a| *a < NO_MATCH)?;
        self.steps.push(Step { test, yes, no });
        Some(at)
    }

    /// The number of the test `f` makes, added unless the program has it already.
    fn test(
        &mut self,
        f: &FieldMatcher,
        few: &impl Fn(u8) -> Option<Vec<&'static str>>,
    ) -> Option<u16> {
        let id = f.typed?;
        let test = match few(id) {
            Some(texts) => {
                let answers = std::iter::once(None)
                    .chain(texts.iter().map(|t| Some(Typed::Text((*t).into()))))
                    .map(|v| f.matches_typed(v.as_ref()))
                    .collect();
                Test::Few { id, answers }
            }
            None => special(id, f).unwrap_or_else(|| Test::Field { id, m: f.clone() }),
        };
        let key = same_test_key(&test);
        if let Some(at) = key.as_ref().and_then(|k| self.keys.get(k)) {
            return Some(*at);
        }
        let at = u16::try_from(self.tests.len()).ok()?;
        self.tests.push(test);
        if let Some(k) = key {
            self.keys.insert(k, at);
        }
        Some(at)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The numbers of the rules in the program, in the order they were added.
    pub fn rules(&self) -> impl Iterator<Item = u32> + '_ {
        self.rules.iter().map(|c| c.rule)
    }

    /// Pushes the number of every rule in the program that `row` matches onto
    /// `out`, in the order the rules were added.
    pub fn run(&self, row: &impl Row, answers: &mut Answers, out: &mut Vec<u32>) {
        answers.clear();
        answers.resize(self.tests.len(), 0);
        for c in &self.rules {
            let mut at = c.start;
            while let Some(s) = self.steps.get(at as usize) {
                at = if self.answer(s.test, row, answers) {
                    s.yes
                } else {
                    s.no
                };
            }
            if at == MATCH {
                out.push(c.rule);
            }
        }
    }

    fn answer(&self, t: u16, row: &impl Row, answers: &mut [u8]) -> bool {
        let slot = &mut answers[usize::from(t)];
        if *slot != 0 {
            return *slot == 2;
        }
        let yes = match &self.tests[usize::from(t)] {
            Test::Few { id, answers } => answers.get(row.code(*id)).copied().unwrap_or(false),
            Test::Small { id, bits, none, m } => match row.value(*id) {
                None => *none,
                Some(Typed::Num(n)) => usize::try_from(n / 64)
                    .ok()
                    .and_then(|w| bits.get(w))
                    .is_some_and(|w| w & (1 << (n % 64)) != 0),
                Some(other) => m.matches_typed(Some(&other)),
            },
            Test::Networks {
                id,
                v4,
                v6,
                none,
                m,
            } => match row.value(*id) {
                None => *none,
                Some(Typed::Ip(IpAddr::V4(a))) => {
                    let a = u32::from(a);
                    v4.iter().any(|(net, mask)| a & mask == *net)
                }
                Some(Typed::Ip(IpAddr::V6(a))) => {
                    let a = u128::from(a);
                    v6.iter().any(|(net, mask)| a & mask == *net)
                }
                Some(other) => m.matches_typed(Some(&other)),
            },
            Test::Field { id, m } => m.matches_typed(row.value(*id).as_ref()),
        };
        *slot = 1 + u8::from(yes);
        yes
    }
}

/// A text that two tests share exactly when they give the same answers; `None` for
/// tests that are not compared (they keep a test of their own). Only values whose
/// debug text states them whole are compared: addresses, numbers, plain strings.
fn same_test_key(t: &Test) -> Option<String> {
    match t {
        Test::Few { id, answers } => Some(format!("few {id} {answers:?}")),
        Test::Small { id, m, .. } | Test::Networks { id, m, .. } | Test::Field { id, m } => {
            let plain = m.patterns.iter().all(|p| match p {
                Pattern::Cidr(_) | Pattern::Cmp { .. } | Pattern::Exists(_) | Pattern::Null => true,
                Pattern::Str { m, .. } => !matches!(m, StrMatch::Glob(_)),
                _ => false,
            });
            plain.then(|| format!("field {id} {:?} {} {}", m.patterns, m.all, m.neq))
        }
    }
}
