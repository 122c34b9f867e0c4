// SPDX-License-Identifier: MIT OR Apache-2.0
//! Who may start tunwire, and how each process leaves root behind.
//!
//! Theory of operation (run.rs follows this order; it is written down only here):
//! 0. `never_dumpable`, first thing: no process of tunwire is ever dumpable, so no other process
//!    of the same user can ptrace it or take its file descriptors (pidfd_getfd).
//! 1. `authorize`: root may start; anyone else needs CAP_NET_ADMIN (file capability or systemd
//!    ambient capability) plus the consent of the administrator's policy (policy/). Group
//!    membership counts the primary group and every supplementary group, read with getgroups
//!    sized by sysconf(_SC_NGROUPS_MAX) at run time, never by a constant. Under sudo, `--user`
//!    may only name the caller. The result is the `Identity` both processes become.
//! 2. Files named by the caller (the capture, `--config` under sudo) are opened with that
//!    identity's file-system credentials (`as_identity`) before anything changes.
//! 3. Setup runs with CAP_NET_ADMIN (run.rs), then the process forks while single-threaded.
//! 4. `drop_supervisor`: the parent becomes the target user and keeps CAP_NET_ADMIN only (in the
//!    bounding set too, when it may shrink it), for the teardown.
//! 5. `drop_relay`: the child clears the bounding set first (that needs CAP_SETPCAP, gone after
//!    setresuid; a non-root start never has it, so there NoNewPrivs alone keeps the bounding
//!    set from ever being used), then setgroups(the target's full getgrouplist) -> setresgid ->
//!    setresuid, then clears every other set up to /proc/sys/kernel/cap_last_cap, sets
//!    NoNewPrivs and verifies, from /proc/self/status and by trying, that root and capabilities
//!    cannot come back. The wire then installs its seccomp filter (wire/seccomp.rs).
//!
//! Must not: keep a capability it does not name, use a fixed-size group array, become
//! dumpable, or continue after a drop that did not take.

use std::ffi::CString;

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use nix::libc;
use nix::sys::prctl;
use nix::unistd::{self, Gid, Group, Uid, User};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::policy::Policy;

/// The account both processes run as after setup.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    /// The full supplementary group list (only used when switching from root).
    pub groups: Vec<Gid>,
    /// Started as root: the processes switch to `uid`. Otherwise they already are that user.
    pub switch: bool,
}

/// Decide whether this caller may start tunwire and whom the processes become. Root may; a
/// non-root caller needs CAP_NET_ADMIN (file capability or ambient) and the policy's consent.
pub fn authorize(cfg: &Config, policy: &Policy) -> Result<Identity> {
    if Uid::effective().is_root() {
        return root_target(cfg);
    }
    if let Some(user) = &cfg.user {
        return Err(Error::Usage(format!(
            "--user {user} needs root: a non-root start always runs as the caller"
        )));
    }
    let id = caller()?;
    let name = &id.name;
    let has_cap =
        caps::has_cap(None, CapSet::Permitted, Capability::CAP_NET_ADMIN).unwrap_or(false);
    if !has_cap {
        return Err(Error::NotPermitted(format!(
            "{name} lacks CAP_NET_ADMIN: start tunwire as root, through the installed binary \
             (file capability cap_net_admin+ep) as a member of {}, or from a unit with \
             AmbientCapabilities=CAP_NET_ADMIN",
            group_list(&policy.allowed_groups())
        )));
    }
    policy
        .may_start(name, &|group| id.member_of(group))
        .map_err(|r| Error::NotPermitted(r.message))?;
    // File capabilities (+ep) and ambient capabilities arrive effective; make sure.
    caps::raise(None, CapSet::Effective, Capability::CAP_NET_ADMIN)
        .map_err(|e| Error::Runtime(format!("failed to raise CAP_NET_ADMIN: {e}")))?;
    Ok(id)
}

impl Identity {
    /// Whether this account is in the named group, as its primary group or a supplementary
    /// one (however many: the list was read whole).
    pub fn member_of(&self, group: &str) -> bool {
        match Group::from_name(group) {
            Ok(Some(g)) => g.gid == self.gid || self.groups.contains(&g.gid),
            _ => false,
        }
    }
}

