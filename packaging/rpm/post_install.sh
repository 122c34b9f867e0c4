# SPDX-License-Identifier: MIT OR Apache-2.0
# tunwire %post (plain sh, no macros): rpm itself installs /usr/bin/tunwire root:tunwire 0750
# with cap_net_admin=ep; set them again in case this rpm was built without file capability
# support. Starts nothing. $1: 1 install, 2 upgrade.
BIN=/usr/bin/tunwire
chgrp tunwire "$BIN" && chmod 0750 "$BIN"
if command -v setcap >/dev/null 2>&1; then
    setcap cap_net_admin=ep "$BIN" ||
        echo "tunwire: setcap failed on $BIN: only root and tunwire@.service can start it" >&2
fi
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null 2>&1 || true
    # An upgrade replaces the binary under running instances: restart them.
    if [ "$1" -ge 2 ]; then
        systemctl try-restart 'tunwire@*.service' >/dev/null 2>&1 || true
    fi
fi
exit 0
