# SPDX-License-Identifier: MIT OR Apache-2.0
# tunwire %preun (plain sh, no macros): on erase ($1 = 0), stop the running instances; each
# removes its own rules and routes. Upgrades ($1 >= 1) leave them running.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl stop 'tunwire@*.service' >/dev/null 2>&1 || true
fi
exit 0
