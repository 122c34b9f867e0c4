// SPDX-License-Identifier: MIT OR Apache-2.0
//! Shared harness for tunwire's integration tests: one private network + mount namespace per test,
//! fake users and groups inside it, the real binary started as root or as a test user, and
//! snapshots of the routing state. It must never create interfaces, rules or accounts on the host.
//!
//! How the isolation works: `Netns::new` spawns an anchor `unshare --net --mount sleep infinity`.
//! Inside that anchor's mount namespace it mounts an overlay over /etc (so a test may write
//! /etc/tunwire/policy.conf), bind-mounts generated copies of /etc/passwd and /etc/group
//! (adding `twmember`, in 120 extra groups with `tunwire` last, `twstranger`, in none, and
//! `twmember2..twmember10` (`EXTRA_MEMBERS`), each in its own primary group and `tunwire`), and
//! mounts a tmpfs on /dev/net with a 0666 `tun` node so test users can open it.
//! Everything else runs under `nsenter --net=... --mount=...`. Dropping the `Netns` kills every
//! process in the namespace and the anchor, so the namespace vanishes with all it contains.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tunwire");

/// Generous upper bounds, only to avoid hanging forever; nothing asserts on durations.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// The default pair, as in `--help`.
pub const A4: &str = "192.168.13.1";
pub const B4: &str = "192.168.13.2";
pub const A6: &str = "fd13::1";
pub const B6: &str = "fd13::2";
/// The default sides, given explicitly.
pub const DEFAULT: [&str; 2] = ["tun0=192.168.13.1", "tun1=192.168.13.2"];
/// Dual-stack sides: `tun0=192.168.13.1,fd13::1 tun1=192.168.13.2,fd13::2`.
pub const DUAL: [&str; 2] = ["tun0=192.168.13.1,fd13::1", "tun1=192.168.13.2,fd13::2"];

/// The default allowed group and its gid in the fake /etc/group.
pub const ALLOWED_GROUP: &str = "tunwire";
pub const ALLOWED_GID: u32 = 64500;
/// `twmember`'s extra groups `twg000..twg119` get these gids, in this order, before `tunwire`.
pub const EXTRA_GROUPS: u32 = 120;
pub const FIRST_EXTRA_GID: u32 = 64100;

/// An account that exists only inside a test's mount namespace.
#[derive(Debug)]
pub struct TestUser {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
}

/// In `twg000..twg119` and, last, in `tunwire`: 121 supplementary groups plus its primary.
pub const MEMBER: TestUser = TestUser {
    name: "twmember",
    uid: 64001,
    gid: 64001,
};
/// In no allowed group.
pub const STRANGER: TestUser = TestUser {
    name: "twstranger",
    uid: 64002,
    gid: 64002,
};

/// Nine more members of `tunwire` (`twmember2..twmember10`, uid = gid = 64010 + N), each with a
/// primary group of its own and `tunwire` as its only supplementary group: for tests that need
/// several members at once (per-member limits, ten wires of ten owners).
pub static EXTRA_MEMBERS: [TestUser; 9] = [
    extra_member("twmember2", 64012),
    extra_member("twmember3", 64013),
    extra_member("twmember4", 64014),
    extra_member("twmember5", 64015),
    extra_member("twmember6", 64016),
    extra_member("twmember7", 64017),
    extra_member("twmember8", 64018),
    extra_member("twmember9", 64019),
    extra_member("twmember10", 64020),
];

const fn extra_member(name: &'static str, id: u32) -> TestUser {
    TestUser {
        name,
        uid: id,
        gid: id,
    }
}

/// Every gid `twmember` has after initgroups: its primary, the 120 extra groups and `tunwire`.
pub fn member_gids() -> Vec<u32> {
    let mut gids = vec![MEMBER.gid];
    gids.extend(FIRST_EXTRA_GID..FIRST_EXTRA_GID + EXTRA_GROUPS);
    gids.push(ALLOWED_GID);
    gids
}

/// True when the caller may go on. Integration tests need root (namespaces, TUN, setcap): with
/// CI=true a non-root run is a failure, otherwise the test is skipped with a note on stderr.
pub fn require_root() -> bool {
    if is_root() {
        return true;
    }
    if in_ci() {
        panic!("integration tests need root (CI=true): run `cargo test` as root");
    }
    eprintln!("skipped: integration tests need root (they create network namespaces)");
    false
}

