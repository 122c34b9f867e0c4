// SPDX-License-Identifier: MIT OR Apache-2.0
//! Integration tests for `tunwire [OPTIONS] [A B] -- PROG [ARGS...]` (the user's own program in
//! place of the built-in relay) and for `--mode tap`: the real binary in a private network +
//! mount namespace per test (see tests/common), traffic only to 192.168.13.x / fd13:: inside
//! it. The programs are the shipped examples (examples/relay.c, compiled into the test's
//! scratch directory, and examples/drop_every_10th.py), shell one-liners and tiny C probes.
//! Python runs as /usr/bin/python3: the python3 on PATH may be a shim test users cannot run.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The size of the HTTP transfers: 5 MiB of random bytes.
const FIVE_MB: usize = 5 << 20;
const PYTHON: &str = "/usr/bin/python3";
/// `--user twmember`, for starts as root.
const AS_MEMBER: [&str; 2] = ["--user", MEMBER.name];
/// SIGTERM's bit in a SigCgt mask.
const SIGTERM_BIT: u64 = 1 << (15 - 1);

// ----------------------------------------------------------------------------------------------
// Private helpers
// ----------------------------------------------------------------------------------------------

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// Compile C `source` with gcc into the test's scratch dir as `name` (0755, so test users may
/// run it).
fn compile(ns: &Netns, name: &str, source: &Path) -> PathBuf {
    let out = ns.dir().join(name);
    let res = Command::new("gcc")
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(source)
        .output()
        .expect("run gcc");
    assert!(
        res.status.success(),
        "gcc {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&res.stderr)
    );
    fs::set_permissions(&out, fs::Permissions::from_mode(0o755)).expect("chmod program");
    out
}

/// examples/relay.c, compiled.
fn relay_c(ns: &Netns) -> PathBuf {
    compile(ns, "relay", &example("relay.c"))
}

/// A file in the scratch dir with `text` and `mode`.
fn scratch_file(ns: &Netns, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = ns.dir().join(name);
    fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod scratch file");
    path
}

/// examples/drop_every_10th.py, copied into the scratch dir (readable by test users).
fn drop_py(ns: &Netns) -> PathBuf {
    let text = fs::read_to_string(example("drop_every_10th.py")).expect("read the example");
    scratch_file(ns, "drop_every_10th.py", &text, 0o644)
}

/// `opts -- prog...` as one argument list.
fn with_prog<'a>(opts: &[&'a str], prog: &[&'a str]) -> Vec<&'a str> {
    let mut args = opts.to_vec();
    args.push("--");
    args.extend_from_slice(prog);
    args
}

/// Start a prepared command and wait for the ready line (logged once PROG is about to run and,
/// with --pcap/--impair, the relay in the path is ready too).
fn start_ready(ns: &Netns, cmd: Command) -> Instance {
    let mut tw = ns.start(cmd);
    if let Err(e) = tw.wait_stderr("ready:", READY_TIMEOUT) {
        panic!("tunwire did not become ready: {e}");
    }
    tw
}

/// `tunwire args` as `who`, until ready.
fn up_prog(ns: &Netns, args: &[&str], who: As) -> Instance {
    start_ready(ns, ns.tunwire_cmd(args, who))
}

/// The real path of a program (/bin/sh -> /usr/bin/dash), as /proc/PID/exe shows it.
fn real(path: &str) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|e| panic!("canonicalize {path}: {e}"))
}

fn exe_of(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The program's pid: the supervisor's child that runs `exe` (it has executed PROG).
fn prog_pid(tw: &Instance, exe: &Path) -> u32 {
    let sup = tw.pid();
    let mut found = None;
    wait_until(READY_TIMEOUT, || {
        found = children(sup)
            .into_iter()
            .find(|&c| exe_of(c).as_deref() == Some(exe));
        found.is_some()
    });
    found.unwrap_or_else(|| {
        let kids: Vec<_> = children(sup).into_iter().map(|c| (c, exe_of(c))).collect();
        panic!(
            "no child of the supervisor {sup} runs {}; children: {kids:?}; stderr:\n{}",
            exe.display(),
            tw.stderr()
        )
    })
}

/// The signal mask `field` (SigCgt, SigBlk...) of `pid`.
fn sig_mask(pid: u32, field: &str) -> u64 {
    let status = proc_status(pid);
    let hex = status
        .get(field)
        .unwrap_or_else(|| panic!("no {field} for {pid}"));
    u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{field} {hex:?}: {e}"))
}

/// Wait until `pid` has a SIGTERM handler (so a SIGTERM now is handled, not fatal).
fn wait_handles_sigterm(pid: u32) {
    assert!(
        wait_until(READY_TIMEOUT, || alive(pid)
            && sig_mask(pid, "SigCgt") & SIGTERM_BIT != 0),
        "program {pid} never installed its SIGTERM handler"
    );
}

/// Wait until the instance's stdout contains `needle`; panics with the output otherwise.
fn wait_stdout(tw: &mut Instance, needle: &str) -> String {
    let mut out = String::new();
    let found = wait_until(READY_TIMEOUT, || {
        out = String::from_utf8_lossy(&tw.stdout()).into_owned();
        out.contains(needle) || tw.has_exited()
    });
    assert!(
        found && out.contains(needle),
        "the program printed no {needle:?}; stdout:\n{out}\nstderr:\n{}",
        tw.stderr()
    );
    out
}

/// `ping -4 -c COUNT OPTS TO`: (transmitted, received) from ping's summary line.
fn ping_counts(ns: &Netns, count: u32, opts: &str, to: &str) -> (u32, u32, String) {
    let out = ns.sh(&format!("ping -n -q -c {count} {opts} {to}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary:\n{text}"));
    let nums: Vec<u32> = line
        .split(',')
        .filter_map(|part| part.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(nums.len() >= 2, "ping summary {line:?}");
    (nums[0], nums[1], text)
}

/// Lines `read N from fd FD` of examples/relay.c's output, as (N, FD).
fn relay_reads(out: &str) -> Vec<(usize, u32)> {
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("read ")?;
            let (n, fd) = rest.split_once(" from fd ")?;
            Some((n.parse().ok()?, fd.trim().parse().ok()?))
        })
        .collect()
}

/// The web root with a 5 MiB random `file.bin`; returns (dir, sha256).
fn five_mb_site(ns: &Netns) -> (PathBuf, String) {
    let www = ns.dir().join("www");
    fs::create_dir(&www).expect("create www");
    fs::set_permissions(&www, fs::Permissions::from_mode(0o755)).expect("chmod www");
    let sha = random_file(ns, &www.join("file.bin"), FIVE_MB);
    (www, sha)
}

/// curl http://TO:PORT/file.bin across the wire (`to` may be an IPv6 address); asserts curl
/// succeeded and returns the sha256 of what arrived.
fn curl_sha(ns: &Netns, to: &str) -> String {
    let host = if to.contains(':') {
        format!("[{to}]")
    } else {
        to.to_owned()
    };
    let out = ns.dir().join("download.bin");
    ns.sh_ok(&format!(
        "rm -f {0} && curl -sS --fail --max-time 120 -o {0} http://{host}:{HTTP_PORT}/file.bin \
         && sha256sum < {0}",
        q(p(&out))
    ))
    .split_whitespace()
    .next()
    .expect("sha256sum output")
    .to_owned()
}

/// A 5 MiB transfer from `to` (the server side) arrives intact.
fn assert_five_mb_intact(ns: &Netns, www: &Path, sha: &str, to: &str, what: &str) {
    let _server = http_server(ns, www);
    let got = curl_sha(ns, to);
    assert_eq!(
        got, sha,
        "{what}: the 5 MiB file from {to} changed on the way"
    );
}

// ----------------------------------------------------------------------------------------------
// 1: the examples carry ping and a 5 MB transfer
// ----------------------------------------------------------------------------------------------

fn c_relay_carries_ping_and_five_megabytes(who: As, opts: &[&str]) {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let relay = relay_c(&ns);
    let (www, sha) = five_mb_site(&ns);
    let before = ns.state();
    let mut tw = up_prog(&ns, &with_prog(opts, &[p(&relay)]), who);
    let ready = format!("running {} as twmember", relay.display());
    assert!(
        tw.stderr().contains(&ready),
        "the ready line should say {ready:?}:\n{}",
        tw.stderr()
    );
    let pid = prog_pid(&tw, &relay);
    ns.assert_ping(B4);
    // One packet per read: 84 bytes for a ping (20 IP + 8 ICMP + 56 data), each way.
    let out = wait_stdout(&mut tw, "read 84 from fd 4");
    let reads = relay_reads(&out);
    for fd in [3, 4] {
        let n = reads.iter().filter(|r| **r == (84, fd)).count();
        assert!(
            n >= 3,
            "relay.c should print `read 84 from fd {fd}` for each of the 3 echoes, got {n}:\n{out}"
        );
    }
    assert_five_mb_intact(&ns, &www, &sha, B4, "examples/relay.c");
    wait_handles_sigterm(pid);
    stop_clean(&ns, &mut tw);
    assert!(!alive(pid), "the program outlived tunwire");
    assert_eq!(ns.state(), before, "the state after the stop differs");
}