/// Whom the processes would become, without checking permission (for `tunwire check`).
pub fn target(cfg: &Config) -> Result<Identity> {
    if Uid::effective().is_root() {
        root_target(cfg)
    } else {
        caller()
    }
}

/// The calling (non-root) user as it is: no switch.
fn caller() -> Result<Identity> {
    let me = Uid::current();
    let name = User::from_uid(me)
        .ok()
        .flatten()
        .map_or_else(|| me.to_string(), |u| u.name);
    Ok(Identity {
        name,
        uid: me,
        gid: Gid::current(),
        groups: current_groups()?,
        switch: false,
    })
}

/// The sudo caller when root runs under sudo (SUDO_UID set by sudo), as an identity to read
/// files with: a root start must not read or write what its caller could not.
pub fn sudo_caller() -> Option<Identity> {
    if !Uid::effective().is_root() {
        return None;
    }
    let uid: u32 = std::env::var("SUDO_UID").ok()?.parse().ok()?;
    let user = User::from_uid(Uid::from_raw(uid)).ok().flatten()?;
    if user.uid.is_root() {
        return None;
    }
    let cname = CString::new(user.name.clone()).ok()?;
    let groups = unistd::getgrouplist(&cname, user.gid).ok()?;
    Some(Identity {
        name: user.name,
        uid: user.uid,
        gid: user.gid,
        groups,
        switch: true,
    })
}

/// Run `f` with the file-system identity of `id`: fsuid, fsgid and supplementary groups, and
/// (the kernel does this when fsuid leaves 0) without the file-system capabilities. Files `f`
/// opens or creates are checked and owned as `id`'s. A non-switching identity already is the
/// caller. Used for the capture file and the config file before the privilege drop.
pub fn as_identity<T>(id: &Identity, f: impl FnOnce() -> T) -> Result<T> {
    if !id.switch {
        return Ok(f());
    }
    let saved = current_groups()?;
    unistd::setgroups(&id.groups)
        .map_err(|e| Error::os(format!("take the groups of {}", id.name), e))?;
    let (old_gid, old_uid) = (unistd::setfsgid(id.gid), unistd::setfsuid(id.uid));
    // setfs*id report the previous id, also on failure: ask again to see what is in force.
    let took = unistd::setfsuid(id.uid) == id.uid && unistd::setfsgid(id.gid) == id.gid;
    let result = took.then(f);
    unistd::setfsuid(old_uid);
    unistd::setfsgid(old_gid);
    let restored = unistd::setfsuid(old_uid) == old_uid && unistd::setfsgid(old_gid) == old_gid;
    unistd::setgroups(&saved).map_err(|e| Error::os("restore the supplementary groups", e))?;
    // An fsuid change sets dumpability to fs.suid_dumpable, which may be 1: set it again.
    never_dumpable()?;
    if !restored {
        return Err(Error::Runtime(
            "failed to restore the file-system identity".into(),
        ));
    }
    result.ok_or_else(|| {
        Error::Runtime(format!(
            "failed to take the file-system identity of {}",
            id.name
        ))
    })
}

fn root_target(cfg: &Config) -> Result<Identity> {
    let sudo_user = sudo_caller().map(|c| c.name);
    // Under sudo, root acts for its caller: --user may only name the caller, or sudo for
    // tunwire would hand out every other account's files (the capture is written as --user).
    if let (Some(caller), Some(user)) = (sudo_caller(), &cfg.user) {
        if *user != caller.name {
            return Err(Error::NotPermitted(format!(
                "under sudo, --user may only name you ({}): sudo lets {} run tunwire as root, \
                 not act as {user}\n  hint: run it as {user}, or as root without sudo",
                caller.name, caller.name
            )));
        }
    }
    let name = cfg
        .user
        .clone()
        .or(sudo_user)
        .unwrap_or_else(|| "nobody".to_string());
    let user = User::from_name(&name)
        .map_err(|e| Error::os(format!("look up user {name}"), e))?
        .ok_or_else(|| {
            Error::Usage(format!(
                "user '{name}' does not exist; pick another with --user"
            ))
        })?;
    if user.uid.is_root() {
        return Err(Error::Usage(format!(
            "user '{name}' is root; tunwire never relays as root: pick another with --user"
        )));
    }
    let cname = CString::new(name.clone())
        .map_err(|_| Error::Usage(format!("user '{name}' is not a valid name")))?;
    // getgrouplist grows its buffer up to the run-time NGROUPS_MAX.
    let groups = unistd::getgrouplist(&cname, user.gid)
        .map_err(|e| Error::os(format!("read the groups of {name}"), e))?;
    Ok(Identity {
        name,
        uid: user.uid,
        gid: user.gid,
        groups,
        switch: true,
    })
}

