//! Smoke test of the benchmark: `bench/bench.py --quick` (one 1 s round of veth and tunwire,
//! each in a fresh network namespace) must start, finish and report a TCP number for tunwire.
//! Needs root: skipped locally without it, a hard failure in CI (CI=true).

use std::process::Command;

mod common;

#[test]
#[ignore = "needs root"]
fn bench_quick_reports_tunwire_tcp() {
    if !common::require_root() {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/bench.py");
    let out = Command::new("python3")
        .args([script, "--quick", "--bin", env!("CARGO_BIN_EXE_tunwire")])
        .output()
        .expect("run python3 bench/bench.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench.py --quick failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| tunwire |"))
        .unwrap_or_else(|| panic!("no tunwire row in the table:\n{stdout}"));
    let tcp = row
        .split('|')
        .nth(2)
        .and_then(|c| c.split_whitespace().next());
    let gbps: f64 = tcp
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("tunwire TCP is not a number in {row:?}"));
    assert!(gbps > 0.0, "tunwire TCP throughput is {gbps} in {row:?}");
}
