// SPDX-License-Identifier: MIT OR Apache-2.0
//! Packaging: builds the .deb (cargo deb) and the .rpm (cargo generate-rpm) and checks their
//! contents, modes, maintainer scripts and lintian; checks the systemd unit (verify, security
//! exposure); installs the .deb, runs the wire as a group member, a stranger and the service
//! user, then purges the package and checks that nothing of it remains.
//!
//! Must not: create interfaces or send packets outside `unshare --net`, or add accounts to the
//! machine (test users exist only in a private mount namespace; the `tunwire` account is the
//! package's own doing and purge removes it), or clobber an installed tunwire package.
//! Tools missing or not root: skipped with a message locally, a failure with CI=true.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

mod common;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const TMP: &str = env!("CARGO_TARGET_TMPDIR");
const UNIT: &str = "systemd/tunwire@.service";
/// systemd-analyze security --offline: openvpn-server@.service scores 7.5.
const MAX_EXPOSURE: f64 = 2.0;

/// false (and a message) when this test cannot run here; a panic in CI.
fn runnable(test: &str, root: bool, tools: &[&str]) -> bool {
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|t| !on_path(t))
        .map(|t| format!("`{t}`"))
        .collect();
    if root && !common::is_root() {
        missing.push("root".into());
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!("{test}: needs {}", missing.join(", "));
    if common::in_ci() {
        panic!("{why} (CI=true: a missing prerequisite is a failure, see .ci/run)");
    }
    eprintln!("SKIPPED {why}");
    false
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|d| {
            fs::metadata(d.join(tool))
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    out
}

/// Run, require success, return stdout.
fn ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(ROOT);
    c
}

fn read(rel: &str) -> String {
    fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

struct Packages {
    deb: PathBuf,
    rpm: PathBuf,
}

/// Both packages, built once per test run: `cargo deb` does the release build, then
/// `cargo generate-rpm` packages the same binary.
fn packages() -> &'static Packages {
    static PACKAGES: OnceLock<Packages> = OnceLock::new();
    PACKAGES.get_or_init(|| {
        let out = Path::new(TMP).join("packages");
        let _ = fs::remove_dir_all(&out);
        fs::create_dir_all(&out).unwrap();
        eprintln!("building the release binary and the .deb (LTO: this takes a while)");
        ok(cargo().args(["deb", "--locked", "--output"]).arg(&out));
        ok(cargo().args(["generate-rpm", "--output"]).arg(&out));
        let find = |ext: &str| {
            fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|e| e == ext))
                .unwrap_or_else(|| panic!("no .{ext} in {}", out.display()))
        };
        Packages {
            deb: find("deb"),
            rpm: find("rpm"),
        }
    })
}

fn deb_version() -> String {
    format!("{}-1", env!("CARGO_PKG_VERSION"))
}

