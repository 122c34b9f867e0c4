// SPDX-License-Identifier: MIT OR Apache-2.0
//! Packaging: builds the .deb (cargo deb --no-build) and the .rpm (cargo generate-rpm) from the
//! binary `cargo test` built, in scratch directories under $TMPDIR (nothing goes into target/),
//! and checks their contents, modes, maintainer scripts and lintian; checks the systemd unit
//! (verify, security exposure); installs the .deb into a throwaway root, runs the wire as a group
//! member, a stranger and the service user, then purges the package and checks that nothing of
//! it remains.
//!
//! The throwaway root: one `unshare --mount --net --pid` process whose overlays over /usr, /etc
//! and /var (upper dirs on a tmpfs) take every write of dpkg and the maintainer scripts, the
//! `tunwire` account included; the test users are added to the overlay's /etc. The namespace
//! dies with the test process, even a SIGKILLed one, and its mounts with it. The test checks
//! that the overlays hold before dpkg runs, and that the host's package database, statoverrides,
//! account files and /usr/bin/tunwire are unchanged afterwards.
//!
//! Must not: create interfaces or send packets outside `unshare --net`, or change the host's
//! packages or accounts. Tools missing or not root: skipped with a message locally, a failure
//! with CI=true. The install test needs root and is `#[ignore]`d: run it with
//! `cargo test -- --include-ignored` (CI does).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

mod common;
use common::{read, ROOT};

/// The binary `cargo test` built; the packages are made from it, so no release build is needed.
const BIN: &str = env!("CARGO_BIN_EXE_tunwire");
/// Scratch directories are `$TMPDIR/{SCRATCH}.PID.N.TAG`; the PID lets a later run remove the
/// leftovers of a killed one.
const SCRATCH: &str = "tunwire-pkg-test";
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

/// A fresh 0755 directory under std::env::temp_dir() (never in target/, so a root run leaves no
/// root-owned files there), removed on drop, panics included. Creating one also removes what
/// killed runs left (directories whose PID is gone or a zombie).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let tmp = std::env::temp_dir();
        sweep_leftovers(&tmp);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = tmp.join(format!("{SCRATCH}.{}.{n}.{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn sweep_leftovers(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH)?.strip_prefix('.'))
            .and_then(|rest| rest.split('.').next()?.parse::<u32>().ok())
        else {
            continue;
        };
        if !common::alive(pid) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Stages the test binary, stripped as `[profile.release] strip = true` would ship it, where both
/// packagers look for it, and returns that target directory (`DIR/target`). Both treat an asset
/// path starting with `target/release/` as the cargo target dir: cargo-deb asks
/// `cargo metadata` (CARGO_TARGET_DIR), cargo-generate-rpm takes `--target-dir`. The other asset
/// paths stay relative to the manifest directory.
///
/// Stripping here rather than with `cargo deb --strip`: cargo-generate-rpm cannot strip, and
/// zstd-compressing the ~27 MB debug binary takes it ~20 s.
fn stage_binary(dir: &Path) -> PathBuf {
    let target = dir.join("target");
    let release = target.join("release");
    fs::create_dir_all(&release).unwrap();
    ok(Command::new("strip")
        .arg("-o")
        .arg(release.join("tunwire"))
        .arg(BIN));
    fs::create_dir_all(dir.join("out")).unwrap();
    target
}

/// cargo with every build directory pointed into `target` (a scratch dir), so that packaging
/// writes nothing into the developer's target/.
fn cargo_in(target: &Path) -> Command {
    let mut c = cargo();
    c.env("CARGO_TARGET_DIR", target)
        .env("CARGO_BUILD_BUILD_DIR", target)
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET");
    c
}

fn find_package(out: &Path, ext: &str) -> PathBuf {
    fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == ext))
        .unwrap_or_else(|| panic!("no .{ext} in {}", out.display()))
}

