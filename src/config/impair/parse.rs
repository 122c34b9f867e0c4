// SPDX-License-Identifier: MIT OR Apache-2.0
//! Parsing one `--impair '[SIDE:] WORDS'` value: the words and units of tc-netem(8), each error
//! quoting the word at fault. Pure.

use super::{Chance, Delay, Dist, ImpairSpec, Impairment, Loss, Reorder};
use crate::config::side::check_ifname;

const WORDS: &str = "delay, loss, duplicate, corrupt, reorder, rate or limit";
const DISTS: &str = "uniform, normal, pareto or paretonormal";
/// Words that are never taken as the value of the word before them.
const KEYWORDS: &str = "delay loss duplicate corrupt reorder rate limit \
                        distribution jitter-reorder gap none random gemodel";

/// Parses one `--impair` value: `[SIDE:] WORDS`, or `[SIDE:] none` (no word
/// at all, so in [`merge`] it replaces nothing).
pub fn parse_impair(text: &str) -> Result<ImpairSpec, String> {
    let mut toks: Vec<&str> = text.split_whitespace().collect();
    let mut side = None;
    if let Some((name, rest)) = toks.first().and_then(|t| t.split_once(':')) {
        check_ifname(name)?;
        side = Some(name.to_string());
        if rest.is_empty() {
            toks.remove(0);
        } else {
            toks[0] = rest;
        }
    }
    let set = match toks.as_slice() {
        [] => return Err("no impairment words (e.g. 'delay 20ms loss 1%', or 'none')".into()),
        ["none"] => Impairment::default(),
        _ => Parser {
            toks: &toks,
            pos: 0,
        }
        .words()?,
    };
    Ok(ImpairSpec { side, set })
}

/// Linux's rules for an interface name (dev_valid_name), minus ':' and blanks.
fn twice(given: bool, word: &str) -> Result<(), String> {
    if given {
        return Err(format!("'{word}' given twice"));
    }
    Ok(())
}

fn is_number(t: &str) -> bool {
    t.starts_with(|c: char| c.is_ascii_digit() || c == '.')
}