/// CI=true (CI sets it): a test that cannot run is a failure there, not a skip.
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true" | "1"))
}

pub fn is_root() -> bool {
    euid() == 0
}

fn euid() -> u32 {
    // /proc/self/status avoids a libc dependency in the tests.
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .expect("parse Uid line of /proc/self/status")
}

/// Poll `f` every 50 ms until it returns true or `timeout` passes; returns the last result.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        sleep(POLL);
    }
}

/// A fresh 0755 directory under /tmp (readable by the test users), removed on drop unless
/// TUNWIRE_TEST_KEEP is set.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = PathBuf::from(format!(
            "/tmp/tunwire-test.{}.{n}.{tag}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("TUNWIRE_TEST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// How an exited process ended, with what it wrote.
#[derive(Debug, Clone)]
pub struct Exited {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Exited {
    fn new(status: ExitStatus, stdout: String, stderr: String) -> Exited {
        Exited {
            code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
        }
    }
}

impl std::fmt::Display for Exited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}, signal {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.signal, self.stdout, self.stderr
        )
    }
}

/// Who starts the binary.
#[derive(Debug, Clone, Copy)]
pub enum As {
    /// root, running the cargo-built binary directly.
    Root,
    /// The test user via `setpriv --init-groups`, running a `setcap cap_net_admin+ep` copy.
    CapUser(&'static TestUser),
    /// The test user via `setpriv --init-groups`, running a copy without file capabilities.
    User(&'static TestUser),
}

/// A network + private mount namespace held open by an anchor process.
pub struct Netns {
    anchor: Child,
    /// `net:[inode]` of the namespace, to find every process inside it on drop.
    net_link: String,
    dir: TempDir,
}

impl Netns {
    /// A new namespace with `lo` up, the fake users and groups, and an openable /dev/net/tun.
    pub fn new() -> Netns {
        let dir = TempDir::new("ns");
        write_fake_accounts(dir.path());
        let anchor = Command::new("unshare")
            .args(["--net", "--mount", "--propagation", "private", "--"])
            .args(["sleep", "infinity"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn `unshare --net --mount sleep infinity` (util-linux)");
        let pid = anchor.id();
        let own_net = fs::read_link("/proc/self/ns/net").expect("readlink own net ns");
        let own_mnt = fs::read_link("/proc/self/ns/mnt").expect("readlink own mnt ns");
        let mut net_link = String::new();
        let entered = wait_until(READY_TIMEOUT, || {
            let net = fs::read_link(format!("/proc/{pid}/ns/net"));
            let mnt = fs::read_link(format!("/proc/{pid}/ns/mnt"));
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            match (net, mnt) {
                (Ok(net), Ok(mnt))
                    if net != own_net && mnt != own_mnt && comm.trim() == "sleep" =>
                {
                    net_link = net.to_string_lossy().into_owned();
                    true
                }
                _ => false,
            }
        });
        let ns = Netns {
            anchor,
            net_link,
            dir,
        };
        assert!(entered, "the unshare anchor never entered new namespaces");
        let d = ns.dir.path().display().to_string();
        ns.sh_ok(&format!(
            "set -e
             mkdir {d}/etc-upper {d}/etc-work
             mount -t overlay tunwire-test -o lowerdir=/etc,upperdir={d}/etc-upper,workdir={d}/etc-work /etc
             mount --bind {d}/passwd /etc/passwd
             mount --bind {d}/group /etc/group
             mount -t tmpfs -o mode=755 tunwire-test /dev/net
             mknod -m 666 /dev/net/tun c 10 200
             ip link set lo up
             # The audit trail of these tests must not reach the host's syslog.
             touch {d}/dev-log
             if [ -e /dev/log ]; then mount --bind {d}/dev-log /dev/log; fi"
        ));
        // Refuse to go on if the setup leaked into the host or did not take.
        assert!(
            fs::read_to_string("/etc/passwd").is_ok_and(|p| !p.contains("twmember:")),
            "the fake passwd is visible on the host"
        );
        let marker = format!("/etc/tunwire-test-overlay.{}", std::process::id());
        ns.sh_ok(&format!("touch {marker}"));
        assert!(
            !Path::new(&marker).exists(),
            "a file written to /etc inside the namespace reached the host"
        );
        let id = ns.sh_ok("id twmember");
        assert!(
            id.contains("64500(tunwire)"),
            "fake accounts not visible: {id}"
        );
        ns
    }

    /// The anchor's pid; `/proc/PID/ns/{net,mnt}` name the namespaces.
    pub fn pid(&self) -> u32 {
        self.anchor.id()
    }

    /// A scratch directory (0755) for this test; also holds the fake account files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `program` to be run inside the namespaces (as root unless wrapped).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let pid = self.pid();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/proc/{pid}/ns/net"))
            .arg(format!("--mount=/proc/{pid}/ns/mnt"))
            .arg("--")
            .arg(program)
            .stdin(Stdio::null());
        cmd
    }

    /// Run a bash script inside the namespaces and collect its output.
    pub fn sh(&self, script: &str) -> Output {
        self.command("bash")
            .args(["-c", script])
            .output()
            .expect("run nsenter bash")
    }

    /// Like `sh`, but panics with the output unless the script succeeds; returns stdout.
    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "script failed ({}):\n{script}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Start a bash script in the background (own process group, output to files).
    pub fn spawn_bg(&self, script: &str) -> Bg {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let out = self.dir().join(format!("bg{n}.out"));
        let err = self.dir().join(format!("bg{n}.err"));
        let child = self
            .command("bash")
            .args(["-c", script])
            .stdout(fs::File::create(&out).expect("create bg stdout"))
            .stderr(fs::File::create(&err).expect("create bg stderr"))
            .process_group(0)
            .spawn()
            .expect("spawn background script");
        Bg {
            child,
            out,
            err,
            script: script.to_owned(),
        }
    }

    /// `tcpdump -n -l ARGS` in the background, returned once it is listening.
    /// Example: `ns.tcpdump("-i tun1 -c 2 icmp")`; then `.wait(EXIT_TIMEOUT).stdout`.
    pub fn tcpdump(&self, args: &str) -> Bg {
        let mut bg = self.spawn_bg(&format!("exec tcpdump -n -l {args}"));
        bg.wait_stderr("listening on", READY_TIMEOUT);
        bg
    }

    /// A 0755 directory in the scratch dir owned by `user`, e.g. for capture files a relay
    /// running as that user must create.
    pub fn dir_for(&self, user: &TestUser) -> PathBuf {
        let dir = self.dir().join(format!("home-{}", user.name));
        fs::create_dir_all(&dir).expect("create user dir");
        std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)).expect("chown user dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod user dir");
        dir
    }

    /// A copy of the binary in a 0755 directory, with `cap_net_admin+ep` when `caps`.
    pub fn binary_copy(&self, caps: bool) -> PathBuf {
        let dir = self.dir().join(if caps { "bin-cap" } else { "bin" });
        let bin = dir.join("tunwire");
        if !bin.exists() {
            fs::create_dir_all(&dir).expect("create binary dir");
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod bin dir");
            // An external `install` writes the copy: written from this multi-threaded process,
            // a child another test thread forks meanwhile inherits the descriptor open for
            // writing until it execs, and running the copy fails with "Text file busy".
            let out = Command::new("install")
                .args(["-m", "0755", BIN])
                .arg(&bin)
                .output()
                .expect("run install (coreutils)");
            assert!(out.status.success(), "install the binary copy: {out:?}");
            if caps {
                let out = Command::new("setcap")
                    .arg("cap_net_admin+ep")
                    .arg(&bin)
                    .output()
                    .expect("run setcap (libcap2-bin)");
                assert!(out.status.success(), "setcap failed: {out:?}");
            }
        }
        bin
    }

    /// Make both copies of the binary now, before tests start other threads' test users, so
    /// that two tests never race to write the same copy.
    pub fn prepare_binary_copies(&self) {
        for caps in [true, false] {
            self.binary_copy(caps);
        }
    }

    /// The binary with `args`, as `who`, inside the namespaces; environment made deterministic
    /// (no SUDO_USER, RUST_LOG, NOTIFY_SOCKET or JOURNAL_STREAM). Output not redirected yet.
    pub fn tunwire_cmd(&self, args: &[&str], who: As) -> Command {
        let mut cmd = match who {
            As::Root => self.command(BIN),
            As::CapUser(user) | As::User(user) => {
                let bin = self.binary_copy(matches!(who, As::CapUser(_)));
                let mut cmd = self.command("setpriv");
                cmd.arg(format!("--reuid={}", user.uid))
                    .arg(format!("--regid={}", user.gid))
                    .arg("--init-groups")
                    .arg(bin);
                cmd
            }
        };
        cmd.args(args);
        scrub_env(&mut cmd);
        cmd
    }

    /// Root runs `bash -c SCRIPT BIN ARGS...` inside the namespaces, with the environment of
    /// `tunwire_cmd`; SCRIPT ends with `exec "$0" "$@"` (so the pid is the supervisor's), e.g.
    /// `umask 027 && exec "$0" "$@"` or `exec "$0" "$@" > FIFO`.
    pub fn tunwire_script(&self, script: &str, args: &[&str]) -> Command {
        let mut cmd = self.command("bash");
        cmd.arg("-c").arg(script).arg(BIN).args(args);
        scrub_env(&mut cmd);
        cmd
    }

    /// Write `text` to `path` inside the namespaces (root-owned, `mode`), creating its
    /// directory; e.g. /etc/tunwire/policy.conf, which only exists in this namespace's /etc.
    pub fn write_file(&self, path: &str, text: &str, mode: u32) {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let src = self.dir().join(format!("file{n}"));
        fs::write(&src, text).expect("write scratch file");
        self.sh_ok(&format!(
            "install -D -o root -g root -m {mode:o} {} {path}",
            src.display()
        ));
    }

    /// Start a prepared command (from `tunwire_cmd`) with stdout/stderr going to files.
    /// nsenter and setpriv exec, so the child's pid is the supervisor's.
    pub fn start(&self, mut cmd: Command) -> Instance {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let stdout = self.dir().join(format!("tunwire{n}.out"));
        let stderr = self.dir().join(format!("tunwire{n}.err"));
        let child = cmd
            .stdout(fs::File::create(&stdout).expect("create stdout file"))
            .stderr(fs::File::create(&stderr).expect("create stderr file"))
            .spawn()
            .expect("spawn tunwire");
        Instance {
            child,
            stdout,
            stderr,
            relay: None,
            exited: None,
        }
    }

    /// Start `tunwire args` as `who` and wait for its `ready:` line. Err if it exits first.
    pub fn try_up(&self, args: &[&str], who: As) -> Result<Instance, Exited> {
        let mut inst = self.start(self.tunwire_cmd(args, who));
        inst.wait_ready()?;
        Ok(inst)
    }

    /// Like `try_up`, but panics with the output if the instance does not become ready.
    pub fn up(&self, args: &[&str], who: As) -> Instance {
        match self.try_up(args, who) {
            Ok(inst) => inst,
            Err(e) => panic!("tunwire {args:?} as {who:?} did not become ready: {e}"),
        }
    }

    /// Run `tunwire args` as `who` to completion (check, teardown, refused starts).
    pub fn run_tunwire(&self, args: &[&str], who: As) -> Exited {
        let mut inst = self.start(self.tunwire_cmd(args, who));
        inst.wait_exit(EXIT_TIMEOUT)
    }

    /// The routing state for "unchanged" comparisons: links (name, flags, type), addresses,
    /// IPv4/IPv6 rules and every route table. Volatile counters are left out.
    pub fn state(&self) -> String {
        let links = self.sh_ok("ip -o link show");
        let mut state = String::from("# links\n");
        for line in links.lines() {
            // "3: tun0: <POINTOPOINT,...> mtu 1500 ... \    link/none "
            let mut fields = line.splitn(3, ": ");
            let (_idx, name, rest) = (fields.next(), fields.next(), fields.next().unwrap_or(""));
            let flags = rest.split_whitespace().next().unwrap_or("");
            let kind = rest
                .split_whitespace()
                .find(|w| w.starts_with("link/"))
                .unwrap_or("");
            let mtu = rest
                .split_whitespace()
                .skip_while(|w| *w != "mtu")
                .nth(1)
                .unwrap_or("");
            state += &format!("{} {flags} mtu {mtu} {kind}\n", name.unwrap_or(""));
        }
        state += &self.sh_ok(
            "echo '# addresses'; ip -o addr show
             echo '# rules'; ip rule show
             echo '# rules6'; ip -6 rule show
             echo '# routes'; ip route show table all
             echo '# routes6'; ip -6 route show table all",
        );
        state
    }

    /// `ip rule show` followed by `ip -6 rule show`.
    pub fn rules(&self) -> String {
        self.sh_ok("ip rule show; ip -6 rule show")
    }

    /// Routes in table `table`, both families (empty when the table does not exist).
    pub fn table(&self, table: u32) -> String {
        let out = self.sh(&format!(
            "ip route show table {table} 2>/dev/null; ip -6 route show table {table} 2>/dev/null"
        ));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether a link named `name` exists.
    pub fn has_link(&self, name: &str) -> bool {
        self.sh(&format!("ip link show dev {name}"))
            .status
            .success()
    }

    /// `ping -c 3` (IPv6 when `to` contains ':'); the Output, for the caller to assert on.
    pub fn ping(&self, to: &str) -> Output {
        let family = if to.contains(':') { "-6" } else { "-4" };
        self.sh(&format!("ping {family} -n -c 3 -i 0.2 -W 2 {to}"))
    }

    /// Assert that `to` answers pings across the pair.
    pub fn assert_ping(&self, to: &str) {
        let out = self.ping(to);
        assert!(
            out.status.success(),
            "ping {to} failed ({}):\n{}{}\nrules:\n{}\ntable 13:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.rules(),
            self.table(13)
        );
    }

    /// Assert that nothing of a (default-named, table 13) instance is left: no proto 199 rule,
    /// no `iif tun0/tun1` rule, no tun0/tun1 link, table 13 empty.
    /// No leftovers, and the namespace's state is `before` again (`what` names the moment).
    pub fn assert_restored(&self, before: &str, what: &str) {
        self.assert_no_leftovers();
        assert_eq!(self.state(), before, "state {what}");
    }

    pub fn assert_no_leftovers(&self) {
        let rules = self.rules();
        assert!(
            !rules.contains("proto 199"),
            "proto 199 rules left:\n{rules}"
        );
        assert!(
            !rules.contains("iif tun0") && !rules.contains("iif tun1"),
            "iif rules left:\n{rules}"
        );
        assert!(!self.has_link("tun0"), "tun0 still exists");
        assert!(!self.has_link("tun1"), "tun1 still exists");
        let table = self.table(13);
        assert!(table.trim().is_empty(), "table 13 not empty:\n{table}");
    }

    /// Pids of every process (other than the anchor) whose network namespace is this one.
    pub fn pids_inside(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        let Ok(entries) = fs::read_dir("/proc") else {
            return pids;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == self.pid() {
                continue;
            }
            if fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|l| l.to_string_lossy() == self.net_link)
            {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.net_link.is_empty() {
            let _ = self.anchor.kill();
            let _ = self.anchor.wait();
            return;
        }
        // Everything inside first (relays hold TUN fds), then the anchor.
        for _ in 0..3 {
            let pids = self.pids_inside();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                signal(pid, "KILL");
            }
            sleep(POLL);
        }
        let _ = self.anchor.kill();
        let _ = self.anchor.wait();
    }
}

/// The environment of a tunwire under test, made deterministic: no SUDO_*, RUST_LOG,
/// NOTIFY_SOCKET or JOURNAL_STREAM from the test runner.
pub fn scrub_env(cmd: &mut Command) {
    for var in [
        "SUDO_USER",
        "SUDO_UID",
        "SUDO_GID",
        "RUST_LOG",
        "NOTIFY_SOCKET",
        "JOURNAL_STREAM",
    ] {
        cmd.env_remove(var);
    }
}

/// SIGTERM to the supervisor, exit 0, and nothing of a default (tun0/tun1, table 13) instance
/// left behind; returns how it ended.
pub fn stop_clean(ns: &Netns, tw: &mut Instance) -> Exited {
    let exited = tw.stop("TERM");
    assert_eq!(exited.code, Some(0), "SIGTERM should give exit 0: {exited}");
    ns.assert_no_leftovers();
    exited
}

/// Send `sig` (a name like "TERM") to `pid` with kill(1); returns whether it was delivered.
pub fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the ") " that closes comm.
        stat.rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X')
    })
}

