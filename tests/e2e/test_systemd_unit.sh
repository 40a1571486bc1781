#!/bin/sh
# deploy/systemd/quiverd.service: `systemd-analyze verify` accepts it with no
# warning at all (unknown keys are only warnings there, so any output
# fails), its security exposure stays "OK" or better, it keeps the settings
# quiverd relies on, and quiverd parses the arguments of its ExecStart.
# Usage: test_systemd_unit.sh UNIT QUIVERD
set -u
unit=$1 quiverd=$2
command -v systemd-analyze >/dev/null 2>&1 || {
	echo "SKIP: systemd-analyze not installed (Debian package systemd)"; exit 77; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0
# The unit names the installed path; point it at the binary under test.
sed "s#/usr/bin/quiverd#$quiverd#" "$unit" >"$tmp/quiverd.service"
out=$(systemd-analyze verify --man=no "$tmp/quiverd.service" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
	echo "FAIL: systemd-analyze verify (exit $rc):"; echo "$out"; fail=1
fi
sec=$(systemd-analyze security --offline=yes "$tmp/quiverd.service" 2>&1 |
	sed -n 's/.*Overall exposure level for quiverd.service: \([0-9.]*\).*/\1/p')
if [ -z "$sec" ] || [ "$(echo "$sec > 4.0" | awk '{print ($1 > $3)}')" != 0 ]; then
	echo "FAIL: security exposure '$sec', want <= 4.0"; fail=1
else
	echo "security exposure $sec"
fi
for want in '^Type=notify$' '^NotifyAccess=main$' '^WatchdogSec=' '^RuntimeDirectory=quiver$' \
	'^NoNewPrivileges=yes$' '^ProtectSystem=strict$' '^ProtectHome=yes$' '^PrivateTmp=yes$' \
	'^CapabilityBoundingSet=$' '^LimitMEMLOCK=infinity$' '--foreground' \
	'--socket /run/quiver/quiverd.sock' '--metrics-listen'; do
	grep -q -e "$want" "$unit" || { echo "FAIL: no '$want' in the unit"; fail=1; }
done
# ExecStart's arguments parse (exit 2 is a usage error); the repository
# does not exist here, so the start itself fails with 1.
args=$(sed -n '/^ExecStart=/,/[^\\]$/p' "$unit" | sed 's/^ExecStart=[^ ]*//; s/\\$//' | tr '\n' ' ' |
	sed "s#/var/lib/quiver/models#$tmp/no-repo#; s#/run/quiver/quiverd.sock#$tmp/q.sock#;
	     s#127.0.0.1:9464#127.0.0.1:0#")
# shellcheck disable=SC2086
"$quiverd" $args >"$tmp/out" 2>&1
rc=$?
if [ $rc -eq 2 ] || [ $rc -eq 0 ]; then
	echo "FAIL: quiverd$args: exit $rc, want 1 (arguments parsed, no repository)"
	cat "$tmp/out"; fail=1
fi
[ $fail -eq 0 ] && echo ok
exit $fail
