// SPDX-License-Identifier: MIT OR Apache-2.0
//! The one table of options and commands. The command-line parser, the config-file parser,
//! `--help` (rendered here) and the man-page test (tests/docs.rs) all read this table, so an
//! option is added by adding one row. Pure data and formatting: no I/O.

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// No value (`-v`); may repeat.
    Flag,
    /// One value; given twice, the last wins.
    Value,
    /// One value per occurrence; every occurrence counts (`--impair`).
    Many,
}

/// One option, as `--help` shows it and both parsers accept it.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// Long name without dashes; also the config-file key.
    pub long: &'static str,
    pub short: Option<char>,
    /// Placeholder of the value in `--help` (`N`, `NAME`, `on|off`); None for flags.
    pub arg: Option<&'static str>,
    /// One sentence or two; `--help` wraps it.
    pub help: &'static str,
    /// Shown as `[default: X]`.
    pub default: Option<&'static str>,
    pub takes: Takes,
    /// Accepted as a line of a `--config` file.
    pub in_file: bool,
    /// The `--help` section it belongs to.
    pub section: Section,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Options of run, check and teardown.
    Wire,
    /// Options of `list`.
    List,
    /// Options of `capture`.
    Capture,
    /// The calls of Wireshark's extcap interface.
    Extcap,
    /// Options of every command (logging, help).
    General,
}

impl Section {
    /// The heading of the section in `--help`.
    pub fn heading(self) -> &'static str {
        match self {
            Section::Wire => "Options:",
            Section::List => "List options:",
            Section::Capture => "Capture options:",
            Section::Extcap => "Wireshark extcap calls:",
            Section::General => "General options:",
        }
    }
}

/// One command, as `--help` lists it.
#[derive(Debug, Clone, Copy)]
pub struct Cmd {
    pub name: &'static str,
    pub help: &'static str,
}

pub const COMMANDS: &[Cmd] = &[
    Cmd {
        name: "run",
        help: "set up the pair and relay until SIGINT or SIGTERM (the default)",
    },
    Cmd {
        name: "teardown",
        help: "remove what killed wires left: with sides, the rules on those names; without, \
               every leftover of tunwire's",
    },
    Cmd {
        name: "check",
        help: "validate the configuration and print the plan as `ip` commands; change nothing",
    },
    Cmd {
        name: "capture",
        help: "stream a running wire's packets as pcapng (WIRE: either of its interface names; \
               it may be left out when one wire runs), for its owner, root, and the policy's \
               capture readers",
    },
    Cmd {
        name: "list",
        help: "show the running wires (names, addresses, table, owner, relay pid, start time, \
               counters); `status` is the same",
    },
];

const fn wire(
    long: &'static str,
    arg: &'static str,
    help: &'static str,
    default: Option<&'static str>,
) -> Opt {
    Opt {
        long,
        short: None,
        arg: Some(arg),
        help,
        default,
        takes: Takes::Value,
        in_file: true,
        section: Section::Wire,
    }
}