#[test]
#[ignore = "needs root"]
fn c_relay_as_root_with_user_carries_ping_and_five_megabytes() {
    c_relay_carries_ping_and_five_megabytes(As::Root, &AS_MEMBER);
}

#[test]
#[ignore = "needs root"]
fn c_relay_as_member_with_file_caps_carries_ping_and_five_megabytes() {
    c_relay_carries_ping_and_five_megabytes(As::CapUser(&MEMBER), &[]);
}

#[test]
#[ignore = "needs root"]
fn python_example_drops_every_10th_packet_and_tcp_still_delivers() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let script = drop_py(&ns);
    let (www, sha) = five_mb_site(&ns);
    let before = ns.state();
    let mut tw = up_prog(&ns, &with_prog(&AS_MEMBER, &[PYTHON, p(&script)]), As::Root);
    let pid = prog_pid(&tw, &real(PYTHON));
    wait_handles_sigterm(pid);
    // Requests and replies alternate, so every 10th packet is every 5th reply: 4 of 20 lost.
    let (sent, got, text) = ping_counts(&ns, 20, "-i 0.05 -W 2", B4);
    assert_eq!(sent, 20, "{text}");
    assert!(
        got < sent && got >= 14,
        "every 10th packet dropped should lose about 4 of 20 pings, got {got}:\n{text}"
    );
    let mut stderr = String::new();
    assert!(
        wait_until(READY_TIMEOUT, || {
            stderr = tw.stderr();
            stderr.contains("dropped packet 10 (")
        }),
        "the example should log why it dropped packet 10:\n{stderr}"
    );
    assert!(stderr.contains("every 10th is lost"), "{stderr}");
    assert_five_mb_intact(&ns, &www, &sha, B4, "drop_every_10th.py");
    let drops = tw
        .stderr()
        .lines()
        .filter(|l| l.contains("every 10th is lost"))
        .count();
    assert!(
        drops > 100,
        "a 5 MiB transfer is thousands of packets; only {drops} drops logged"
    );
    stop_clean(&ns, &mut tw);
    assert_eq!(ns.state(), before, "the state after the stop differs");
}

// ----------------------------------------------------------------------------------------------
// 2: tunwire's exit status is the program's
// ----------------------------------------------------------------------------------------------

/// No process is left in the namespace (the anchor aside).
fn assert_nothing_runs(ns: &Netns) {
    let left: Vec<_> = ns
        .pids_inside()
        .into_iter()
        .filter(|&pid| alive(pid))
        .map(|pid| (pid, exe_of(pid)))
        .collect();
    assert!(left.is_empty(), "processes left in the namespace: {left:?}");
}

#[test]
#[ignore = "needs root"]
fn exit_status_is_the_programs() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let before = ns.state();
    for (who, opts) in [(As::Root, &AS_MEMBER[..]), (As::CapUser(&MEMBER), &[][..])] {
        for code in [0, 7, 255] {
            // The program keeps the wire until the test says go, then exits with `code`.
            let go = ns.dir().join(format!("go-{code}"));
            let _ = fs::remove_file(&go);
            let script = format!(
                "echo up; while [ ! -e {} ]; do sleep 0.05; done; exit {code}",
                q(p(&go))
            );
            let mut tw = up_prog(&ns, &with_prog(opts, &["/bin/sh", "-c", &script]), who);
            wait_stdout(&mut tw, "up");
            assert!(
                ns.has_link("tun0") && ns.has_link("tun1") && !tw.has_exited(),
                "the wire should be up while the program runs ({who:?})"
            );
            fs::write(&go, "").expect("write the go file");
            let e = tw.wait_exit(EXIT_TIMEOUT);
            assert_eq!(
                e.code,
                Some(code),
                "`exit {code}` in the program should be tunwire's status ({who:?}): {e}"
            );
            assert!(
                e.stderr.contains(&format!("sh exited with status {code}")),
                "the log should say how the program ended: {e}"
            );
            ns.assert_restored(&before, &format!("after `exit {code}` ({who:?})"));
        }
    }
}

#[test]
#[ignore = "needs root"]
fn sigterm_gives_0_when_the_program_handles_it_and_143_when_it_dies_of_it() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let relay = relay_c(&ns);
    let script = drop_py(&ns);
    let before = ns.state();
    // Both examples catch SIGTERM (relay.c SIGINT too) and exit 0; tunwire forwards the
    // signal and reports that 0.
    for (prog, exe, sig) in [
        (vec![p(&relay)], relay.clone(), "TERM"),
        (vec![p(&relay)], relay.clone(), "INT"),
        (vec![PYTHON, p(&script)], real(PYTHON), "TERM"),
    ] {
        let mut tw = up_prog(&ns, &with_prog(&AS_MEMBER, &prog), As::Root);
        let pid = prog_pid(&tw, &exe);
        wait_handles_sigterm(pid);
        ns.assert_ping(B4);
        let e = tw.stop(sig);
        assert_eq!(e.code, Some(0), "SIG{sig} to tunwire running {prog:?}: {e}");
        assert!(
            e.stderr.contains("exited with status 0"),
            "{prog:?} should have exited by itself after the forwarded SIG{sig}: {e}"
        );
        assert!(!alive(pid), "{prog:?} outlived tunwire");
        ns.assert_restored(&before, &format!("after stopping {prog:?}"));
    }
    // A program without a handler dies of the forwarded SIGTERM: 128 + 15.
    let mut tw = up_prog(
        &ns,
        &with_prog(&AS_MEMBER, &["/bin/sleep", "1000"]),
        As::Root,
    );
    let pid = prog_pid(&tw, &real("/bin/sleep"));
    let e = tw.stop("TERM");
    assert_eq!(e.code, Some(143), "sleep killed by SIGTERM: {e}");
    assert!(!alive(pid), "sleep outlived tunwire");
    ns.assert_restored(&before, "after sleep died of SIGTERM");
}

#[test]
#[ignore = "needs root"]
fn signals_ignored_where_tunwire_started_are_not_ignored_by_the_program() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let before = ns.state();
    // As from a script's background job (SIGINT ignored) under a runtime that ignores SIGPIPE
    // and SIGHUP (nohup): ignored actions survive execve.
    let mut cmd = ns.tunwire_cmd(&with_prog(&AS_MEMBER, &["/bin/sleep", "1000"]), As::Root);
    // SAFETY: only async-signal-safe calls (sigaction) between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            use nix::sys::signal::{signal, SigHandler, Signal};
            for sig in [Signal::SIGINT, Signal::SIGPIPE, Signal::SIGHUP] {
                signal(sig, SigHandler::SigIgn).map_err(std::io::Error::from)?;
            }
            Ok(())
        })
    };
    let mut tw = start_ready(&ns, cmd);
    let pid = prog_pid(&tw, &real("/bin/sleep"));
    let ignored = cap_mask(&proc_status(pid), "SigIgn");
    // Signals 1-31; real-time ones are not tunwire's to reset.
    assert_eq!(
        ignored & 0x7fff_ffff,
        0,
        "the program starts with every standard signal's default action (SigIgn {ignored:x})"
    );
    // The supervisor reads SIGINT although it was ignored, and forwards it: sleep dies of it.
    let e = tw.stop("INT");
    assert_eq!(e.code, Some(130), "SIGINT to tunwire running sleep: {e}");
    assert!(!alive(pid), "sleep outlived tunwire");
    ns.assert_restored(&before, "after SIGINT");
}

#[test]
#[ignore = "needs root"]
fn a_program_that_ignores_sigterm_is_killed_by_a_second_one() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let before = ns.state();
    let script = "trap '' TERM; while :; do sleep 0.1; done";
    let mut tw = up_prog(
        &ns,
        &with_prog(&AS_MEMBER, &["/bin/sh", "-c", script]),
        As::Root,
    );
    let pid = prog_pid(&tw, &real("/bin/sh"));
    tw.signal("TERM");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(alive(pid), "the program ignores SIGTERM");
    tw.signal("TERM");
    let e = tw.wait_exit(EXIT_TIMEOUT);
    assert_eq!(
        e.code,
        Some(137),
        "killed by SIGKILL after the second SIGTERM: {e}"
    );
    assert!(e.stderr.contains("again: killing"), "{e}");
    ns.assert_restored(&before, "after the second SIGTERM");
}

