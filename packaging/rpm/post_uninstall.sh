# SPDX-License-Identifier: MIT OR Apache-2.0
# tunwire %postun (plain sh, no macros): on erase ($1 = 0), remove what the package added outside
# its file list, as the Debian postrm does on purge: /var/lib/tunwire (captures included), the
# enablement links of instances, and the tunwire user and group if %pre created them.
STATE=/var/lib/tunwire
MARK=$STATE/.created-by-package
if [ "$1" -eq 0 ]; then
    made=" "
    if [ -f "$MARK" ]; then
        made=" $(tr '\n' ' ' <"$MARK") "
    fi
    rm -rf "$STATE"
    for link in /etc/systemd/system/*/tunwire@*.service; do
        if [ -L "$link" ] && [ ! -e "$link" ]; then
            rm -f "$link"
        fi
    done
    case "$made" in
    *" user "*)
        if getent passwd tunwire >/dev/null; then
            userdel tunwire || echo "tunwire: could not remove the user tunwire" >&2
        fi
        ;;
    esac
    case "$made" in
    *" group "*)
        if getent group tunwire >/dev/null; then
            groupdel tunwire || echo "tunwire: could not remove the group tunwire" >&2
        fi
        ;;
    esac
    if [ -d /etc/tunwire ]; then
        rmdir --ignore-fail-on-non-empty /etc/tunwire
    fi
fi
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null 2>&1 || true
fi
exit 0
