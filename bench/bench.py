#!/usr/bin/env python3
"""tunwire benchmark: throughput, small-packet rate, latency and memory, one fresh netns per run.

Every mode runs in its own network namespace (`unshare -n`), so nothing touches the host's links,
addresses or rules. Each namespace gets the same topology: A=192.168.13.1 <-> B=192.168.13.2 with
the local routes moved to table 13 behind `iif` rules, so traffic between A and B crosses the wire
under test. Measured from A to B: ping RTT (400 x 2 ms), iperf3 TCP, iperf3 UDP with 64-byte
datagrams at full rate (received packets per second). Medians over --rounds, ratios against veth.

The topology and the measurements mirror the shared yardstick script tunnel_bench.py, and so do the
peers: c-relay, c-relay-gso and c-relay-pcap are compiled from bench/c-relay*.c into a temporary
directory at the start of a run; socat is the installed one. Modes are the tables TUNWIRE_MODES
and PEER_MODES (name -> command line); to add a row, add a line there (see bench/README.md).
BASELINE_MODES are rows running an earlier build of tunwire, given by --baseline-bin and
--capture-baseline-bin, with the tunwire row's arguments.

Usage: sudo python3 bench/bench.py [--rounds N] [--seconds S] [--modes a,b] [--bin PATH]
       sudo python3 bench/bench.py --quick            # 1 round of 1 s, veth + tunwire (CI)
       sudo python3 bench/bench.py --soak [SECONDS]   # long TCP run: RSS growth and counters
       sudo python3 bench/bench.py --extcap           # --extcap-interfaces with ten wires up
See bench/README.md.
"""
import argparse
import datetime
import fcntl
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import termios
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
A, B = "192.168.13.1", "192.168.13.2"
TABLE = 13

# The rows of the table, in table order. In both tables "{pcap}" becomes a unique file in /tmp,
# deleted after the run (its size goes into the JSON as pcap_bytes).
TUNWIRE_MODES = {
    # mode: arguments after the tunwire binary; tunwire sets up the pair itself
    "tunwire": [],
    "tunwire-nooffload": ["--offload", "off"],
    # impairment turns offload off by itself: compare with tunwire-nooffload
    "tunwire-delay10ms": ["--impair", "delay 10ms", "--seed", "1"],
    "tunwire-pcap": ["--pcap", "{pcap}"],
    "tunwire-pcap-nooffload": ["--offload", "off", "--pcap", "{pcap}"],
    # plus a live capture reader that asks for the stream and never reads (STALLED_READER_MODES)
    "tunwire-stalled-reader": [],
    # TAP devices: Ethernet frames, ARP crosses the wire (checked before measuring)
    "tunwire-tap": ["--mode", "tap"],
}
# Rows that run another build of tunwire with the `tunwire` row's arguments, interleaved with the
# others; each exists only when its option names the binary. mode: (option, what it is).
BASELINE_MODES = {
    "tunwire-baseline": ("--baseline-bin", "the build before impairment"),
    "tunwire-capture-baseline": ("--capture-baseline-bin", "the build before live capture"),
}
STALLED_READER_MODES = {"tunwire-stalled-reader"}
PEER_MODES = {
    # mode: command line creating tun0 and tun1; bench.py then sets up the pair (route_pair).
    # "{build}/NAME" is compiled from bench/NAME.c at the start of the run.
    "c-relay": ["{build}/c-relay", "tun0", "tun1"],
    "c-relay-gso": ["{build}/c-relay-gso", "tun0", "tun1"],
    "c-relay-pcap": ["{build}/c-relay", "tun0", "tun1", "{pcap}"],
    "socat": ["socat", "TUN,tun-name=tun0,tun-type=tun,iff-no-pi,iff-up",
              "TUN,tun-name=tun1,tun-type=tun,iff-no-pi,iff-up"],
}
ALL_MODES = ["veth", "tunwire"] + list(BASELINE_MODES) + list(TUNWIRE_MODES)[1:] + list(PEER_MODES)
CFLAGS = ["-O2", "-Wall", "-Wextra"]
COUNTER_RE = re.compile(r"(\S+) -> (\S+): (\d+) packets, (\d+) bytes, (\d+) dropped")
IMPAIR_RE = re.compile(r"(\S+) -> (\S+) impairment: (.*)$")
CAPTURE_REQUEST = b"TUNWIRE-CAPTURE 1 snaplen=262144\n"
# --extcap: that many wires, that many timed `tunwire --extcap-interfaces`, each under the limit
EXTCAP_WIRES, EXTCAP_CALLS, EXTCAP_LIMIT_MS = 10, 50, 50.0


# ---------------------------------------------------------------- helpers
def run(cmd, check=True, timeout=None):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=check, capture_output=True,
                          text=True, timeout=timeout)


def netdevs():
    """Interfaces of the current network namespace with their /proc/net/dev counters.

    (/sys/class/net shows the namespace sysfs was mounted in, i.e. the host's, under unshare -n.)
    """
    devs = {}
    with open("/proc/net/dev") as f:
        for line in f.readlines()[2:]:
            name, data = line.split(":", 1)
            v = [int(x) for x in data.split()]
            devs[name.strip()] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_dropped": v[3],
                                  "tx_bytes": v[8], "tx_packets": v[9], "tx_dropped": v[11]}
    return devs