#[test]
#[ignore = "needs root"]
fn a_program_killed_by_a_signal_gives_128_plus_n_and_leaves_nothing() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let relay = relay_c(&ns);
    let pcap = member_dir(&ns, "cap").join("killed.pcapng");
    let with_pcap = ["--user", MEMBER.name, "--pcap", p(&pcap)];
    let before = ns.state();
    for (sig, code, who, opts) in [
        ("KILL", 137, As::Root, &AS_MEMBER[..]),
        ("SEGV", 139, As::Root, &AS_MEMBER[..]),
        ("KILL", 137, As::CapUser(&MEMBER), &[][..]),
        // With the relay in the path: it must go too.
        ("KILL", 137, As::Root, &with_pcap[..]),
    ] {
        let mut tw = up_prog(&ns, &with_prog(opts, &[p(&relay)]), who);
        let pid = prog_pid(&tw, &relay);
        ns.assert_ping(B4);
        assert!(signal(pid, sig), "kill -{sig} {pid}");
        let e = tw.wait_exit(EXIT_TIMEOUT);
        assert_eq!(
            e.code,
            Some(code),
            "relay.c killed by SIG{sig} ({who:?}) should give {code}: {e}"
        );
        assert!(
            e.stderr.contains(&format!("relay was killed by SIG{sig}")),
            "the log should say how the program ended: {e}"
        );
        ns.assert_no_leftovers();
        assert_nothing_runs(&ns);
        assert_eq!(
            ns.state(),
            before,
            "state after SIG{sig} to the program ({who:?} {opts:?})"
        );
    }
}

#[test]
#[ignore = "needs root"]
fn sigkill_of_tunwire_takes_the_program_with_it() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let relay = relay_c(&ns);
    let before = ns.state();
    let mut tw = up_prog(&ns, &with_prog(&AS_MEMBER, &[p(&relay)]), As::Root);
    let pid = prog_pid(&tw, &relay);
    ns.assert_ping(B4);
    assert!(signal(tw.pid(), "KILL"), "kill -KILL supervisor");
    let e = tw.wait_exit(EXIT_TIMEOUT);
    assert_eq!(e.signal, Some(9), "{e}");
    // The parent-death signal kills the program; with it go the last descriptors.
    assert!(
        wait_until(EXIT_TIMEOUT, || !alive(pid)),
        "the program outlived its supervisor"
    );
    assert!(
        wait_until(EXIT_TIMEOUT, || !ns.has_link("tun0")
            && !ns.has_link("tun1")),
        "the TUNs should vanish with the program's descriptors"
    );
    assert_nothing_runs(&ns);
    // Only the rules are left, as after any killed wire; teardown removes them.
    let e = ns.run_tunwire(&["teardown"], As::Root);
    assert_eq!(e.code, Some(0), "teardown: {e}");
    assert_eq!(ns.state(), before, "state after teardown");
}

// ----------------------------------------------------------------------------------------------
// 3: nothing is left behind, not even by the program's daemonized children
// ----------------------------------------------------------------------------------------------

/// /proc/PID/fd as a map from descriptor to what it points at.
fn fds(pid: u32) -> std::collections::BTreeMap<u32, String> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(e.path()).ok()?;
            Some((fd, target.to_string_lossy().into_owned()))
        })
        .collect()
}

/// The parent pid of `pid` (from /proc/PID/stat), if it exists.
fn ppid_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The device descriptors `pid` holds (fds that point at /dev/net/tun).
fn tun_fds(pid: u32) -> Vec<u32> {
    fds(pid)
        .into_iter()
        .filter(|(_, t)| t == "/dev/net/tun")
        .map(|(fd, _)| fd)
        .collect()
}

#[test]
#[ignore = "needs root"]
fn a_daemonized_shell_child_holding_the_devices_is_killed_at_stop() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let relay = relay_c(&ns);
    let before = ns.state();
    // The subshell starts a new session with a sleep holding both devices (fd 3 also as its
    // stdin), and exits: the sleep is an orphan. Then the shell becomes relay.c.
    let script = format!("(setsid sleep 1000 <&3 &) ; exec {}", q(p(&relay)));
    let mut tw = up_prog(
        &ns,
        &with_prog(&AS_MEMBER, &["/bin/sh", "-c", &script]),
        As::Root,
    );
    let pid = prog_pid(&tw, &relay);
    let sleep = real("/bin/sleep");
    // The orphan is the supervisor's now (it is the program's subreaper).
    let mut daemon = None;
    assert!(
        wait_until(READY_TIMEOUT, || {
            daemon = children(tw.pid())
                .into_iter()
                .find(|&c| exe_of(c).as_deref() == Some(&*sleep));
            daemon.is_some()
        }),
        "the daemonized sleep never became the supervisor's child: {:?}",
        children(tw.pid())
    );
    let daemon = daemon.unwrap();
    assert_eq!(
        tun_fds(daemon),
        vec![0, 3, 4],
        "the daemon should hold both devices: {:?}",
        fds(daemon)
    );
    ns.assert_ping(B4);
    wait_handles_sigterm(pid);
    stop_clean(&ns, &mut tw);
    assert!(
        !alive(daemon),
        "the daemonized child outlived the wire: {}",
        proc_status(daemon)
            .get("State")
            .cloned()
            .unwrap_or_default()
    );
    assert_nothing_runs(&ns);
    assert_eq!(ns.state(), before, "state after the stop");
}

/// Forks a grandchild in a new session that keeps fds 3 and 4 and sleeps; writes its pid to
/// argv[2]; then the program itself waits for the file argv[1] and exits 3.
const PY_DAEMON: &str = r#"
import os, sys, time
go, pidfile = sys.argv[1], sys.argv[2]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pidfile + ".tmp", pidfile)
        while True:
            time.sleep(1000)
    os._exit(0)
os.wait()
while not os.path.exists(go):
    time.sleep(0.05)
sys.exit(3)
"#;

#[test]
#[ignore = "needs root"]
fn a_python_daemon_holding_the_devices_is_killed_when_the_program_exits() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let script = scratch_file(&ns, "daemon.py", PY_DAEMON, 0o644);
    let home = member_dir(&ns, "home");
    let go = ns.dir().join("go");
    let pidfile = home.join("daemon.pid");
    let before = ns.state();
    let mut tw = up_prog(
        &ns,
        &with_prog(&AS_MEMBER, &[PYTHON, p(&script), p(&go), p(&pidfile)]),
        As::Root,
    );
    let mut daemon = 0;
    assert!(
        wait_until(READY_TIMEOUT, || {
            daemon = fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            daemon != 0 && ppid_of(daemon) == Some(tw.pid())
        }),
        "the python daemon ({daemon}) never became the supervisor's orphan; stderr:\n{}",
        tw.stderr()
    );
    assert_eq!(
        tun_fds(daemon),
        vec![3, 4],
        "the daemon should hold both devices: {:?}",
        fds(daemon)
    );
    let sid = fs::read_to_string(format!("/proc/{daemon}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(") ")?
                .1
                .split_whitespace()
                .nth(3)?
                .parse::<u32>()
                .ok()
        });
    assert!(
        sid.is_some() && sid != Some(tw.pid()),
        "the daemon should be in a session of its own"
    );
    assert!(
        ns.has_link("tun0") && ns.has_link("tun1") && !tw.has_exited(),
        "the wire should be up while the program runs"
    );
    fs::write(&go, "").expect("write the go file");
    let e = tw.wait_exit(EXIT_TIMEOUT);
    assert_eq!(e.code, Some(3), "the program's `sys.exit(3)`: {e}");
    assert!(!alive(daemon), "the daemon outlived the wire");
    assert_nothing_runs(&ns);
    ns.assert_restored(&before, "after the program exited");
}

/// Outside the wire (started by the test as twmember): receives two descriptors on an
/// abstract socket of the namespace and keeps them.
const PY_HOLDER: &str = r#"
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0tunwire-test-holder")
print("listening", file=sys.stderr, flush=True)
msg, fds, flags, addr = socket.recv_fds(s, 16, 2)
print("holding", *[os.readlink(f"/proc/self/fd/{fd}") for fd in fds], flush=True)
while True:
    time.sleep(1000)
"#;

/// The program: hands fds 3 and 4 to the holder, then waits for SIGTERM.
const PY_SENDER: &str = r#"
import signal, socket, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect("\0tunwire-test-holder")
socket.send_fds(s, [b"tun"], [3, 4])
print("sent", flush=True)
while True:
    signal.pause()
"#;