/// The .deb of the test binary, built in `dir` (`cargo deb --no-build`: nothing is compiled).
/// --fast: the same xz format at a lower preset (what `cargo deb --install` uses), 1 s instead of
/// 3 s for the debug binary; no test looks at the compression.
fn build_deb(dir: &Path) -> PathBuf {
    let target = stage_binary(dir);
    let out = dir.join("out");
    ok(cargo_in(&target)
        .args(["deb", "--no-build", "--fast", "--locked", "--output"])
        .arg(&out));
    find_package(&out, "deb")
}

/// The .deb and the scratch dir it lives in.
struct Deb {
    path: PathBuf,
    _dir: Scratch,
}

/// The .deb, built once for the tests that run at the same time (the contents test and the
/// install test) and removed with its scratch dir when the last of them drops it.
fn shared_deb() -> Arc<Deb> {
    static SHARED: Mutex<Weak<Deb>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(deb) = shared.upgrade() {
        return deb;
    }
    let dir = Scratch::new("deb");
    let deb = Arc::new(Deb {
        path: build_deb(dir.path()),
        _dir: dir,
    });
    *shared = Arc::downgrade(&deb);
    deb
}

/// The .rpm of the test binary, built in `dir`.
fn build_rpm(dir: &Path) -> PathBuf {
    let target = stage_binary(dir);
    let out = dir.join("out");
    ok(cargo_in(&target)
        .args(["generate-rpm", "--target-dir"])
        .arg(&target)
        .arg("--output")
        .arg(&out));
    find_package(&out, "rpm")
}

fn deb_version() -> String {
    format!("{}-1", env!("CARGO_PKG_VERSION"))
}

#[test]
fn deb_contents_scripts_and_lintian() {
    if !runnable(
        "deb_contents_scripts_and_lintian",
        false,
        &["cargo-deb", "strip", "dpkg-deb", "lintian", "gzip"],
    ) {
        return;
    }
    let deb = shared_deb();
    let deb = &deb.path;
    let scratch = Scratch::new("deb-check");

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
        (
            "/usr/lib/x86_64-linux-gnu/wireshark/extcap/tunwire",
            "-rwxr-xr-x 0/0",
        ),
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
        ("/usr/share/doc/tunwire/examples/relay.c", "-rw-r--r-- 0/0"),
        (
            "/usr/share/doc/tunwire/examples/drop_every_10th.py",
            "-rw-r--r-- 0/0",
        ),
    ];
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    want.sort();
    assert_eq!(files, want, "files in the .deb\n{listing}");

    // The shipped files are the ones in the tree.
    let x = scratch.path().join("deb-extract");
    ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&x));
    for (shipped, source) in [
        ("usr/lib/systemd/system/tunwire@.service", UNIT),
        (
            "usr/lib/sysusers.d/tunwire.conf",
            "packaging/sysusers.d/tunwire.conf",
        ),
        ("etc/tunwire/lab.conf", "packaging/lab.conf"),
        ("etc/tunwire/policy.conf", "packaging/policy.conf"),
        ("usr/share/doc/tunwire/examples/relay.c", "examples/relay.c"),
        (
            "usr/share/doc/tunwire/examples/drop_every_10th.py",
            "examples/drop_every_10th.py",
        ),
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
    let c = scratch.path().join("deb-control");
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
        &["cargo-generate-rpm", "strip", "rpm"],
    ) {
        return;
    }
    let scratch = Scratch::new("rpm");
    let rpm = &build_rpm(scratch.path());
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
        "-rwxr-xr-x root:root /usr/lib64/wireshark/extcap/tunwire",
        "-rw-r--r-- root:root /usr/lib/systemd/system/tunwire@.service",
        "-rw-r--r-- root:root /usr/lib/sysusers.d/tunwire.conf",
        "-rw-r--r-- root:root d /usr/share/man/man5/tunwire.conf.5",
        "-rw-r--r-- root:root d /usr/share/man/man5/tunwire.policy.5",
        "-rw-r--r-- root:root d /usr/share/man/man8/tunwire.8",
        "-rw-r--r-- root:root d /usr/share/doc/tunwire/examples/relay.c",
        "-rw-r--r-- root:root d /usr/share/doc/tunwire/examples/drop_every_10th.py",
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
    let scratch = Scratch::new("unit");
    let dir = scratch.path();
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
    fs::write(&copy, unit.replace("/usr/bin/tunwire", BIN)).unwrap();
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

