// SPDX-License-Identifier: MIT OR Apache-2.0
//! The administrator's policy (/etc/tunwire/policy.conf, or the built-in one): parsing it and
//! answering what a non-root member may claim, with refusals that name the rule and its lines.
//! Pure logic only: no system calls, no user or group lookups (`file` reads and vets the
//! file). The caller passes names and group-membership closures, and does not consult this for
//! root, except for the pools automatic allocation takes pairs from and the capture readers.

use std::fmt;
use std::net::IpAddr;

use crate::prefix::Prefix;

mod file;
pub use file::{load, load_for_caller};

/// Where the policy file lives; named in messages about the built-in policy.
pub const DEFAULT_PATH: &str = "/etc/tunwire/policy.conf";

/// The policy in force when [`DEFAULT_PATH`] does not exist.
pub const BUILTIN: &str = "\
allow group tunwire
pool 192.168.13.0/24
pool fd13::/64
names tun*
tables 13
max-wires 4
";

const DEFAULT_MAX_WIRES: u32 = 4;
const DEFAULT_MAX_MTU: u32 = 65535;
const DEFAULT_PRIORITY: u32 = 100;
const MAX_AUTO_PAIRS: u32 = 10_000;
const IFNAME_MAX: usize = 15;
const SETTINGS: &str = "allow, deny, pool, names, tables, max-wires, max-mtu, priority or capture";

/// Where a policy came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Builtin,
    File(String),
}

/// Why a request was refused; `Display` is the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

fn refuse<T>(message: String) -> Result<T, Refusal> {
    Err(Refusal { message })
}

/// One candidate for automatic allocation: two interface names and two addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoPair {
    pub names: [String; 2],
    pub addrs: [IpAddr; 2],
}

/// An `allow`, `deny` or `capture` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Who {
    verb: &'static str,
    kind: &'static str,
    name: String,
    line: usize,
}

impl Who {
    fn matches(&self, user: &str, in_group: &dyn Fn(&str) -> bool) -> bool {
        match self.kind {
            "user" => self.name == user,
            _ => in_group(&self.name),
        }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.verb, self.kind, self.name)
    }
}

/// A value and the line that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct At<T> {
    value: T,
    line: usize,
}

/// A `tables` line: one table or an inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tables {
    first: u32,
    last: u32,
}

impl Tables {
    fn parse(text: &str) -> Result<Tables, String> {
        let bad = |why: &str| Err(format!("tables {} {why}", quote(text)));
        let (a, b) = text.split_once('-').unwrap_or((text, text));
        let table = |s: &str| number(s).filter(|&n| n >= 1);
        let (Some(first), Some(last)) = (table(a), table(b)) else {
            return bad("must be a table N or a range N-M of tables from 1 to 4294967295");
        };
        if first > last {
            return bad("is a range that starts above its end");
        }
        if first >= 253 && last <= 255 {
            return bad("names only reserved tables (253 default, 254 main, 255 local), which are never allowed");
        }
        Ok(Tables { first, last })
    }
}

impl fmt::Display for Tables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.first == self.last {
            true => write!(f, "{}", self.first),
            false => write!(f, "{}-{}", self.first, self.last),
        }
    }
}

/// The kernel's name for a table no member may ever use.
fn reserved_table(table: u32) -> Option<&'static str> {
    match table {
        0 => Some("unspec"),
        253 => Some("default"),
        254 => Some("main"),
        255 => Some("local"),
        _ => None,
    }
}

/// A decimal number of ASCII digits only (no sign, no spaces).
fn number(text: &str) -> Option<u32> {
    match !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        true => text.parse().ok(),
        false => None,
    }
}

/// A value quoted for a message, with control characters escaped.
fn quote(text: &str) -> String {
    format!("'{}'", text.escape_debug())
}

/// What the kernel accepts as an interface name, without '%' (which it would expand into a
/// number) and control characters. Applies to names and to `names` globs.
fn plausible_ifname(name: &str) -> bool {
    let bad = |c: char| matches!(c, '/' | ':' | '%') || c.is_whitespace() || c.is_control();
    (1..=IFNAME_MAX).contains(&name.len()) && name != "." && name != ".." && !name.contains(bad)
}