#[test]
#[ignore = "needs root"]
fn devices_handed_to_another_process_are_deleted_at_stop() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let holder_py = scratch_file(&ns, "holder.py", PY_HOLDER, 0o644);
    let sender_py = scratch_file(&ns, "sender.py", PY_SENDER, 0o644);
    let before = ns.state();
    // The same user, but no descendant of tunwire: the subreaper cannot kill it.
    let mut holder = ns.spawn_bg(&format!(
        "exec setpriv --reuid={0} --regid={0} --init-groups {PYTHON} {1}",
        MEMBER.uid,
        q(p(&holder_py))
    ));
    holder.wait_stderr("listening", READY_TIMEOUT);
    let mut tw = up_prog(
        &ns,
        &with_prog(&AS_MEMBER, &[PYTHON, p(&sender_py)]),
        As::Root,
    );
    wait_stdout(&mut tw, "sent");
    assert!(
        wait_until(READY_TIMEOUT, || holder.stdout().contains("holding")),
        "the holder did not get the descriptors: {}{}",
        holder.stdout(),
        holder.stderr()
    );
    assert_eq!(
        holder.stdout().trim(),
        "holding /dev/net/tun /dev/net/tun",
        "the holder should have both devices"
    );
    let pid = prog_pid(&tw, &real(PYTHON));
    wait_handles_sigterm(pid);
    let e = stop_clean(&ns, &mut tw);
    assert!(
        e.stderr
            .contains("was still held by another process; deleted it"),
        "the supervisor should say it deleted the held devices: {e}"
    );
    assert!(
        holder.wait(std::time::Duration::ZERO).code.is_none(),
        "the holder is outside the wire and should still run"
    );
    assert_eq!(ns.state(), before, "state after the stop");
}

// ----------------------------------------------------------------------------------------------
// 4: the program runs as the relay would
// ----------------------------------------------------------------------------------------------

const ZERO_CAPS: &str = "0000000000000000";

/// /proc/PID/environ as its entries.
fn environ(pid: u32) -> Vec<String> {
    let raw = fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/environ: {e}"));
    raw.split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect()
}

/// Fds 3 and 4 of `pid` are blocking (no O_NONBLOCK in /proc/PID/fdinfo).
fn assert_blocking(pid: u32) {
    for fd in [3, 4] {
        let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).expect("fdinfo");
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| u32::from_str_radix(f.trim(), 8).expect("octal flags"))
            .expect("flags line");
        assert_eq!(
            flags & 0o4000,
            0,
            "fd {fd} should be blocking (no O_NONBLOCK)"
        );
    }
}

/// The command line of `tunwire args` as `who`, run from `cwd` by a caller that leaves the
/// descriptors 3, 4, 5, 7 and 42 open (not close-on-exec) and sets `env`.
fn tunwire_from(ns: &Netns, cwd: &Path, args: &[&str], who: As, env: &[(&str, &str)]) -> Command {
    let mut cmd = ns.command("bash");
    cmd.arg("-c")
        .arg(
            r#"cd "$1" && shift && exec 3</dev/null 4</dev/null 5</dev/null 7</dev/null 42</dev/null && exec "$@""#,
        )
        .arg("bash")
        .arg(cwd);
    match who {
        As::Root => {
            cmd.arg(BIN);
        }
        As::CapUser(user) | As::User(user) => {
            cmd.arg("setpriv")
                .arg(format!("--reuid={}", user.uid))
                .arg(format!("--regid={}", user.gid))
                .arg("--init-groups")
                .arg(ns.binary_copy(matches!(who, As::CapUser(_))));
        }
    }
    cmd.args(args);
    scrub_env(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn program_runs_as_the_relay_would(who: As, opts: &[&str]) {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let cwd = ns.dir().join("cwd");
    fs::create_dir(&cwd).expect("create cwd");
    fs::set_permissions(&cwd, fs::Permissions::from_mode(0o755)).expect("chmod cwd");
    // Named relative to the caller's cwd, as a shell would take it.
    let relay = compile(&ns, "cwd/relay", &example("relay.c"));
    let env = [
        ("FOO", "bar"),
        ("LD_PRELOAD", "libc.so.6"),
        ("LD_LIBRARY_PATH", "/nonexistent"),
        ("GCONV_PATH", "/nonexistent"),
        ("NOTIFY_SOCKET", "@tunwire-test-nobody-listens"),
        ("LISTEN_FDS", "9"),
        ("TUNWIRE_MTU", "9000"),
    ];
    let cmd = tunwire_from(&ns, &cwd, &with_prog(opts, &["./relay"]), who, &env);
    let mut tw = start_ready(&ns, cmd);
    let pid = prog_pid(&tw, &relay);
    let status = proc_status(pid);

    assert_eq!(status_ids(&status, "Uid"), vec![MEMBER.uid; 4], "Uid");
    assert_eq!(status_ids(&status, "Gid"), vec![MEMBER.gid; 4], "Gid");
    let groups: std::collections::BTreeSet<u32> =
        status_ids(&status, "Groups").into_iter().collect();
    let want: std::collections::BTreeSet<u32> = member_gids().into_iter().collect();
    assert_eq!(
        groups,
        want,
        "Groups should be all {} of twmember's gids",
        want.len()
    );
    for field in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(
            status.get(field).map(String::as_str),
            Some(ZERO_CAPS),
            "{field}: {status:#?}"
        );
    }
    match who {
        As::Root => assert_eq!(
            status.get("CapBnd").map(String::as_str),
            Some(ZERO_CAPS),
            "CapBnd after a root start"
        ),
        _ => {
            // Without CAP_SETPCAP the bounding set cannot shrink; it must not grow.
            let own = cap_mask(&proc_status(std::process::id()), "CapBnd");
            let bnd = cap_mask(&status, "CapBnd");
            assert_eq!(bnd & !own, 0, "CapBnd {bnd:016x} grew beyond {own:016x}");
        }
    }
    assert_eq!(status.get("NoNewPrivs").map(String::as_str), Some("1"));
    // The supervisor blocks the signals it reads from a signalfd; the program gets them.
    assert_eq!(sig_mask(pid, "SigBlk"), 0, "no signal should stay blocked");
    assert_eq!(
        status.get("Seccomp").map(String::as_str),
        Some("2"),
        "a seccomp filter"
    );
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd"),
        cwd,
        "the program's cwd should be the caller's"
    );

    let fds = fds(pid);
    assert_eq!(
        fds.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4],
        "exactly 0-4 open, whatever the caller left open: {fds:?}"
    );
    assert_eq!(fds[&0], "/dev/null", "stdin: {fds:?}");
    assert_eq!(fds[&1], p(tw.stdout_path()), "stdout is tunwire's: {fds:?}");
    assert_eq!(fds[&3], "/dev/net/tun", "fd 3: {fds:?}");
    assert_eq!(fds[&4], "/dev/net/tun", "fd 4: {fds:?}");
    assert_blocking(pid);

    let env = environ(pid);
    for want in [
        "LISTEN_FDS=2".to_owned(),
        "LISTEN_FDNAMES=tun0:tun1".to_owned(),
        format!("LISTEN_PID={pid}"),
        "TUNWIRE_A=tun0=192.168.13.1".to_owned(),
        "TUNWIRE_B=tun1=192.168.13.2".to_owned(),
        "TUNWIRE_MTU=1500".to_owned(),
        "TUNWIRE_MODE=tun".to_owned(),
        "FOO=bar".to_owned(),
    ] {
        assert!(env.contains(&want), "{want} missing: {env:#?}");
    }
    for key in ["LISTEN_FDS", "LISTEN_PID", "TUNWIRE_MTU"] {
        let n = env
            .iter()
            .filter(|e| e.starts_with(&format!("{key}=")))
            .count();
        assert_eq!(n, 1, "{key} should appear once: {env:#?}");
    }
    for gone in [
        "LD_PRELOAD=",
        "LD_LIBRARY_PATH=",
        "GCONV_PATH=",
        "NOTIFY_SOCKET=",
    ] {
        assert!(
            !env.iter().any(|e| e.starts_with(gone)),
            "{gone} from the caller reached the program: {env:#?}"
        );
    }

    // The descriptors are the wire's ends.
    ns.assert_ping(B4);
    wait_stdout(&mut tw, "read 84 from fd 3");
    wait_handles_sigterm(pid);
    stop_clean(&ns, &mut tw);
}

#[test]
#[ignore = "needs root"]
fn program_runs_as_the_relay_would_after_a_root_start() {
    program_runs_as_the_relay_would(As::Root, &AS_MEMBER);
}

#[test]
#[ignore = "needs root"]
fn program_runs_as_the_relay_would_for_a_member_with_file_caps() {
    program_runs_as_the_relay_would(As::CapUser(&MEMBER), &[]);
}

// ----------------------------------------------------------------------------------------------
// 5: the seccomp filter keeps the devices from outliving the wire
// ----------------------------------------------------------------------------------------------