/// PID 1 of `unshare --mount --propagation private --net --pid --fork --mount-proc`: the package,
/// its accounts, the test users and the wire exist only in this namespace and vanish with it.
/// Overlays over /usr, /etc and /var (upper dirs on a tmpfs of the namespace) take every write of
/// dpkg and the maintainer scripts. Environment: WORK (the test's scratch dir on the host: this
/// script, the handshake files `ready` and `go`), DEB (the package), MARKER (a file name: written
/// into each overlay, the test process checks that it did not reach the host before saying go).
const NAMESPACE_SCRIPT: &str = r#"
set -u
export PATH="$PATH:/usr/sbin:/sbin"
S="$WORK/ns"
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$S"/log/*; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done; exit 1; }
wait_for() { # PATTERN FILE
    i=0
    while [ $i -lt 100 ]; do grep -q "$1" "$2" 2>/dev/null && return 0; sleep 0.1; i=$((i + 1)); done
    return 1
}
# caps_of PID: the CapEff hex of a process
caps_of() { awk '/^CapEff:/ {print $2}' "/proc/$1/status"; }
# wire_works NAME: a ping crosses the wire and tcpdump on tun1 sees it
wire_works() {
    timeout 10 tcpdump -lni tun1 -c 2 icmp >"$S/log/$1-tcpdump.txt" 2>"$S/log/$1-tcpdump.err" &
    TD=$!; PIDS="$PIDS $TD"
    wait_for "listening on" "$S/log/$1-tcpdump.err" || fail "$1: tcpdump did not start"
    ping -c 2 -W 2 192.168.13.2 >"$S/log/$1-ping.txt" 2>&1 || fail "$1: ping 192.168.13.2 failed"
    wait "$TD" || fail "$1: tcpdump saw fewer than 2 ICMP packets on tun1"
    grep -q "192.168.13.1 > 192.168.13.2: ICMP echo request" "$S/log/$1-tcpdump.txt" ||
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

# 0. The throwaway root. Any failure here stops the run before dpkg.
mount -t tmpfs -o mode=0755 tunwire-pkg-test "$S" || fail "tmpfs on $S"
mkdir "$S/log" || fail "mkdir $S/log"
for d in usr etc var; do
    mkdir "$S/$d.upper" "$S/$d.work" || fail "mkdir $S/$d.upper $S/$d.work"
    mount -t overlay -o "lowerdir=/$d,upperdir=$S/$d.upper,workdir=$S/$d.work" "tunwire-pkg-$d" "/$d" ||
        fail "overlay on /$d: stopping before anything could be installed on the host"
    mnt=$(findmnt -n -o FSTYPE,OPTIONS --mountpoint "/$d")
    case "$mnt" in
    overlay*"upperdir=$S/$d.upper,"*) ;;
    *) fail "/$d is not the overlay just mounted: ${mnt:-no mount}" ;;
    esac
    echo "tunwire package test" >"/$d/$MARKER" || fail "write /$d/$MARKER"
    [ -f "$S/$d.upper/$MARKER" ] || fail "/$d/$MARKER did not land in the overlay's upper dir"
    echo "ok: /$d: $mnt"
done
# The maintainer scripts run systemctl and deb-systemd-invoke (prerm: stop tunwire@*) when
# /run/systemd/system exists: on a systemd host they would reach its PID 1. An empty /run hides
# systemd, and with it nscd, dbus and userdb.
mount -t tmpfs -o mode=0755 tunwire-pkg-run /run || fail "tmpfs on /run"
# The test process looks for the markers on the host, then says go.
{ echo "$MARKER" >"$WORK/ready.tmp" && mv "$WORK/ready.tmp" "$WORK/ready"; } || fail "write $WORK/ready"
i=0
while [ ! -e "$WORK/go" ]; do
    [ $i -lt 600 ] || fail "the test process never confirmed that the overlays hold"
    sleep 0.1; i=$((i + 1))
