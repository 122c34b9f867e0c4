// SPDX-License-Identifier: MIT OR Apache-2.0
//! sd_notify(3) by hand: one datagram to $NOTIFY_SOCKET, which may be a path or an abstract
//! socket (leading '@'). The sd-notify crate fails on abstract sockets. Silent when not under
//! systemd; a failure to notify is logged, never fatal.

use std::os::unix::net::{SocketAddr, UnixDatagram};

pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&path.to_string_lossy(), state) {
        log::warn!("failed to notify systemd ({state}): {e}");
    }
}

fn send(path: &str, state: &str) -> std::io::Result<usize> {
    let sock = UnixDatagram::unbound()?;
    let addr = address(path)?;
    sock.send_to_addr(state.as_bytes(), &addr)
}

fn address(path: &str) -> std::io::Result<SocketAddr> {
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes())
    } else {
        SocketAddr::from_pathname(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_socket() {
        let dir = std::env::temp_dir().join(format!("tunwire-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        send(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("tunwire-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
            .unwrap();
        send(&format!("@{name}"), "STOPPING=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