/// /proc/PID/status as a map from field name to its (trimmed) value.
pub fn proc_status(pid: u32) -> BTreeMap<String, String> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// The numbers of a status line such as Uid, Gid or Groups.
pub fn status_ids(status: &BTreeMap<String, String>, field: &str) -> Vec<u32> {
    status
        .get(field)
        .unwrap_or_else(|| panic!("no {field} in status"))
        .split_whitespace()
        .map(|n| n.parse().expect("numeric id"))
        .collect()
}

/// A background script (tcpdump, a server) in its own process group; killed on drop.
pub struct Bg {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    script: String,
}

impl Bg {
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Wait until stderr contains `needle`; panics (with the output) if the script exits or
    /// the timeout passes first.
    pub fn wait_stderr(&mut self, needle: &str, timeout: Duration) {
        let mut exited = None;
        let found = wait_until(timeout, || {
            if self.stderr().contains(needle) {
                return true;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                exited = Some(status);
                return true;
            }
            false
        });
        assert!(
            found && exited.is_none(),
            "background `{}` did not print {needle:?} (exit {exited:?}):\n{}{}",
            self.script,
            self.stdout(),
            self.stderr()
        );
    }

    /// Wait for the script to exit (killing it after `timeout`); returns how it ended.
    pub fn wait(&mut self, timeout: Duration) -> Exited {
        let mut status = None;
        wait_until(timeout, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        let status = match status {
            Some(status) => status,
            None => {
                self.kill();
                self.child.wait().expect("wait background script")
            }
        };
        Exited::new(status, self.stdout(), self.stderr())
    }

    fn kill(&mut self) {
        signal_group(self.child.id(), "KILL");
    }
}

fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stderr(Stdio::null())
        .status();
}

