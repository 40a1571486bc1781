#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# test_dpdk.sh - quiverd's DPDK back end on a net_af_packet vdev bound to
# one end of a veth pair; the other end sits in a network namespace made
# here, with the client (dpdk_client, libquiver's qv_udp_*) inside it.
#
# Checks: ARP resolution and ICMP echo (ping, then the neighbour entry
# holds the port's MAC), trade-mlp outputs equal the torch references,
# junk is dropped or answered BAD_REQUEST and the daemon keeps serving,
# the daemon's counters (logged at exit) saw it all; then, restarted with
# an allow-list that excludes the client, no UDP answer and the drop
# counted (ARP and ping still answered). Prints the path's latency.
# Then, on a fresh daemon, a counted set of traffic (dpdk_client frames: a
# burst of 32 requests checked against the references, ARP, junk, forged
# sources, a request in an IPv4 header with options, one with a bad header
# checksum) and ping: `quiverctl status --json` must show exactly those
# counts, `quiverctl metrics` the same values, `quiverctl status` a UDP row.
#
# Usage: test_dpdk.sh QUIVERD DPDK_CLIENT REPO QUIVERCTL
# Exit 77 (skip) only where the machine cannot run it: not root, no
# `ip netns`, no veth, quiverd built without DPDK.
set -u

QUIVERD=$1
CLIENT=$2
REPO=$3
CTL=$4
SKIP=77

skip() { echo "SKIP: $*"; exit $SKIP; }
fail() { echo "FAIL: $*"; FAILED=1; }

[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, veth, AF_PACKET)"
command -v ip >/dev/null || skip "no iproute2 'ip' command"
# A build without DPDK refuses --dpdk while parsing its arguments.
if "$QUIVERD" --foreground --repo /nonexistent --dpdk x --ip 198.18.0.1 --udp-port 1 2>&1 |
	grep -q "built without DPDK"; then
	skip "quiverd was built without DPDK (meson -Ddpdk=disabled, or libdpdk-dev missing)"
fi

NS=qvdp$$
VA=vqdA$$
VB=vqdB$$
DAEMON_IP=198.18.0.1
CLIENT_IP=198.18.0.2
PORT=9477
TMP=$(mktemp -d /tmp/qv-dpdk.XXXXXX)
PID=
FAILED=0

cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -KILL "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	ip netns del "$NS" 2>/dev/null
	ip link del "$VA" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap "exit 1" INT TERM  # so the EXIT trap also runs when meson times the test out

ip netns add "$NS" 2>/dev/null || skip "cannot create a network namespace (ip netns add)"
ip link add "$VA" type veth peer name "$VB" 2>/dev/null || skip "cannot create a veth pair"
ip link set "$VB" netns "$NS" || { fail "moving $VB into $NS"; exit 1; }
# The root-namespace end carries no address: only DPDK answers on it. The
# kernel must neither forward what arrives there nor chatter (IPv6 DAD).
sysctl -qw "net.ipv4.conf.$VA.forwarding=0" 2>/dev/null
sysctl -qw "net.ipv6.conf.$VA.disable_ipv6=1" 2>/dev/null
ip link set "$VA" up
ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$VB.disable_ipv6=1" 2>/dev/null
ip netns exec "$NS" ip addr add "$CLIENT_IP/24" dev "$VB"
ip netns exec "$NS" ip link set "$VB" up
ip netns exec "$NS" ip link set lo up
MAC=$(cat "/sys/class/net/$VA/address")

# EAL: no hugepages, no PCI scan, no shared config or telemetry socket (so
# parallel runs cannot collide), main lcore on the first core we may use.
CORE=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*\([0-9]*\).*/\1/p' /proc/self/status)
EAL="--no-huge -m 256 --no-pci --no-shconf --no-telemetry -l ${CORE:-0} --log-level=lib.eal:warning --vdev=net_af_packet0,iface=$VA"

start_daemon() { # extra args...
	: >"$TMP/log"
	"$QUIVERD" --foreground --repo "$REPO" --socket "$TMP/quiverd.sock" \
		--dpdk "$EAL" --ip "$DAEMON_IP" --udp-port "$PORT" "$@" >"$TMP/log" 2>&1 &
	PID=$!
	for _ in $(seq 1 300); do
		grep -q "quiverd ready" "$TMP/log" && return 0
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$TMP/log"
	fail "quiverd did not become ready"
	exit 1
}

stop_daemon() {
	kill -TERM "$PID"
	for _ in $(seq 1 150); do
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$PID" 2>/dev/null; then
		fail "quiverd did not exit within 15 s of SIGTERM"
		kill -KILL "$PID"
	fi
	wait "$PID"
	local rc=$?
	PID=
	[ "$rc" = 0 ] || fail "quiverd exited with status $rc"
	grep "dpdk: counters" "$TMP/log" || fail "no dpdk counters in the log"
}

# counter NAME: the value after NAME in the counters line.
counter() { grep "dpdk: counters" "$TMP/log" | sed -n "s/.* $1 \([0-9]*\).*/\1/p"; }

expect_at_least() { # name min
	local v
	v=$(counter "$1")
	[ -n "$v" ] && [ "$v" -ge "$2" ] || fail "counter '$1' is '${v}', want >= $2"
}

# ---- 1: serving ---------------------------------------------------------
start_daemon
if ip netns exec "$NS" ping -c 3 -W 1 -i 0.2 "$DAEMON_IP" >"$TMP/ping" 2>&1; then
	echo "ping: $(grep -E 'packets transmitted' "$TMP/ping")"