/// The caller's supplementary groups. nix's getgroups sizes its buffer from
/// sysconf(_SC_NGROUPS_MAX) at run time, so 100+ groups are read whole.
pub fn current_groups() -> Result<Vec<Gid>> {
    unistd::getgroups().map_err(|e| Error::os("read the supplementary groups", e))
}

fn group_list(names: &[String]) -> String {
    if names.is_empty() {
        return "a group the policy allows (it allows none)".into();
    }
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    quoted.join(", ")
}

/// The supervisor: the target user with CAP_NET_ADMIN only.
pub fn drop_supervisor(id: &Identity) -> Result<()> {
    let keep = Some(Capability::CAP_NET_ADMIN);
    if id.switch {
        prctl::set_keepcaps(true).map_err(|e| Error::os("set PR_SET_KEEPCAPS", e))?;
        shrink_bounding(keep)?;
        switch_ids(id)?;
        prctl::set_keepcaps(false).map_err(|e| Error::os("clear PR_SET_KEEPCAPS", e))?;
    } else {
        // Without CAP_SETPCAP the bounding set cannot shrink; NoNewPrivs below makes it inert.
        let _ = shrink_bounding(keep);
    }
    let only: CapsHashSet = keep.into_iter().collect();
    set_caps(&only)?;
    prctl::set_no_new_privs().map_err(|e| Error::os("set NoNewPrivs", e))?;
    // A uid change sets dumpability to fs.suid_dumpable, which may be 1: set it again.
    never_dumpable()
}

/// The relay: the target user with no capability in any set, NoNewPrivs, verified.
pub fn drop_relay(id: &Identity) -> Result<()> {
    if id.switch {
        shrink_bounding(None)?;
        switch_ids(id)?;
    } else if shrink_bounding(None).is_err() {
        // A non-root start (file capability) has no CAP_SETPCAP. A user namespace of our own
        // would give it, but writing its uid_map needs the process dumpable for a moment, and
        // a dumpable moment is enough for the user to take the TUN fds. NoNewPrivs (below)
        // keeps the bounding set from ever granting anything.
        log::debug!("bounding set kept: no CAP_SETPCAP; NoNewPrivs makes it inert");
    }
    set_caps(&CapsHashSet::new())?;
    prctl::set_no_new_privs().map_err(|e| Error::os("set NoNewPrivs", e))?;
    // A uid change sets dumpability to fs.suid_dumpable, which may be 1: set it again.
    never_dumpable()?;
    verify_relay(id)
}

fn switch_ids(id: &Identity) -> Result<()> {
    let who = &id.name;
    unistd::setgroups(&id.groups)
        .map_err(|e| Error::os(format!("set the {} groups of {who}", id.groups.len()), e))?;
    unistd::setresgid(id.gid, id.gid, id.gid)
        .map_err(|e| Error::os(format!("switch to the group of {who}"), e))?;
    unistd::setresuid(id.uid, id.uid, id.uid)
        .map_err(|e| Error::os(format!("switch to user {who}"), e))?;
    Ok(())
}

