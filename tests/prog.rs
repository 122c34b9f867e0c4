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

/// Where the HTTP tests' server listens (all addresses: a pair address cannot be bound).
const HTTP_PORT: u16 = 8013;
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

/// Quote `s` for bash.
fn q(s: impl AsRef<str>) -> String {
    format!("'{}'", s.as_ref().replace('\'', r"'\''"))
}

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

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

/// `python3 -m http.server` on [::]:HTTP_PORT (IPv4 too) serving `dir`, ready to accept.
fn http_server(ns: &Netns, dir: &Path) -> Bg {
    let mut server = ns.spawn_bg(&format!(
        "exec {PYTHON} -u -m http.server --bind :: --directory {} {HTTP_PORT} 1>&2",
        q(p(dir))
    ));
    server.wait_stderr("Serving HTTP", READY_TIMEOUT);
    server
}

/// A file of `size` random bytes; returns its sha256.
fn random_file(ns: &Netns, path: &Path, size: usize) -> String {
    ns.sh_ok(&format!(
        "head -c {size} /dev/urandom > {0} && chmod 0644 {0} && sha256sum < {0}",
        q(p(path))
    ))
    .split_whitespace()
    .next()
    .expect("sha256sum output")
    .to_owned()
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

/// A 0755 directory in the scratch dir owned by twmember (the relay and PROG write there).
fn member_dir(ns: &Netns, name: &str) -> PathBuf {
    let dir = ns.dir().join(name);
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod dir");
    std::os::unix::fs::chown(&dir, Some(MEMBER.uid), Some(MEMBER.gid)).expect("chown dir");
    dir
}

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
            ns.assert_no_leftovers();
            assert_eq!(ns.state(), before, "state after `exit {code}` ({who:?})");
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
        ns.assert_no_leftovers();
        assert_eq!(ns.state(), before, "state after stopping {prog:?}");
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
    ns.assert_no_leftovers();
    assert_eq!(ns.state(), before, "state after sleep died of SIGTERM");
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
    ns.assert_no_leftovers();
    assert_eq!(ns.state(), before, "state after the program exited");
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