/// Tries the ioctls that would make a device outlive the wire (or re-attach a descriptor) on
/// fds 3 and 4, with arguments that would work without the filter, and prints each result;
/// TUNGETIFF shows the filter lets harmless requests through and that the fds are the TUNs.
const TUN_IOCTLS_C: &str = r#"
#include <errno.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static void try(int fd, const char *name, unsigned long req, unsigned long arg)
{
    long r = syscall(SYS_ioctl, fd, req, arg);
    if (r < 0)
        printf("fd %d %s %#lx -> %s\n", fd, name, req, errno == EPERM ? "EPERM" : strerror(errno));
    else
        printf("fd %d %s %#lx -> ok\n", fd, name, req);
}

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

int main(void)
{
    signal(SIGTERM, on_term);
    for (int fd = 3; fd <= 4; fd++) {
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        if (syscall(SYS_ioctl, fd, TUNGETIFF, &ifr) == 0)
            printf("fd %d TUNGETIFF -> ok %s\n", fd, ifr.ifr_name);
        else
            printf("fd %d TUNGETIFF -> %s\n", fd, strerror(errno));
        struct ifreq newif;
        memset(&newif, 0, sizeof newif);
        strcpy(newif.ifr_name, "twescape%d");
        newif.ifr_flags = IFF_TUN | IFF_NO_PI;
        struct ifreq queue;
        memset(&queue, 0, sizeof queue);
        queue.ifr_flags = IFF_DETACH_QUEUE;
        try(fd, "TUNSETPERSIST", TUNSETPERSIST, 1);
        try(fd, "TUNSETOWNER", TUNSETOWNER, 64002);
        try(fd, "TUNSETGROUP", TUNSETGROUP, 64002);
        try(fd, "TUNSETIFF", TUNSETIFF, (unsigned long)&newif);
        try(fd, "TUNSETQUEUE", TUNSETQUEUE, (unsigned long)&queue);
        try(fd, "TUNSETLINK", TUNSETLINK, 1);
        /* The kernel reads the request as an unsigned int: high bits must not slip past. */
        try(fd, "TUNSETPERSIST|1<<32", TUNSETPERSIST | (1UL << 32), 1);
        try(fd, "TUNSETOWNER|high", TUNSETOWNER | 0xffffffff00000000UL, 64002);
    }
    printf("done\n");
    fflush(stdout);
    for (;;)
        pause();
}
"#;

#[test]
#[ignore = "needs root"]
fn seccomp_refuses_the_ioctls_that_would_let_the_devices_outlive_the_wire() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let src = scratch_file(&ns, "tun_ioctls.c", TUN_IOCTLS_C, 0o644);
    let probe = compile(&ns, "tun_ioctls", &src);
    let before = ns.state();
    let mut tw = up_prog(&ns, &with_prog(&[], &[p(&probe)]), As::CapUser(&MEMBER));
    let out = wait_stdout(&mut tw, "done");
    let lines: Vec<&str> = out.lines().collect();
    for (fd, dev) in [(3, "tun0"), (4, "tun1")] {
        let control = format!("fd {fd} TUNGETIFF -> ok {dev}");
        assert!(
            lines.contains(&control.as_str()),
            "{control:?} (the filter lets other requests through; fd {fd} is {dev}):\n{out}"
        );
        for (name, req) in [
            ("TUNSETPERSIST", 0x4004_54cb_u64),
            ("TUNSETOWNER", 0x4004_54cc),
            ("TUNSETGROUP", 0x4004_54ce),
            ("TUNSETIFF", 0x4004_54ca),
            ("TUNSETQUEUE", 0x4004_54d9),
            ("TUNSETLINK", 0x4004_54cd),
            ("TUNSETPERSIST|1<<32", 0x1_4004_54cb),
            ("TUNSETOWNER|high", 0xffff_ffff_4004_54cc),
        ] {
            let want = format!("fd {fd} {name} {req:#x} -> EPERM");
            assert!(lines.contains(&want.as_str()), "want {want:?}:\n{out}");
        }
    }
    // Nothing took: not persistent, still owned by the program's user, no new device.
    for dev in ["tun0", "tun1"] {
        let link = ns.sh_ok(&format!("ip -d link show dev {dev}"));
        assert!(
            link.contains("persist off")
                && link.contains("user twmember")
                && !link.contains("twstranger"),
            "{dev} was changed by the program:\n{link}"
        );
    }
    let links = ns.sh_ok("ip -o link show");
    assert!(
        !links.contains("twescape"),
        "a new device appeared:\n{links}"
    );
    let e = stop_clean(&ns, &mut tw);
    assert!(!e.stderr.contains("still held"), "{e}");
    assert_eq!(
        ns.state(),
        before,
        "the devices should vanish with the wire"
    );
}

// ----------------------------------------------------------------------------------------------
// 6: the program can never regain privileges
// ----------------------------------------------------------------------------------------------

fn program_cannot_regain_privileges(who: As, opts: &[&str]) {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    // A copy of cat with cap_net_admin+ep prints its own capabilities; a setuid-root copy of
    // id prints its effective uid.
    let capcat = ns.dir().join("capcat");
    let suid_id = ns.dir().join("suid-id");
    ns.sh_ok(&format!(
        "cp /bin/cat {0} && chmod 0755 {0} && setcap cap_net_admin+ep {0}
         cp /usr/bin/id {1} && chown root:root {1} && chmod 4755 {1}",
        q(p(&capcat)),
        q(p(&suid_id))
    ));
    // The copies work outside the wire: the same user gains the capability and uid 0.
    let setpriv = format!("setpriv --reuid={0} --regid={0} --init-groups", MEMBER.uid);
    let outside = ns.sh_ok(&format!(
        "{setpriv} {} /proc/self/status | grep ^CapEff:; {setpriv} {} -u",
        q(p(&capcat)),
        q(p(&suid_id))
    ));
    assert_eq!(
        outside, "CapEff:\t0000000000001000\n0\n",
        "control outside the wire: the file capability and the setuid bit should work"
    );

    let script = format!(
        "if setpriv --reuid=0 true 2>/dev/null; then echo 'setpriv: uid 0'; \
         else echo 'setpriv: refused'; fi
         if caps=$({} /proc/self/status); then echo \"$caps\" | grep -E '^Cap(Prm|Eff):'; \
         else echo 'capcat: refused'; fi
         echo \"suid id: $({} -u)\"
         echo \"suid id real: $({} -ru)\"",
        q(p(&capcat)),
        q(p(&suid_id)),
        q(p(&suid_id))
    );
    let e = ns
        .start(ns.tunwire_cmd(&with_prog(opts, &["/bin/sh", "-c", &script]), who))
        .wait_exit(EXIT_TIMEOUT);
    assert_eq!(e.code, Some(0), "the probe script should finish: {e}");
    // The file capability either is not granted (NoNewPrivs) or, when the bounding set is
    // empty (a root start), the kernel refuses to execute a binary it cannot fully grant.
    let want = |caps: &str| {
        format!(
            "setpriv: refused\n{caps}suid id: {0}\nsuid id real: {0}\n",
            MEMBER.uid
        )
    };
    let ran = want(&format!("CapPrm:\t{ZERO_CAPS}\nCapEff:\t{ZERO_CAPS}\n"));
    let refused = want("capcat: refused\n");
    assert!(
        e.stdout == ran || e.stdout == refused,
        "inside the wire ({who:?}), want\n{ran}or\n{refused}got: {e}"
    );
    ns.assert_no_leftovers();
}

#[test]
#[ignore = "needs root"]
fn program_cannot_regain_privileges_after_a_root_start() {
    program_cannot_regain_privileges(As::Root, &AS_MEMBER);
}

#[test]
#[ignore = "needs root"]
fn program_cannot_regain_privileges_for_a_member_with_file_caps() {
    program_cannot_regain_privileges(As::CapUser(&MEMBER), &[]);
}

// ----------------------------------------------------------------------------------------------
// 7: --pcap and --impair with a program: tunwire stays in the path
// ----------------------------------------------------------------------------------------------

/// (interface, direction flag, icmp.type, icmp.seq) of every ICMP frame in `file`.
fn icmp_frames(ns: &Netns, file: &Path) -> Vec<(String, u32, String, String)> {
    tshark_fields(
        ns,
        file,
        "icmp",
        &[
            "frame.interface_name",
            "frame.packet_flags_direction",
            "icmp.type",
            "icmp.seq",
        ],
    )
    .into_iter()
    .map(|r| {
        let dir = u32::from_str_radix(r[1].trim_start_matches("0x"), 16)
            .unwrap_or_else(|e| panic!("direction flag {:?}: {e}", r[1]));
        (r[0].clone(), dir, r[2].clone(), r[3].clone())
    })
    .collect()
}

