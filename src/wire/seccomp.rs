// SPDX-License-Identifier: MIT OR Apache-2.0
//! The seccomp filter of the relay, and of any program it runs (filters are inherited and
//! cannot be removed). With a TUN fd in hand, TUNSETPERSIST, TUNSETOWNER and TUNSETGROUP need
//! no capability, and TUNSETIFF, TUNSETQUEUE and TUNSETLINK change what a fd is attached to:
//! a process holding our fds could make the devices outlive the wire. Those ioctls fail with
//! EPERM; every other system call is allowed. Needs NoNewPrivs (privilege::drop_relay).

use std::collections::BTreeMap;

use nix::libc;
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

use crate::error::{Error, Result};

/// The ioctl requests refused.
const REFUSED: [libc::Ioctl; 6] = [
    libc::TUNSETPERSIST,
    libc::TUNSETOWNER,
    libc::TUNSETGROUP,
    libc::TUNSETIFF,
    libc::TUNSETQUEUE,
    libc::TUNSETLINK,
];

/// The x32 ABI's ioctl (__X32_SYSCALL_BIT | 514) shares x86_64's audit arch, so it needs
/// rules of its own where the kernel enables x32.
#[cfg(target_arch = "x86_64")]
const X32_IOCTL: i64 = 0x4000_0000 | 514;

fn arch() -> Result<seccompiler::TargetArch> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|e| Error::Runtime(format!("no seccomp filter for this architecture: {e:?}")))
}

/// Install the filter in this process; it stays for every process it starts.
pub fn install() -> Result<()> {
    fn fail(e: impl std::fmt::Display) -> Error {
        Error::Runtime(format!("failed to build the seccomp filter: {e}"))
    }
    let rules: Vec<SeccompRule> = REFUSED
        .iter()
        .map(|&cmd| {
            // The kernel takes the command as an unsigned int: compare the low 32 bits only,
            // so high bits set by a caller cannot slip past.
            SeccompCondition::new(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                cmd as u32 as u64,
            )
            .and_then(|c| SeccompRule::new(vec![c]))
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(fail)?;
    let mut map = BTreeMap::new();
    map.insert(libc::SYS_ioctl, rules.clone());
    #[cfg(target_arch = "x86_64")]
    map.insert(X32_IOCTL, rules);
    let filter = SeccompFilter::new(
        map,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch()?,
    )
    .map_err(fail)?;
    let program: seccompiler::BpfProgram = filter.try_into().map_err(fail)?;
    seccompiler::apply_filter(&program)
        .map_err(|e| Error::Runtime(format!("failed to install the seccomp filter: {e}")))
}
