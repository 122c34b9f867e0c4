// SPDX-License-Identifier: MIT OR Apache-2.0
//! Link-impairment settings: the `--impair '[SIDE:] WORDS'` syntax (words after
//! tc-netem(8)), its canonical text, per-direction merging and cross-word checks.
//! Pure text and data handling: no I/O, no clock, no randomness, and nothing
//! from the engine that acts on these settings.

use std::fmt;

mod parse;
pub use parse::parse_impair;
use parse::shift_point;

/// Queue limit per direction when `limit` is not given. netem's 1000 caps a delayed direction
/// at 1000 packets per delay (100 kpps at 10 ms): a fast flow then loses packets to the queue,
/// not to the link it emulates. The 32 MiB byte budget of the relay bounds memory anyway.
pub const DEFAULT_LIMIT: u32 = 10_000;

/// Shape of the delay jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dist {
    /// Uniform in [TIME-JITTER, TIME+JITTER] (netem without a table).
    #[default]
    Uniform,
    /// Normal: mean TIME, standard deviation JITTER.
    Normal,
    /// Pareto with alpha 3, shifted and scaled to mean TIME, standard deviation JITTER.
    Pareto,
    /// 0.25 * normal + 0.75 * pareto of the same variate (netem's table is built so).
    ParetoNormal,
}

impl Dist {
    const ALL: [Dist; 4] = [
        Dist::Uniform,
        Dist::Normal,
        Dist::Pareto,
        Dist::ParetoNormal,
    ];

    /// The word after `distribution`.
    pub fn name(self) -> &'static str {
        match self {
            Dist::Uniform => "uniform",
            Dist::Normal => "normal",
            Dist::Pareto => "pareto",
            Dist::ParetoNormal => "paretonormal",
        }
    }
}

/// `delay TIME [JITTER [CORR%]] [distribution D] [jitter-reorder]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delay {
    /// TIME, ns.
    pub time: u64,
    /// JITTER, ns; 0 when not given.
    pub jitter: u64,
    /// Correlation of successive jitter variates, fraction 0..=1.
    pub corr: f64,
    pub dist: Dist,
    /// Let jitter reorder packets (as netem); otherwise arrival order is kept.
    pub jitter_reorder: bool,
}

/// A probability with netem-style correlation, both fractions 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chance {
    pub pct: f64,
    pub corr: f64,
}

/// `loss [random] PCT [CORR%]` or `loss gemodel P [R [1-H [1-K]]]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    Random(Chance),
    /// Gilbert-Elliott; all fractions 0..=1. The state starts Good.
    Gemodel {
        /// Good -> Bad transition probability.
        p: f64,
        /// Bad -> Good transition probability (default 1 - p, as iproute2).
        r: f64,
        /// 1-H: loss probability in the Bad state (default 1).
        bad_loss: f64,
        /// 1-K: loss probability in the Good state (default 0).
        good_loss: f64,
    },
}

/// `reorder PCT [CORR%] [gap N]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reorder {
    pub chance: Chance,
    /// At most one packet in `gap` is sent early; 1 (the default, as tc) means any.
    pub gap: u32,
}

/// A set of impairment words; only the words given are `Some`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Impairment {
    pub delay: Option<Delay>,
    pub loss: Option<Loss>,
    pub duplicate: Option<Chance>,
    pub corrupt: Option<Chance>,
    pub reorder: Option<Reorder>,
    /// bit/s, > 0.
    pub rate: Option<u64>,
    /// Packets queued per direction, >= 1.
    pub limit: Option<u32>,
}

/// One `--impair` value: the side it is limited to (packets read from that
/// interface), or both directions when `side` is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImpairSpec {
    pub side: Option<String>,
    pub set: Impairment,
}

impl Impairment {
    /// No word is set (`limit` alone counts as a word).
    pub fn is_empty(&self) -> bool {
        *self == Impairment::default()
    }

    /// The queue limit, [`DEFAULT_LIMIT`] unless `limit` was given.
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }

    /// Replaces each word that `later` gives.
    fn overlay(&mut self, later: &Impairment) {
        fn put<T: Copy>(mine: &mut Option<T>, theirs: Option<T>) {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
        put(&mut self.delay, later.delay);
        put(&mut self.loss, later.loss);
        put(&mut self.duplicate, later.duplicate);
        put(&mut self.corrupt, later.corrupt);
        put(&mut self.reorder, later.reorder);
        put(&mut self.rate, later.rate);
        put(&mut self.limit, later.limit);
    }
}

/// The effective impairment for packets read from `side`: every spec for both
/// directions or for `side`, in order, a later word replacing an earlier one.
pub fn merge(specs: &[ImpairSpec], side: &str) -> Impairment {
    let mut out = Impairment::default();
    for spec in specs {
        if spec.side.as_deref().is_none_or(|s| s == side) {
            out.overlay(&spec.set);
        }
    }
    out
}