#[test]
#[ignore = "needs root"]
fn pcap_with_a_program_records_what_it_receives_and_sends() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    // No IPv6 on the TUNs: the pings are the only traffic.
    ns.sh_ok("sysctl -qw net.ipv6.conf.default.disable_ipv6=1");
    let relay = relay_c(&ns);
    let file = member_dir(&ns, "cap").join("prog.pcapng");
    let before = ns.state();
    let mut tw = up_prog(
        &ns,
        &with_prog(&["--user", MEMBER.name, "--pcap", p(&file)], &[p(&relay)]),
        As::Root,
    );
    let pid = prog_pid(&tw, &relay);
    // The program gets a socket per side, and tunwire's relay sits between it and the TUNs.
    let fds = fds(pid);
    assert_eq!(
        fds.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4],
        "{fds:?}"
    );
    for fd in [3, 4] {
        assert!(fds[&fd].starts_with("socket:["), "fd {fd}: {fds:?}");
    }
    assert_blocking(pid);
    assert_eq!(
        children(tw.pid()).len(),
        2,
        "the supervisor should have two children, the program and the relay"
    );
    ns.assert_ping(B4);
    let out = wait_stdout(&mut tw, "read 84 from fd 4");
    // Still one packet per read through the sockets.
    let reads = relay_reads(&out);
    assert!(
        reads.iter().all(|&(n, _)| n == 84) && reads.len() >= 6,
        "relay.c should read each 84-byte packet whole:\n{out}"
    );
    wait_handles_sigterm(pid);
    stop_clean(&ns, &mut tw);
    assert_eq!(ns.state(), before, "state after the stop");

    let frames = icmp_frames(&ns, &file);
    for seq in 1..=3 {
        let seq = seq.to_string();
        // 8 = echo request, 0 = reply; direction 2 = outbound (the program receives it from
        // that TUN), 1 = inbound (the program sends it into that TUN).
        for (iface, dir, kind) in [
            ("tun0", 2, "8"),
            ("tun1", 1, "8"),
            ("tun1", 2, "0"),
            ("tun0", 1, "0"),
        ] {
            let n = frames
                .iter()
                .filter(|f| (f.0.as_str(), f.1, f.2.as_str(), &f.3) == (iface, dir, kind, &seq))
                .count();
            assert_eq!(
                n, 1,
                "icmp type {kind} seq {seq} on {iface} direction {dir} should be recorded once: \
                 {frames:?}"
            );
        }
    }
    assert_eq!(frames.len(), 12, "3 pings, 4 records each: {frames:?}");
}

#[test]
#[ignore = "needs root"]
fn pcap_to_stdout_sends_the_programs_stdout_to_stderr() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    ns.sh_ok("sysctl -qw net.ipv6.conf.default.disable_ipv6=1");
    let relay = relay_c(&ns);
    let mut tw = up_prog(
        &ns,
        &with_prog(&["--user", MEMBER.name, "--pcap", "-"], &[p(&relay)]),
        As::Root,
    );
    let pid = prog_pid(&tw, &relay);
    let fds = fds(pid);
    assert!(
        fds[&1] == fds[&2] && fds[&2].ends_with(".err"),
        "the program's stdout should be tunwire's stderr: {fds:?}"
    );
    ns.assert_ping(B4);
    let mut stderr = String::new();
    assert!(
        wait_until(READY_TIMEOUT, || {
            stderr = tw.stderr();
            stderr.contains("read 84 from fd 4")
        }),
        "the program's output should be on tunwire's stderr:\n{stderr}"
    );
    wait_handles_sigterm(pid);
    stop_clean(&ns, &mut tw);
    let stdout = tw.stdout();
    assert!(
        !String::from_utf8_lossy(&stdout).contains("read 84"),
        "the program's output must not corrupt the capture on stdout"
    );
    let frames = icmp_frames(&ns, tw.stdout_path());
    assert_eq!(frames.len(), 12, "3 pings, 4 records each: {frames:?}");
}

#[test]
#[ignore = "needs root"]
fn a_dead_relay_in_the_path_stops_the_program_and_fails() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let relay = relay_c(&ns);
    let file = member_dir(&ns, "cap").join("relay-dies.pcapng");
    let before = ns.state();
    let mut tw = up_prog(
        &ns,
        &with_prog(&["--user", MEMBER.name, "--pcap", p(&file)], &[p(&relay)]),
        As::Root,
    );
    let pid = prog_pid(&tw, &relay);
    wait_handles_sigterm(pid);
    ns.assert_ping(B4);
    let tunwire = children(tw.pid())
        .into_iter()
        .find(|&c| c != pid)
        .expect("the relay in the path");
    assert!(signal(tunwire, "KILL"), "kill -KILL the relay");
    // The wire is cut: tunwire stops the program, which exits 0, yet the instance failed.
    let e = tw.wait_exit(EXIT_TIMEOUT);
    assert_eq!(e.code, Some(1), "the relay in the path died: {e}");
    assert!(
        e.stderr.contains("the relay ended") && e.stderr.contains("exited with status 0"),
        "the log should say the relay ended and the program was stopped: {e}"
    );
    assert!(!alive(pid), "the program outlived the wire");
    ns.assert_no_leftovers();
    assert_nothing_runs(&ns);
    assert_eq!(ns.state(), before, "state after the relay died");
}

#[test]
#[ignore = "needs root"]
fn impaired_side_never_reaches_the_program() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    ns.sh_ok("sysctl -qw net.ipv6.conf.default.disable_ipv6=1");
    let relay = relay_c(&ns);
    let file = member_dir(&ns, "cap").join("loss.pcapng");
    let mut tw = up_prog(
        &ns,
        &with_prog(
            &[
                "--user",
                MEMBER.name,
                "--pcap",
                p(&file),
                "--impair",
                "tun0: loss 100%",
            ],
            &[p(&relay)],
        ),
        As::Root,
    );
    assert!(
        tw.stderr().contains("tun0: loss 100%"),
        "the ready line shows the impairment:\n{}",
        tw.stderr()
    );
    let pid = prog_pid(&tw, &relay);
    // From tun0: the requests are lost before the program.
    let (sent, got, text) = ping_counts(&ns, 3, "-i 0.2 -W 1", B4);
    assert_eq!(
        (sent, got),
        (3, 0),
        "pings from tun0 should all be lost:\n{text}"
    );
    // From tun1: the program relays the requests; the replies leave by tun0 and are lost.
    let (sent, got, text) = ping_counts(&ns, 3, "-i 0.2 -W 1 -I tun1", A4);
    assert_eq!(
        (sent, got),
        (3, 0),
        "replies through tun0 should be lost:\n{text}"
    );
    let out = wait_stdout(&mut tw, "read 84 from fd 4");
    let reads = relay_reads(&out);
    assert!(
        reads.iter().all(|&r| r == (84, 4)) && reads.len() >= 3,
        "the program should see only tun1's packets, one 84-byte packet per read:\n{out}"
    );
    wait_handles_sigterm(pid);
    let e = stop_clean(&ns, &mut tw);
    assert!(
        !e.stdout.contains("from fd 3"),
        "the program saw a packet of tun0:\n{}",
        e.stdout
    );
    let drops = tshark_fields(
        &ns,
        &file,
        "frame.comment contains \"tunwire: drop loss\"",
        &["frame.interface_name", "icmp.type"],
    );
    let want: Vec<Vec<String>> = [8, 8, 8, 0, 0, 0]
        .iter()
        .map(|t| vec!["tun0".to_owned(), t.to_string()])
        .collect();
    let mut got = drops.clone();
    got.sort_by(|a, b| b[1].cmp(&a[1]));
    assert_eq!(
        got, want,
        "3 requests and 3 replies of tun0 recorded as lost: {drops:?}"
    );
}

