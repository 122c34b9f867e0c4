// SPDX-License-Identifier: MIT OR Apache-2.0
//! TUN and TAP devices: open /dev/net/tun, create a new device with TUNSETIFF (IFF_TUN_EXCL:
//! never an existing one), set its owner, switch on offloads. The fd is an OwnedFd, so every error path closes it, and
//! closing the last fd removes the (non-persistent) device with its addresses and routes. Must
//! not read or write packets: that is the wire's.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::errno::Errno;
use nix::libc;

use crate::config::Mode;
use crate::error::{Error, Result};

/// sizeof(struct virtio_net_hdr): the header IFF_VNET_HDR puts before every packet.
pub const VNET_HDR_LEN: usize = 10;

nix::ioctl_write_ptr_bad!(tunsetiff, libc::TUNSETIFF, libc::ifreq);
nix::ioctl_write_int_bad!(tunsetoffload, libc::TUNSETOFFLOAD);
nix::ioctl_write_ptr_bad!(tunsetvnethdrsz, libc::TUNSETVNETHDRSZ, libc::c_int);
nix::ioctl_write_int_bad!(tunsetowner, libc::TUNSETOWNER);
nix::ioctl_write_int_bad!(tunsetgroup, libc::TUNSETGROUP);

pub struct Tun {
    pub name: String,
    /// The interface index, which stays the device's for as long as the fd holds it.
    pub index: u32,
    pub fd: OwnedFd,
}

/// What the kernel accepted for offloads on a TUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offload {
    Off,
    /// Checksum and TCP segmentation offload; `uso` when UDP segmentation was accepted too.
    On {
        uso: bool,
    },
}

impl Tun {
    /// Create the TUN `name`, non-blocking, with IFF_VNET_HDR when `vnet_hdr`, owned by `owner`
    /// (uid, gid; `ip -d link` shows them, and no other user may attach). A device of that
    /// name must not exist yet: tunwire never attaches to or changes a device it did not create.
    pub fn create(name: &str, mode: Mode, vnet_hdr: bool, owner: (u32, u32)) -> Result<Tun> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| {
                Error::os_hint(
                    "open /dev/net/tun",
                    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                    "load the tun module (modprobe tun) and check the device node's permissions",
                )
            })?;
        let fd = OwnedFd::from(file);
        // SAFETY: ifreq is plain old data; all zeroes is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        let kind = match mode {
            Mode::Tun => libc::IFF_TUN,
            Mode::Tap => libc::IFF_TAP,
        };
        let mut flags = kind | libc::IFF_NO_PI | libc::IFF_TUN_EXCL;
        if vnet_hdr {
            flags |= libc::IFF_VNET_HDR;
        }
        req.ifr_ifru.ifru_flags = flags as libc::c_short;
        // SAFETY: fd is an open /dev/net/tun descriptor and req is an initialised struct ifreq
        // that outlives the call.
        if let Err(errno) = unsafe { tunsetiff(fd.as_raw_fd(), &req) } {
            return Err(match errno {
                Errno::EBUSY => Error::os_hint(
                    format!("create TUN {name}"),
                    errno,
                    "a device of that name exists (another tunwire, or a persistent TUN); it \
                     was left alone: pick other names",
                ),
                Errno::EINVAL => Error::os_hint(
                    format!("create TUN {name}"),
                    errno,
                    "a device of another kind has that name; it was left alone: pick other names",
                ),
                _ => Error::os(format!("create TUN {name}"), errno),
            });
        }
        // SAFETY: valid TUN fd; TUNSETOWNER and TUNSETGROUP take the id by value.
        unsafe { tunsetowner(fd.as_raw_fd(), owner.0 as libc::c_int) }
            .map_err(|e| Error::os(format!("set the owner of {name}"), e))?;
        // SAFETY: as above.
        unsafe { tunsetgroup(fd.as_raw_fd(), owner.1 as libc::c_int) }
            .map_err(|e| Error::os(format!("set the group of {name}"), e))?;
        let index = super::netlink::ifindex(name)?;
        Ok(Tun {
            name: name.to_string(),
            index,
            fd,
        })
    }

    /// Ask for GSO super-packets: checksum, TSO4/6 and, where the kernel has it, USO4/6. Falls
    /// back step by step; never fails the start because of a refused flag.
    pub fn enable_offload(&self) -> Result<Offload> {
        let len = VNET_HDR_LEN as libc::c_int;
        // SAFETY: valid TUN fd; the kernel reads one int through the pointer.
        unsafe { tunsetvnethdrsz(self.fd.as_raw_fd(), &len) }
            .map_err(|e| Error::os(format!("set the vnet header size of {}", self.name), e))?;
        let base = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
        for (flags, offload) in [
            (
                base | libc::TUN_F_USO4 | libc::TUN_F_USO6,
                Offload::On { uso: true },
            ),
            (base, Offload::On { uso: false }),
            (0, Offload::Off),
        ] {
            // SAFETY: valid TUN fd; TUNSETOFFLOAD takes the flags by value.
            if unsafe { tunsetoffload(self.fd.as_raw_fd(), flags as libc::c_int) }.is_ok() {
                return Ok(offload);
            }
        }
        Ok(Offload::Off)
    }
}