/// Whether `name` matches `glob`, where `*` matches any run (also empty) and `?` one character.
fn glob_match(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    let (mut gi, mut ni) = (0, 0);
    // The last '*' seen, and where in the name its current match ends.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if g.get(gi) == Some(&'*') {
            star = Some((gi, ni));
            gi += 1;
        } else if g.get(gi).is_some_and(|&c| c == '?' || c == n[ni]) {
            gi += 1;
            ni += 1;
        } else if let Some((sg, sn)) = star {
            star = Some((sg, sn + 1));
            (gi, ni) = (sg + 1, sn + 1);
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

/// A `pool` value.
fn pool_prefix(text: &str) -> Result<Prefix, String> {
    Prefix::parse(text).map_err(|e| format!("pool {e}"))
}

/// The effective policy: from a file, or the built-in one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    source: Source,
    /// `allow`, `deny` and `capture` lines, in file order.
    who: Vec<Who>,
    pools: Vec<At<Prefix>>,
    names: Vec<At<String>>,
    tables: Vec<At<Tables>>,
    max_wires: Option<At<u32>>,
    max_mtu: Option<At<u32>>,
    priority: Option<At<u32>>,
}

impl Policy {
    /// Parses policy text. Errors read `line N: ...`; the caller prefixes the path.
    pub fn parse(text: &str, source: Source) -> Result<Policy, String> {
        let mut policy = Policy {
            source,
            who: Vec::new(),
            pools: Vec::new(),
            names: Vec::new(),
            tables: Vec::new(),
            max_wires: None,
            max_mtu: None,
            priority: None,
        };
        for (index, raw) in text.lines().enumerate() {
            let content = raw.split('#').next().unwrap_or("");
            let words: Vec<&str> = content.split_whitespace().collect();
            if let Some((&setting, args)) = words.split_first() {
                let line = index + 1;
                let parsed = policy.parse_line(line, setting, args);
                parsed.map_err(|e| format!("line {line}: {e}"))?;
            }
        }
        Ok(policy)
    }

    fn parse_line(&mut self, line: usize, setting: &str, args: &[&str]) -> Result<(), String> {
        let usage = |expected: String| {
            let found = [&[setting], args].concat().join(" ");
            Err(format!("expected {expected}, found {}", quote(&found)))
        };
        if let Some(&verb) = ["allow", "deny", "capture"].iter().find(|&&v| v == setting) {
            let (kind, name) = match args {
                ["group", name] => ("group", *name),
                ["user", name] => ("user", *name),
                _ => return usage(format!("'{verb} group NAME' or '{verb} user NAME'")),
            };
            let bad = |c: char| matches!(c, ':' | ',' | '/') || c.is_control();
            if name.starts_with('-') || name.contains(bad) {
                return Err(format!(
                    "{} is not a valid {kind} name (no ':', ',', '/', control characters or leading '-')",
                    quote(name)
                ));
            }
            let name = name.to_string();
            self.who.push(Who {
                verb,
                kind,
                name,
                line,
            });
            return Ok(());
        }
        let scalar = matches!(setting, "max-wires" | "max-mtu" | "priority");
        if !scalar && !matches!(setting, "pool" | "names" | "tables") {
            return Err(format!(
                "unknown setting {} (expected {SETTINGS})",
                quote(setting)
            ));
        }
        let [value] = args else {
            return usage(match setting {
                "pool" => "'pool PREFIX'".into(),
                "names" => "'names GLOB'".into(),
                "tables" => "'tables N' or 'tables N-M'".into(),
                _ => format!("'{setting} N'"),
            });
        };
        let (low, high, slot) = match setting {
            "pool" => {
                let value = pool_prefix(value)?;
                self.pools.push(At { value, line });
                return Ok(());
            }
            "names" if !plausible_ifname(value) => {
                return Err(format!(
                    "names {} is not an interface name pattern (1-15 bytes; no '/', ':', '%' or control characters; not '.' or '..')",
                    quote(value)
                ));
            }
            "names" => {
                let value = value.to_string();
                self.names.push(At { value, line });
                return Ok(());
            }
            "tables" => {
                let value = Tables::parse(value)?;
                self.tables.push(At { value, line });
                return Ok(());
            }
            "max-wires" => (0, u32::MAX, &mut self.max_wires),
            "max-mtu" => (68, 65535, &mut self.max_mtu),
            _ => (1, 32765, &mut self.priority),
        };
        let Some(value) = number(value).filter(|n| (low..=high).contains(n)) else {
            let value = quote(value);
            return Err(format!(
                "{setting} {value} must be a whole number from {low} to {high}"
            ));
        };
        if let Some(first) = slot {
            return Err(format!("{setting} is already set on line {}", first.line));
        }
        *slot = Some(At { value, line });
        Ok(())
    }