pub const OPTIONS: &[Opt] = &[
    wire(
        "table",
        "N",
        "routing table for the pair's local routes (1-4294967295, not 253, 254 or 255)",
        Some("13"),
    ),
    wire(
        "priority",
        "N",
        "preference of the `iif` rules; must sort before the main rule (32766)",
        Some("100"),
    ),
    wire(
        "mtu",
        "N",
        "MTU of both TUNs, 68-65535, at least 1280 with IPv6",
        Some("1500"),
    ),
    wire(
        "mode",
        "tun|tap",
        "TUN devices carry IP packets; TAP devices carry Ethernet frames (ARP and neighbour \
         discovery cross the wire, each device has a fixed MAC address derived from its name)",
        Some("tun"),
    ),
    wire(
        "offload",
        "on|off",
        "pass GSO super-packets through (IFF_VNET_HDR); `off` relays MTU-sized packets, and \
         impairment turns it off, so that it acts on wire-size packets",
        Some("on"),
    ),
    wire(
        "user",
        "NAME",
        "account the instance becomes; only when started as root",
        Some("the sudo caller, else nobody"),
    ),
    Opt {
        takes: Takes::Flag,
        arg: None,
        ..wire(
            "force",
            "",
            "claim addresses that are assigned or routed elsewhere, or a table with foreign routes; root only, and logged",
            None,
        )
    },
    Opt {
        takes: Takes::Many,
        ..wire(
            "impair",
            "'[SIDE:] WORDS'",
            "impair the packets read from SIDE (from both sides without it) as these tc-netem(8) \
             words say: delay TIME [JITTER [CORR%]] [distribution uniform|normal|pareto|\
             paretonormal] [jitter-reorder], loss PCT [CORR%], loss gemodel P [R [1-H [1-K]]], \
             duplicate PCT [CORR%], corrupt PCT [CORR%], reorder PCT [CORR%] [gap N], rate RATE, \
             limit PACKETS; repeatable",
            None,
        )
    },
    wire(
        "seed",
        "N",
        "seed of the impairment's random streams (0-18446744073709551615); the ready line and \
         the capture show the seed in use",
        Some("drawn at random"),
    ),
    wire(
        "pcap",
        "FILE",
        "capture both directions to FILE; `-` writes to stdout",
        None,
    ),
    wire(
        "pcap-format",
        "F",
        "pcapng or pcap (classic, LINKTYPE_RAW)",
        Some("pcapng"),
    ),
    wire(
        "snaplen",
        "N",
        "store at most N bytes of each packet",
        Some("262144"),
    ),
    wire(
        "pcap-max-size",
        "SIZE",
        "start a new capture file after SIZE bytes (K, M, G suffixes)",
        None,
    ),
    wire(
        "pcap-files",
        "N",
        "with --pcap-max-size, keep at most N files",
        Some("no limit"),
    ),
    Opt {
        long: "json",
        short: None,
        arg: None,
        help: "print one JSON array with one object per wire",
        default: None,
        takes: Takes::Flag,
        in_file: false,
        section: Section::List,
    },
    Opt {
        short: Some('w'),
        in_file: false,
        section: Section::Capture,
        ..wire(
            "write",
            "FILE",
            "write the stream to FILE; `-` writes to stdout, the default when stdout is not a \
             terminal",
            None,
        )
    },
    Opt {
        short: Some('c'),
        in_file: false,
        section: Section::Capture,
        ..wire("count", "COUNT", "stop after COUNT packets", None)
    },
    Opt {
        in_file: false,
        section: Section::Capture,
        ..wire("duration", "SECONDS", "stop after SECONDS seconds", None)
    },
    Opt {
        long: "list",
        short: None,
        arg: None,
        help: "show which wires run and whether you may capture them",
        default: None,
        takes: Takes::Flag,
        in_file: false,
        section: Section::Capture,
    },
    extcap("extcap-interfaces", None, "list the running wires as capture interfaces"),
    extcap("extcap-interface", Some("IF"), "the interface of the calls below"),
    extcap("extcap-dlts", None, "print the interface's link type"),
    extcap("extcap-config", None, "print the interface's settings (the snapshot length)"),
    extcap("capture", None, "capture from the interface into --fifo"),
    extcap("fifo", Some("PATH"), "the FIFO Wireshark reads the capture from"),
    extcap(
        "extcap-capture-filter",
        Some("F"),
        "refused when not empty: tunwire takes no capture filter; use a display filter",
    ),
    extcap(
        "extcap-version",
        Some("V"),
        "Wireshark's version; accepted, like the other arguments Wireshark adds",
    ),
    Opt {
        in_file: false,
        ..wire(
            "config",
            "FILE",
            "read options from FILE, one `option value` per line; the command line wins",
            None,
        )
    },
    Opt {
        long: "verbose",
        short: Some('v'),
        arg: None,
        help: "log more (repeatable); RUST_LOG also works",
        default: None,
        takes: Takes::Flag,
        in_file: true,
        section: Section::General,
    },
    Opt {
        long: "quiet",
        short: Some('q'),
        arg: None,
        help: "log only warnings and errors",
        default: None,
        takes: Takes::Flag,
        in_file: true,
        section: Section::General,
    },
    Opt {
        long: "help",
        short: Some('h'),
        arg: None,
        help: "print this help and exit",
        default: None,
        takes: Takes::Flag,
        in_file: false,
        section: Section::General,
    },
    Opt {
        long: "version",
        short: Some('V'),
        arg: None,
        help: "print the version and exit",
        default: None,
        takes: Takes::Flag,
        in_file: false,
        section: Section::General,
    },
];

const fn extcap(long: &'static str, arg: Option<&'static str>, help: &'static str) -> Opt {
    Opt {
        long,
        short: None,
        arg,
        help,
        default: None,
        takes: if arg.is_some() {
            Takes::Value
        } else {
            Takes::Flag
        },
        in_file: false,
        section: Section::Extcap,
    }
}

/// The option with this long name.
pub fn find(long: &str) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| o.long == long)
}

/// The option with this short letter.
pub fn find_short(short: char) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| o.short == Some(short))
}

const USAGE_HEAD: &str = "\
Usage: tunwire [run] [OPTIONS] [A B] [-- PROG [ARGS...]]
       tunwire teardown [OPTIONS] [A B]
       tunwire check [OPTIONS] [A B] [-- PROG [ARGS...]]
       tunwire list [--json]
       tunwire capture [WIRE] [-w FILE|-] [--snaplen N] [-c COUNT]
                       [--duration SECONDS]
       tunwire capture --list

A user-space wire between two TUN interfaces: traffic between the two local
addresses crosses this program instead of lo.
";

/// The `Sides:` section: (head, text).
pub const SIDES: (&str, &str) = (
    "A B",
    "NAME=ADDR[,ADDR]: one IPv4 and/or one IPv6 address per side, with the same families on \
     both sides; taken exactly as given, or refused [default: the first free pair of the \
     policy's pools: tun0=192.168.13.1 tun1=192.168.13.2, else tun2=192.168.13.3 \
     tun3=192.168.13.4, ...]",
);

