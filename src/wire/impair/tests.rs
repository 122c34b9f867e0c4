// SPDX-License-Identifier: MIT OR Apache-2.0
//! Unit tests of the impairment engine: reproducibility, distributions, queue, counters.
use super::random::*;
use super::*;
use crate::config::impair::parse_impair;

const MS: u64 = 1_000_000;

fn imp(text: &str) -> Impairment {
    parse_impair(text).unwrap().set
}

fn engine(text: &str, seed: u64) -> Engine<u32> {
    Engine::new(&imp(text), seed, 0)
}

/// Feeds `n` packets `gap` ns apart, queueing every copy and popping what is due.
fn run(text: &str, seed: u64, stream: u64, n: usize, gap: u64) -> Vec<Decision> {
    let mut e = Engine::<u32>::new(&imp(text), seed, stream);
    (0..n)
        .map(|i| {
            let now = i as u64 * gap;
            while e.pop_due(now).is_some() {}
            let d = e.decide(now, 40 + i % 1400);
            for p in d.copies.iter().flatten() {
                let _ = e.enqueue(p, i as u32);
            }
            d
        })
        .collect()
}

/// Delays of the first copies of `n` packets arriving 1 s apart.
fn delays(text: &str, n: usize) -> Vec<f64> {
    let mut e = engine(text, 42);
    (0..n as u64)
        .map(|i| e.decide(i * 1_000 * MS, 100).copies[0].unwrap().delay as f64 / MS as f64)
        .collect()
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

fn near(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want.abs()
}

const ALL: &str = "delay 10ms 5ms 20% distribution normal loss 10% duplicate 5% corrupt 5% \
                   reorder 5% gap 3 rate 100mbit limit 100000";

#[test]
fn xoshiro256starstar_reference() {
    // Published output of xoshiro256starstar.c for state {1, 2, 3, 4}
    // (also the reference test of the rand_xoshiro crate).
    let mut rng = Xoshiro256 { s: [1, 2, 3, 4] };
    let want = [
        11520,
        0,
        1509978240,
        1215971899390074240,
        1216172134540287360,
        607988272756665600,
        16172922978634559625,
        8476171486693032832,
        10595114339597558777,
        2904607092377533576,
    ];
    for w in want {
        assert_eq!(rng.next_u64(), w);
    }
}

#[test]
fn splitmix64_reference() {
    // Published output of splitmix64.c for seed 1477776061723855037.
    let mut sm = SplitMix64(1477776061723855037);
    for w in [
        1985237415132408290,
        2979275885539914483,
        13511426838097143398,
        8488337342461049707,
        15141737807933549159,
    ] {
        assert_eq!(sm.next_u64(), w);
    }
}

#[test]
fn math_helpers() {
    assert!(unit(0) > 0.0 && unit(u64::MAX) < 1.0);
    assert_eq!(unit(1 << 63), 0.5 + 0.5 / 4_503_599_627_370_496.0);
    let mut x = 1e-300;
    while x < 1e300 {
        assert!(
            (ln(x) - x.ln()).abs() <= 4.0 * f64::EPSILON * x.ln().abs().max(1.0),
            "ln {x}"
        );
        x *= 1.37;
    }
    assert_eq!(ln(1.0), 0.0);
    let mut x = 1.0;
    while x < 1e16 {
        assert!(
            (cbrt(x) - x.cbrt()).abs() <= 2.0 * f64::EPSILON * x.cbrt(),
            "cbrt {x}"
        );
        x *= 1.11;
    }
    // Reference quantiles (Python statistics.NormalDist().inv_cdf).
    for (p, z) in [
        (0.5, 0.0),
        (0.975, 1.9599639845400536),
        (0.9, 1.2815515655446008),
        (0.3, -0.5244005127080407),
        (0.01, -2.3263478740408408),
        (0.001, -3.090232306167813),
        (1e-10, -6.361340902404056),
    ] {
        assert!(
            (normal_quantile(p) - z).abs() <= 2e-9 * z.abs().max(1.0),
            "{p}"
        );
        if p >= 1e-3 {
            // 1 - p is exact enough here to test the upper tail.
            assert!(
                (normal_quantile(1.0 - p) + z).abs() <= 2e-9 * z.abs().max(1.0),
                "{p}"
            );
        }
    }
    assert!((pareto_quantile(1.0 - 1.0 / 8.0) - (2.0 - 1.5) * 2.0 / 3.0f64.sqrt()).abs() < 1e-15);
    assert_eq!(tx_time(1250, 10_000_000), MS);
    assert_eq!(tx_time(1, 3), 2_666_666_667);
    assert_eq!(tx_time(usize::MAX, 1), u64::MAX);
}

#[test]
fn reproducible() {
    let a = run(ALL, 7, 0, 10_000, 100_000);
    assert_eq!(a, run(ALL, 7, 0, 10_000, 100_000));
    assert_ne!(a, run(ALL, 8, 0, 10_000, 100_000));
    assert_ne!(a, run(ALL, 7, 1, 10_000, 100_000));
    // Every feature actually did something.
    assert!(a.iter().any(|d| d.drop == Some(DropCause::Loss)));
    let copies = || a.iter().flat_map(|d| d.copies.iter().flatten());
    assert!(copies().any(|p| p.duplicate));
    assert!(copies().any(|p| p.corrupt.is_some()));
    assert!(copies().any(|p| p.reordered));
}

#[test]
fn loss_rate() {
    let d = run("loss 10%", 1, 0, 100_000, 1000);
    let lost = d.iter().filter(|d| d.drop == Some(DropCause::Loss)).count();
    assert!((9_000..=11_000).contains(&lost), "{lost}");
    assert!(d.iter().all(|d| d.drop.is_some() != d.copies[0].is_some()));
    let mut e = engine("loss 0%", 1);
    assert!((0..10_000).all(|i| e.decide(i, 10).drop.is_none()));
    let mut e = engine("loss 100%", 1);
    assert!((0..10_000).all(|i| e.decide(i, 10).drop == Some(DropCause::Loss)));
    assert_eq!(e.counters().lost, 10_000);
}

#[test]
fn features_are_independent() {
    let lost = |text| {
        run(text, 5, 0, 20_000, 100_000)
            .iter()
            .map(|d| d.drop == Some(DropCause::Loss))
            .collect::<Vec<_>>()
    };
    assert_eq!(lost("loss 10%"), lost(ALL));
    assert_eq!(lost("loss 10%"), lost("loss 10% duplicate 50% corrupt 50%"));
    // Jitter samples do not move when loss and duplicates are added.
    let jitter = |text: &str| {
        let mut e = engine(text, 5);
        (0..5_000u64)
            .map(|i| e.decide(i * MS, 100).copies[0].map(|p| p.delay))
            .collect::<Vec<_>>()
    };
    let plain = jitter("delay 10ms 5ms jitter-reorder");
    let busy = jitter("delay 10ms 5ms jitter-reorder loss 20% duplicate 50% corrupt 5%");
    assert!(busy.iter().any(Option::is_none));
    for (a, b) in plain.iter().zip(&busy) {
        if b.is_some() {
            assert_eq!(a, b);
        }
    }
}

#[test]
fn constant_delay() {
    let d = run("delay 50ms", 3, 0, 2_000, MS);
    assert!(d
        .iter()
        .all(|d| d.copies[0].unwrap().delay == 50 * MS && d.copies[1].is_none()));
    assert!(d.iter().all(|d| d.copies[0].unwrap().corrupt.is_none()));
}

#[test]
fn uniform_jitter() {
    let v = delays("delay 20ms 10ms", 100_000);
    assert!(v.iter().all(|&d| (10.0..=30.0).contains(&d)));
    let (mean, std) = mean_std(&v);
    assert!(near(mean, 20.0, 0.01), "{mean}");
    assert!(near(std, 10.0 / 3.0f64.sqrt(), 0.02), "{std}");
}

#[test]
fn normal_jitter() {
    let (mean, std) = mean_std(&delays("delay 20ms 10ms distribution normal", 100_000));
    assert!(near(mean, 20.0, 0.02), "{mean}");
    assert!(near(std, 10.0, 0.05), "{std}");
    // Clipped at 0, never negative.
    let v = delays("delay 1ms 10ms distribution normal", 10_000);
    assert!(v.contains(&0.0) && v.iter().all(|&d| d >= 0.0));
}

#[test]
fn pareto_jitter() {
    let v = delays("delay 20ms 10ms distribution pareto", 200_000);
    let (mean, std) = mean_std(&v);
    assert!(near(mean, 20.0, 0.03), "{mean}");
    assert!(near(std, 10.0, 0.25), "{std}"); // heavy tail: slow to converge
    let floor = 20.0 - 10.0 * 0.5 * 2.0 / 3.0f64.sqrt();
    assert!(v.iter().all(|&d| d >= floor - 1e-6));
    let (mean, _) = mean_std(&delays(
        "delay 20ms 10ms distribution paretonormal",
        200_000,
    ));
    assert!(near(mean, 20.0, 0.03), "{mean}");
}

#[test]
fn full_correlation_is_constant() {
    let v = delays("delay 20ms 10ms 100%", 1_000);
    assert!(v.iter().all(|&d| d == v[0]));
    let v = delays("delay 20ms 10ms 90%", 1_000);
    assert!(v.iter().any(|&d| d != v[0]));
}

#[test]
fn keep_order_or_jitter_reorder() {
    let send_times = |text| {
        run(text, 9, 0, 5_000, MS)
            .iter()
            .map(|d| d.copies[0].unwrap().send_at)
            .collect::<Vec<_>>()
    };
    let kept = send_times("delay 20ms 10ms");
    assert!(kept.windows(2).all(|w| w[0] <= w[1]));
    let free = send_times("delay 20ms 10ms jitter-reorder");
    assert!(free.windows(2).any(|w| w[0] > w[1]));
}

#[test]
fn gemodel_bursts() {
    let lost: Vec<bool> = run("loss gemodel 1% 10%", 11, 0, 500_000, 1000)
        .iter()
        .map(|d| d.drop == Some(DropCause::Loss))
        .collect();
    let rate = lost.iter().filter(|&&l| l).count() as f64 / lost.len() as f64;
    assert!(near(rate, 0.01 / 0.11, 0.1), "{rate}");
    let bursts = lost.windows(2).filter(|w| w[1] && !w[0]).count() as f64;
    let mean_burst = lost.iter().filter(|&&l| l).count() as f64 / bursts;
    assert!(near(mean_burst, 10.0, 0.1), "{mean_burst}");
    assert!(run("loss gemodel 0%", 1, 0, 20_000, 1000)
        .iter()
        .all(|d| d.drop.is_none()));
}

#[test]
fn rate_serialises() {
    let mut e = engine("rate 10mbit", 1);
    for k in 1..=10 {
        let p = e.decide(0, 1250).copies[0].unwrap();
        assert_eq!((p.send_at, p.delay), (k * MS, k * MS));
    }
    // An idle link starts at arrival; delay comes first, then serialisation.
    let mut e = engine("delay 10ms rate 10mbit", 1);
    assert_eq!(e.decide(0, 1250).copies[0].unwrap().send_at, 11 * MS);
    assert_eq!(e.decide(0, 1250).copies[0].unwrap().send_at, 12 * MS);
    assert_eq!(
        e.decide(100 * MS, 1250).copies[0].unwrap().send_at,
        111 * MS
    );
}

#[test]
fn queue_limit_and_order() {
    let mut e = engine("delay 10ms limit 3", 1);
    for i in 0..3 {
        let d = e.decide(0, 100);
        assert_eq!(e.enqueue(&d.copies[0].unwrap(), i), Ok(()));
    }
    assert_eq!(e.decide(0, 100), Decision::dropped(DropCause::QueueFull));
    assert_eq!(e.counters().queue_full, 1);
    assert_eq!(e.next_deadline(), Some(10 * MS));
    assert_eq!(e.pop_due(10 * MS - 1), None);
    assert_eq!(
        (0..4).map(|_| e.pop_due(10 * MS)).collect::<Vec<_>>(),
        [Some(0), Some(1), Some(2), None]
    );
    assert_eq!((e.next_deadline(), e.queued()), (None, 0));

    // Time order first, FIFO among equal times.
    let mut e = engine("delay 10ms 10ms jitter-reorder", 1);
    let mut at = std::collections::HashMap::new();
    for i in 0..500 {
        let now = (i as u64 / 50) * MS; // ten packets with each arrival time
        let p = e.decide(now, 100).copies[0].unwrap();
        at.insert(i, p.send_at);
        e.enqueue(&p, i).unwrap();
    }
    let mut last = (0, 0);
    while let Some(deadline) = e.next_deadline() {
        let i = e.pop_due(deadline).unwrap();
        assert_eq!(at[&i], deadline);
        assert!((at[&i], i) > last || i == 0, "{i}");
        last = (at[&i], i);
    }
    let mut e = engine("delay 10ms jitter-reorder", 1);
    for i in 0..100 {
        let p = e.decide(0, 100).copies[0].unwrap();
        e.enqueue(&p, i).unwrap();
    }
    assert!((0..100).all(|i| e.pop_due(10 * MS) == Some(i)));
}

#[test]
fn heap_keeps_its_capacity() {
    let limit = u64::from(crate::config::impair::DEFAULT_LIMIT);
    let mut e = engine("delay 1s", 1);
    let cap = e.queue.capacity();
    assert!(cap as u64 >= limit);
    for i in 0..limit {
        let d = e.decide(i, 100);
        e.enqueue(&d.copies[0].unwrap(), i as u32).unwrap();
    }
    assert_eq!(e.queue.capacity(), cap);
    assert_eq!(e.decide(limit, 100).drop, Some(DropCause::QueueFull));
}

#[test]
fn reorder_gap() {
    let mut e = engine("delay 10ms reorder 100% gap 5", 1);
    for i in 0..100u64 {
        let p = e.decide(i * MS, 100).copies[0].unwrap();
        e.enqueue(&p, i as u32).unwrap();
        if i % 5 == 4 {
            assert!(p.reordered && p.delay == 0 && p.send_at == i * MS, "{i}");
        } else {
            assert!(!p.reordered && p.delay == 10 * MS, "{i}");
        }
    }
    assert_eq!((e.counters().reordered, e.counters().delayed), (20, 80));
    // The early packet overtakes those queued before it.
    let mut e = engine("delay 10ms reorder 100% gap 2", 1);
    for i in 0..2 {
        let p = e.decide(0, 100).copies[0].unwrap();
        e.enqueue(&p, i).unwrap();
    }
    assert_eq!(e.pop_due(0), Some(1));
    // Without gap, 100% sends every packet at once.
    let mut e = engine("delay 10ms reorder 100%", 1);
    assert!((0..100).all(|i| e.decide(i, 100).copies[0].unwrap().reordered));
}

#[test]
fn duplicate_all() {
    let d = run(
        "delay 10ms 5ms jitter-reorder duplicate 100% limit 100000",
        4,
        0,
        2_000,
        MS,
    );
    for d in &d {
        let (a, b) = (d.copies[0].unwrap(), d.copies[1].unwrap());
        assert!(!a.duplicate && b.duplicate && b.corrupt.is_none());
    }
    // The duplicate has its own delay sample.
    assert!(d
        .iter()
        .any(|d| d.copies[0].unwrap().delay != d.copies[1].unwrap().delay));
    // Keep-order: the duplicate follows the original.
    let d = run(
        "delay 10ms 5ms duplicate 100% limit 100000",
        4,
        0,
        2_000,
        MS,
    );
    assert!(d
        .iter()
        .all(|d| d.copies[0].unwrap().send_at <= d.copies[1].unwrap().send_at));
}

#[test]
fn duplicate_that_does_not_fit() {
    let mut e = engine("rate 10mbit duplicate 100% limit 3", 1);
    let d = e.decide(0, 1250);
    for p in d.copies.iter().flatten() {
        e.enqueue(p, 0).unwrap();
    }
    let d = e.decide(0, 1250);
    assert_eq!(e.enqueue(&d.copies[0].unwrap(), 1), Ok(()));
    assert_eq!(e.enqueue(&d.copies[1].unwrap(), 2), Err(2));
    assert_eq!(e.decide(0, 1250).drop, Some(DropCause::QueueFull));
    assert_eq!(e.pop_due(MS), Some(0));
    // The refused duplicate did not hold the link: 3 ms + 1 ms, not 5 ms.
    assert_eq!(e.decide(MS, 1250).copies[0].unwrap().send_at, 4 * MS);
    let c = e.counters();
    assert_eq!((c.queue_full, c.duplicated, c.delayed), (2, 1, 3));
}

#[test]
fn corrupt_one_bit() {
    let mut e = engine("corrupt 100%", 1);
    let (mut bytes, mut bits) = ([false; 64], [false; 8]);
    for i in 0..10_000 {
        let (byte, bit) = e.decide(i, 64).copies[0].unwrap().corrupt.unwrap();
        assert!(byte < 64 && bit < 8);
        bytes[byte] = true;
        bits[bit as usize] = true;
    }
    assert!(bytes.iter().all(|&b| b) && bits.iter().all(|&b| b));
    assert!((0..100).all(|i| e.decide(i, 1).copies[0].unwrap().corrupt.unwrap().0 == 0));
    assert!((0..100).all(|i| e.decide(i, 0).copies[0].unwrap().corrupt.is_none()));
    let d = run("corrupt 100% duplicate 100%", 1, 0, 100, 1);
    assert!(d
        .iter()
        .all(|d| d.copies[0].unwrap().corrupt.is_some() && d.copies[1].unwrap().corrupt.is_none()));
}

#[test]
fn counters() {
    let mut e = engine(
        "delay 1ms loss 50% duplicate 50% corrupt 50% limit 100000",
        2,
    );
    let mut want = Counters::default();
    for i in 0..1000 {
        let d = e.decide(i, 100);
        match d.drop {
            Some(DropCause::Loss) => want.lost += 1,
            Some(DropCause::QueueFull) => want.queue_full += 1,
            None => {}
        }
        for p in d.copies.iter().flatten() {
            e.enqueue(p, 0).unwrap();
            want.delayed += 1;
            want.duplicated += u64::from(p.duplicate);
            want.corrupted += u64::from(p.corrupt.is_some());
        }
    }
    assert_eq!(*e.counters(), want);
    assert!(want.lost > 400 && want.duplicated > 200 && want.corrupted > 200);
}

#[test]
fn no_impairment_passes_through() {
    let mut e = engine("none", 1);
    let d = e.decide(123, 100);
    let p = d.copies[0].unwrap();
    assert_eq!(
        (d.drop, d.copies[1], p.send_at, p.delay),
        (None, None, 123, 0)
    );
    e.enqueue(&p, 9).unwrap();
    assert_eq!(e.pop_due(123), Some(9));
    assert_eq!(*e.counters(), Counters::default());
    // A hand-built rate of 0 must not divide by zero.
    let zero = Impairment {
        rate: Some(0),
        ..Impairment::default()
    };
    let mut e: Engine<u32> = Engine::new(&zero, 1, 0);
    assert!(e.decide(0, 1500).copies[0].is_some());
}

#[test]
fn reconfigure_keeps_queue() {
    let mut e = engine("delay 100ms", 1);
    for i in 0..3 {
        let p = e.decide(0, 100).copies[0].unwrap();
        e.enqueue(&p, i).unwrap();
    }
    // Keep-order: a later packet still waits for those queued.
    e.reconfigure(&imp("delay 1ms"), 1);
    let p = e.decide(MS, 100).copies[0].unwrap();
    assert_eq!(p.send_at, 100 * MS);
    // jitter-reorder: the new delay applies at once.
    e.reconfigure(&imp("delay 1ms jitter-reorder loss 50%"), 9);
    assert_eq!(e.impairment(), &imp("delay 1ms jitter-reorder loss 50%"));
    let mut fresh = engine("delay 1ms jitter-reorder loss 50%", 9);
    for i in 0..200 {
        let d = e.decide(MS + i, 100);
        assert_eq!(d, fresh.decide(MS + i, 100));
        if let Some(p) = d.copies[0] {
            assert_eq!(p.send_at, 2 * MS + i);
        }
    }
    assert_eq!(e.next_deadline(), Some(100 * MS));
    assert_eq!(e.counters().lost, fresh.counters().lost);
    assert_eq!(e.counters().delayed, 3);
    // A smaller limit refuses new packets until the queue drains.
    e.reconfigure(&imp("limit 2"), 1);
    assert_eq!(e.decide(2 * MS, 100).drop, Some(DropCause::QueueFull));
}

#[test]
fn comments() {
    assert_eq!(drop_comment(DropCause::Loss), "tunwire: drop loss");
    assert_eq!(
        drop_comment(DropCause::QueueFull),
        "tunwire: drop queue-full"
    );
    let mut out = String::with_capacity(128);
    let ptr = out.as_ptr();
    let plan = Plan {
        send_at: 0,
        delay: 20_345_400,
        corrupt: None,
        reordered: true,
        duplicate: true,
    };
    plan_comment(&plan, &mut out);
    assert_eq!(out, "tunwire: delay 20345us, duplicate, reorder");
    let plan = Plan {
        send_at: 0,
        delay: 20_345_500,
        corrupt: Some((34, 5)),
        reordered: false,
        duplicate: false,
    };
    plan_comment(&plan, &mut out);
    assert_eq!(out, "tunwire: delay 20346us, corrupt byte 34 bit 5");
    let plan = Plan {
        send_at: 0,
        delay: u64::MAX,
        corrupt: Some((usize::MAX, 7)),
        reordered: true,
        duplicate: true,
    };
    plan_comment(&plan, &mut out);
    assert_eq!(
        out,
        format!(
            "tunwire: delay {}us, duplicate, corrupt byte {} bit 7, reorder",
            u64::MAX / 1000,
            usize::MAX
        )
    );
    assert_eq!((out.as_ptr(), out.capacity()), (ptr, 128));
    plan_comment(
        &Plan {
            send_at: 5,
            delay: 0,
            corrupt: None,
            reordered: false,
            duplicate: false,
        },
        &mut out,
    );
    assert_eq!(out, "tunwire: delay 0us");
}