/// Checks the rules between words of a merged impairment.
pub fn validate(imp: &Impairment) -> Result<(), String> {
    let delayed = imp.delay.is_some_and(|d| d.time > 0 || d.jitter > 0);
    if imp.reorder.is_some() && !delayed {
        return Err("'reorder' needs 'delay' (it sends some packets without the delay)".into());
    }
    Ok(())
}

/// A fraction shown as a percentage that [`parse_pct`] reads back exactly.
struct Pct(f64);

impl fmt::Display for Pct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // f64's Display is the shortest text that reads back to the same value.
        write!(f, "{}%", shift_point(&self.0.to_string(), 2))
    }
}

/// A time in ns, in the largest unit that shows it exactly.
struct Time(u64);

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        if ns >= 1_000_000_000 && ns % 1_000_000_000 == 0 {
            write!(f, "{}s", ns / 1_000_000_000)
        } else if ns % 1_000_000 == 0 {
            write!(f, "{}ms", ns / 1_000_000)
        } else if ns % 1_000 == 0 {
            write!(f, "{}us", ns / 1_000)
        } else {
            let (mut frac, mut width) = (ns % 1_000, 3);
            while frac % 10 == 0 {
                frac /= 10;
                width -= 1;
            }
            write!(f, "{}.{frac:0width$}us", ns / 1_000)
        }
    }
}

/// A rate in bit/s, in the largest decimal unit that shows it exactly.
struct Rate(u64);

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [
            (1_000_000_000_000, "tbit"),
            (1_000_000_000, "gbit"),
            (1_000_000, "mbit"),
            (1_000, "kbit"),
        ];
        match units.iter().find(|(n, _)| self.0 % n == 0 && self.0 > 0) {
            Some((n, unit)) => write!(f, "{}{unit}", self.0 / n),
            None => write!(f, "{}bit", self.0),
        }
    }
}

fn chance_text(f: &mut fmt::Formatter<'_>, word: &str, c: &Chance) -> fmt::Result {
    write!(f, "{word} {}", Pct(c.pct))?;
    if c.corr != 0.0 {
        write!(f, " {}", Pct(c.corr))?;
    }
    Ok(())
}

/// Writes the blank between words: nothing before the first one.
fn sep(f: &mut fmt::Formatter<'_>, first: &mut bool) -> fmt::Result {
    if std::mem::take(first) {
        Ok(())
    } else {
        f.write_str(" ")
    }
}

/// Canonical text that [`parse_impair`] reads back to an equal value
/// (words in a fixed order, every value exact); `none` when empty.
impl fmt::Display for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let first = &mut true;
        if let Some(d) = &self.delay {
            sep(f, first)?;
            write!(f, "delay {}", Time(d.time))?;
            if d.jitter != 0 || d.corr != 0.0 || d.dist != Dist::Uniform {
                write!(f, " {}", Time(d.jitter))?;
                if d.corr != 0.0 {
                    write!(f, " {}", Pct(d.corr))?;
                }
            }
            if d.dist != Dist::Uniform {
                write!(f, " distribution {}", d.dist.name())?;
            }
            if d.jitter_reorder {
                f.write_str(" jitter-reorder")?;
            }
        }
        match &self.loss {
            Some(Loss::Random(c)) => {
                sep(f, first)?;
                chance_text(f, "loss", c)?;
            }
            Some(Loss::Gemodel {
                p,
                r,
                bad_loss,
                good_loss,
            }) => {
                sep(f, first)?;
                let (p, r, h, k) = (Pct(*p), Pct(*r), Pct(*bad_loss), Pct(*good_loss));
                write!(f, "loss gemodel {p} {r} {h} {k}")?;
            }
            None => {}
        }
        if let Some(c) = &self.duplicate {
            sep(f, first)?;
            chance_text(f, "duplicate", c)?;
        }
        if let Some(c) = &self.corrupt {
            sep(f, first)?;
            chance_text(f, "corrupt", c)?;
        }
        if let Some(r) = &self.reorder {
            sep(f, first)?;
            chance_text(f, "reorder", &r.chance)?;
            if r.gap != 1 {
                write!(f, " gap {}", r.gap)?;
            }
        }
        if let Some(r) = self.rate {
            sep(f, first)?;
            write!(f, "rate {}", Rate(r))?;
        }
        if let Some(l) = self.limit {
            sep(f, first)?;
            write!(f, "limit {l}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ImpairSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(side) = &self.side {
            write!(f, "{side}: ")?;
        }
        write!(f, "{}", self.set)
    }
}

#[cfg(test)]
mod tests;