/// Effective and permitted become exactly `keep`; inheritable and ambient become empty.
fn set_caps(keep: &CapsHashSet) -> Result<()> {
    let fail = |what: &str, e: caps::errors::CapsError| {
        Error::Runtime(format!("failed to set the {what} capabilities: {e}"))
    };
    caps::clear(None, CapSet::Ambient).map_err(|e| fail("ambient", e))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| fail("inheritable", e))?;
    caps::set(None, CapSet::Effective, keep).map_err(|e| fail("effective", e))?;
    if keep.is_empty() {
        // Clears all 64 bits, including capabilities newer than the caps crate knows.
        caps::clear(None, CapSet::Permitted).map_err(|e| fail("permitted", e))
    } else {
        caps::set(None, CapSet::Permitted, keep).map_err(|e| fail("permitted", e))
    }
}

fn cap_last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

/// Drop every capability from the bounding set except `keep`, up to cap_last_cap (the caps
/// crate's own list stops at 40).
fn shrink_bounding(keep: Option<Capability>) -> Result<()> {
    let keep = keep.map(|c| c.index() as u32);
    for cap in 0..=cap_last_cap() {
        if Some(cap) == keep {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes plain integers and touches no memory of ours.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc != 0 {
            let errno = Errno::last();
            if errno == Errno::EINVAL {
                continue; // the kernel does not know this one: nothing to drop
            }
            return Err(Error::os(
                format!("drop capability {cap} from the bounding set"),
                errno,
            ));
        }
    }
    Ok(())
}

/// Give up every capability, best effort: for the commands that only read (list, capture,
/// extcap), started through the file capability by a member.
pub fn drop_all() {
    let _ = set_caps(&CapsHashSet::new());
}

/// No tunwire process is ever dumpable: another process of the same user could otherwise
/// ptrace it or copy its TUN fds with pidfd_getfd. A process started through a file capability
/// already is not; a root start would be until its setuid.
pub fn never_dumpable() -> Result<()> {
    prctl::set_dumpable(false).map_err(|e| Error::os("set the process non-dumpable", e))
}

/// The capability lines of /proc/self/status that are not all zero.
fn nonzero_cap_sets() -> Result<Vec<String>> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| Error::Runtime(format!("failed to read /proc/self/status: {e}")))?;
    Ok(status
        .lines()
        .filter(|l| l.starts_with("Cap"))
        .filter(|l| {
            let hex = l.split_whitespace().nth(1).unwrap_or("");
            !matches!(u64::from_str_radix(hex, 16), Ok(0))
        })
        .map(str::to_string)
        .collect())
}

fn verify_relay(id: &Identity) -> Result<()> {
    let failed = |what: String| {
        Err(Error::Runtime(format!(
            "privilege drop did not take: {what}; refusing to relay"
        )))
    };
    if unistd::getuid().is_root() || unistd::geteuid().is_root() {
        return failed("still root".into());
    }
    if unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok() {
        return failed("setresuid(0) succeeded".into());
    }
    if unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).is_ok()
        && id.gid.as_raw() != 0
    {
        return failed("setresgid(0) succeeded".into());
    }
    let left = nonzero_cap_sets()?;
    let left: Vec<&String> = left
        .iter()
        .filter(|l| id.switch || !l.starts_with("CapBnd"))
        .collect();
    if !left.is_empty() {
        return failed(format!("capabilities remain: {left:?}"));
    }
    if !prctl::get_no_new_privs().unwrap_or(false) {
        return failed("NoNewPrivs is not set".into());
    }
    if prctl::get_dumpable().unwrap_or(true) {
        return failed("the process is dumpable".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_list_quotes_every_name() {
        assert_eq!(
            group_list(&["tunwire".into(), "lab".into()]),
            "'tunwire', 'lab'"
        );
        assert!(group_list(&[]).contains("none"));
    }

    #[test]
    fn cap_last_cap_is_sane() {
        let last = cap_last_cap();
        assert!((30..64).contains(&last), "{last}");
    }

    #[test]
    fn current_groups_reads_all() {
        // Whatever the caller has, it must come back whole and without error.
        let groups = current_groups().unwrap();
        let limit = nix::unistd::sysconf(nix::unistd::SysconfVar::NGROUPS_MAX)
            .unwrap()
            .unwrap();
        assert!(groups.len() as i64 <= limit);
    }
}