done
echo "ok: no marker reached the host"

# 1. Install, and what postinst did.
had_user=$(getent passwd tunwire)
had_group=$(getent group tunwire)
dpkg -i "$DEB" >"$S/log/dpkg-install.txt" 2>&1 || fail "dpkg -i $DEB"
bin=$(stat -c '%U:%G %a' /usr/bin/tunwire)
[ "$bin" = "root:tunwire 750" ] || fail "/usr/bin/tunwire is $bin, want root:tunwire 750"
caps=$(getcap /usr/bin/tunwire)
case "$caps" in *cap_net_admin=ep*) ;; *) fail "getcap: $caps" ;; esac
over=$(dpkg-statoverride --list /usr/bin/tunwire)
[ "$over" = "root tunwire 750 /usr/bin/tunwire" ] || fail "statoverride: $over"
state=$(stat -c '%U:%G %a' /var/lib/tunwire)
[ "$state" = "tunwire:tunwire 750" ] || fail "/var/lib/tunwire is $state, want tunwire:tunwire 750"
user=$(getent passwd tunwire) || fail "postinst created no user tunwire"
case "$user" in *:/var/lib/tunwire:/usr/sbin/nologin) ;; *) fail "user: $user" ;; esac
group=$(getent group tunwire) || fail "postinst created no group tunwire"
echo "ok: installed: /usr/bin/tunwire $bin, $caps, statoverride '$over'"
echo "ok: installed: /var/lib/tunwire $state; $user; $group"
# The extcap copy lands in the folder tshark searches.
EXTCAP=/usr/lib/x86_64-linux-gnu/wireshark/extcap/tunwire
if command -v tshark >/dev/null 2>&1; then
    tshark -G folders 2>/dev/null | grep -q "$(dirname "$EXTCAP")" \
        || fail "tshark does not search $(dirname "$EXTCAP")"
    echo "ok: installed: tshark searches $(dirname "$EXTCAP")"
fi
# The installed unit verifies clean as installed.
if command -v systemd-analyze >/dev/null 2>&1; then
    man=""
    if ! command -v man >/dev/null 2>&1 || [ ! -e /usr/share/man/man8/tunwire.8.gz ]; then
        echo "note: no \`man\` or man pages excluded by dpkg: verify --man=no"
        man=--man=no
    fi
    systemd-analyze verify $man /usr/lib/systemd/system/tunwire@.service >/dev/null \
        2>"$S/log/verify.err" || fail "verify installed unit"
    grep -q '[^[:space:]]' "$S/log/verify.err" && fail "verify installed unit: not silent"
    echo "ok: systemd-analyze verify: the installed unit is clean"
fi