/// The `Program:` section: (head, text).
pub const PROG: (&str, &str) = (
    "-- PROG [ARGS...]",
    "run PROG in place of the built-in relay, as the relay's user with no capability: fd 3 \
     and fd 4 are sides A and B, one packet per read and per write (LISTEN_FDS=2, \
     LISTEN_FDNAMES, TUNWIRE_A, TUNWIRE_B, TUNWIRE_MTU, TUNWIRE_MODE in its environment); with \
     --pcap or --impair tunwire stays in the path; tunwire exits with PROG's status",
);

/// Paragraphs after the options, each already wrapped.
pub const USAGE_TAIL: &str = "\
Capture: open FILE in Wireshark (`wireshark FILE`), or watch live with
  tunwire --pcap - | wireshark -k -i -
With offload on, the capture shows the super-packets that crossed the wire, as
tcpdump shows them on lo; use --offload off for MTU-sized packets.
Rotation: --pcap wire.pcapng --pcap-max-size 100M --pcap-files 5 writes
wire_00001_<UTC time>.pcapng, wire_00002_..., keeping the newest 5; each file
opens on its own. SIGHUP reopens the capture file (logrotate); a file
that was not moved away is continued. SIGUSR1 logs the counters.

Exit status: 0 stopped normally, 1 runtime failure, 2 usage or configuration
error, 77 not permitted.
";

/// Where descriptions start in `--help`.
const COLUMN: usize = 27;
const WIDTH: usize = 80;

/// The head of an option item: `  -v, --verbose` or `      --table N`.
pub fn head(o: &Opt) -> String {
    let short = match o.short {
        Some(c) => format!("-{c}, "),
        None => "    ".to_string(),
    };
    match o.arg {
        Some(a) => format!("  {short}--{} {a}", o.long),
        None => format!("  {short}--{}", o.long),
    }
}

/// `text` after `head`, wrapped at WIDTH with continuation lines indented to COLUMN. A head
/// longer than the column is followed by one space. `[default: X]` is never broken.
fn item(out: &mut String, head: &str, text: &str) {
    let mut line = head.to_string();
    let mut first_word = true;
    let text = text.replace("[default: ", "[default:\u{1}");
    for word in text.split_whitespace() {
        let word = word.replace('\u{1}', " ");
        if line.len() < COLUMN {
            line.push_str(&" ".repeat(COLUMN - line.len()));
            first_word = true;
        } else if first_word && line.len() >= COLUMN && !line.ends_with(' ') {
            line.push(' ');
        }
        if !first_word && line.len() + 1 + word.len() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = " ".repeat(COLUMN);
            first_word = true;
        }
        if !first_word {
            line.push(' ');
        }
        line.push_str(&word);
        first_word = false;
    }
    out.push_str(&line);
    out.push('\n');
}

/// The description of `o` with its default, as one string.
pub fn described(o: &Opt) -> String {
    match o.default {
        Some(d) => format!("{} [default: {d}]", o.help),
        None => o.help.to_string(),
    }
}

/// The whole `--help` text.
pub fn usage() -> String {
    let mut out = String::from(USAGE_HEAD);
    out.push_str("\nCommands:\n");
    for c in COMMANDS {
        item(&mut out, &format!("  {}", c.name), c.help);
    }
    out.push_str("\nSides:\n");
    item(&mut out, &format!("  {}", SIDES.0), SIDES.1);
    out.push_str("\nProgram:\n");
    item(&mut out, &format!("  {}", PROG.0), PROG.1);
    for section in [
        Section::Wire,
        Section::Capture,
        Section::List,
        Section::Extcap,
        Section::General,
    ] {
        out.push('\n');
        out.push_str(section.heading());
        out.push('\n');
        for o in OPTIONS.iter().filter(|o| o.section == section) {
            item(&mut out, &head(o), &described(o));
        }
    }
    out.push('\n');
    out.push_str(USAGE_TAIL);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_valid() {
        for (i, o) in OPTIONS.iter().enumerate() {
            assert!(
                OPTIONS[i + 1..].iter().all(|p| p.long != o.long),
                "{}",
                o.long
            );
            assert!(o.long.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'));
            assert_eq!(o.arg.is_none(), o.takes == Takes::Flag, "{}", o.long);
        }
    }

    #[test]
    fn help_is_wrapped_and_aligned() {
        let u = usage();
        for line in u.lines() {
            assert!(line.len() <= WIDTH, "too long: {line:?}");
        }
        assert!(
            u.contains("      --table N            routing table for the pair's local routes\n")
        );
        assert!(u.contains("      --pcap-max-size SIZE start a new capture file"));
        assert!(u.contains("[default: pcapng]"));
        assert!(u.contains("  -v, --verbose            log more (repeatable); RUST_LOG also works"));
        assert!(u.contains("[default: 13]"));
    }
}
