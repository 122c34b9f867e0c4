// SPDX-License-Identifier: MIT OR Apache-2.0
//! TUN devices: open /dev/net/tun, attach a name with TUNSETIFF, switch on offloads. The fd is an
//! OwnedFd, so every error path closes it, and closing the last fd removes the (non-persistent)
//! device with its addresses and routes. Must not read or write packets: that is the relay's.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::errno::Errno;
use nix::libc;

use crate::error::{Error, Result};

/// sizeof(struct virtio_net_hdr): the header IFF_VNET_HDR puts before every packet.
pub const VNET_HDR_LEN: usize = 10;

const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const IFF_PERSIST: libc::c_short = 0x0800;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

nix::ioctl_write_ptr_bad!(tunsetiff, 0x4004_54ca, IfReq);
nix::ioctl_read_bad!(tungetiff, 0x8004_54d2, IfReq);
nix::ioctl_write_int_bad!(tunsetoffload, 0x4004_54d0);
nix::ioctl_write_ptr_bad!(tunsetvnethdrsz, 0x4004_54d8, libc::c_int);

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
    /// Create (attach) the TUN `name`, non-blocking, with IFF_VNET_HDR when `vnet_hdr`.
    pub fn open(name: &str, vnet_hdr: bool) -> Result<Tun> {
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
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TUN | IFF_NO_PI | if vnet_hdr { IFF_VNET_HDR } else { 0 },
            _pad: [0; 22],
        };
        for (dst, src) in req.name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: fd is an open /dev/net/tun descriptor and req is a properly sized, initialised
        // struct ifreq that outlives the call.
        if let Err(errno) = unsafe { tunsetiff(fd.as_raw_fd(), &req) } {
            return Err(match errno {
                Errno::EBUSY => Error::os_hint(
                    format!("create TUN {name}"),
                    errno,
                    "another process holds that TUN (is another tunwire running?); pick other names",
                ),
                Errno::EINVAL => Error::os_hint(
                    format!("create TUN {name}"),
                    errno,
                    "a device of another kind (or a TAP, or a TUN with other flags) has that name; it was left alone",
                ),
                _ => Error::os(format!("create TUN {name}"), errno),
            });
        }
        // SAFETY: as above; the kernel fills req.
        unsafe { tungetiff(fd.as_raw_fd(), &mut req) }
            .map_err(|e| Error::os(format!("query TUN {name}"), e))?;
        if req.flags & IFF_PERSIST != 0 {
            return Err(Error::Runtime(format!(
                "failed to create TUN {name}: a persistent TUN of that name exists (ip tuntap); \
                 it was left alone\n  hint: remove it with `ip tuntap del {name} mode tun`, or pick other names"
            )));
        }
        let index = crate::netlink::ifindex(name)?;
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
        let base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
        for (flags, offload) in [
            (base | TUN_F_USO4 | TUN_F_USO6, Offload::On { uso: true }),
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