# 2. The test users, added to the overlay's /etc after the package made tunwire: a member of
#    tunwire and a stranger. Saved copies restore the accounts as the package left them.
cp -p /etc/passwd "$S/passwd.pkg" && cp -p /etc/group "$S/group.pkg" || fail "save accounts"
set -- $(awk -F: '{ used[$3] = 1 }
    END { n = 0; for (i = 64000; n < 2; i++) if (!(i in used)) { print i; n++ } }' /etc/passwd /etc/group)
MEMBER_UID=$1 STRANGER_UID=$2
printf '%s:x:%s:%s:tunwire test %s:/nonexistent:/usr/sbin/nologin\n' \
    tw-member "$MEMBER_UID" "$MEMBER_UID" member \
    tw-stranger "$STRANGER_UID" "$STRANGER_UID" stranger >>/etc/passwd || fail "add to /etc/passwd"
sed -i -e '/^tunwire:/ { /:$/ s/$/tw-member/; t; s/$/,tw-member/; }' /etc/group &&
    printf 'tw-member:x:%s:\ntw-stranger:x:%s:\n' "$MEMBER_UID" "$STRANGER_UID" >>/etc/group ||
    fail "add to /etc/group"
id -nG tw-member | grep -qw tunwire || fail "tw-member is not in tunwire: $(id tw-member)"
id -nG tw-stranger | grep -qw tunwire && fail "tw-stranger is in tunwire: $(id tw-stranger)"
echo "ok: tw-member ($MEMBER_UID, in tunwire) and tw-stranger ($STRANGER_UID)"

ip link set lo up
# udev makes /dev/net/tun 0666; without udev (containers, some VMs) the kernel's node is 0600.
mode=$(stat -c %a /dev/net/tun)
if [ "$mode" != 666 ]; then
    echo "note: /dev/net/tun is $mode here (no udev): this namespace gets a 0666 node, as udev makes it"
    mount -t tmpfs -o mode=0755 tunwire-test /dev/net && mknod -m 0666 /dev/net/tun c 10 200 ||
        fail "0666 /dev/net/tun"
fi
umask 027

# 3. A member of the group tunwire starts the installed binary (file capability from postinst).
setpriv --reuid tw-member --regid tw-member --init-groups env /usr/bin/tunwire --offload off \
    2>"$S/log/member.err" &
SUP=$!; PIDS="$PIDS $SUP"
wait_for "ready: tun0 192.168.13.1 <-> tun1 192.168.13.2 (table 13), relaying as tw-member" \
    "$S/log/member.err" || fail "member: no ready line"
RELAY=$(pgrep -P "$SUP")
[ -n "$RELAY" ] || fail "member: no relay process"
[ "$(caps_of "$SUP")" = 0000000000001000 ] || fail "member: supervisor CapEff $(caps_of "$SUP"), want CAP_NET_ADMIN only"
for set in CapInh CapPrm CapEff CapAmb; do
    grep -q "^$set:[[:space:]]*0000000000000000" "/proc/$RELAY/status" ||
        fail "member: relay $(grep "^$set:" "/proc/$RELAY/status")"
done
# A non-root start keeps the bounding set: NoNewPrivs makes it inert (see privilege.rs).
echo "relay $(grep '^CapBnd:' "/proc/$RELAY/status")"
awk -v u="$MEMBER_UID" '/^Uid:/ { exit !($2 == u && $3 == u && $4 == u) }' "/proc/$RELAY/status" ||
    fail "member: relay uid is not $MEMBER_UID"
grep -q "^NoNewPrivs:[[:space:]]*1" "/proc/$RELAY/status" || fail "member: relay without NoNewPrivs"
echo "ok: member: supervisor keeps CAP_NET_ADMIN only, relay no capability, uid $MEMBER_UID"
wire_works member
# The extcap copy: root:root 0755 without capability, and anyone may list the running wires.
EXTCAP=/usr/lib/x86_64-linux-gnu/wireshark/extcap/tunwire
[ "$(stat -c '%U:%G %a' "$EXTCAP")" = "root:root 755" ] || fail "$EXTCAP is $(stat -c '%U:%G %a' "$EXTCAP")"
[ -z "$(getcap "$EXTCAP")" ] || fail "$EXTCAP has a file capability: $(getcap "$EXTCAP")"
setpriv --reuid tw-stranger --regid tw-stranger --init-groups "$EXTCAP" --extcap-interfaces \
    >"$S/log/extcap.txt" 2>&1 || fail "stranger: $EXTCAP --extcap-interfaces failed"
grep -q "display=tunwire: tun0 <-> tun1 (tw-member)" "$S/log/extcap.txt" ||
    fail "stranger: the extcap copy does not list the member's wire"
echo "ok: stranger: the extcap copy (root:root 755, no capability) lists the member's wire"
stop member "$SUP"

# 4. A stranger cannot even execute it: /usr/bin/tunwire is root:tunwire 0750.
setpriv --reuid tw-stranger --regid tw-stranger --init-groups env /usr/bin/tunwire \
    2>"$S/log/stranger-exec.err"
rc=$?
[ "$rc" = 126 ] || fail "stranger: exec of /usr/bin/tunwire gave $rc, want 126 (permission denied)"
echo "ok: stranger: exec of /usr/bin/tunwire denied (126)"

# 5. With an executable copy carrying the same file capability, tunwire itself refuses: 77.
mkdir -m 0755 "$S/bin" && cp /usr/bin/tunwire "$S/bin/tunwire" && chmod 0755 "$S/bin/tunwire" &&
    setcap cap_net_admin=ep "$S/bin/tunwire" || fail "copy with setcap"
setpriv --reuid tw-stranger --regid tw-stranger --init-groups env "$S/bin/tunwire" \
    2>"$S/log/stranger.err"
rc=$?
[ "$rc" = 77 ] || fail "stranger: exit $rc, want 77"
grep -q "allows group tunwire" "$S/log/stranger.err" || fail "stranger: the message does not name the group tunwire"
ip link show tun0 >/dev/null 2>&1 && fail "stranger: tun0 exists"
echo "ok: stranger: exit 77 naming 'tunwire', nothing created"

# 6. The service user as tunwire@lab runs it: ambient CAP_NET_ADMIN only, NoNewPrivs, in
#    /var/lib/tunwire, with the installed /etc/tunwire/lab.conf (capture ring in /var/lib/tunwire).
(cd /var/lib/tunwire && exec setpriv --reuid tunwire --regid tunwire --init-groups \
    --inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin \
    --no-new-privs env /usr/bin/tunwire run --config /etc/tunwire/lab.conf) 2>"$S/log/service.err" &
SUP=$!; PIDS="$PIDS $SUP"
wait_for "ready: .*relaying as tunwire" "$S/log/service.err" || fail "service: no ready line"
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

# 7. Purge, with the accounts as the package left them: nothing of it remains.
cat "$S/passwd.pkg" >/etc/passwd && cat "$S/group.pkg" >/etc/group || fail "remove the test users"
dpkg --purge tunwire >"$S/log/dpkg-purge.txt" 2>&1 || fail "dpkg --purge tunwire"
for path in /usr/bin/tunwire /usr/lib/systemd/system/tunwire@.service \
    /usr/lib/x86_64-linux-gnu/wireshark/extcap/tunwire \
    /usr/lib/sysusers.d/tunwire.conf /usr/share/man/man8/tunwire.8.gz \
    /usr/share/man/man5/tunwire.conf.5.gz /usr/share/man/man5/tunwire.policy.5.gz \
    /usr/share/doc/tunwire \
    /usr/share/lintian/overrides/tunwire /etc/tunwire /var/lib/tunwire; do
    if [ -e "$path" ] || [ -L "$path" ]; then fail "$path survived dpkg --purge"; fi
done
status=$(dpkg-query -W -f '${Status}' tunwire 2>/dev/null)
case "$status" in "" | *not-installed*) ;; *) fail "dpkg still knows tunwire: $status" ;; esac
[ -z "$(dpkg-statoverride --list /usr/bin/tunwire)" ] || fail "statoverride survived purge"
now=$(getent passwd tunwire)
[ "$now" = "$had_user" ] || fail "user tunwire after purge: '$now', before install: '$had_user'"
now=$(getent group tunwire)
[ "$now" = "$had_group" ] || fail "group tunwire after purge: '$now', before install: '$had_group'"
echo "ok: purge removed everything, including the user and group ($group)"
echo "ALL OK"
"#;

