#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""A prototype link for `tunwire -- python3 examples/drop_every_10th.py`: it relays between
fd 3 (side A) and fd 4 (side B), one packet per read and per write, and drops every 10th
packet, saying why. A starting point for your own MAC+PHY experiments."""
import os
import selectors
import signal
import sys

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # tunwire stops us with SIGTERM
SIDES = {3: 4, 4: 3}
names = os.environ.get("LISTEN_FDNAMES", "A:B").split(":")
sel = selectors.DefaultSelector()
for fd in SIDES:
    sel.register(fd, selectors.EVENT_READ)
count = 0
while True:
    for key, _ in sel.select():
        packet = os.read(key.fd, 65536)
        count += 1
        side = names[key.fd - 3]
        if count % 10 == 0:
            print(f"dropped packet {count} ({len(packet)} bytes from {side}): every 10th is lost",
                  file=sys.stderr, flush=True)
            continue
        try:
            os.write(SIDES[key.fd], packet)
        except OSError as e:
            print(f"packet {count} not delivered: {e}", file=sys.stderr, flush=True)