struct Parser<'a> {
    toks: &'a [&'a str],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn words(mut self) -> Result<Impairment, String> {
        let mut set = Impairment::default();
        let mut prev = 0;
        while let Some(word) = self.toks.get(self.pos).copied() {
            let start = self.pos;
            self.pos += 1;
            match word {
                "delay" => {
                    twice(set.delay.is_some(), word)?;
                    set.delay = Some(self.delay(start)?);
                }
                "loss" => {
                    twice(set.loss.is_some(), word)?;
                    set.loss = Some(self.loss(start)?);
                }
                "duplicate" => {
                    twice(set.duplicate.is_some(), word)?;
                    set.duplicate = Some(self.chance(start, word)?);
                }
                "corrupt" => {
                    twice(set.corrupt.is_some(), word)?;
                    set.corrupt = Some(self.chance(start, word)?);
                }
                "reorder" => {
                    twice(set.reorder.is_some(), word)?;
                    set.reorder = Some(self.reorder(start)?);
                }
                "rate" => {
                    twice(set.rate.is_some(), word)?;
                    set.rate = Some(parse_rate(self.value(word, "RATE")?)?);
                }
                "limit" => {
                    twice(set.limit.is_some(), word)?;
                    set.limit = Some(parse_count(self.value(word, "PACKETS")?, word)?);
                }
                _ => return Err(self.unexpected(word, prev)),
            }
            prev = start;
        }
        Ok(set)
    }

    fn peek(&self) -> Option<&'a str> {
        self.toks.get(self.pos).copied()
    }

    /// The next word if it is a number: optional values, like tc's NEXT_IS_NUMBER.
    fn number(&mut self) -> Option<&'a str> {
        let t = self.peek().filter(|t| is_number(t))?;
        self.pos += 1;
        Some(t)
    }

    /// The mandatory value `name` of `what`: any next word but a keyword.
    fn value(&mut self, what: &str, name: &str) -> Result<&'a str, String> {
        match self.peek() {
            Some(t) if !KEYWORDS.split_whitespace().any(|k| k == t) => {
                self.pos += 1;
                Ok(t)
            }
            _ => Err(format!("'{what}' needs {name}")),
        }
    }

    /// The words from `start` up to the current one, quoted in errors.
    fn group(&self, start: usize) -> String {
        self.toks[start..self.pos].join(" ")
    }

    fn unexpected(&self, word: &str, prev: usize) -> String {
        match word {
            "distribution" | "jitter-reorder" => {
                format!("'{word}' must follow 'delay TIME [JITTER [CORR]]'")
            }
            "gap" => "'gap' must follow 'reorder PCT [CORR]'".into(),
            "random" | "gemodel" => format!("'{word}' must follow 'loss'"),
            "none" => "'none' cannot be combined with other words".into(),
            _ if word.ends_with(':') => format!("side '{word}' must come first"),
            _ if self.pos > 1
                && word.starts_with(|c: char| c.is_ascii_digit() || ".+-".contains(c)) =>
            {
                format!(
                    "unexpected value '{word}' after '{}'",
                    self.toks[prev..self.pos - 1].join(" ")
                )
            }
            _ => format!("unknown word '{word}' (expected {WORDS})"),
        }
    }

    fn delay(&mut self, start: usize) -> Result<Delay, String> {
        let time = parse_time(self.value("delay", "TIME")?, &self.group(start))?;
        let mut d = Delay {
            time,
            jitter: 0,
            corr: 0.0,
            dist: Dist::Uniform,
            jitter_reorder: false,
        };
        let has_jitter = match self.number() {
            Some(t) => {
                d.jitter = parse_time(t, &self.group(start))?;
                if let Some(t) = self.number() {
                    d.corr = parse_pct(t, &self.group(start))?;
                }
                true
            }
            None => false,
        };
        let mut has_dist = false;
        loop {
            match self.peek() {
                Some("distribution") => {
                    self.pos += 1;
                    twice(has_dist, "distribution")?;
                    if !has_jitter {
                        return Err("'distribution' needs a JITTER \
                                    (e.g. 'delay 20ms 5ms distribution normal')"
                            .into());
                    }
                    let name = self.value("distribution", DISTS)?;
                    d.dist = Dist::ALL
                        .into_iter()
                        .find(|x| x.name() == name)
                        .ok_or_else(|| format!("unknown distribution '{name}' (use {DISTS})"))?;
                    has_dist = true;
                }
                Some("jitter-reorder") => {
                    self.pos += 1;
                    twice(d.jitter_reorder, "jitter-reorder")?;
                    d.jitter_reorder = true;
                }
                _ => return Ok(d),
            }
        }
    }

    fn loss(&mut self, start: usize) -> Result<Loss, String> {
        match self.peek() {
            Some("random") => {
                self.pos += 1;
                Ok(Loss::Random(self.chance(start, "loss random")?))
            }
            Some("gemodel") => {
                self.pos += 1;
                let p = parse_pct(self.value("loss gemodel", "P")?, &self.group(start))?;
                // Defaults as iproute2: r = 1 - p, 1-h = 100%, 1-k = 0%.
                let mut g = [p, 1.0 - p, 1.0, 0.0];
                for slot in &mut g[1..] {
                    match self.number() {
                        Some(t) => *slot = parse_pct(t, &self.group(start))?,
                        None => break,
                    }
                }
                let [p, r, bad_loss, good_loss] = g;
                Ok(Loss::Gemodel {
                    p,
                    r,
                    bad_loss,
                    good_loss,
                })
            }
            Some("state") => Err("'loss state' is not supported \
                                  (use 'loss PCT [CORR]' or 'loss gemodel P [R [1-H [1-K]]]')"
                .into()),
            _ => Ok(Loss::Random(self.chance(start, "loss")?)),
        }
    }

    /// `PCT [CORR]` after `what`.
    fn chance(&mut self, start: usize, what: &str) -> Result<Chance, String> {
        let pct = parse_pct(self.value(what, "PCT")?, &self.group(start))?;
        let corr = match self.number() {
            Some(t) => parse_pct(t, &self.group(start))?,
            None => 0.0,
        };
        Ok(Chance { pct, corr })
    }

    fn reorder(&mut self, start: usize) -> Result<Reorder, String> {
        let chance = self.chance(start, "reorder")?;
        let mut gap = 1;
        if self.peek() == Some("gap") {
            self.pos += 1;
            gap = parse_count(self.value("gap", "N")?, "gap")?;
        }
        Ok(Reorder { chance, gap })
    }
}

/// Splits `12.5ms` into (`12.5`, `ms`); the number must be digits with at most one '.'.
fn split_number(t: &str) -> Option<(&str, &str)> {
    let end = t
        .bytes()
        .position(|b| !(b.is_ascii_digit() || b == b'.'))
        .unwrap_or(t.len());
    let num = &t[..end];
    let digits = num.bytes().filter(u8::is_ascii_digit).count();
    (digits > 0 && digits + 1 >= num.len()).then_some((num, &t[end..]))
}

/// `num * factor`, rounded half up, computed exactly; `None` when above u64.
fn scaled(num: &str, factor: u128) -> Option<u64> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    // Digits past the 24th move the value by under 1e-11 unit (factor < 10^13).
    let frac = frac.trim_end_matches('0');
    let frac = &frac[..frac.len().min(24)];
    let mut whole: u128 = 0;
    for b in int.bytes() {
        whole = whole.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    let part = frac
        .bytes()
        .fold(0, |acc, b| acc * 10 + u128::from(b - b'0'));
    let den = 10u128.pow(frac.len() as u32);
    let v = whole
        .checked_mul(factor)?
        .checked_add((part * factor + den / 2) / den)?;
    u64::try_from(v).ok()
}

