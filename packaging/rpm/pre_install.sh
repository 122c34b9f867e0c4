# SPDX-License-Identifier: MIT OR Apache-2.0
# tunwire %pre (plain sh, no macros): the group must exist before rpm installs /usr/bin/tunwire
# as root:tunwire 0750 with cap_net_admin=ep. Records the accounts it creates, as the Debian
# postinst does, so that erasing removes only those. $1: 1 install, 2 upgrade.
STATE=/var/lib/tunwire
MARK=$STATE/.created-by-package
made=""
getent group tunwire >/dev/null || made="$made group"
getent passwd tunwire >/dev/null || made="$made user"
if command -v systemd-sysusers >/dev/null 2>&1; then
    echo 'u tunwire - "tunwire wire" /var/lib/tunwire /usr/sbin/nologin' |
        systemd-sysusers --replace=/usr/lib/sysusers.d/tunwire.conf - || exit 1
else
    getent group tunwire >/dev/null || groupadd --system tunwire || exit 1
    getent passwd tunwire >/dev/null ||
        useradd --system --gid tunwire --home-dir "$STATE" --no-create-home \
            --shell /usr/sbin/nologin --comment "tunwire wire" tunwire || exit 1
fi
if [ ! -d "$STATE" ]; then
    mkdir -p "$STATE"
    chown tunwire:tunwire "$STATE"
    chmod 0750 "$STATE"
fi
for what in $made; do
    echo "$what" >>"$MARK"
done
exit 0