#[test]
fn deb_contents_scripts_and_lintian() {
    if !runnable(
        "deb_contents_scripts_and_lintian",
        false,
        &["cargo-deb", "dpkg-deb", "lintian", "gzip"],
    ) {
        return;
    }
    let deb = &packages().deb;

    let field = |name: &str| ok(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name));
    assert_eq!(field("Package").trim(), "tunwire");
    assert_eq!(field("Version").trim(), deb_version());
    assert_eq!(field("Section").trim(), "net");
    assert!(
        field("Depends").contains("libcap2-bin"),
        "setcap comes from libcap2-bin"
    );
    assert!(
        read("packaging/changelog").starts_with(&format!("tunwire ({}) ", deb_version())),
        "packaging/changelog needs an entry for {}",
        deb_version()
    );

    // Every file with its mode; directories aside. The binary ships 0755 root:root: postinst
    // registers the statoverride root:tunwire 0750 and the file capability.
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(deb));
    let mut files: Vec<(String, String)> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let owner_mode = format!("{} {}", cols[0], cols[1]);
            (
                cols[cols.len() - 1].trim_start_matches('.').to_string(),
                owner_mode,
            )
        })
        .collect();
    files.sort();
    let expected = [
        ("/etc/tunwire/lab.conf", "-rw-r--r-- 0/0"),
        ("/etc/tunwire/policy.conf", "-rw-r--r-- 0/0"),
        ("/usr/bin/tunwire", "-rwxr-xr-x 0/0"),
        ("/usr/lib/systemd/system/tunwire@.service", "-rw-r--r-- 0/0"),
        ("/usr/lib/sysusers.d/tunwire.conf", "-rw-r--r-- 0/0"),
        (
            "/usr/share/doc/tunwire/changelog.Debian.gz",
            "-rw-r--r-- 0/0",
        ),
        ("/usr/share/doc/tunwire/copyright", "-rw-r--r-- 0/0"),
        ("/usr/share/lintian/overrides/tunwire", "-rw-r--r-- 0/0"),
        ("/usr/share/man/man5/tunwire.conf.5.gz", "-rw-r--r-- 0/0"),
        ("/usr/share/man/man5/tunwire.policy.5.gz", "-rw-r--r-- 0/0"),
        ("/usr/share/man/man8/tunwire.8.gz", "-rw-r--r-- 0/0"),
    ];
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    want.sort();
    assert_eq!(files, want, "files in the .deb\n{listing}");

    // The shipped files are the ones in the tree.
    let x = Path::new(TMP).join("deb-extract");
    let _ = fs::remove_dir_all(&x);
    ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&x));
    for (shipped, source) in [
        ("usr/lib/systemd/system/tunwire@.service", UNIT),
        (
            "usr/lib/sysusers.d/tunwire.conf",
            "packaging/sysusers.d/tunwire.conf",
        ),
        ("etc/tunwire/lab.conf", "packaging/lab.conf"),
        ("etc/tunwire/policy.conf", "packaging/policy.conf"),
    ] {
        assert_eq!(
            fs::read_to_string(x.join(shipped)).unwrap(),
            read(source),
            "{shipped}"
        );
    }
    for (shipped, source) in [
        ("usr/share/man/man8/tunwire.8.gz", "man/tunwire.8"),
        ("usr/share/man/man5/tunwire.conf.5.gz", "man/tunwire.conf.5"),
        (
            "usr/share/man/man5/tunwire.policy.5.gz",
            "man/tunwire.policy.5",
        ),
    ] {
        let text = ok(Command::new("gzip").arg("-dc").arg(x.join(shipped)));
        assert_eq!(text, read(source), "{shipped}");
    }

    // Control files: the conffiles and the maintainer scripts.
    let c = Path::new(TMP).join("deb-control");
    let _ = fs::remove_dir_all(&c);
    ok(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&c));
    let conffiles = fs::read_to_string(c.join("conffiles")).unwrap();
    let mut conffiles: Vec<&str> = conffiles.lines().map(str::trim).collect();
    conffiles.sort_unstable();
    assert_eq!(
        conffiles,
        ["/etc/tunwire/lab.conf", "/etc/tunwire/policy.conf"],
        "conffiles"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let shipped = fs::read_to_string(c.join(script)).unwrap();
        assert_eq!(
            shipped,
            read(&format!("packaging/debian/{script}")),
            "{script}"
        );
        let mode = fs::metadata(c.join(script)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{script} mode");
        ok(Command::new("sh").arg("-n").arg(c.join(script)));
        let code: Vec<&str> = shipped
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        for forbidden in [
            "systemctl start",
            "systemctl enable",
            "deb-systemd-invoke start",
        ] {
            assert!(
                !code.iter().any(|l| l.contains(forbidden)),
                "{script} must start or enable nothing"
            );
        }
    }
    let postinst = read("packaging/debian/postinst");
    for needed in [
        "systemd-sysusers /usr/lib/sysusers.d/tunwire.conf",
        "groupadd --system tunwire",
        "useradd --system",
        "dpkg-statoverride --update --add root tunwire 0750",
        "setcap cap_net_admin=ep",
    ] {
        assert!(postinst.contains(needed), "postinst lacks `{needed}`");
    }
    let postrm = read("packaging/debian/postrm");
    for needed in [
        "dpkg-statoverride --remove",
        "rm -rf \"$STATE\"",
        "userdel tunwire",
        "groupdel tunwire",
    ] {
        assert!(postrm.contains(needed), "postrm lacks `{needed}`");
    }

    // lintian: 0 errors, 0 warnings; overrides only in packaging/lintian-overrides, with reasons.
    let out = run(Command::new("lintian")
        .args(["--allow-root", "--fail-on", "error,warning"])
        .arg(deb));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("lintian:\n{report}");
    let bad: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .collect();
    assert!(
        out.status.success() && bad.is_empty(),
        "lintian errors/warnings:\n{report}"
    );
    let overrides = read("packaging/lintian-overrides");
    let mut reason = false;
    for line in overrides.lines() {
        if line.starts_with('#') && line.len() > 2 {
            reason = true;
        } else if line.starts_with("tunwire:") {
            assert!(reason, "override without a reason above it: {line}");
            reason = false;
        } else if line.trim().is_empty() {
            reason = false;
        }
    }
}