/// Upper bounds, only to avoid hanging forever.
const NS_READY_TIMEOUT: Duration = Duration::from_secs(60);
const NS_RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// The namespace run: `setpriv --pdeathsig KILL unshare ... --kill-child sh NAMESPACE_SCRIPT`.
/// unshare dies with the test process, even a SIGKILLed one (pdeathsig), and takes the
/// namespace's PID 1 with it (--kill-child); when PID 1 dies the kernel kills everything else in
/// the PID namespace, and the mounts go with the last process. Killed and reaped on drop.
struct NsRun {
    child: Child,
    log: PathBuf,
    work: PathBuf,
}

impl NsRun {
    fn start(work: &Path, deb: &Path, marker: &str) -> NsRun {
        let log = work.join("ns.log");
        let out = fs::File::create(&log).expect("create ns.log");
        let err = out.try_clone().expect("dup ns.log");
        let child = Command::new("setpriv")
            .args([
                "--pdeathsig",
                "KILL",
                "unshare",
                "--mount",
                "--propagation",
                "private",
            ])
            .args([
                "--net",
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                "sh",
            ])
            .arg(work.join("ns.sh"))
            .env("WORK", work)
            .env("DEB", deb)
            .env("MARKER", marker)
            .current_dir(work)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn setpriv unshare sh");
        NsRun {
            child,
            log,
            work: work.to_owned(),
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the script has its overlays and waits for `go`; panics if it exits first.
    fn wait_ready(&mut self) {
        let ready = self.work.join("ready");
        let mut exited = None;
        let found = common::wait_until(NS_READY_TIMEOUT, || {
            if ready.exists() {
                return true;
            }
            exited = self.child.try_wait().ok().flatten();
            exited.is_some()
        });
        assert!(
            found && exited.is_none(),
            "the namespace setup failed or hung (exit {exited:?}):\n{}",
            self.log()
        );
    }

    fn go(&self) {
        let tmp = self.work.join("go.tmp");
        fs::write(&tmp, "go\n").expect("write go.tmp");
        fs::rename(&tmp, self.work.join("go")).expect("rename go.tmp");
    }

    /// Wait for the script to exit; None if it had to be killed after the timeout.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        common::wait_until(timeout, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        if status.is_none() {
            self.kill();
        }
        status
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NsRun {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill();
        }
    }
}