    /// The policy in force without a policy file: [`BUILTIN`].
    pub fn builtin() -> Policy {
        Policy::parse(BUILTIN, Source::Builtin).expect("the built-in policy parses")
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Where a rule is: `PATH line N`, `PATH lines N, M`, `PATH`, or the built-in note.
    fn place(&self, lines: &[usize]) -> String {
        match (&self.source, lines) {
            (Source::Builtin, _) => format!("built-in policy: {DEFAULT_PATH} does not exist"),
            (Source::File(path), []) => path.clone(),
            (Source::File(path), [n]) => format!("{path} line {n}"),
            (Source::File(path), _) => {
                let lines: Vec<String> = lines.iter().map(|n| n.to_string()).collect();
                format!("{path} lines {}", lines.join(", "))
            }
        }
    }

    /// Where a setting is not: `PATH has no SETTING line`.
    fn absent(&self, setting: &str) -> String {
        match &self.source {
            Source::File(path) => format!("{path} has no {setting} line"),
            Source::Builtin => self.place(&[]),
        }
    }

    /// `names tun*, lab?; PATH` for the lines of a list setting, or where it is missing.
    fn rule<T: fmt::Display>(&self, label: &str, setting: &str, items: &[At<T>]) -> String {
        if items.is_empty() {
            return self.absent(setting);
        }
        let values: Vec<String> = items.iter().map(|i| i.value.to_string()).collect();
        format!("{label}{}; {}", values.join(", "), self.place(&[]))
    }

    /// Where a scalar came from: its line, or the default.
    fn scalar_rule(&self, setting: &str, slot: &Option<At<u32>>) -> String {
        match slot {
            Some(at) => self.place(&[at.line]),
            None => format!("the default; {}", self.absent(setting)),
        }
    }

    fn who(&self, verb: &'static str) -> impl Iterator<Item = &Who> + '_ {
        self.who.iter().filter(move |w| w.verb == verb)
    }

    /// May this user start at all? A `deny` line wins over any `allow` line; no `allow` line
    /// means nobody. `in_group(name)` tells whether the caller is a member of the group.
    pub fn may_start(&self, user: &str, in_group: &dyn Fn(&str) -> bool) -> Result<(), Refusal> {
        if let Some(d) = self.who("deny").find(|w| w.matches(user, in_group)) {
            return refuse(format!(
                "{user} is denied by '{d}' ({})",
                self.place(&[d.line])
            ));
        }
        if self.who("allow").any(|w| w.matches(user, in_group)) {
            return Ok(());
        }
        let start = format!("{user} is not allowed to start tunwire: the policy allows");
        let allows: Vec<&Who> = self.who("allow").collect();
        if allows.is_empty() {
            return refuse(format!(
                "{start} nobody but root ({})",
                self.absent("allow")
            ));
        }
        let subjects: Vec<String> = allows
            .iter()
            .map(|w| format!("{} {}", w.kind, w.name))
            .collect();
        let lines: Vec<usize> = allows.iter().map(|w| w.line).collect();
        let (subjects, place) = (subjects.join(", "), self.place(&lines));
        let hint = match (allows.iter().find(|w| w.kind == "group"), &self.source) {
            (Some(g), _) => format!(
                "adds you with `usermod -aG {} {user}`; then log in again",
                g.name
            ),
            (None, Source::File(path)) => format!("adds the line 'allow user {user}' to {path}"),
            (None, Source::Builtin) => {
                format!("adds the line 'allow user {user}' to {DEFAULT_PATH}")
            }
        };
        refuse(format!(
            "{start} {subjects} ({place})\n  hint: an administrator {hint}"
        ))
    }

    pub fn check_address(&self, addr: IpAddr) -> Result<(), Refusal> {
        if self.pools.iter().any(|p| p.value.contains(addr)) {
            return Ok(());
        }
        let rule = self.rule("", "pool", &self.pools);
        match self.pools.is_empty() {
            true => refuse(format!(
                "{addr} is not allowed: no pool is allowed to you ({rule})"
            )),
            false => refuse(format!(
                "{addr} is outside the pools allowed to you ({rule})"
            )),
        }
    }

    /// Refuses names the kernel would refuse or expand ('%d'), and names no glob matches.
    pub fn check_name(&self, ifname: &str) -> Result<(), Refusal> {
        let name = quote(ifname);
        if !plausible_ifname(ifname) {
            return refuse(format!(
                "interface name {name} is not a valid interface name (1-15 bytes; no '/', ':', '%', whitespace or control characters; not '.' or '..')"
            ));
        }
        if self.names.iter().any(|g| glob_match(&g.value, ifname)) {
            return Ok(());
        }
        let rule = self.rule("names ", "names", &self.names);
        match self.names.is_empty() {
            true => refuse(format!(
                "interface name {name} is not allowed: no interface name is allowed to you ({rule})"
            )),
            false => refuse(format!(
                "interface name {name} is not allowed to you ({rule})"
            )),
        }
    }

    /// Tables 0, 253, 254 and 255 are never allowed, whatever the ranges say.
    pub fn check_table(&self, table: u32) -> Result<(), Refusal> {
        let listed = |t: &At<Tables>| (t.value.first..=t.value.last).contains(&table);
        let reserved = reserved_table(table);
        if reserved.is_none() && self.tables.iter().any(listed) {
            return Ok(());
        }
        let rule = self.rule("tables ", "tables", &self.tables);
        match reserved {
            Some(name) => refuse(format!(
                "table {table} ({name}) is reserved and never allowed to you ({rule})"
            )),
            None if self.tables.is_empty() => refuse(format!(
                "table {table} is not allowed: no table is allowed to you ({rule})"
            )),
            None => refuse(format!("table {table} is not allowed to you ({rule})")),
        }
    }

    pub fn max_mtu(&self) -> u32 {
        self.max_mtu.as_ref().map_or(DEFAULT_MAX_MTU, |a| a.value)
    }

    pub fn check_mtu(&self, mtu: u32) -> Result<(), Refusal> {
        let max = self.max_mtu();
        if mtu <= max {
            return Ok(());
        }
        let rule = self.scalar_rule("max-mtu", &self.max_mtu);
        refuse(format!("MTU {mtu} is above max-mtu {max} ({rule})"))
    }

    /// Where automatic pairs come from, for the message when none is free: the first `names`
    /// glob and the pools, or what is missing.
    pub fn allocation(&self) -> String {
        if self.auto_pairs().next().is_none() {
            return format!(
                "the policy gives none (it needs a names glob with one '*' and a pool; {})",
                self.place(&[])
            );
        }
        let names = self.rule("names ", "names", &self.names);
        let pools = self.rule("pools ", "pool", &self.pools);
        format!("{names}; {pools}")
    }

    /// The preference (`ip rule` pref) of members' rules.
    pub fn priority(&self) -> u32 {
        self.priority.as_ref().map_or(DEFAULT_PRIORITY, |a| a.value)
    }

    /// Members' rules always use the policy's priority; asking for another is refused.
    pub fn check_priority(&self, asked: u32) -> Result<(), Refusal> {
        let fixed = self.priority();
        if asked == fixed {
            return Ok(());
        }
        let rule = self.scalar_rule("priority", &self.priority);
        refuse(format!(
            "--priority {asked}: members' rules use priority {fixed} ({rule})"
        ))
    }

    pub fn max_wires(&self) -> u32 {
        self.max_wires
            .as_ref()
            .map_or(DEFAULT_MAX_WIRES, |a| a.value)
    }

    /// May a user who already runs `running` wires start another?
    pub fn check_wire_count(&self, running: u32) -> Result<(), Refusal> {
        let max = self.max_wires();
        let rule = self.scalar_rule("max-wires", &self.max_wires);
        let wires = if running == 1 { "wire" } else { "wires" };
        match (running < max, max) {
            (true, _) => Ok(()),
            (false, 0) => refuse(format!("max-wires 0 allows you no wires ({rule})")),
            (false, _) => refuse(format!(
                "you already run {running} {wires}, the most max-wires {max} allows ({rule})"
            )),
        }
    }

    /// May this user capture on another member's wire? Root and the wire's owner always
    /// may; the caller checks those. `deny` lines do not apply here.
    pub fn may_capture(&self, user: &str, in_group: &dyn Fn(&str) -> bool) -> bool {
        self.who("capture").any(|w| w.matches(user, in_group))
    }

    /// The `capture user` names and the `capture group` names.
    pub fn capture_readers(&self) -> (Vec<String>, Vec<String>) {
        let of = |kind| {
            self.who("capture")
                .filter(move |w| w.kind == kind)
                .map(|w| w.name.clone())
        };
        (of("user").collect(), of("group").collect())
    }

    /// The `allow group` names, for messages.
    pub fn allowed_groups(&self) -> Vec<String> {
        let groups = self.who("allow").filter(|w| w.kind == "group");
        groups.map(|w| w.name.clone()).collect()
    }

    /// Candidate pairs for automatic allocation, in order. Pair k takes the first `names`
    /// glob with exactly one '*' and no '?', with '*' replaced by 2k and 2k+1, and the
    /// (2k+1)-th and (2k+2)-th usable addresses of the first IPv4 pool (else of the first
    /// IPv6 pool). It ends when the pool runs out, when a name would exceed 15 bytes, or
    /// after 10 000 pairs; it is empty without such a glob or without a pool.
    pub fn auto_pairs(&self) -> impl Iterator<Item = AutoPair> + '_ {
        let glob = self.names.iter().map(|g| g.value.as_str());
        let glob = glob
            .clone()
            .find(|g| g.matches('*').count() == 1 && !g.contains('?'));
        let v4 = self.pools.iter().find(|p| p.value.addr.is_ipv4());
        let pool = v4.or(self.pools.first()).map(|p| p.value);
        (0..MAX_AUTO_PAIRS).map_while(move |k| {
            let (glob, pool) = (glob?, pool?);
            let names = [2 * k, 2 * k + 1].map(|n| glob.replacen('*', &n.to_string(), 1));
            if names.iter().any(|n| n.len() > IFNAME_MAX) {
                return None;
            }
            let (first, last) = pool.usable();
            let a = first.checked_add(2 * u128::from(k))?;
            let b = a.checked_add(1).filter(|&b| b <= last)?;
            Some(AutoPair {
                names,
                addrs: [pool.at(a), pool.at(b)],
            })
        })
    }

    fn origin(&self, line: Option<usize>) -> String {
        match (&self.source, line) {
            (Source::File(_), Some(n)) => format!("  # line {n}"),
            (Source::Builtin, Some(_)) => String::new(),
            (_, None) => "  # default".into(),
        }
    }

    fn list_lines<T: fmt::Display>(&self, key: &str, items: &[At<T>], none: &str) -> Vec<String> {
        let lines = items
            .iter()
            .map(|i| format!("{key} {}{}", i.value, self.origin(Some(i.line))));
        let none = items.is_empty().then(|| format!("# no {key} line: {none}"));
        none.into_iter().chain(lines).collect()
    }

    /// The effective policy as policy text, one setting per line, with comments saying where
    /// each came from and what is missing. It parses back to the same settings.
    pub fn describe(&self) -> String {
        let mut out = vec![match &self.source {
            Source::Builtin => format!("# built-in policy ({DEFAULT_PATH} does not exist)"),
            Source::File(path) => format!("# policy from {path}"),
        }];
        for w in self.who.iter().filter(|w| w.verb != "capture") {
            out.push(format!("{w}{}", self.origin(Some(w.line))));
        }
        if self.who("allow").next().is_none() {
            out.push("# no allow line: nobody but root may start tunwire".into());
        }
        out.extend(self.list_lines("pool", &self.pools, "no address is allowed"));
        out.extend(self.list_lines("names", &self.names, "no interface name is allowed"));
        out.extend(self.list_lines("tables", &self.tables, "no table is allowed"));
        for (setting, slot, value) in [
            ("max-wires", &self.max_wires, self.max_wires()),
            ("max-mtu", &self.max_mtu, self.max_mtu()),
            ("priority", &self.priority, self.priority()),
        ] {
            let origin = self.origin(slot.as_ref().map(|a| a.line));
            out.push(format!("{setting} {value}{origin}"));
        }
        for w in self.who("capture") {
            out.push(format!("{w}{}", self.origin(Some(w.line))));
        }
        out.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests;