#[test]
fn rpm_contents_and_scripts() {
    if !runnable(
        "rpm_contents_and_scripts",
        false,
        &["cargo-deb", "cargo-generate-rpm", "rpm"],
    ) {
        return;
    }
    let rpm = &packages().rpm;
    let query = |fmt: &str| {
        ok(Command::new("rpm")
            .args(["-qp", "--nosignature", "--qf", fmt])
            .arg(rpm))
    };
    assert_eq!(
        query("%{NAME} %{VERSION}"),
        format!("tunwire {}", env!("CARGO_PKG_VERSION"))
    );

    let files = query("[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILECAPS} %{FILEFLAGS:fflags} %{FILENAMES}\n]");
    let mut lines: Vec<String> = files
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    let mut want = vec![
        "-rw-r--r-- root:root cn /etc/tunwire/lab.conf",
        "-rw-r--r-- root:root cn /etc/tunwire/policy.conf",
        "-rwxr-x--- root:tunwire cap_net_admin=ep /usr/bin/tunwire",
        "-rw-r--r-- root:root /usr/lib/systemd/system/tunwire@.service",
        "-rw-r--r-- root:root /usr/lib/sysusers.d/tunwire.conf",
        "-rw-r--r-- root:root d /usr/share/man/man5/tunwire.conf.5",
        "-rw-r--r-- root:root d /usr/share/man/man5/tunwire.policy.5",
        "-rw-r--r-- root:root d /usr/share/man/man8/tunwire.8",
    ];
    want.sort();
    assert_eq!(lines, want, "files in the .rpm:\n{files}");

    let requires = ok(Command::new("rpm").args(["-qpR", "--nosignature"]).arg(rpm));
    assert!(
        requires.lines().any(|l| l.trim() == "/usr/sbin/setcap"),
        "{requires}"
    );

    // Scriptlets: plain shell from packaging/rpm (cargo-generate-rpm expands no %macros).
    let scripts = ok(Command::new("rpm")
        .args(["-qp", "--nosignature", "--scripts"])
        .arg(rpm));
    eprintln!("{scripts}");
    for (tag, file) in [
        ("preinstall", "pre_install.sh"),
        ("postinstall", "post_install.sh"),
        ("preuninstall", "pre_uninstall.sh"),
        ("postuninstall", "post_uninstall.sh"),
    ] {
        assert!(
            scripts.contains(&format!("{tag} scriptlet")),
            "no {tag} scriptlet"
        );
        let text = read(&format!("packaging/rpm/{file}"));
        assert!(
            scripts.contains(text.trim_end()),
            "{tag} is not packaging/rpm/{file}"
        );
        assert!(
            !text.contains("%{") && !text.contains("%_"),
            "{file}: rpm macros are not expanded"
        );
        ok(Command::new("sh")
            .arg("-n")
            .arg(Path::new(ROOT).join("packaging/rpm").join(file)));
    }
}