/// What the install test must leave on the host exactly as it found it: the package database,
/// the statoverrides, the account files, /usr/bin/tunwire and TUN links.
struct HostState(Vec<(String, String)>);

impl HostState {
    fn capture() -> HostState {
        let stdout = |cmd: &mut Command| String::from_utf8_lossy(&run(cmd).stdout).into_owned();
        let mut items = vec![
            (
                "dpkg-query -W".to_string(),
                stdout(Command::new("dpkg-query").args([
                    "-W",
                    "-f",
                    "${Package} ${Version} ${Status}\n",
                ])),
            ),
            (
                "dpkg-statoverride --list".to_string(),
                stdout(Command::new("dpkg-statoverride").arg("--list")),
            ),
        ];
        for file in ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"] {
            let text = match fs::read(file) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => format!("unreadable: {e}"),
            };
            items.push((file.to_string(), text));
        }
        items.push(("/usr/bin/tunwire".to_string(), host_binary()));
        let links = stdout(Command::new("ip").args(["-o", "link", "show"]));
        let tuns: Vec<&str> = links
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .filter(|name| name.starts_with("tun"))
            .collect();
        items.push(("TUN links (ip link)".to_string(), tuns.join("\n")));
        HostState(items)
    }

    fn get(&self, what: &str) -> &str {
        self.0
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, state)| state.as_str())
            .unwrap_or_else(|| panic!("no {what} in the host state"))
    }

    fn assert_unchanged_since(&self, before: &HostState) {
        let mut changed = String::new();
        for ((what, was), (_, is)) in before.0.iter().zip(&self.0) {
            if was != is {
                changed += &format!("--- {what} changed:\n{}", line_diff(was, is));
            }
        }
        assert!(
            changed.is_empty(),
            "the host changed during the namespace run (or something else changed it \
             meanwhile: apt, or a test that still runs dpkg -i on the host):\n{changed}"
        );
    }
}