/// Unit names, blank-separated (case does not matter, as in tc), and their
/// factor; the empty name before a leading blank is a bare number.
type Units = [(&'static str, u128)];

fn unit_factor(units: &Units, unit: &str) -> Option<u128> {
    let mut all = units.iter();
    all.find(|(names, _)| names.split(' ').any(|n| n.eq_ignore_ascii_case(unit)))
        .map(|&(_, factor)| factor)
}

/// In ns; tc(8): a bare number is microseconds.
const TIME_UNITS: &Units = &[
    ("ns nsec nsecs", 1),
    (" us usec usecs", 1_000),
    ("ms msec msecs", 1_000_000),
    ("s sec secs", 1_000_000_000),
];

/// A TIME or JITTER, in ns.
fn parse_time(t: &str, ctx: &str) -> Result<u64, String> {
    let bad = || format!("bad time '{t}' in '{ctx}' (use us, ms or s)");
    let (num, unit) = split_number(t).ok_or_else(bad)?;
    let factor = unit_factor(TIME_UNITS, unit).ok_or_else(bad)?;
    scaled(num, factor).ok_or_else(|| format!("time '{t}' is too large"))
}

const KI: u128 = 1024;
/// In bit/s; tc(8): a bare number is bit/s. As in tc, `Mbps` is megabytes per second.
const RATE_UNITS: &Units = &[
    (" bit", 1),
    ("kbit", 1_000),
    ("mbit", 1_000_000),
    ("gbit", 1_000_000_000),
    ("tbit", 1_000_000_000_000),
    ("kibit", KI),
    ("mibit", KI * KI),
    ("gibit", KI * KI * KI),
    ("tibit", KI * KI * KI * KI),
    ("bps", 8),
    ("kbps", 8_000),
    ("mbps", 8_000_000),
    ("gbps", 8_000_000_000),
    ("tbps", 8_000_000_000_000),
    ("kibps", 8 * KI),
    ("mibps", 8 * KI * KI),
    ("gibps", 8 * KI * KI * KI),
    ("tibps", 8 * KI * KI * KI * KI),
];

/// A RATE, in bit/s.
fn parse_rate(t: &str) -> Result<u64, String> {
    let bad = || format!("bad rate '{t}' in 'rate {t}' (use e.g. 100kbit, 10mbit or 1gbit)");
    let (num, unit) = split_number(t).ok_or_else(bad)?;
    let factor = unit_factor(RATE_UNITS, unit).ok_or_else(bad)?;
    match scaled(num, factor) {
        None => Err(format!("rate '{t}' is too large")),
        Some(0) => Err(format!("rate '{t}' must be more than 0")),
        Some(v) => Ok(v),
    }
}

/// A percentage (`10%`, `10`, `0.5%`) as a fraction 0..=1.
fn parse_pct(t: &str, ctx: &str) -> Result<f64, String> {
    let bad = || format!("bad percentage '{t}' in '{ctx}' (use e.g. 10% or 0.5%)");
    let (num, rest) = split_number(t).ok_or_else(bad)?;
    if !(rest.is_empty() || rest == "%") {
        return Err(bad());
    }
    // Moving the decimal point in the text keeps the conversion correctly
    // rounded, so Display (which moves it back) round-trips exactly.
    let v: f64 = shift_point(num, -2).parse().map_err(|_| bad())?;
    if v > 1.0 {
        return Err(format!("percentage '{t}' is outside 0-100"));
    }
    Ok(v)
}

/// A whole number >= 1 (`limit`, `gap`).
fn parse_count(t: &str, what: &str) -> Result<u32, String> {
    match t.parse::<u32>() {
        Ok(n) if n >= 1 && t.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("bad {what} '{t}' (use a whole number, at least 1)")),
    }
}

/// Moves the decimal point of a plain decimal numeral by `shift` places to the
/// right (left when negative), dropping needless zeros.
pub(super) fn shift_point(num: &str, shift: isize) -> String {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = format!("{int}{frac}");
    let point = int.len() as isize + shift;
    let mut s = String::with_capacity(digits.len() + shift.unsigned_abs() + 2);
    if point <= 0 {
        s.push_str("0.");
        s.extend(std::iter::repeat_n('0', point.unsigned_abs()));
        s.push_str(&digits);
    } else if point as usize >= digits.len() {
        s.push_str(&digits);
        s.extend(std::iter::repeat_n('0', point as usize - digits.len()));
    } else if digits.is_char_boundary(point as usize) {
        let (a, b) = digits.split_at(point as usize);
        s.push_str(a);
        s.push('.');
        s.push_str(b);
    }
    let mut t = s.as_str();
    if t.contains('.') {
        t = t.trim_end_matches('0').trim_end_matches('.');
    }
    t = t.trim_start_matches('0');
    if t.is_empty() || t.starts_with('.') {
        format!("0{t}")
    } else {
        t.to_string()
    }
}