else
	cat "$TMP/ping"
	fail "ping $DAEMON_IP from the namespace"
fi
NEIGH=$(ip netns exec "$NS" ip neigh show "$DAEMON_IP" dev "$VB")
echo "neighbour: $NEIGH"
echo "$NEIGH" | grep -qi "lladdr $MAC" || fail "ARP: neighbour entry '$NEIGH' lacks the port's MAC $MAC"

ip netns exec "$NS" "$CLIENT" serve "$DAEMON_IP:$PORT" "$REPO" || fail "dpdk_client serve"
# The client busy-polls like the worker: keep it off the worker's core
# (quiverd's default, the last allowed one) so the two do not take turns.
ip netns exec "$NS" taskset -c "${CORE:-0}" "$CLIENT" bench "$DAEMON_IP:$PORT" 3000 ||
	fail "dpdk_client bench"
stop_daemon
expect_at_least arp 1
expect_at_least icmp 3
expect_at_least bad_request 2
expect_at_least junk 301
expect_at_least lookups 2
# The oversize request left the namespace as IP fragments. net_af_packet
# joins its socket to a fanout group with PACKET_FANOUT_FLAG_DEFRAG, so the
# kernel reassembles them and the port sees one frame cut to the ring's
# frame size (2 KiB): dropped as malformed ("other"), never answered (the
# client checked that). The "fragment" counter serves real NICs.
expect_at_least other 1
if [ "$FAILED" != 0 ]; then
	cat "$TMP/log"
fi

# ---- 2: allow-list that excludes the client ----------------------------
start_daemon --udp-allow 198.18.0.99/32
ip netns exec "$NS" ip neigh flush dev "$VB"
ip netns exec "$NS" ping -c 2 -W 1 -i 0.2 "$DAEMON_IP" >/dev/null 2>&1 ||
	fail "ping with an allow-list (ARP/ICMP are not subject to it)"
ip netns exec "$NS" "$CLIENT" denied "$DAEMON_IP:$PORT" || fail "dpdk_client denied"
stop_daemon
expect_at_least dropped_allow 1
v=$(counter udp_tx)
[ "$v" = 0 ] || fail "udp replies sent to a denied source: '$v'"

# ---- 3: counters where operators look ----------------------------------
start_daemon --udp-allow "$CLIENT_IP/32"
# A permanent neighbour entry: the kernel sends no ARP of its own, so the
# ARP requests counted are exactly the client's.
ip netns exec "$NS" ip neigh replace "$DAEMON_IP" lladdr "$MAC" dev "$VB" nud permanent
ip netns exec "$NS" ping -c 3 -W 1 -i 0.2 "$DAEMON_IP" >/dev/null 2>&1 || fail "ping (counters)"
ip netns exec "$NS" "$CLIENT" frames "$VB" "$MAC" "$DAEMON_IP:$PORT" "$REPO" >"$TMP/frames" ||
	fail "dpdk_client frames"
cat "$TMP/frames"
"$CTL" --socket "$TMP/quiverd.sock" status --json >"$TMP/status.json" || fail "quiverctl status --json"
"$CTL" --socket "$TMP/quiverd.sock" metrics >"$TMP/metrics" || fail "quiverctl metrics"
"$CTL" --socket "$TMP/quiverd.sock" status >"$TMP/status.txt" || fail "quiverctl status"
sed -n '/^UDP/,$p' "$TMP/status.txt"
/usr/bin/python3 - "$TMP/status.json" "$TMP/metrics" "$TMP/status.txt" \
	"$(grep '^expect ' "$TMP/frames")" <<'PY' || fail "counters in status --json / metrics / status"
import json, re, sys
st = json.load(open(sys.argv[1]))
metrics = open(sys.argv[2]).read()
human = open(sys.argv[3]).read()
want = dict(kv.split("=") for kv in sys.argv[4].split()[1:])
want["icmp_replies"] = "3"
bad = []
u = st.get("udp_dpdk")
if not isinstance(u, dict):
    sys.exit("status --json has no udp_dpdk object: %s" % st)
if "udp" in st:
    bad.append("status --json has an io_uring 'udp' object without --udp")
for k, v in sorted(want.items()):
    if u.get(k) != int(v):
        bad.append("udp_dpdk.%s = %s, sent %s" % (k, u.get(k), v))
# Every counter of status --json is in metrics with the same value.
for k, v in sorted(u.items()):
    name = "quiver_udp_%s_total" % k
    m = re.search(r'^%s\{backend="dpdk"\} (\d+)$' % name, metrics, re.M)
    if not m or int(m.group(1)) != v:
        bad.append("metrics %s: %s, status --json %s" % (name, m and m.group(1), v))
    if "# TYPE %s counter" % name not in metrics or "# HELP %s " % name not in metrics:
        bad.append("metrics: no HELP/TYPE for %s" % name)
row = re.search(r"^dpdk\s+(\d+)\s+(\d+)", human, re.M)
if not re.search(r"^UDP\s+RX\s+TX", human, re.M) or not row or \
        int(row.group(1)) != u["rx"] or int(row.group(2)) != u["tx"]:
    bad.append("status: no UDP section with the dpdk row's rx/tx")
for b in bad:
    print("counters:", b)
print("counters: %d checked, %s" % (len(want), "ok" if not bad else "FAILED"))
sys.exit(1 if bad else 0)
PY
stop_daemon

if [ "$FAILED" != 0 ]; then
	cat "$TMP/log"
	echo "dpdk e2e: FAILED"
	exit 1
fi
echo "dpdk e2e: all checks passed"
exit 0