impl Drop for Bg {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill();
            let _ = self.child.wait();
        }
    }
}

/// A started tunwire: the supervisor is `child`, the relay is its one child process.
pub struct Instance {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    relay: Option<u32>,
    exited: Option<Exited>,
}

impl Instance {
    /// The supervisor's pid (the process that was started).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn stdout(&self) -> Vec<u8> {
        fs::read(&self.stdout).unwrap_or_default()
    }

    pub fn stdout_path(&self) -> &Path {
        &self.stdout
    }

    /// Whether the supervisor has exited (reaping it if so).
    pub fn has_exited(&mut self) -> bool {
        if self.exited.is_some() {
            return true;
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            self.exited = Some(Exited::new(
                status,
                String::from_utf8_lossy(&self.stdout()).into_owned(),
                self.stderr(),
            ));
            return true;
        }
        false
    }

    /// Wait until stderr contains `needle`. Err(how it ended) if the supervisor exits first.
    pub fn wait_stderr(&mut self, needle: &str, timeout: Duration) -> Result<(), Exited> {
        let mut found = false;
        wait_until(timeout, || {
            found = self.stderr().contains(needle);
            found || self.has_exited()
        });
        if found {
            return Ok(());
        }
        if let Some(exited) = &self.exited {
            return Err(exited.clone());
        }
        let pid = self.pid();
        panic!(
            "tunwire (pid {pid}) printed no {needle:?} within {timeout:?}; stderr:\n{}",
            self.stderr()
        )
    }

    /// Wait for the `ready:` line; remember the relay's pid.
    pub fn wait_ready(&mut self) -> Result<(), Exited> {
        self.wait_stderr("ready:", READY_TIMEOUT)?;
        self.relay_pid();
        Ok(())
    }

    /// The relay's pid: the supervisor's only child (polled for until it appears).
    pub fn relay_pid(&mut self) -> u32 {
        if let Some(pid) = self.relay {
            return pid;
        }
        let sup = self.pid();
        let mut kids = Vec::new();
        wait_until(READY_TIMEOUT, || {
            kids = children(sup);
            !kids.is_empty()
        });
        assert_eq!(
            kids.len(),
            1,
            "supervisor {sup} should have exactly one child (the relay), has {kids:?}; stderr:\n{}",
            self.stderr()
        );
        self.relay = Some(kids[0]);
        kids[0]
    }

    /// Send `sig` to the supervisor.
    pub fn signal(&self, sig: &str) {
        assert!(signal(self.pid(), sig), "kill -{sig} supervisor failed");
    }

    /// Send `sig` to the relay.
    pub fn signal_relay(&mut self, sig: &str) {
        let relay = self.relay_pid();
        assert!(signal(relay, sig), "kill -{sig} relay {relay} failed");
    }

    /// Wait for the supervisor to exit; after `timeout` kill everything and panic.
    pub fn wait_exit(&mut self, timeout: Duration) -> Exited {
        if !wait_until(timeout, || self.has_exited()) {
            let stderr = self.stderr();
            self.kill_all();
            panic!("tunwire did not exit within {timeout:?}; stderr:\n{stderr}");
        }
        self.exited.clone().expect("exited")
    }

    /// Send `sig` to the supervisor and wait for it to exit.
    pub fn stop(&mut self, sig: &str) -> Exited {
        self.signal(sig);
        self.wait_exit(EXIT_TIMEOUT)
    }

    /// SIGKILL the supervisor, then the relay (so nobody tears down), and reap the supervisor.
    pub fn kill_all(&mut self) {
        let relay = self.relay.or_else(|| children(self.pid()).first().copied());
        let mut pids = vec![self.pid().to_string()];
        pids.extend(relay.map(|r| r.to_string()));
        let _ = Command::new("kill").arg("-KILL").args(&pids).status();
        let _ = self.child.wait();
        if let Some(relay) = relay {
            wait_until(EXIT_TIMEOUT, || !alive(relay));
        }
        self.has_exited();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if !self.has_exited() {
            self.kill_all();
        }
    }
}