// ----------------------------------------------------------------------------------------------
// 8: a program that cannot be executed: 127 or 126 before any change
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn a_program_that_cannot_be_executed_gives_127_or_126_and_changes_nothing() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let dir = ns.dir();
    let no_x = scratch_file(&ns, "no-x.sh", "#!/bin/sh\nexit 0\n", 0o644);
    let root_only = scratch_file(&ns, "root-only.sh", "#!/bin/sh\nexit 0\n", 0o700);
    let missing = dir.join("missing");
    let cases: Vec<(&str, i32, &str, &str)> = vec![
        (p(&missing), 127, p(&missing), "not found"),
        (
            "tunwire-test-no-such-program",
            127,
            "tunwire-test-no-such-program",
            "not found",
        ),
        (p(&no_x), 126, p(&no_x), "permission denied"),
        ("/etc/passwd", 126, "/etc/passwd", "permission denied"),
        (p(dir), 126, p(dir), "permission denied"),
        // root could run it, but the program runs as twmember.
        (
            p(&root_only),
            126,
            p(&root_only),
            "twmember may not execute it",
        ),
    ];
    let before = ns.state();
    let mut failures = Vec::new();
    for (who, opts) in [(As::Root, &AS_MEMBER[..]), (As::CapUser(&MEMBER), &[][..])] {
        for (prog, code, name, why) in &cases {
            let e = ns.run_tunwire(&with_prog(opts, &[prog, "arg"]), who);
            let mut wrong = Vec::new();
            if e.code != Some(*code) {
                wrong.push(format!("exit {:?}, want {code}", e.code));
            }
            if !e.stderr.contains(name) || !e.stderr.contains(why) {
                wrong.push(format!("the message should name {name} and say {why:?}"));
            }
            if !e.stderr.contains("the wire was not set up") {
                wrong.push("the message should say nothing was set up".to_owned());
            }
            if e.stderr.contains("ready:") || e.stderr.contains("panicked") {
                wrong.push("it got ready, or panicked".to_owned());
            }
            if ns.state() != before {
                wrong.push("the state changed".to_owned());
            }
            if !wrong.is_empty() {
                failures.push(format!("-- {prog} ({who:?}): {}\n{e}", wrong.join("; ")));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
#[ignore = "needs root"]
fn a_program_that_fails_at_execve_gives_127_or_126_and_leaves_nothing() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    // Executable, so it passes the check before setup, but execve itself fails: a missing
    // interpreter (ENOENT, as a shell says 127) and a file of no known format (ENOEXEC, 126).
    let no_interp = scratch_file(&ns, "no-interp", "#!/nonexistent/interpreter\n", 0o755);
    let garbage = scratch_file(&ns, "garbage", "\x7fELF but not really\n", 0o755);
    let before = ns.state();
    for (prog, code) in [(&no_interp, 127), (&garbage, 126)] {
        let e = ns.run_tunwire(&with_prog(&AS_MEMBER, &[p(prog)]), As::Root);
        assert_eq!(e.code, Some(code), "-- {}: {e}", prog.display());
        assert!(
            e.stderr
                .contains(&format!("cannot execute {}", prog.display())),
            "the message should name {}: {e}",
            prog.display()
        );
        assert!(!e.stderr.contains("ready:"), "never ready: {e}");
        ns.assert_no_leftovers();
        assert_eq!(ns.state(), before, "-- {}: state", prog.display());
    }
}

// ----------------------------------------------------------------------------------------------
// 9: check -- PROG
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn check_with_a_program_prints_the_command_and_changes_nothing() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let relay = relay_c(&ns);
    let before = ns.state();
    for (who, opts) in [(As::Root, &AS_MEMBER[..]), (As::CapUser(&MEMBER), &[][..])] {
        let mut args = vec!["check"];
        args.extend_from_slice(opts);
        let e = ns.run_tunwire(&with_prog(&args, &[p(&relay), "-x", "y"]), who);
        assert_eq!(e.code, Some(0), "check -- relay ({who:?}): {e}");
        assert!(
            e.stdout.contains("ip rule add") && e.stdout.contains("iif tun0"),
            "the plan: {e}"
        );
        let then = e
            .stdout
            .lines()
            .position(|l| l.starts_with("# then, as twmember"))
            .unwrap_or_else(|| panic!("no `# then, as twmember` line ({who:?}): {e}"));
        let command = e.stdout.lines().nth(then + 1).unwrap_or_default();
        for needle in [
            "LISTEN_FDS=2",
            "LISTEN_FDNAMES=tun0:tun1",
            "TUNWIRE_A=tun0=192.168.13.1",
            "TUNWIRE_B=tun1=192.168.13.2",
            "TUNWIRE_MTU=1500",
            "TUNWIRE_MODE=tun",
        ] {
            assert!(
                command.contains(needle),
                "{needle} missing from {command:?}"
            );
        }
        assert!(
            command.ends_with(&format!("{} -x y", relay.display())),
            "the command runs the program with its arguments: {command:?}"
        );
        assert_eq!(ns.state(), before, "check changed the state ({who:?})");
    }
    // With --pcap, the program would get sockets.
    let e = ns.run_tunwire(
        &with_prog(&["check", "--pcap", "-"], &[p(&relay)]),
        As::Root,
    );
    assert_eq!(e.code, Some(0), "{e}");
    assert!(
        e.stdout.contains("# then, as nobody") && e.stdout.contains("sockets"),
        "as root without --user the program runs as nobody, on sockets with --pcap: {e}"
    );
    for (prog, code) in [("/nonexistent", 127), ("/etc/passwd", 126)] {
        let e = ns.run_tunwire(&["check", "--", prog], As::Root);
        assert_eq!(e.code, Some(code), "check -- {prog}: {e}");
        assert!(e.stderr.contains(prog), "the message names {prog}: {e}");
        assert!(!e.stdout.contains("# then"), "{e}");
    }
    assert_eq!(ns.state(), before, "check changed the state");
}

// ----------------------------------------------------------------------------------------------
// 10, 11: TAP mode
// ----------------------------------------------------------------------------------------------

/// The MAC address of `dev` (`link/ether XX` of `ip -o link show`).
fn mac_of_link(ns: &Netns, dev: &str) -> String {
    let line = ns.sh_ok(&format!("ip -o link show dev {dev}"));
    line.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no link/ether address for {dev}: {line}"))
        .to_owned()
}

/// `--mode tap` with the dual-stack sides.
const TAP_DUAL: [&str; 4] = ["--mode", "tap", DUAL[0], DUAL[1]];

/// The fixed MAC of a TAP named `name`, as documented: 02: then 40 bits of the name's hash.
fn documented_mac(name: &str) -> String {
    tunwire::setup::plan::mac_text(&tunwire::setup::plan::mac_of(name))
}

/// `ip [-6] neigh show dev DEV` has `addr lladdr MAC`.
fn assert_neighbour(ns: &Netns, dev: &str, addr: &str, mac: &str) {
    let family = if addr.contains(':') { "-6" } else { "-4" };
    let neigh = ns.sh_ok(&format!("ip {family} neigh show dev {dev}"));
    assert!(
        neigh
            .lines()
            .any(|l| l.starts_with(&format!("{addr} lladdr {mac}"))),
        "{dev} should know {addr} at {mac} (the peer's MAC):\n{neigh}"
    );
}

#[test]
#[ignore = "needs root"]
fn tap_mode_carries_ping_ping6_and_five_megabytes_with_fixed_macs() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let (www, sha) = five_mb_site(&ns);
    let before = ns.state();
    let mut opts = AS_MEMBER.to_vec();
    opts.extend(TAP_DUAL);
    let mut macs = Vec::new();
    for round in 1..=2 {
        let mut tw = ns.up(&opts, As::Root);
        for dev in ["tun0", "tun1"] {
            let link = ns.sh_ok(&format!("ip -d link show dev {dev}"));
            assert!(link.contains("tun type tap"), "{dev} is no TAP:\n{link}");
        }
        let (mac0, mac1) = (mac_of_link(&ns, "tun0"), mac_of_link(&ns, "tun1"));
        assert!(
            mac0.starts_with("02:") && mac1.starts_with("02:") && mac0 != mac1,
            "locally administered unicast MACs, one per side: {mac0} {mac1}"
        );
        assert_eq!(
            (mac0.clone(), mac1.clone()),
            (documented_mac("tun0"), documented_mac("tun1")),
            "the MACs derive from the names"
        );
        ns.assert_ping(B4);
        ns.assert_ping(B6);
        // Each side resolved the other through the wire (ARP, neighbour discovery).
        assert_neighbour(&ns, "tun0", B4, &mac1);
        assert_neighbour(&ns, "tun1", A4, &mac0);
        assert_neighbour(&ns, "tun0", B6, &mac1);
        assert_neighbour(&ns, "tun1", A6, &mac0);
        if round == 1 {
            assert_five_mb_intact(&ns, &www, &sha, B4, "TAP over IPv4");
            assert_five_mb_intact(&ns, &www, &sha, B6, "TAP over IPv6");
        }
        stop_clean(&ns, &mut tw);
        assert_eq!(ns.state(), before, "state after TAP round {round}");
        macs.push((mac0, mac1));
    }
    assert_eq!(macs[0], macs[1], "the MACs should be the same on every run");
}

