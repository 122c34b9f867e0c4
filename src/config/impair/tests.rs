// SPDX-License-Identifier: MIT OR Apache-2.0
//! Unit tests of the impairment words: every word and unit, errors, round trips.
use super::*;

fn set(text: &str) -> Impairment {
    match parse_impair(text) {
        Ok(spec) => spec.set,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

fn err(text: &str) -> String {
    match parse_impair(text) {
        Ok(spec) => panic!("{text:?} parsed as {spec:?}"),
        Err(e) => e,
    }
}

fn delay_of(text: &str) -> Delay {
    set(text).delay.unwrap()
}

fn c(pct: f64, corr: f64) -> Chance {
    Chance { pct, corr }
}

#[test]
fn time_units() {
    let cases = [
        ("20ms", 20_000_000),
        ("20msec", 20_000_000),
        ("20msecs", 20_000_000),
        ("20MS", 20_000_000),
        ("1.5ms", 1_500_000),
        (".5ms", 500_000),
        ("2.ms", 2_000_000),
        ("250us", 250_000),
        ("250usec", 250_000),
        ("250usecs", 250_000),
        ("250", 250_000), // bare: microseconds
        ("1.5", 1_500),
        ("2s", 2_000_000_000),
        ("2sec", 2_000_000_000),
        ("2secs", 2_000_000_000),
        ("0.000001s", 1_000),
        ("7ns", 7),
        ("7nsec", 7),
        ("0.0004us", 0),
        ("0.0005us", 1), // half rounds up
        ("0", 0),
        ("000012.500000ms", 12_500_000),
        ("18446744073709551615ns", u64::MAX),
    ];
    for (word, ns) in cases {
        assert_eq!(delay_of(&format!("delay {word}")).time, ns, "{word}");
    }
    assert_eq!(
        err("delay 18446744073709551616ns"),
        "time '18446744073709551616ns' is too large"
    );
    assert_eq!(
        err("delay 99999999999999999999999999999999999999999s"),
        "time '99999999999999999999999999999999999999999s' is too large"
    );
}

#[test]
fn delay_defaults_and_options() {
    assert_eq!(
        delay_of("delay 20ms"),
        Delay {
            time: 20_000_000,
            jitter: 0,
            corr: 0.0,
            dist: Dist::Uniform,
            jitter_reorder: false
        }
    );
    assert_eq!(
        delay_of("delay 20ms 5ms 25% distribution pareto jitter-reorder"),
        Delay {
            time: 20_000_000,
            jitter: 5_000_000,
            corr: 0.25,
            dist: Dist::Pareto,
            jitter_reorder: true
        }
    );
    let d = delay_of("delay 20ms 5ms jitter-reorder distribution normal");
    assert_eq!(
        (d.dist, d.jitter_reorder, d.corr),
        (Dist::Normal, true, 0.0)
    );
    assert_eq!(delay_of("delay 1s 10 50").corr, 0.5);
    assert_eq!(delay_of("delay 1s 10 50").jitter, 10_000);
    assert!(delay_of("delay 1ms jitter-reorder").jitter_reorder);
    for dist in Dist::ALL {
        assert_eq!(
            delay_of(&format!("delay 1ms 1ms distribution {}", dist.name())).dist,
            dist
        );
    }
    // JITTER 0 given explicitly still allows a distribution.
    assert_eq!(
        delay_of("delay 1ms 0 distribution normal").dist,
        Dist::Normal
    );
}

#[test]
fn percentages() {
    let cases = [
        ("10%", 0.1),
        ("10", 0.1),
        ("0.5%", 0.005),
        ("100%", 1.0),
        ("0", 0.0),
        ("0%", 0.0),
        (".1", 0.001),
        ("33.3%", 0.333),
        ("12.3%", 0.123),
    ];
    for (word, v) in cases {
        assert_eq!(
            set(&format!("loss {word}")).loss,
            Some(Loss::Random(c(v, 0.0))),
            "{word}"
        );
    }
    assert_eq!(
        set("loss random 1% 25%").loss,
        Some(Loss::Random(c(0.01, 0.25)))
    );
    assert_eq!(set("loss 1% 25").loss, Some(Loss::Random(c(0.01, 0.25))));
    assert_eq!(set("duplicate 5% 10%").duplicate, Some(c(0.05, 0.1)));
    assert_eq!(set("corrupt 0.1%").corrupt, Some(c(0.001, 0.0)));
}

#[test]
fn gemodel_defaults() {
    let ge = |t: &str| match set(t).loss {
        Some(Loss::Gemodel {
            p,
            r,
            bad_loss,
            good_loss,
        }) => [p, r, bad_loss, good_loss],
        other => panic!("{other:?}"),
    };
    assert_eq!(ge("loss gemodel 1%"), [0.01, 1.0 - 0.01, 1.0, 0.0]);
    assert_eq!(ge("loss gemodel 1% 10%"), [0.01, 0.1, 1.0, 0.0]);
    assert_eq!(ge("loss gemodel 1% 10% 70%"), [0.01, 0.1, 0.7, 0.0]);
    assert_eq!(ge("loss gemodel 1% 10% 70% 0.1%"), [0.01, 0.1, 0.7, 0.001]);
    // A fifth number is not part of the model.
    assert_eq!(
        err("loss gemodel 1 2 3 4 5"),
        "unexpected value '5' after 'loss gemodel 1 2 3 4'"
    );
}

#[test]
fn reorder_rate_limit() {
    assert_eq!(
        set("delay 10ms reorder 25%").reorder,
        Some(Reorder {
            chance: c(0.25, 0.0),
            gap: 1
        })
    );
    assert_eq!(
        set("delay 10ms reorder 25% 50% gap 5").reorder,
        Some(Reorder {
            chance: c(0.25, 0.5),
            gap: 5
        })
    );
    assert_eq!(set("delay 10ms reorder 25 gap 5").reorder.unwrap().gap, 5);
    let rates = [
        ("10mbit", 10_000_000),
        ("10Mbit", 10_000_000),
        ("1500", 1_500),
        ("1500bit", 1_500),
        ("1.5kbit", 1_500),
        ("2gbit", 2_000_000_000),
        ("1tbit", 1_000_000_000_000),
        ("1kibit", 1_024),
        ("1mibit", 1_048_576),
        ("1gibit", 1_073_741_824),
        ("1tibit", 1_099_511_627_776),
        ("100bps", 800),
        ("1kbps", 8_000),
        ("1mbps", 8_000_000),
        ("1MBps", 8_000_000),
        ("1gbps", 8_000_000_000),
        ("1tbps", 8_000_000_000_000),
        ("1kibps", 8_192),
        ("1mibps", 8_388_608),
        ("1gibps", 8_589_934_592),
        ("1tibps", 8_796_093_022_208),
        ("0.5bit", 1),
    ];
    for (word, bits) in rates {
        assert_eq!(set(&format!("rate {word}")).rate, Some(bits), "{word}");
    }
    assert_eq!(set("limit 3").limit, Some(3));
    assert_eq!(set("limit 3").limit(), 3);
    assert_eq!(set("delay 1ms").limit(), DEFAULT_LIMIT);
    assert_eq!(set("limit 4294967295").limit(), u32::MAX);
}

#[test]
fn sides() {
    let spec = parse_impair("tun0: delay 20ms").unwrap();
    assert_eq!(spec.side.as_deref(), Some("tun0"));
    assert_eq!(spec.set, set("delay 20ms"));
    assert_eq!(parse_impair("tun0:delay 20ms").unwrap(), spec);
    assert_eq!(parse_impair("  tun0:   delay   20ms  ").unwrap(), spec);
    assert_eq!(parse_impair("delay 20ms").unwrap().side, None);
    let none = parse_impair("wan-1: none").unwrap();
    assert_eq!(
        (none.side.as_deref(), none.set.is_empty()),
        (Some("wan-1"), true)
    );
    assert!(parse_impair("none").unwrap().set.is_empty());
    assert_eq!(err(": delay 1ms"), "an interface name is empty");
    assert_eq!(err("a/b: delay 1ms"), "'a/b' is not a valid interface name");
    assert_eq!(
        err("0123456789abcdef: delay 1ms"),
        "interface name '0123456789abcdef' is longer than 15 bytes"
    );
    assert_eq!(err("..: loss 1%"), "'..' is not a valid interface name");
    assert_eq!(
        err("tun0:"),
        "no impairment words (e.g. 'delay 20ms loss 1%', or 'none')"
    );
    assert_eq!(
        err("delay 1ms tun1: loss 1%"),
        "side 'tun1:' must come first"
    );
}

#[test]
fn errors_quote_the_word() {
    let cases = [
        ("delay 20xs", "bad time '20xs' in 'delay 20xs' (use us, ms or s)"),
        ("delay 20ms 5xs", "bad time '5xs' in 'delay 20ms 5xs' (use us, ms or s)"),
        ("delay -5ms", "bad time '-5ms' in 'delay -5ms' (use us, ms or s)"),
        ("delay 1.2.3ms", "bad time '1.2.3ms' in 'delay 1.2.3ms' (use us, ms or s)"),
        ("delay", "'delay' needs TIME"),
        ("delay loss 1%", "'delay' needs TIME"),
        ("delay 20ms 5ms 2x", "bad percentage '2x' in 'delay 20ms 5ms 2x' (use e.g. 10% or 0.5%)"),
        ("loss 120%", "percentage '120%' is outside 0-100"),
        ("loss 1% 101", "percentage '101' is outside 0-100"),
        ("loss 1%%", "bad percentage '1%%' in 'loss 1%%' (use e.g. 10% or 0.5%)"),
        ("loss lots", "bad percentage 'lots' in 'loss lots' (use e.g. 10% or 0.5%)"),
        ("loss", "'loss' needs PCT"),
        ("loss random", "'loss random' needs PCT"),
        ("loss gemodel", "'loss gemodel' needs P"),
        ("loss gemodel delay 1ms", "'loss gemodel' needs P"),
        ("loss gemodel 1% 200%", "percentage '200%' is outside 0-100"),
        ("loss state 1", "'loss state' is not supported (use 'loss PCT [CORR]' or 'loss gemodel P [R [1-H [1-K]]]')"),
        ("lose 1%", "unknown word 'lose' (expected delay, loss, duplicate, corrupt, reorder, rate or limit)"),
        ("delay 1ms delay 2ms", "'delay' given twice"),
        ("loss 1% loss gemodel 1%", "'loss' given twice"),
        ("duplicate 1 duplicate 1", "'duplicate' given twice"),
        ("corrupt 1 corrupt 1", "'corrupt' given twice"),
        ("delay 1ms reorder 1 reorder 1", "'reorder' given twice"),
        ("rate 1mbit rate 1mbit", "'rate' given twice"),
        ("limit 1 limit 1", "'limit' given twice"),
        ("delay 1ms 1ms distribution normal distribution pareto", "'distribution' given twice"),
        ("delay 1ms jitter-reorder jitter-reorder", "'jitter-reorder' given twice"),
        ("delay 1ms distribution normal", "'distribution' needs a JITTER (e.g. 'delay 20ms 5ms distribution normal')"),
        ("delay 1ms 1ms distribution gauss", "unknown distribution 'gauss' (use uniform, normal, pareto or paretonormal)"),
        ("delay 1ms 1ms distribution", "'distribution' needs uniform, normal, pareto or paretonormal"),
        ("distribution normal", "'distribution' must follow 'delay TIME [JITTER [CORR]]'"),
        ("loss 1% jitter-reorder", "'jitter-reorder' must follow 'delay TIME [JITTER [CORR]]'"),
        ("delay 1ms gap 2", "'gap' must follow 'reorder PCT [CORR]'"),
        ("gemodel 1", "'gemodel' must follow 'loss'"),
        ("delay 1ms none", "'none' cannot be combined with other words"),
        ("delay 1ms reorder 5% gap 0", "bad gap '0' (use a whole number, at least 1)"),
        ("delay 1ms reorder 5% gap", "'gap' needs N"),
        ("rate 0", "rate '0' must be more than 0"),
        ("rate 0.4bit", "rate '0.4bit' must be more than 0"),
        ("rate 10mbyte", "bad rate '10mbyte' in 'rate 10mbyte' (use e.g. 100kbit, 10mbit or 1gbit)"),
        ("rate 99999999999tbps", "rate '99999999999tbps' is too large"),
        ("rate", "'rate' needs RATE"),
        ("rate 1mbit 20", "unexpected value '20' after 'rate 1mbit'"),
        ("limit 0", "bad limit '0' (use a whole number, at least 1)"),
        ("limit 1.5", "bad limit '1.5' (use a whole number, at least 1)"),
        ("limit +5", "bad limit '+5' (use a whole number, at least 1)"),
        ("limit 4294967296", "bad limit '4294967296' (use a whole number, at least 1)"),
        ("limit", "'limit' needs PACKETS"),
        ("delay 20ms -5ms", "unexpected value '-5ms' after 'delay 20ms'"),
        ("20ms", "unknown word '20ms' (expected delay, loss, duplicate, corrupt, reorder, rate or limit)"),
        ("", "no impairment words (e.g. 'delay 20ms loss 1%', or 'none')"),
        ("   ", "no impairment words (e.g. 'delay 20ms loss 1%', or 'none')"),
    ];
    for (text, want) in cases {
        assert_eq!(err(text), want, "{text:?}");
    }
}

#[test]
fn display_canonical() {
    let text = "delay 20ms 5ms 25% distribution normal loss 1% duplicate 5% limit 1000";
    assert_eq!(set(text).to_string(), text);
    assert_eq!(Impairment::default().to_string(), "none");
    let cases = [
        ("delay 20000us", "delay 20ms"),
        ("delay 1.5ms 0.0015s", "delay 1500us 1500us"),
        ("delay 1.234us", "delay 1.234us"),
        ("delay 1.5", "delay 1.5us"),
        ("delay 0", "delay 0ms"),
        ("delay 2s 1ms distribution uniform", "delay 2s 1ms"),
        (
            "delay 1ms 0 distribution paretonormal",
            "delay 1ms 0ms distribution paretonormal",
        ),
        (
            "limit 7 rate 1500kbit loss random 0.5 10 delay 1ms",
            "delay 1ms loss 0.5% 10% rate 1500kbit limit 7",
        ),
        ("loss gemodel 1%", "loss gemodel 1% 99% 100% 0%"),
        ("delay 1ms reorder 25% gap 1", "delay 1ms reorder 25%"),
        (
            "delay 1ms reorder 25% 0 gap 3",
            "delay 1ms reorder 25% gap 3",
        ),
        ("rate 1kibps", "rate 8192bit"),
        ("rate 1MBps", "rate 8mbit"),
        ("corrupt 0.000001%", "corrupt 0.000001%"),
    ];
    for (text, want) in cases {
        assert_eq!(set(text).to_string(), want, "{text:?}");
    }
    let spec = parse_impair("tun0: loss 1%").unwrap();
    assert_eq!(spec.to_string(), "tun0: loss 1%");
    assert_eq!(
        parse_impair("tun0: none").unwrap().to_string(),
        "tun0: none"
    );
    assert_eq!(parse_impair("loss 1%").unwrap().to_string(), "loss 1%");
}

fn assert_round_trip(spec: &ImpairSpec) {
    let text = spec.to_string();
    match parse_impair(&text) {
        Ok(back) => assert_eq!(&back, spec, "{text:?}"),
        Err(e) => panic!("{spec:?} shown as {text:?} does not parse: {e}"),
    }
}

#[test]
fn round_trip() {
    let texts = [
        "none",
        "delay 20ms",
        "delay 20ms 5ms",
        "delay 20ms 5ms 25%",
        "delay 20.5ms 5.25ms 33.3% distribution paretonormal jitter-reorder",
        "delay 1ns 3ns",
        "delay 18446744073709551615ns 1",
        "tun0: loss 0.1% 12.345678%",
        "loss gemodel 0.3% 12.5% 80% 0.01%",
        "loss gemodel 1%",
        "loss gemodel 3.3333%",
        "duplicate 100% corrupt 0.0001% 99.9999%",
        "delay 10ms reorder 25% 50% gap 5 rate 1.5mbit limit 1",
        "rate 1kibit",
        "rate 1tibps",
        "rate 18446744073709551615",
        "wan0: limit 4294967295",
    ];
    for t in texts {
        assert_round_trip(&parse_impair(t).unwrap());
    }
    // Fractions no decimal percentage shows exactly still round-trip.
    for pct in [
        1.0 / 3.0,
        0.1 + 0.2,
        1e-9,
        f64::MIN_POSITIVE,
        0.999_999_999_999_999_9,
        5e-324,
    ] {
        let imp = Impairment {
            loss: Some(Loss::Random(c(pct, pct))),
            ..Impairment::default()
        };
        assert_round_trip(&ImpairSpec {
            side: None,
            set: imp,
        });
    }
}

#[test]
fn merge_and_validate() {
    let specs: Vec<ImpairSpec> = [
        "delay 10ms loss 1%",
        "tun1: loss 5% rate 1mbit",
        "tun0: duplicate 1%",
        "delay 20ms",
        "tun1: delay 30ms 1ms",
    ]
    .iter()
    .map(|t| parse_impair(t).unwrap())
    .collect();
    assert_eq!(
        merge(&specs, "tun0"),
        set("delay 20ms loss 1% duplicate 1%")
    );
    assert_eq!(
        merge(&specs, "tun1"),
        set("delay 30ms 1ms loss 5% rate 1mbit")
    );
    assert_eq!(merge(&specs, "other"), set("delay 20ms loss 1%"));
    assert!(merge(&[], "tun0").is_empty());
    assert!(merge(&specs[1..3], "x").is_empty());

    assert_eq!(validate(&set("delay 1ms reorder 1%")), Ok(()));
    assert_eq!(validate(&set("delay 0 1ms reorder 1%")), Ok(()));
    let no_delay = "'reorder' needs 'delay' (it sends some packets without the delay)";
    assert_eq!(validate(&set("reorder 1%")).unwrap_err(), no_delay);
    assert_eq!(validate(&set("delay 0 reorder 1%")).unwrap_err(), no_delay);
    // The rule applies to the merged result: delay for both, reorder for one.
    let split = [
        parse_impair("delay 5ms").unwrap(),
        parse_impair("tun0: reorder 5%").unwrap(),
    ];
    assert_eq!(validate(&merge(&split, "tun0")), Ok(()));
    assert_eq!(validate(&merge(&split[1..], "tun0")).unwrap_err(), no_delay);
    assert_eq!(validate(&Impairment::default()), Ok(()));
}

#[test]
fn is_empty_and_limit() {
    assert!(Impairment::default().is_empty());
    assert!(!set("limit 5").is_empty());
    assert_eq!(Impairment::default().limit(), 10_000);
}

/// Garbage never panics; whatever parses shows as text that parses back equal.
#[test]
fn garbage_never_panics() {
    let frags = [
        "delay",
        "loss",
        "duplicate",
        "corrupt",
        "reorder",
        "rate",
        "limit",
        "gap",
        "random",
        "gemodel",
        "state",
        "distribution",
        "normal",
        "pareto",
        "paretonormal",
        "uniform",
        "jitter-reorder",
        "none",
        "tun0:",
        ":",
        "a:b:",
        "0",
        "1",
        "5",
        "10%",
        "100%",
        "101%",
        "0.5",
        ".",
        "..",
        "1.",
        ".5",
        "-1",
        "+1",
        "1e5",
        "nan",
        "inf",
        "20ms",
        "1.5s",
        "3us",
        "7ns",
        "10mbit",
        "1kibps",
        "1.5",
        "%",
        "%%",
        "99999999999999999999999999999999999999999999",
        "0.0000000000000000000000000000000001",
        "ms",
        "µs",
        "é:",
        "日本",
        "\u{0}",
        "tun0:delay",
        "delay:",
        "12.3.4",
        "1ms1",
        "ü%",
    ];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut parsed = 0;
    for _ in 0..40_000 {
        let n = next() % 9;
        let mut text = String::new();
        for _ in 0..n {
            text.push_str(frags[(next() % frags.len() as u64) as usize]);
            text.push(if next() % 5 == 0 { '\t' } else { ' ' });
        }
        if let Ok(spec) = parse_impair(&text) {
            parsed += 1;
            assert_round_trip(&spec);
            let _ = validate(&spec.set);
        }
    }
    assert!(parsed > 100, "only {parsed} parsed");
    // Raw bytes, including invalid UTF-8 made lossy.
    for _ in 0..20_000 {
        let bytes: Vec<u8> = (0..next() % 24).map(|_| next() as u8).collect();
        if let Ok(spec) = parse_impair(&String::from_utf8_lossy(&bytes)) {
            assert_round_trip(&spec);
        }
    }
}

#[test]
fn shift_point_cases() {
    let cases = [
        ("12.3", 2, "1230"),
        ("12.3", -2, "0.123"),
        ("0.5", -2, "0.005"),
        (".5", -2, "0.005"),
        ("5.", -2, "0.05"),
        ("0", 2, "0"),
        ("0", -2, "0"),
        ("0.000001", 2, "0.0001"),
        ("100", -2, "1"),
        ("0010.0100", 0, "10.01"),
    ];
    for (num, shift, want) in cases {
        assert_eq!(shift_point(num, shift), want, "{num} {shift}");
    }
}