/// /usr/bin/tunwire on the host: "absent", or its owner, mode, capability and a content hash.
fn host_binary() -> String {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let path = "/usr/bin/tunwire";
    let Ok(meta) = fs::symlink_metadata(path) else {
        return "absent".into();
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    fs::read(path).unwrap_or_default().hash(&mut hasher);
    let caps = run(Command::new("getcap").arg(path));
    format!(
        "{}:{} {:o} {} bytes, hash {:016x}, getcap {:?}",
        meta.uid(),
        meta.gid(),
        meta.mode(),
        meta.len(),
        hasher.finish(),
        String::from_utf8_lossy(&caps.stdout).trim()
    )
}

/// Lines only before (-) and only after (+).
fn line_diff(before: &str, after: &str) -> String {
    let mut out = String::new();
    for l in before.lines().filter(|l| !after.lines().any(|a| a == *l)) {
        out += &format!("- {l}\n");
    }
    for l in after.lines().filter(|l| !before.lines().any(|b| b == *l)) {
        out += &format!("+ {l}\n");
    }
    if out.is_empty() {
        out = "(same lines, different order or bytes)\n".into();
    }
    out
}

#[test]
#[ignore = "needs root"]
fn deb_install_run_and_purge() {
    if !runnable(
        "deb_install_run_and_purge",
        true,
        &[
            "cargo-deb",
            "strip",
            "dpkg",
            "dpkg-query",
            "dpkg-statoverride",
            "unshare",
            "setpriv",
            "mount",
            "findmnt",
            "setcap",
            "getcap",
            "ip",
            "ping",
            "tcpdump",
            "pgrep",
            "timeout",
            "getent",
            "awk",
            "sed",
        ],
    ) {
        return;
    }
    let scratch = Scratch::new("install");
    let work = fs::canonicalize(scratch.path()).unwrap();
    // The script mounts over these and names the scratch dir in overlay options.
    for dir in ["/usr", "/etc", "/var", "/run"] {
        assert!(
            !work.starts_with(dir),
            "{} is under {dir}, which the namespace mounts over: set TMPDIR elsewhere",
            work.display()
        );
    }
    let shown = work.display().to_string();
    assert!(
        !shown.contains([',', ':', '\\']) && !shown.contains(char::is_whitespace),
        "{shown}: overlay options cannot name this path: set TMPDIR elsewhere"
    );
    let deb = shared_deb();
    fs::create_dir(work.join("ns")).unwrap();
    fs::write(work.join("ns.sh"), NAMESPACE_SCRIPT).unwrap();
    let marker = format!(".tunwire-pkg-test.{}", std::process::id());
    let markers = ["/usr", "/etc", "/var"].map(|d| Path::new(d).join(&marker));

    let before = HostState::capture();
    let mut ns = NsRun::start(&work, &deb.path, &marker);
    ns.wait_ready();
    let leaked: Vec<&PathBuf> = markers.iter().filter(|m| m.exists()).collect();
    if !leaked.is_empty() {
        ns.kill();
        for m in &leaked {
            let _ = fs::remove_file(m);
        }
        panic!(
            "{leaked:?} reached the host (now removed): the overlays do not hold; stopped \
             before dpkg -i\n{}",
            ns.log()
        );
    }
    ns.go();
    let status = ns.wait(NS_RUN_TIMEOUT);
    let said = ns.log();
    drop(ns);
    eprintln!("{said}");

    // Whatever happened inside: the host is as it was.
    HostState::capture().assert_unchanged_since(&before);
    assert!(
        !markers.iter().any(|m| m.exists()),
        "a marker reached the host"
    );
    if before.get("/usr/bin/tunwire") == "absent" {
        assert!(
            fs::symlink_metadata("/usr/bin/tunwire").is_err(),
            "/usr/bin/tunwire appeared on the host"
        );
    }

    let status = status.unwrap_or_else(|| {
        panic!("the namespace run did not end within {NS_RUN_TIMEOUT:?}; killed:\n{said}")
    });
    assert!(
        status.success() && said.contains("ALL OK"),
        "namespace run failed ({status}):\n{said}"
    );
}