#[test]
#[ignore = "needs root"]
fn tap_capture_is_ethernet_with_arp_neighbour_discovery_and_ip() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let file = member_dir(&ns, "cap").join("tap.pcapng");
    let mut opts = AS_MEMBER.to_vec();
    opts.extend(TAP_DUAL);
    opts.extend(["--pcap", p(&file)]);
    let mut tw = ns.up(&opts, As::Root);
    ns.assert_ping(B4);
    ns.assert_ping(B6);
    stop_clean(&ns, &mut tw);
    let info = ns.sh_ok(&format!("capinfos {}", q(p(&file))));
    assert!(
        info.lines()
            .any(|l| l.starts_with("File encapsulation:") && l.trim_end().ends_with("Ethernet")),
        "the capture's link type should be Ethernet:\n{info}"
    );
    // One tshark pass; each row: interface, eth.src, ARP opcode and target, ICMP type,
    // ICMPv6 type, neighbour solicitation target, IPv6 destination.
    let rows = tshark_fields(
        &ns,
        &file,
        "",
        &[
            "frame.interface_name",
            "eth.src",
            "arp.opcode",
            "arp.dst.proto_ipv4",
            "icmp.type",
            "icmpv6.type",
            "icmpv6.nd.ns.target_address",
            "ipv6.dst",
        ],
    );
    let mac0 = documented_mac("tun0");
    let has = |what: &str, want: &[(usize, &str)]| {
        assert!(
            rows.iter().any(|r| want
                .iter()
                .all(|(i, v)| r.get(*i).map(String::as_str) == Some(v))),
            "the TAP capture should have {what}: {rows:?}"
        );
    };
    has(
        "tun0's ARP request for 192.168.13.2 from its MAC",
        &[(0, "tun0"), (1, &mac0), (2, "1"), (3, B4)],
    );
    has("an ARP reply", &[(2, "2")]);
    has(
        "a neighbour solicitation for fd13::2",
        &[(5, "135"), (6, B6)],
    );
    has("a neighbour advertisement", &[(5, "136")]);
    has(
        "an ICMP echo request from tun0's MAC",
        &[(1, &mac0), (4, "8")],
    );
    has("an ICMP echo reply", &[(4, "0")]);
    has("an ICMPv6 echo request", &[(5, "128"), (7, B6)]);
    has("an ICMPv6 echo reply", &[(5, "129")]);
}

#[test]
#[ignore = "needs root"]
fn tap_impairment_loss_stops_pings() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let file = member_dir(&ns, "cap").join("loss.pcapng");
    let mut opts = AS_MEMBER.to_vec();
    opts.extend(TAP_DUAL);
    opts.extend(["--impair", "tun0: loss 100%", "--pcap", p(&file)]);
    let mut tw = ns.up(&opts, As::Root);
    for to in [B4, B6] {
        let (sent, got, text) = ping_counts(&ns, 3, "-i 0.2 -W 1", to);
        assert_eq!(
            (sent, got),
            (3, 0),
            "ping {to} should fail with tun0's frames lost:\n{text}"
        );
    }
    stop_clean(&ns, &mut tw);
    let lost = tshark_fields(
        &ns,
        &file,
        "frame.comment contains \"tunwire: drop loss\"",
        &["frame.interface_name", "eth.type"],
    );
    assert!(
        !lost.is_empty() && lost.iter().all(|r| r[0] == "tun0"),
        "only tun0's frames should be recorded as lost: {lost:?}"
    );
    assert!(
        lost.iter().any(|r| r[1] == "0x0806"),
        "the lost frames should include ARP: {lost:?}"
    );
}

#[test]
#[ignore = "needs root"]
fn tap_mode_program_relays_ethernet_frames() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let relay = relay_c(&ns);
    let before = ns.state();
    let mut opts = AS_MEMBER.to_vec();
    opts.extend(TAP_DUAL);
    let mut tw = up_prog(&ns, &with_prog(&opts, &[p(&relay)]), As::Root);
    let pid = prog_pid(&tw, &relay);
    let env = environ(pid);
    for want in [
        "TUNWIRE_MODE=tap",
        "TUNWIRE_A=tun0=192.168.13.1,fd13::1",
        "TUNWIRE_B=tun1=192.168.13.2,fd13::2",
    ] {
        assert!(env.iter().any(|e| e == want), "{want} missing: {env:#?}");
    }
    ns.assert_ping(B4);
    ns.assert_ping(B6);
    // A ping is 84 bytes of IP in 14 bytes of Ethernet header.
    let out = wait_stdout(&mut tw, "read 98 from fd 4");
    let reads = relay_reads(&out);
    for fd in [3, 4] {
        assert!(
            reads.iter().filter(|r| **r == (98, fd)).count() >= 3,
            "relay.c should read whole 98-byte frames from fd {fd}:\n{out}"
        );
    }
    assert!(
        reads.contains(&(42, 3)),
        "tun0's ARP request (42 bytes) should cross the program:\n{out}"
    );
    wait_handles_sigterm(pid);
    stop_clean(&ns, &mut tw);
    assert_eq!(ns.state(), before, "state after the stop");
}

#[test]
#[ignore = "needs root"]
fn tap_mode_with_offload_on_has_vnet_hdr_and_five_megabytes_arrive_intact() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let (www, sha) = five_mb_site(&ns);
    let mut opts = AS_MEMBER.to_vec();
    opts.extend(TAP_DUAL);
    opts.extend(["--offload", "on"]);
    let mut tw = ns.up(&opts, As::Root);
    for dev in ["tun0", "tun1"] {
        let link = ns.sh_ok(&format!("ip -d link show dev {dev}"));
        assert!(
            link.contains("tun type tap") && link.contains("vnet_hdr on"),
            "{dev} should be a TAP with vnet_hdr on:\n{link}"
        );
    }
    assert_five_mb_intact(&ns, &www, &sha, B4, "TAP with offload");
    assert_five_mb_intact(&ns, &www, &sha, B6, "TAP with offload over IPv6");
    let e = stop_clean(&ns, &mut tw);
    // The files went server (tun1) -> client (tun0) in GSO super-packets, so the frames that
    // crossed are larger than an Ethernet MTU on average.
    let (packets, bytes) = counter(&e.stderr, "tun1 -> tun0")
        .unwrap_or_else(|| panic!("no `tun1 -> tun0:` counter line:\n{e}"));
    assert!(
        bytes >= 2 * FIVE_MB as u64 && bytes / packets.max(1) > 1514,
        "with offload on, 10 MiB should cross tun1 -> tun0 in super-packets: {packets} \
         packets, {bytes} bytes"
    );
}

// ----------------------------------------------------------------------------------------------
// 8, continued: PROG is looked up on PATH as a shell looks it up
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn a_program_on_path_is_found_as_a_shell_finds_it() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    // Earlier on PATH: a twprog the user may not execute (no x bit; root's only). Later: one
    // that exits 5. A shell (execvp) skips the first and runs the second.
    let dirs: Vec<PathBuf> = ["path-no-x", "path-root", "path-ok"]
        .iter()
        .map(|d| {
            let dir = ns.dir().join(d);
            fs::create_dir(&dir).expect("create PATH dir");
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
            dir
        })
        .collect();
    let prog = |dir: &Path, mode: u32, code: u32| {
        let path = dir.join("twprog");
        fs::write(&path, format!("#!/bin/sh\nexit {code}\n")).expect("write twprog");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod twprog");
    };
    prog(&dirs[0], 0o644, 3);
    prog(&dirs[1], 0o700, 4);
    prog(&dirs[2], 0o755, 5);
    let path = format!(
        "{}:{}:{}:/usr/bin:/bin",
        p(&dirs[0]),
        p(&dirs[1]),
        p(&dirs[2])
    );
    // What a shell does with this PATH, as twmember.
    let shell = ns.sh(&format!(
        "PATH={path} setpriv --reuid={0} --regid={0} --init-groups /bin/sh -c twprog",
        MEMBER.uid
    ));
    assert_eq!(
        shell.status.code(),
        Some(5),
        "the shell runs the third twprog"
    );
    let before = ns.state();
    for (who, opts) in [(As::Root, &AS_MEMBER[..]), (As::CapUser(&MEMBER), &[][..])] {
        let mut cmd = ns.tunwire_cmd(&with_prog(opts, &["twprog"]), who);
        cmd.env("PATH", &path);
        let e = ns.start(cmd).wait_exit(EXIT_TIMEOUT);
        assert_eq!(
            e.code,
            Some(5),
            "`-- twprog` should run {}/twprog, the first on PATH twmember may execute, as a \
             shell does ({who:?}): {e}",
            dirs[2].display()
        );
        ns.assert_restored(&before, &format!("({who:?})"));
    }
    // Only files the user may not execute: 126, as in a shell. (/usr/bin and /bin stay on
    // PATH for the commands that start tunwire; they hold no twprog.)
    let no_x_only = format!("{}:{}:/usr/bin:/bin", p(&dirs[0]), p(&dirs[1]));
    let mut cmd = ns.tunwire_cmd(&with_prog(&AS_MEMBER, &["twprog"]), As::Root);
    cmd.env("PATH", &no_x_only);
    let e = ns.start(cmd).wait_exit(EXIT_TIMEOUT);
    assert_eq!(e.code, Some(126), "{e}");
    assert_eq!(ns.state(), before, "state after the refusal");
}