#[test]
fn unit_verifies_and_is_sandboxed() {
    if !runnable(
        "unit_verifies_and_is_sandboxed",
        false,
        &["systemd-analyze"],
    ) {
        return;
    }
    let unit = read(UNIT);
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=/usr/bin/tunwire run --config /etc/tunwire/%i.conf",
        "User=tunwire",
        "Group=tunwire",
        "AmbientCapabilities=CAP_NET_ADMIN",
        "CapabilityBoundingSet=CAP_NET_ADMIN",
        "NoNewPrivileges=yes",
        "DevicePolicy=closed",
        "DeviceAllow=/dev/net/tun rw",
        "StateDirectory=tunwire",
        "WorkingDirectory=/var/lib/tunwire",
        "RestrictAddressFamilies=AF_NETLINK AF_UNIX",
        "Restart=on-failure",
        "Documentation=man:tunwire(8) man:tunwire.conf(5) man:tunwire.policy(5)",
    ] {
        assert!(unit.lines().any(|l| l == line), "{UNIT} lacks `{line}`");
    }
    // The wire lives in the host network namespace, and CAP_NET_ADMIN must act there.
    for never in ["PrivateNetwork=", "PrivateUsers=", "DynamicUser="] {
        assert!(
            !unit.lines().any(|l| l.starts_with(never)),
            "{UNIT} must not set {never}"
        );
    }

    // systemd-analyze verify, on a copy whose commands name the built binary, with the man pages
    // of the tree on MANPATH: no output at all.
    let dir = Path::new(TMP).join("unit-verify");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("man/man8")).unwrap();
    fs::create_dir_all(dir.join("man/man5")).unwrap();
    fs::copy(
        Path::new(ROOT).join("man/tunwire.8"),
        dir.join("man/man8/tunwire.8"),
    )
    .unwrap();
    for page in ["tunwire.conf.5", "tunwire.policy.5"] {
        fs::copy(
            Path::new(ROOT).join("man").join(page),
            dir.join("man/man5").join(page),
        )
        .unwrap();
    }
    let copy = dir.join("tunwire@.service");
    fs::write(
        &copy,
        unit.replace("/usr/bin/tunwire", env!("CARGO_BIN_EXE_tunwire")),
    )
    .unwrap();
    let mut verify = Command::new("systemd-analyze");
    verify.arg("verify");
    if on_path("man") {
        verify.env("MANPATH", dir.join("man"));
    } else {
        eprintln!("note: `man` is not installed: systemd-analyze verify --man=no");
        verify.arg("--man=no");
    }
    let out = run(verify.arg(&copy));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );

    let exposure = security_exposure(&Path::new(ROOT).join(UNIT));
    eprintln!("systemd-analyze security --offline=true {UNIT}: exposure {exposure}");
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}"
    );
}

fn security_exposure(unit: &Path) -> f64 {
    let out = ok(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit));
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure in:\n{out}"));
    line.split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the exposure from {line:?}"))
}

/// Purges the package if the test fails halfway, so a failure leaves nothing installed.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("dpkg").args(["--purge", "tunwire"]).status();
        }
    }
}