/// Child pids of `pid`, from every thread's `children` file.
pub fn children(pid: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(list) = fs::read_to_string(task.path().join("children")) {
                kids.extend(
                    list.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    kids.sort_unstable();
    kids.dedup();
    kids
}

/// Write /etc/passwd and /etc/group copies with the test accounts appended into `dir`.
fn write_fake_accounts(dir: &Path) {
    let mut passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let mut group = fs::read_to_string("/etc/group").expect("read /etc/group");
    for (file, what) in [(&passwd, "passwd"), (&group, "group")] {
        assert!(
            !file.contains("twmember:") && !file.contains(":64500:"),
            "host {what} already has test names/ids"
        );
        assert!(
            EXTRA_MEMBERS
                .iter()
                .all(|u| !file.contains(&format!("{}:", u.name))
                    && !file.contains(&format!(":{}:", u.uid))),
            "host {what} already has test names/ids"
        );
    }
    if !passwd.ends_with('\n') {
        passwd.push('\n');
    }
    if !group.ends_with('\n') {
        group.push('\n');
    }
    for user in [&MEMBER, &STRANGER].into_iter().chain(EXTRA_MEMBERS.iter()) {
        passwd += &format!(
            "{0}:x:{1}:{2}:tunwire test:/nonexistent:/usr/sbin/nologin\n",
            user.name, user.uid, user.gid
        );
        group += &format!("{}:x:{}:\n", user.name, user.gid);
    }
    for i in 0..EXTRA_GROUPS {
        group += &format!("twg{i:03}:x:{}:{}\n", FIRST_EXTRA_GID + i, MEMBER.name);
    }
    // Last, so that it is the 122nd gid getgrouplist() returns.
    let members: Vec<&str> = std::iter::once(MEMBER.name)
        .chain(EXTRA_MEMBERS.iter().map(|u| u.name))
        .collect();
    group += &format!("{ALLOWED_GROUP}:x:{ALLOWED_GID}:{}\n", members.join(","));
    for (name, text) in [("passwd", passwd), ("group", group)] {
        let mut f = fs::File::create(dir.join(name)).expect("create fake account file");
        f.write_all(text.as_bytes())
            .expect("write fake account file");
        fs::set_permissions(dir.join(name), fs::Permissions::from_mode(0o644)).expect("chmod");
    }
}

// ---- small helpers shared by the test files ----

/// The port of `http_server`.
pub const HTTP_PORT: u16 = 8013;

/// A path as &str (test paths are UTF-8).
pub fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// `s` quoted for sh.
pub fn q(s: impl AsRef<str>) -> String {
    format!("'{}'", s.as_ref().replace('\'', r"'\''"))
}

/// `tshark -r FILE [-Y FILTER] -T fields -e F...` inside the namespaces: one Vec per frame.
/// Panics unless tshark exits 0.
pub fn tshark_fields(ns: &Netns, file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut script = format!("tshark -n -r {} -T fields -E separator=/t", q(p(file)));
    if !filter.is_empty() {
        script += &format!(" -Y {}", q(filter));
    }
    for f in fields {
        script += &format!(" -e {f}");
    }
    ns.sh_ok(&format!("{script} 2>/dev/null"))
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Frames of `file` that match `filter`.
pub fn tshark_count(ns: &Netns, file: &Path, filter: &str) -> usize {
    tshark_fields(ns, file, filter, &["frame.number"]).len()
}

/// A new 0755 directory `name` in the test's directory, owned by twmember.
pub fn member_dir(ns: &Netns, name: &str) -> PathBuf {
    let dir = ns.dir().join(name);
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod dir");
    std::os::unix::fs::chown(&dir, Some(MEMBER.uid), Some(MEMBER.gid)).expect("chown dir");
    dir
}

/// The last `DIRECTION: N packets, M bytes, ...` counter line of the relay: (N, M).
pub fn counter(stderr: &str, direction: &str) -> Option<(u64, u64)> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains(&format!("{direction}:")))?;
    let rest = line.split_once(&format!("{direction}:"))?.1;
    let (mut packets, mut bytes) = (None, None);
    for part in rest.split(',') {
        let mut words = part.split_whitespace();
        match (words.next(), words.next()) {
            (Some(n), Some("packets")) => packets = n.parse().ok(),
            (Some(n), Some("bytes")) => bytes = n.parse().ok(),
            _ => {}
        }
    }
    Some((packets?, bytes?))
}

/// A hex mask of /proc/PID/status (`CapEff`, `SigIgn` ...) as a number.
pub fn cap_mask(status: &BTreeMap<String, String>, field: &str) -> u64 {
    let hex = status
        .get(field)
        .unwrap_or_else(|| panic!("no {field} in status"));
    u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{field} {hex:?}: {e}"))
}

/// A file of `size` random bytes (incompressible), readable by all; returns its sha256.
pub fn random_file(ns: &Netns, path: &Path, size: usize) -> String {
    ns.sh_ok(&format!(
        "head -c {size} /dev/urandom > {0} && chmod 0644 {0} && sha256sum < {0}",
        q(p(path))
    ))
    .split_whitespace()
    .next()
    .expect("sha256sum output")
    .to_owned()
}

/// `python3 -m http.server` on [::]:HTTP_PORT (IPv4 too) serving `dir`, ready to accept.
pub fn http_server(ns: &Netns, dir: &Path) -> Bg {
    let mut server = ns.spawn_bg(&format!(
        "exec /usr/bin/python3 -u -m http.server --bind :: --directory {} {HTTP_PORT} 1>&2",
        q(p(dir))
    ));
    server.wait_stderr("Serving HTTP", READY_TIMEOUT);
    server
}

/// `ping -c COUNT` with extra `opts` to 192.168.13.2; asserts every reply arrived.
pub fn ping_ok(ns: &Netns, count: u32, opts: &str) {
    let out = ns.sh(&format!("ping -4 -n -q -W 2 -c {count} {opts} {B4}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains(&format!("{count} packets transmitted, {count} received")),
        "ping -c {count} {opts} {B4} failed ({}):\n{text}{}\nrules:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        ns.rules()
    );
}

/// The source tree.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A file of the source tree, by its path relative to the root.
pub fn read(rel: &str) -> String {
    fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Both interfaces of a pcapng capture are described with the pair's addresses: tun0 with
/// 192.168.13.1, tun1 with 192.168.13.2.
pub fn assert_interfaces_described(ns: &Netns, file: &Path) {
    let idbs = tshark_fields(
        ns,
        file,
        "",
        &["frame.interface_name", "frame.interface_description"],
    );
    for (name, addr) in [("tun0", A4), ("tun1", B4)] {
        assert!(
            idbs.iter().any(|r| r[0] == name && r[1].starts_with(addr)),
            "no frame on {name} with a description starting {addr}: {idbs:?}"
        );
    }
}