def wait_dev(names, proc, t=10):
    """Wait until the namespace has all of `names`; gives up early when `proc` exits."""
    end = time.time() + t
    while time.time() < end and proc.poll() is None:
        if all(n in netdevs() for n in names):
            return True
        time.sleep(0.02)
    return False


def c_peer(mode):
    """Name of the C peer a peer mode runs (its source is bench/NAME.c), or None."""
    prog = PEER_MODES[mode][0]
    return prog[len("{build}/"):] if prog.startswith("{build}/") else None


def build_peers(names):
    """Compile the C peers `names` from bench/ into a new temporary directory; returns it."""
    build = tempfile.mkdtemp(prefix="tunwire-bench-peers-")
    for name in sorted(names):
        cmd = ["gcc"] + CFLAGS + ["-o", os.path.join(build, name), os.path.join(HERE, name + ".c")]
        if subprocess.run(cmd).returncode != 0:  # gcc's messages go to our stderr
            shutil.rmtree(build)
            sys.exit(f"failed to compile the C peer bench/{name}.c: {' '.join(cmd)}")
    return build


def instantiate(template, ext, build=None):
    """A mode's command line with "{pcap}" and "{build}" filled in, and the capture path or None."""
    pcap = None
    if any("{pcap}" in a for a in template):
        pcap = f"/tmp/tunwire-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}{ext}"
    return [a.replace("{pcap}", pcap or "").replace("{build}", build or "") for a in template], pcap


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def children(pid):
    """Direct children of pid, over all its threads."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except (FileNotFoundError, ProcessLookupError):
                pass
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def tree(pid):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += children(p)
    return pids


def instance_rss(sup):
    """RSS of a tunwire instance: supervisor + relay (and anything else it forked)."""
    return sum(rss_kib(p) for p in tree(sup))


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


class RssSampler(threading.Thread):
    """Samples the RSS (KiB) of whatever `probe()` returns every 50 ms; keeps the maximum."""

    def __init__(self, probe):
        super().__init__(daemon=True)
        self.probe, self.max, self._halt = probe, 0, threading.Event()

    def run(self):
        while not self._halt.is_set():
            try:
                self.max = max(self.max, self.probe())
            except Exception:
                pass
            self._halt.wait(0.05)

    def halt(self):
        self._halt.set()
        self.join()
        return self.max or None


# ---------------------------------------------------------------- measurements (inside the netns)
def wait_ping(t=10):
    end = time.time() + t
    while time.time() < end:
        if run(f"ping -c1 -W1 {B}", check=False).returncode == 0:
            return True
        time.sleep(0.05)
    return False


def iperf_server():
    srv = subprocess.Popen(["iperf3", "-s", "-p", "5201"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return srv


def udp_rcvbuf_errors():
    """The namespace's UDP RcvbufErrors: datagrams the receiving sockets had no room for."""
    with open("/proc/net/snmp") as f:
        rows = [x.split() for x in f if x.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def measure(seconds, dev_b="tun1"):
    """Same metrics as the yardstick: ping avg, TCP received bit/s, UDP-64 received pps. Also,
    for the UDP run, what the wire delivered into B's device (dev_b's rx) and what B's socket
    then dropped for want of room (UDP RcvbufErrors): where a flood's losses happen."""
    res = {}
    if not wait_ping():
        res["error"] = "no ping through the pair"
        return res
    p = run(f"ping -q -c 400 -i 0.002 {B}", check=False).stdout
    line = [x for x in p.splitlines() if "rtt" in x]
    res["rtt_avg_ms"] = float(line[0].split("=")[1].split("/")[1]) if line else None
    srv = iperf_server()
    try:
        out = run(f"iperf3 -c {B} -p 5201 -t {seconds} -J", check=False).stdout
        try:
            res["tcp_gbps"] = json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9
        except (ValueError, KeyError) as e:
            res["error"] = f"iperf3 TCP: {e}: {out[-200:]}"
        rx0, err0 = netdevs().get(dev_b, {}).get("rx_packets"), udp_rcvbuf_errors()
        out = run(f"iperf3 -c {B} -p 5201 -t {seconds} -J -u -b 0 -l 64", check=False).stdout
        rx1, err1 = netdevs().get(dev_b, {}).get("rx_packets"), udp_rcvbuf_errors()
        try:
            s = json.loads(out)["end"]["sum"]
            res["udp64_kpps"] = s["packets"] * (1 - s["lost_percent"] / 100) / s["seconds"] / 1e3
            res["udp64_lost_pct"] = s["lost_percent"]
            if rx0 is not None and rx1 is not None:
                res["udp64_wire_kpps"] = (rx1 - rx0) / s["seconds"] / 1e3
            res["udp64_rcvbuf_errors"] = err1 - err0
        except (ValueError, KeyError, ZeroDivisionError) as e:
            res.setdefault("error", f"iperf3 UDP: {e}: {out[-200:]}")
    finally:
        srv.kill()
        srv.wait()
    return res


def route_pair(da, db):
    """The yardstick's topology (its route_pair) on the existing devices da (A) and db (B)."""
    for c in [f"ip addr add {A} peer {B} dev {da}", f"ip addr add {B} peer {A} dev {db}",
              f"ip link set {da} up", f"ip link set {db} up",
              f"ip route del {A} table local", f"ip route del {B} table local",
              f"ip route add local {A} dev {da} table {TABLE}",
              f"ip rule add iif {da} lookup {TABLE}",
              f"ip route add local {B} dev {db} table {TABLE}",
              f"ip rule add iif {db} lookup {TABLE}"]:
        run(c)


class Tunwire:
    """A tunwire instance started with default arguments plus `extra`; waits for `ready:`."""

    def __init__(self, binary, extra, timeout=15):
        env = {k: v for k, v in os.environ.items()
               if k not in ("RUST_LOG", "JOURNAL_STREAM", "NOTIFY_SOCKET")}
        self.lines, self.ready = [], threading.Event()
        self.proc = subprocess.Popen([binary] + extra, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env=env, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        end = time.time() + timeout
        while time.time() < end and not self.ready.is_set() and self.proc.poll() is None:
            self.ready.wait(0.05)
        if not self.ready.is_set():
            self.stop()
            raise RuntimeError("tunwire never printed `ready:` (exit %s): %s"
                               % (self.proc.returncode, " | ".join(self.lines[-5:])[-400:]))

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if "ready:" in line:
                self.ready.set()

    def relay(self):
        kids = children(self.proc.pid)
        return kids[0] if kids else None

    def rss(self):
        return instance_rss(self.proc.pid)

    def counters(self, since=0):
        """Last counter line per direction, from stderr lines[since:]."""
        got = {}
        for line in self.lines[since:]:
            m = COUNTER_RE.search(line)
            if m:
                got[f"{m[1]} -> {m[2]}"] = {"packets": int(m[3]), "bytes": int(m[4]),
                                            "dropped": int(m[5])}
        return got

    def impairment(self, since=0):
        """Last impairment counter line per direction, from stderr lines[since:]:
        {"tun0 -> tun1": {"lost": N, "queue full": N, ...}}."""
        got = {}
        for line in self.lines[since:]:
            m = IMPAIR_RE.search(line)
            if m:
                got[f"{m[1]} -> {m[2]}"] = {
                    w.split(" ", 1)[1]: int(w.split(" ", 1)[0])
                    for w in m[3].split(", ") if re.match(r"\d+ ", w)}
        return got

    def stop(self):
        """SIGTERM the supervisor; returns its exit code (None if it had to be killed)."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                for pid in reversed(tree(self.proc.pid)):  # the relay, then the supervisor
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.wait()
                self.reader.join(2)
                return None
        self.reader.join(2)
        return self.proc.returncode


def remove_pcaps(path):
    """Size of the capture (plus ring files, if any), then delete them."""
    total, stem = 0, os.path.splitext(path)[0]
    for name in os.listdir("/tmp"):
        full = os.path.join("/tmp", name)
        if full == path or full.startswith(stem + "_"):
            total += os.path.getsize(full)
            os.unlink(full)
    return total


class StalledReader:
    """A live capture reader that attaches to the wire and never reads: it connects to the relay's
    abstract socket `tunwire-capture-<supervisor pid>`, sends the request line, and then leaves
    the stream (the `OK`, the pcapng header and every record) unread, so the relay's buffer for
    it fills and stays full. Waits until tunwire logs the reader as attached."""

    def __init__(self, tw, timeout=5):
        since = len(tw.lines)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(f"\0tunwire-capture-{tw.proc.pid}")
            self.sock.sendall(CAPTURE_REQUEST)
        except OSError as e:
            self.sock.close()
            raise RuntimeError(
                f"stalled reader: cannot attach to tunwire-capture-{tw.proc.pid}: {e}")
        end = time.time() + timeout
        while time.time() < end and not any(
                "capture reader" in x and "attached" in x for x in tw.lines[since:]):
            time.sleep(0.02)
        if not any("capture reader" in x and "attached" in x for x in tw.lines[since:]):
            self.sock.close()
            raise RuntimeError("stalled reader: tunwire never logged `capture reader N attached`: "
                               + " | ".join(tw.lines[since:][-3:])[-300:])
        self.tw, self.since = tw, since

    def unread(self):
        """Bytes the relay sent that are waiting, unread, in our socket."""
        buf = fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return int.from_bytes(buf, sys.byteorder)

    def detached(self):
        """Whether the relay dropped the reader (it must keep it, losing records instead)."""
        return any("capture reader" in x and "detached" in x for x in self.tw.lines[self.since:])

    def close(self):
        self.sock.close()


def tap_mode(extra):
    return "--mode" in extra and extra[extra.index("--mode") + 1:][:1] == ["tap"]


def check_arp(res):
    """TAP: ARP for B must have resolved across the wire, to tun1's own MAC (ping alone would
    also pass if the kernel answered locally). Returns an error or None."""
    if not wait_ping():
        return "TAP: no ping through the pair (ARP must cross the wire): ip neigh: " + \
            run("ip neigh show", check=False).stdout.strip().replace("\n", "; ")
    mac = run("ip -o link show tun1", check=False).stdout
    mac = re.search(r"link/ether (\S+)", mac)
    neigh = run(f"ip neigh show {B} dev tun0", check=False).stdout.strip()
    res["arp"] = neigh
    if not mac or f"lladdr {mac[1]}" not in neigh:
        return f"TAP: {B} on tun0 does not resolve to tun1's MAC ({mac and mac[1]}): {neigh!r}"
    return None


def inner_tunwire(mode, args):
    template = TUNWIRE_MODES["tunwire" if mode in BASELINE_MODES else mode]
    extra, pcap = instantiate(template, ".pcapng")
    res = {"mode": mode}
    if mode in BASELINE_MODES:
        res["bin"] = args.bin
    tw = reader = None
    try:
        tw = Tunwire(args.bin, extra)
        if mode in STALLED_READER_MODES:
            reader = StalledReader(tw)
        if tap_mode(extra):
            err = check_arp(res)
            if err:
                raise RuntimeError(err)
        sampler = RssSampler(tw.rss)
        sampler.start()
        try:
            res.update(measure(args.seconds))
        finally:
            res["rss_kib"] = sampler.halt()
        if reader:
            res["reader_unread_bytes"] = reader.unread()
            if reader.detached():
                res.setdefault("error", "the relay detached the stalled reader (it must keep it)")
    except RuntimeError as e:
        res["error"] = str(e)
    finally:
        if reader:
            reader.close()
        if tw:
            n = len(tw.lines)
            code = tw.stop()
            imp = tw.impairment(n)
            if imp:
                res["impairment"] = imp
            if code != 0:
                what = "still running 10 s after SIGTERM (killed)" if code is None else \
                    f"exit status {code} after SIGTERM (want 0)"
                res["stop_error"] = f"tunwire {what}: " + \
                    " | ".join(tw.lines[-3:])[-300:]
        if pcap:
            res["pcap_bytes"] = remove_pcaps(pcap)
    return res


def inner_peer(mode, args):
    """A peer creates tun0 and tun1; set up the pair on them, measure, SIGTERM it."""
    cmd, pcap = instantiate(PEER_MODES[mode], ".pcap", args.peer_dir)
    res = {"mode": mode}
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err)
        sampler = RssSampler(lambda: rss_kib(proc.pid))
        sampler.start()
        try:
            if wait_dev(["tun0", "tun1"], proc):
                route_pair("tun0", "tun1")
                res.update(measure(args.seconds))
            else:
                res["error"] = "the peer never created tun0 and tun1"
        finally:
            res["rss_kib"] = sampler.halt()
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if pcap and os.path.exists(pcap):
                res["pcap_bytes"] = remove_pcaps(pcap)
        if "error" in res:
            err.seek(0)
            res["error"] += f" (exit {proc.returncode}): {err.read()[-300:].strip()}"
    return res


def inner_soak(args):
    """Long TCP run through a default tunwire: RSS growth, counters vs what iperf3 saw."""
    secs = args.soak
    mark = min(5.0, secs / 2)
    res = {"mode": "soak", "seconds": secs}
    tw = Tunwire(args.bin, [])
    srv = None
    try:
        if not wait_ping():
            res["error"] = "no ping through the pair"
            return res
        srv = iperf_server()
        sampler = RssSampler(tw.rss)
        sampler.start()
        t0 = time.time()
        cli = subprocess.Popen(["iperf3", "-c", B, "-p", "5201", "-t", str(secs), "-J"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(max(0.0, t0 + mark - time.time()))
        res["rss_mark_kib"] = tw.rss()
        out, err = cli.communicate(timeout=secs + 60)
        res["rss_end_kib"] = tw.rss()
        res["rss_end_detail_kib"] = {f"{p} {comm(p)}": rss_kib(p) for p in tree(tw.proc.pid)}
        res["rss_max_kib"] = sampler.halt()
        try:
            end = json.loads(out)["end"]
            res["iperf_sent_bytes"] = end["sum_sent"]["bytes"]
            res["iperf_received_bytes"] = end["sum_received"]["bytes"]
            res["iperf_retransmits"] = end["sum_sent"].get("retransmits")
            res["tcp_gbps"] = end["sum_received"]["bits_per_second"] / 1e9
        except (ValueError, KeyError) as e:
            res["error"] = f"iperf3: {e}: {(out or err)[-300:]}"
        # kernel-side drops on the TUN queues, for context
        devs = netdevs()
        for dev in ("tun0", "tun1"):
            if dev in devs:
                res[f"{dev}_kernel_tx_dropped"] = devs[dev]["tx_dropped"]
        relay = tw.relay()
        n = len(tw.lines)
        if relay:
            os.kill(relay, signal.SIGUSR1)
            deadline = time.time() + 3
            while time.time() < deadline and len(tw.counters(n)) < 2:
                time.sleep(0.05)
        res["counters_sigusr1"] = tw.counters(n)
    finally:
        if srv:
            srv.kill()
            srv.wait()
        n = len(tw.lines)
        code = tw.stop()
        res["exit_status"] = code
        res["counters_exit"] = tw.counters(n)
    return res


def inner_extcap(args):
    """EXTCAP_WIRES default wires (each takes the next free pair), then EXTCAP_CALLS timed calls
    of `tunwire --extcap-interfaces` (wall clock of the whole process, as Wireshark waits for it);
    each must list every wire."""
    res = {"mode": "extcap", "wires": EXTCAP_WIRES, "calls": EXTCAP_CALLS}
    wires = []
    try:
        for _ in range(EXTCAP_WIRES):
            wires.append(Tunwire(args.bin, []))
        pairs = []
        for tw in wires:
            m = next((re.search(r"ready: (\S+) \S+ <-> (\S+)", x) for x in tw.lines
                      if "ready:" in x), None)
            pairs.append(f"{m[1]}/{m[2]}" if m else "?")
        res["pairs"] = pairs
        env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
        times, listed, failures = [], [], []
        for _ in range(EXTCAP_CALLS):
            t0 = time.perf_counter()
            p = subprocess.run([args.bin, "--extcap-interfaces"], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, env=env, timeout=10)
            times.append(round((time.perf_counter() - t0) * 1e3, 3))
            n = sum(1 for x in p.stdout.splitlines() if x.startswith("interface {"))
            listed.append(n)
            if p.returncode != 0 or n != EXTCAP_WIRES:
                failures.append(f"exit {p.returncode}, {n} interfaces: "
                                f"{(p.stderr or p.stdout)[-200:].strip()}")
        res["ms"], res["listed"] = times, listed
        res["output"] = p.stdout.splitlines()
        if failures:
            res["error"] = f"{len(failures)} call(s) did not list {EXTCAP_WIRES} interfaces: " \
                + failures[0]
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        res["error"] = f"{type(e).__name__}: {e}" if isinstance(e, subprocess.TimeoutExpired) \
            else str(e)
    finally:
        codes = [tw.stop() for tw in reversed(wires)]
        res["exit_statuses"] = codes[::-1]
        if any(c != 0 for c in codes):
            res["stop_error"] = f"not every wire exited 0 on SIGTERM: {codes[::-1]}"
    return res


def inner(args):
    mode = args.inner
    if list(netdevs()) != ["lo"]:  # only ever configure a fresh, private namespace
        return {"mode": mode, "error": "not in a fresh network namespace (run without --inner)"}
    run("ip link set lo up")
    if mode == "soak":
        return inner_soak(args)
    if mode == "extcap":
        return inner_extcap(args)
    if mode == "veth":
        run("ip link add v0 type veth peer name v1")
        route_pair("v0", "v1")
        res = {"mode": mode}
        res.update(measure(args.seconds, "v1"))
        return res
    if mode in TUNWIRE_MODES or mode in BASELINE_MODES:
        return inner_tunwire(mode, args)
    if mode in PEER_MODES:
        return inner_peer(mode, args)
    return {"mode": mode, "error": "unknown mode"}


# ---------------------------------------------------------------- outer driver
def run_inner(mode, args, timeout):
    pin = ["taskset", "-c", args.cpus] if args.cpus else []
    binary = args.baselines[mode] if mode in BASELINE_MODES else args.bin
    cmd = pin + ["unshare", "-n", sys.executable, os.path.abspath(__file__), "--inner", mode,
           "--seconds", str(args.seconds), "--bin", binary]
    if args.peer_dir:
        cmd += ["--peer-dir", args.peer_dir]
    if mode == "soak":
        cmd += ["--soak", str(args.soak)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_netns(proc.pid)
        proc.kill()
        proc.communicate()
        return {"mode": mode, "error": f"timed out after {timeout}s"}
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"mode": mode, "error": (err or out or "no output")[-400:]}


def kill_netns(pid):
    """SIGKILL, one by one, the processes living in pid's network namespace (a hung run's)."""
    try:
        ns = os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return
    if ns == os.readlink("/proc/self/ns/net"):
        return  # unshare has not switched yet: never touch our own namespace
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != pid:
            try:
                if os.readlink(f"/proc/{p}/ns/net") == ns:
                    os.kill(int(p), signal.SIGKILL)
            except OSError:
                pass


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"Linux {platform.release()}, {os.cpu_count()} CPUs ({model}), "
            f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}")


def median(results, key):
    vals = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(val, base, digits):
    if val is None:
        return "n/a"
    s = f"{val:.{digits}f}"
    if base:
        s += f" ({val / base:.2f}x)"
    return s


def targets(summary, results=None):
    """The issues' acceptance targets, evaluated on the medians; (label, ok or None). With the
    per-round results, each label also shows the range of the per-round ratios (round i of one
    mode against round i of the other: they ran back to back), a measure of the noise."""
    out = []
    results = results or {}

    def ratio(m, k, ref, rk=None):
        a, b = summary.get(m, {}).get(k), summary.get(ref, {}).get(rk or k)
        return (a / b, m, k, ref, rk or k) if a and b else None

    def check(label, r, op, limit):
        if r is None:
            out.append((f"{label}: n/a", None))
            return
        r, m, k, ref, rk = r
        ok = r >= limit if op == ">=" else r <= limit
        rounds = [x.get(k) / y.get(rk) for x, y in zip(results.get(m, []), results.get(ref, []))
                  if x.get(k) and y.get(rk)]
        spread = f"; per round {min(rounds):.2f}-{max(rounds):.2f}x" if len(rounds) > 1 else ""
        d = 3 if round(r, 2) == limit else 2  # 0.966 is no "0.97x" against 0.97x
        out.append((f"{label}: {r:.{d}f}x ({op} {limit}x{spread})", ok))

    check("tunwire TCP vs veth", ratio("tunwire", "tcp_gbps", "veth"), ">=", 0.6)
    check("tunwire-nooffload TCP vs c-relay", ratio("tunwire-nooffload", "tcp_gbps", "c-relay"),
          ">=", 1.0)
    check("tunwire-nooffload UDP64 pps vs c-relay",
          ratio("tunwire-nooffload", "udp64_kpps", "c-relay"), ">=", 0.9)
    check("tunwire-nooffload RTT vs c-relay", ratio("tunwire-nooffload", "rtt_avg_ms", "c-relay"),
          "<=", 1.3)
    for on, off in (("tunwire-pcap", "tunwire"), ("tunwire-pcap-nooffload", "tunwire-nooffload")):
        check(f"{on} TCP vs {off}", ratio(on, "tcp_gbps", off), ">=", 0.5)
        check(f"{on} UDP64 pps vs {off}", ratio(on, "udp64_kpps", off), ">=", 0.5)
    # impairment: an idle engine costs nothing; a 10 ms delay keeps the packet rate. Impairment
    # turns offload off, so the delayed row is compared with the offload-off row.
    for k, what in (("tcp_gbps", "TCP"), ("udp64_kpps", "UDP64 pps")):
        check(f"no impairment: tunwire {what} vs tunwire-baseline",
              ratio("tunwire", k, "tunwire-baseline"), ">=", 0.95)
    check("tunwire-delay10ms UDP64 pps vs tunwire-nooffload",
          ratio("tunwire-delay10ms", "udp64_kpps", "tunwire-nooffload"), ">=", 0.8)
    # live capture: no reader costs nothing; a reader that never reads costs nothing measurable
    for k, what in (("tcp_gbps", "TCP"), ("udp64_kpps", "UDP64 pps")):
        check(f"no reader: tunwire {what} vs tunwire-capture-baseline",
              ratio("tunwire", k, "tunwire-capture-baseline"), ">=", 0.97)
    for k, what in (("tcp_gbps", "TCP"), ("udp64_kpps", "UDP64 pps")):
        check(f"stalled reader: tunwire-stalled-reader {what} vs tunwire",
              ratio("tunwire-stalled-reader", k, "tunwire"), ">=", 0.97)
    for m in TUNWIRE_MODES:
        rss = summary.get(m, {}).get("rss_max_kib")
        if rss is not None:
            out.append((f"{m} max instance RSS: {rss} KiB (<= 8192 KiB)", rss <= 8192))
    return out


def report_extcap(res):
    """Print the extcap listing verdict; returns (works, fast enough)."""
    print(f"\nextcap: `tunwire --extcap-interfaces` with {res.get('wires')} wires running, "
          f"{res.get('calls')} calls, wall clock of each")
    if res.get("pairs"):
        print("  wires: " + ", ".join(res["pairs"]))
    ms = res.get("ms") or []
    if ms:
        q = sorted(ms)
        print(f"  median {statistics.median(ms):.1f} ms, p90 {q[int(0.9 * (len(q) - 1))]:.1f} ms, "
              f"min {q[0]:.1f} ms, max {q[-1]:.1f} ms")
    works = [("every call lists %d interfaces" % EXTCAP_WIRES,
              bool(ms) and not res.get("error")),
             ("every wire exits 0 on SIGTERM", not res.get("stop_error"))]
    for label, ok in works:
        print(f"  {'PASS' if ok else 'FAIL'}  {label}")
    for e in (res.get("error"), res.get("stop_error")):
        if e:
            print(f"  ERROR: {e[:300]}")
    fast = bool(ms) and max(ms) < EXTCAP_LIMIT_MS
    print(f"  {'PASS' if fast else 'FAIL'}  every call under {EXTCAP_LIMIT_MS:.0f} ms "
          f"(max {max(ms) if ms else float('nan'):.1f} ms)")
    return all(ok for _, ok in works), fast


def report_soak(res):
    """Print the soak verdict; returns True when every check passed."""
    print("\nsoak: %s s of iperf3 TCP through tunwire (offload on)" % res.get("seconds"))
    if res.get("error"):
        print(f"  ERROR: {res['error']}")
        return False
    checks = []
    mark, end = res.get("rss_mark_kib"), res.get("rss_end_kib")
    print(f"  RSS: {mark} KiB at the 5 s mark, {end} KiB at the end, "
          f"max {res.get('rss_max_kib')} KiB; at the end per process (supervisor first): "
          + ", ".join(f"{k}: {v}" for k, v in (res.get("rss_end_detail_kib") or {}).items()))
    checks.append(("RSS end <= 5 s mark + 1024 KiB", bool(mark and end and end <= mark + 1024)))
    checks.append(("whole instance RSS <= 8192 KiB", bool(res.get("rss_max_kib"))
                   and res["rss_max_kib"] <= 8192))
    ctr = res.get("counters_exit") or res.get("counters_sigusr1") or {}
    for d, c in ctr.items():
        print(f"  {d}: {c['packets']} packets, {c['bytes']} bytes, {c['dropped']} dropped")
    if not ctr:
        print("  no counter lines (`X -> Y: N packets, B bytes, D dropped`) on tunwire's stderr")
    print("  SIGUSR1 logged counters: %s" % ("yes" if res.get("counters_sigusr1") else "NO"))
    checks.append(("SIGUSR1 logs the counters", bool(res.get("counters_sigusr1"))))
    checks.append(("counters logged at exit", bool(res.get("counters_exit"))))
    rcv, rtx = res.get("iperf_received_bytes"), res.get("iperf_retransmits")
    data = ctr.get("tun0 -> tun1") or (max(ctr.values(), key=lambda c: c["bytes"]) if ctr else None)
    drops = sum(c["dropped"] for c in ctr.values())
    print(f"  iperf3: {res.get('iperf_sent_bytes')} bytes sent, {rcv} received, "
          f"{res.get('tcp_gbps', 0):.2f} Gbit/s")
    print(f"  drops counted: {drops}, iperf3 retransmits: {rtx}"
          f" (kernel tx_dropped tun0={res.get('tun0_kernel_tx_dropped')}, "
          f"tun1={res.get('tun1_kernel_tx_dropped')})")
    if data and rcv is not None:
        print(f"  relayed bytes A->B {data['bytes']} vs iperf3 received payload {rcv} "
              f"({data['bytes'] / max(rcv, 1):.4f}x)")
    checks.append(("counted bytes A->B >= iperf3 received bytes",
                   bool(data and rcv is not None and data["bytes"] >= rcv)))
    if data and data["dropped"] > 0:
        checks.append(("data-direction drops imply TCP retransmits", bool(rtx)))
    checks.append(("tunwire exit status 0 after SIGTERM", res.get("exit_status") == 0))
    for label, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {label}")
    return all(ok for _, ok in checks)


def main():
    ap = argparse.ArgumentParser(description="Benchmark tunwire against veth and the C peers.")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--modes", help="comma-separated, from: " + ",".join(ALL_MODES))
    ap.add_argument("--bin", default=os.environ.get("TUNWIRE_BIN")
                    or os.path.join(REPO, "target", "release", "tunwire"))
    ap.add_argument("--quick", action="store_true", help="1 round of 1 s, veth + tunwire (CI)")
    ap.add_argument("--soak", type=int, nargs="?", const=60, metavar="SECONDS",
                    help="run the soak scenario (default 60 s); alone unless --modes is given")
    ap.add_argument("--cpus", metavar="LIST",
                    help="run everything of each mode under `taskset -c LIST` (e.g. 1): steadier "
                         "RTTs on small VMs, where cross-CPU wake-ups dominate them")
    ap.add_argument("--baseline-bin", metavar="PATH",
                    help="add the row tunwire-baseline: this tunwire binary (the build before "
                         "impairment) with the tunwire row's arguments")
    ap.add_argument("--capture-baseline-bin", metavar="PATH",
                    help="add the row tunwire-capture-baseline: this tunwire binary (the build "
                         "before live capture) with the tunwire row's arguments")
    ap.add_argument("--extcap", action="store_true",
                    help=f"time `tunwire --extcap-interfaces` with {EXTCAP_WIRES} wires running; "
                         "alone unless --modes is given")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    ap.add_argument("--peer-dir", help=argparse.SUPPRESS)  # where the outer compiled the C peers
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    # baseline mode -> its binary, for the baselines whose option was given
    args.baselines = {m: os.path.abspath(getattr(args, opt[2:].replace("-", "_")))
                      for m, (opt, _) in BASELINE_MODES.items()
                      if getattr(args, opt[2:].replace("-", "_"))}

    if args.inner:
        try:
            res = inner(args)
        except Exception as e:  # report, never leave the outer without a JSON line
            res = {"mode": args.inner, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(res), flush=True)
        return 0

    if os.geteuid() != 0:
        sys.exit("bench.py must run as root (it creates network namespaces and TUN devices): "
                 "sudo python3 bench/bench.py")
    for tool in ("unshare", "ip", "ping", "iperf3") + (("taskset",) if args.cpus else ()):
        if not shutil.which(tool):
            sys.exit(f"bench.py needs `{tool}` in PATH")
    if args.quick:
        args.rounds, args.seconds = 1, 1

    if args.modes:
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        bad = [m for m in modes if m not in ALL_MODES]
        if bad:
            sys.exit(f"unknown mode(s) {','.join(bad)}; known: {','.join(ALL_MODES)}")
    elif args.quick:
        modes = ["veth", "tunwire"]
    elif args.soak is not None or args.extcap:
        modes = []
    else:
        modes = [m for m in ALL_MODES if m not in BASELINE_MODES or m in args.baselines]
    for m in modes:
        if m in BASELINE_MODES and m not in args.baselines:
            sys.exit(f"mode {m} needs {BASELINE_MODES[m][0]} PATH ({BASELINE_MODES[m][1]})")
    for m, path in args.baselines.items():
        if not os.access(path, os.X_OK):
            sys.exit(f"{BASELINE_MODES[m][0]}: no executable at {path}")
    for m in [m for m in modes if m in PEER_MODES]:
        tool = "gcc" if c_peer(m) else PEER_MODES[m][0]
        if not shutil.which(tool):
            print(f"# skipping {m}: {tool} not installed", file=sys.stderr)
            modes.remove(m)
    if (any(m in TUNWIRE_MODES for m in modes) or args.soak is not None or args.extcap) \
            and not os.access(args.bin, os.X_OK):
        sys.exit(f"tunwire binary not found at {args.bin}: run `cargo build --release` first, "
                 "or pass --bin PATH / TUNWIRE_BIN")
    peers = {c_peer(m) for m in modes if m in PEER_MODES} - {None}
    # compiled once, outside the timed runs, into a directory removed at the end
    args.peer_dir = build_peers(peers) if peers else None
    try:
        return drive(modes, args)
    finally:
        if args.peer_dir:
            shutil.rmtree(args.peer_dir)


def drive(modes, args):
    """Run the modes round by round, print the JSON lines, the table and the soak report."""
    failed = False
    header = f"machine: {machine()}"
    print(f"# {header}", flush=True)
    for m in modes:
        if m in BASELINE_MODES:
            print(f"# {m}: {args.baselines[m]} ({BASELINE_MODES[m][1]})", flush=True)
    results = {m: [] for m in modes}
    per_run = 3 * args.seconds + 40
    for i in range(args.rounds if modes else 0):
        # Round i starts at the i-th mode: no mode always runs right after the same one, and
        # carries its after-effects (the previous namespace's teardown runs in the background).
        for m in modes[i % len(modes):] + modes[:i % len(modes)]:
            res = run_inner(m, args, per_run)
            print(json.dumps(res), flush=True)
            results[m].append(res)
            failed |= bool(res.get("error") or res.get("stop_error"))

    if modes:
        summary = {}
        for m in modes:
            summary[m] = {k: median(results[m], k) for k in ("tcp_gbps", "udp64_kpps", "rtt_avg_ms")}
            rss = [r["rss_kib"] for r in results[m] if r.get("rss_kib")]
            summary[m]["rss_max_kib"] = max(rss) if rss else None
        base = summary.get("veth", {})
        print(f"\n{header}  ")
        print(f"medians over {args.rounds} round(s) of {args.seconds} s, each mode in a fresh "
              "netns" + (f", pinned to CPU(s) {args.cpus}" if args.cpus else "")
              + "; (x) = ratio to veth in the same run; RSS = max of the whole instance\n")
        print("| mode | TCP Gbit/s (x veth) | UDP64 kpps (x) | RTT ms (x) | RSS KiB |")
        print("|---|---|---|---|---|")
        errors = []
        for m in modes:
            s = summary[m]
            errors += [f"{m}: {r.get('error') or r.get('stop_error')}" for r in results[m]
                       if r.get("error") or r.get("stop_error")]
            print(f"| {m} | {fmt(s['tcp_gbps'], base.get('tcp_gbps'), 2)} "
                  f"| {fmt(s['udp64_kpps'], base.get('udp64_kpps'), 1)} "
                  f"| {fmt(s['rtt_avg_ms'], base.get('rtt_avg_ms'), 3)} "
                  f"| {s['rss_max_kib'] if s['rss_max_kib'] else '-'} |")
        if args.rounds > 1:
            print(f"\nspread over the {args.rounds} rounds (min-max):\n")
            print("| mode | TCP Gbit/s | UDP64 kpps | RTT ms |")
            print("|---|---|---|---|")
            for m in modes:
                cells = []
                for k, d in (("tcp_gbps", 2), ("udp64_kpps", 1), ("rtt_avg_ms", 3)):
                    v = [r[k] for r in results[m] if r.get(k) is not None]
                    cells.append(f"{min(v):.{d}f}-{max(v):.{d}f}" if v else "n/a")
                print(f"| {m} | " + " | ".join(cells) + " |")
            print("\nUDP64 flood, medians: what B received, what the wire delivered into B's "
                  "device (its rx), and what B's socket dropped for want of room (RcvbufErrors), "
                  "in kpps; iperf3's other losses happened before or in the wire:\n")
            print("| mode | received | delivered by the wire | dropped at B's socket |")
            print("|---|---|---|---|")
            for m in modes:
                for r in results[m]:
                    if r.get("udp64_rcvbuf_errors") is not None:
                        r["udp64_rcvbuf_kpps"] = r["udp64_rcvbuf_errors"] / args.seconds / 1e3
                cells = [median(results[m], k) for k in
                         ("udp64_kpps", "udp64_wire_kpps", "udp64_rcvbuf_kpps")]
                print(f"| {m} | " + " | ".join("n/a" if c is None else f"{c:.1f}" for c in cells)
                      + " |")
        for m in modes:
            last = next((r for r in reversed(results[m]) if r.get("impairment")), None)
            if last:
                print(f"\n{m}, impairment counters of its last round: " + "; ".join(
                    f"{d}: " + ", ".join(f"{n} {w}" for w, n in c.items())
                    for d, c in last["impairment"].items()))
            unread = [r["reader_unread_bytes"] for r in results[m] if "reader_unread_bytes" in r]
            if unread:
                print(f"\n{m}: the stalled reader left {min(unread)}-{max(unread)} bytes unread "
                      "in its socket (the relay keeps at most 256 KiB more for it, then drops)")
        for e in errors:
            print(f"\nERROR {e[:300]}")
        print("\ntargets (issues' acceptance criteria, on the medians):")
        for label, ok in targets(summary, results):
            if ok is None:
                continue  # a mode the target compares was not run
            print(f"  {'n/a ' if ok is None else 'PASS' if ok else 'FAIL'}  {label}")
            if ok is False and args.check:
                failed = True
        print("SUMMARY " + json.dumps(summary), flush=True)

    if args.soak is not None:
        res = run_inner("soak", args, args.soak + 120)
        print(json.dumps(res), flush=True)
        res.setdefault("seconds", args.soak)
        failed |= not report_soak(res)

    if args.extcap:
        res = run_inner("extcap", args, 120)
        print(json.dumps(res), flush=True)
        res.setdefault("wires", EXTCAP_WIRES)
        res.setdefault("calls", EXTCAP_CALLS)
        works, fast = report_extcap(res)
        failed |= not works or (not fast and args.check)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