/// The scratch directory of the namespace run (world-traversable, under /tmp), removed always.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn getent(db: &str, key: &str) -> Option<String> {
    let out = Command::new("getent").args([db, key]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The first id from 64000 up that neither /etc/passwd nor /etc/group uses.
fn free_ids(n: usize) -> Vec<u32> {
    let used: Vec<u32> = ["/etc/passwd", "/etc/group"]
        .iter()
        .flat_map(|f| {
            fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter_map(|l| l.split(':').nth(2)?.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    (64000..).filter(|i| !used.contains(i)).take(n).collect()
}

/// Run inside `unshare --mount --propagation private --net`: the test accounts exist only in
/// bind-mounted copies of /etc/passwd and /etc/group, the wire only in the new netns.
const NAMESPACE_SCRIPT: &str = r#"
set -u
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$WORK"/*.err "$WORK"/*.txt; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done; exit 1; }
wait_for() { # PATTERN FILE
    i=0
    while [ $i -lt 100 ]; do grep -q "$1" "$2" 2>/dev/null && return 0; sleep 0.1; i=$((i + 1)); done
    return 1
}
# caps_of PID: the CapEff hex of a process
caps_of() { awk '/^CapEff:/ {print $2}' "/proc/$1/status"; }
# wire_works NAME: a ping crosses the wire and tcpdump on tun1 sees it
wire_works() {
    timeout 10 tcpdump -lni tun1 -c 2 icmp >"$WORK/$1-tcpdump.txt" 2>"$WORK/$1-tcpdump.err" &
    TD=$!; PIDS="$PIDS $TD"
    wait_for "listening on" "$WORK/$1-tcpdump.err" || fail "$1: tcpdump did not start"
    ping -c 2 -W 2 192.168.13.2 >"$WORK/$1-ping.txt" 2>&1 || fail "$1: ping 192.168.13.2 failed"
    wait "$TD" || fail "$1: tcpdump saw fewer than 2 ICMP packets on tun1"
    grep -q "192.168.13.1 > 192.168.13.2: ICMP echo request" "$WORK/$1-tcpdump.txt" ||
        fail "$1: no echo request on tun1"
    echo "ok: $1: ping 192.168.13.2 crossed the wire (tcpdump -i tun1 saw it)"
}
stop() { # NAME PID: SIGTERM, exit 0, nothing left
    kill -TERM "$2"; wait "$2"; rc=$?
    [ "$rc" = 0 ] || fail "$1: exit $rc after SIGTERM, want 0"
    ip rule | grep -q "proto 199" && fail "$1: rules left behind"
    ip link show tun0 >/dev/null 2>&1 && fail "$1: tun0 left behind"
    echo "ok: $1: SIGTERM -> exit 0, rules and TUNs gone"
}

mount --bind "$WORK/passwd" /etc/passwd || fail "bind-mount passwd"
mount --bind "$WORK/group" /etc/group || fail "bind-mount group"
ip link set lo up
# udev makes /dev/net/tun 0666; without udev (containers, some VMs) the kernel's node is 0600.
mode=$(stat -c %a /dev/net/tun)
if [ "$mode" != 666 ]; then
    echo "note: /dev/net/tun is $mode here (no udev): this namespace gets a 0666 node, as udev makes it"
    mount -t tmpfs -o mode=0755 tunwire-test /dev/net && mknod -m 0666 /dev/net/tun c 10 200 ||
        fail "0666 /dev/net/tun"
fi
umask 027

# 1. A member of the group tunwire starts the installed binary (file capability from postinst).
setpriv --reuid tw-member --regid tw-member --init-groups env /usr/bin/tunwire --offload off \
    2>"$WORK/member.err" &
SUP=$!; PIDS="$PIDS $SUP"
wait_for "ready: tun0 192.168.13.1 <-> tun1 192.168.13.2 (table 13), relaying as tw-member" \
    "$WORK/member.err" || fail "member: no ready line"
RELAY=$(pgrep -P "$SUP")
[ -n "$RELAY" ] || fail "member: no relay process"
[ "$(caps_of "$SUP")" = 0000000000001000 ] || fail "member: supervisor CapEff $(caps_of "$SUP"), want CAP_NET_ADMIN only"
for set in CapInh CapPrm CapEff CapAmb; do
    grep -q "^$set:[[:space:]]*0000000000000000" "/proc/$RELAY/status" ||
        fail "member: relay $(grep "^$set:" "/proc/$RELAY/status")"
done
# The bounding set empties where unprivileged user namespaces are allowed (see privilege.rs).
echo "relay $(grep '^CapBnd:' "/proc/$RELAY/status")"
awk -v u="$MEMBER_UID" '/^Uid:/ { exit !($2 == u && $3 == u && $4 == u) }' "/proc/$RELAY/status" ||
    fail "member: relay uid is not $MEMBER_UID"
grep -q "^NoNewPrivs:[[:space:]]*1" "/proc/$RELAY/status" || fail "member: relay without NoNewPrivs"
echo "ok: member: supervisor keeps CAP_NET_ADMIN only, relay no capability, uid $MEMBER_UID"
wire_works member
stop member "$SUP"

# 2. A stranger cannot even execute it: /usr/bin/tunwire is root:tunwire 0750.
setpriv --reuid tw-stranger --regid tw-stranger --init-groups env /usr/bin/tunwire \
    2>"$WORK/stranger-exec.err"
rc=$?
[ "$rc" = 126 ] || fail "stranger: exec of /usr/bin/tunwire gave $rc, want 126 (permission denied)"
echo "ok: stranger: exec of /usr/bin/tunwire denied (126)"

# 3. With an executable copy carrying the same file capability, tunwire itself refuses: 77.
mkdir -m 0755 "$WORK/bin" && cp /usr/bin/tunwire "$WORK/bin/tunwire" && chmod 0755 "$WORK/bin/tunwire" &&
    setcap cap_net_admin=ep "$WORK/bin/tunwire" || fail "copy with setcap"
setpriv --reuid tw-stranger --regid tw-stranger --init-groups env "$WORK/bin/tunwire" \
    2>"$WORK/stranger.err"
rc=$?
[ "$rc" = 77 ] || fail "stranger: exit $rc, want 77"
grep -q "'tunwire'" "$WORK/stranger.err" || fail "stranger: the message does not name the group tunwire"
ip link show tun0 >/dev/null 2>&1 && fail "stranger: tun0 exists"
echo "ok: stranger: exit 77 naming 'tunwire', nothing created"

# 4. The service user as tunwire@lab runs it: ambient CAP_NET_ADMIN only, NoNewPrivs, in
#    /var/lib/tunwire, with the installed /etc/tunwire/lab.conf (capture ring in /var/lib/tunwire).
(cd /var/lib/tunwire && exec setpriv --reuid tunwire --regid tunwire --init-groups \
    --inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin \
    --no-new-privs env /usr/bin/tunwire run --config /etc/tunwire/lab.conf) 2>"$WORK/service.err" &
SUP=$!; PIDS="$PIDS $SUP"
wait_for "ready: .*relaying as tunwire" "$WORK/service.err" || fail "service: no ready line"
wire_works service
stop service "$SUP"
CAP=$(ls /var/lib/tunwire/lab*.pcapng 2>/dev/null | head -n 1)
[ -n "$CAP" ] || fail "service: no capture in /var/lib/tunwire"
[ "$(stat -c '%U:%G %a' "$CAP")" = "tunwire:tunwire 640" ] ||
    fail "service: capture $CAP is $(stat -c '%U:%G %a' "$CAP"), want tunwire:tunwire 640"
if command -v tshark >/dev/null 2>&1; then
    n=$(tshark -r "$CAP" -Y icmp 2>/dev/null | wc -l)
    [ "$n" -ge 4 ] || fail "service: $CAP holds $n ICMP packets, want >= 4"
fi
echo "ok: service: capture $CAP (tunwire:tunwire 640)"
echo "ALL OK"
"#;

#[test]
fn deb_install_run_and_purge() {
    if !runnable(
        "deb_install_run_and_purge",
        true,
        &[
            "cargo-deb",
            "dpkg",
            "dpkg-query",
            "dpkg-statoverride",
            "unshare",
            "setpriv",
            "setcap",
            "getcap",
            "ip",
            "ping",
            "tcpdump",
            "pgrep",
            "timeout",
            "getent",
            "awk",
        ],
    ) {
        return;
    }
    let status = run(Command::new("dpkg-query").args(["-W", "-f", "${Status}", "tunwire"]));
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.trim().is_empty() || status.contains("not-installed"),
        "a tunwire package is already on this machine ({status}): this test installs and purges \
         one and will not clobber it; `dpkg --purge tunwire` first"
    );
    let had_user = getent("passwd", "tunwire");
    let had_group = getent("group", "tunwire");

    let deb = &packages().deb;
    let _installed = Installed;
    ok(Command::new("dpkg").arg("-i").arg(deb));

    // What postinst did.
    assert_eq!(
        ok(Command::new("stat").args(["-c", "%U:%G %a", "/usr/bin/tunwire"])).trim(),
        "root:tunwire 750"
    );
    let caps = ok(Command::new("getcap").arg("/usr/bin/tunwire"));
    assert!(caps.contains("cap_net_admin=ep"), "getcap: {caps}");
    assert_eq!(
        ok(Command::new("dpkg-statoverride").args(["--list", "/usr/bin/tunwire"])).trim(),
        "root tunwire 750 /usr/bin/tunwire"
    );
    assert_eq!(
        ok(Command::new("stat").args(["-c", "%U:%G %a", "/var/lib/tunwire"])).trim(),
        "tunwire:tunwire 750"
    );
    let user = getent("passwd", "tunwire").expect("postinst created no user tunwire");
    assert!(
        user.ends_with(":/var/lib/tunwire:/usr/sbin/nologin"),
        "{user}"
    );
    let group = getent("group", "tunwire").expect("postinst created no group tunwire");

    // The installed unit verifies clean as installed.
    let mut verify = Command::new("systemd-analyze");
    verify.arg("verify");
    if !(on_path("man") && Path::new("/usr/share/man/man8/tunwire.8.gz").exists()) {
        eprintln!("note: no `man` or man pages excluded by dpkg: verify --man=no");
        verify.arg("--man=no");
    }
    if on_path("systemd-analyze") {
        let out = run(verify.arg("/usr/lib/systemd/system/tunwire@.service"));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.trim().is_empty(),
            "verify installed unit:\n{said}"
        );
    }

    // The accounts of the namespace: a member of tunwire and a stranger.
    let work =
        WorkDir(std::env::temp_dir().join(format!("tunwire-pkg-test-{}", std::process::id())));
    let work = &work.0;
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work).unwrap();
    fs::set_permissions(work, fs::Permissions::from_mode(0o755)).unwrap();
    let ids = free_ids(2);
    let (member, stranger) = (ids[0], ids[1]);
    let mut passwd = fs::read_to_string("/etc/passwd").unwrap();
    passwd.push_str(&format!(
        "tw-member:x:{member}:{member}:tunwire test member:/nonexistent:/usr/sbin/nologin\n\
         tw-stranger:x:{stranger}:{stranger}:tunwire test stranger:/nonexistent:/usr/sbin/nologin\n"
    ));
    let mut groups = String::new();
    for line in fs::read_to_string("/etc/group").unwrap().lines() {
        if line.starts_with("tunwire:") {
            let sep = if line.ends_with(':') { "" } else { "," };
            groups.push_str(&format!("{line}{sep}tw-member\n"));
        } else {
            groups.push_str(line);
            groups.push('\n');
        }
    }
    groups.push_str(&format!(
        "tw-member:x:{member}:\ntw-stranger:x:{stranger}:\n"
    ));
    fs::write(work.join("passwd"), passwd).unwrap();
    fs::write(work.join("group"), groups).unwrap();
    fs::write(work.join("ns.sh"), NAMESPACE_SCRIPT).unwrap();

    let out = run(Command::new("timeout")
        .args([
            "180",
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--net",
            "sh",
        ])
        .arg(work.join("ns.sh"))
        .env("WORK", work)
        .env("MEMBER_UID", member.to_string()));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{said}");
    assert!(
        out.status.success() && said.contains("ALL OK"),
        "namespace run failed:\n{said}"
    );

    // Purge: nothing of the package remains.
    ok(Command::new("dpkg").args(["--purge", "tunwire"]));
    for path in [
        "/usr/bin/tunwire",
        "/usr/lib/systemd/system/tunwire@.service",
        "/usr/lib/sysusers.d/tunwire.conf",
        "/usr/share/man/man8/tunwire.8.gz",
        "/usr/share/man/man5/tunwire.conf.5.gz",
        "/usr/share/man/man5/tunwire.policy.5.gz",
        "/usr/share/doc/tunwire",
        "/usr/share/lintian/overrides/tunwire",
        "/etc/tunwire",
        "/var/lib/tunwire",
    ] {
        assert!(
            fs::symlink_metadata(path).is_err(),
            "{path} survived dpkg --purge"
        );
    }
    let status = run(Command::new("dpkg-query").args(["-W", "-f", "${Status}", "tunwire"]));
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.trim().is_empty() || status.contains("not-installed"),
        "dpkg still knows tunwire: {status}"
    );
    let over = run(Command::new("dpkg-statoverride").args(["--list", "/usr/bin/tunwire"]));
    assert!(over.stdout.is_empty(), "statoverride survived purge");
    assert_eq!(
        getent("passwd", "tunwire"),
        had_user,
        "user tunwire after purge"
    );
    assert_eq!(
        getent("group", "tunwire"),
        had_group,
        "group tunwire after purge"
    );
    eprintln!("purge removed everything, including the user and group ({group})");
}
