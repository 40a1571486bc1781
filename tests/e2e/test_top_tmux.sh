#!/bin/sh
# quiverctl top as a person sees it, in a real terminal (tmux): the frame
# shows the daemon line, a row per model version and per worker; while a
# client streams trade-mlp its requests/s is not zero; q quits with exit 0
# and the terminal back in canonical mode with echo; Ctrl-C does the same.
# --once prints one plain frame (no escape sequences); bad arguments exit 2.
# Usage: test_top_tmux.sh QUIVERD REPO QUIVERCTL E2E_CLIENT
set -u
quiverd=$1 repo=$2 ctl=$3 client=$4
command -v tmux >/dev/null 2>&1 || { echo "SKIP: tmux not installed"; exit 77; }
tmp=$(mktemp -d) || exit 1
sock=$tmp/quiverd.sock
tm="tmux -L qvtop-$$ -f /dev/null"
fail=0
cleanup() {
	$tm kill-server 2>/dev/null
	[ -n "${cpid:-}" ] && kill "$cpid" 2>/dev/null
	[ -n "${dpid:-}" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
die() { echo "FAIL: $*"; [ -f "$tmp/log" ] && tail -5 "$tmp/log"; exit 1; }

"$quiverd" --foreground --repo "$repo" --socket "$sock" 2>"$tmp/log" &
dpid=$!
i=0
until grep -q "quiverd ready" "$tmp/log"; do
	i=$((i + 1)); [ $i -gt 600 ] && die "quiverd not ready in 60 s"
	kill -0 $dpid 2>/dev/null || die "quiverd exited"
	sleep 0.1
done

# Bad arguments.
for args in "top --interval 0" "top --interval abc" "top --bogus" "--json top"; do
	# shellcheck disable=SC2086
	"$ctl" --socket "$sock" $args >/dev/null 2>&1
	rc=$?
	[ $rc -eq 2 ] || { echo "FAIL: quiverctl $args: exit $rc, want 2"; fail=1; }
done

# --once: one plain frame.
"$ctl" --socket "$sock" top --once --interval 0.2 >"$tmp/once" || { echo "FAIL: top --once"; fail=1; }
if grep -q "$(printf '\033')" "$tmp/once"; then echo "FAIL: --once printed escapes"; fail=1; fi
for want in "quiverd running" "MODEL" "trade-mlp" "echo" "WORKER" "BUSY%"; do
	grep -q "$want" "$tmp/once" || { echo "FAIL: --once lacks '$want'"; cat "$tmp/once"; fail=1; }
done

# wait_pane SESSION REGEX: until the pane shows REGEX (20 s at most).
wait_pane() {
	j=0
	while ! $tm capture-pane -p -t "$1" 2>/dev/null | grep -Eq "$2"; do
		j=$((j + 1))
		if [ $j -gt 200 ]; then
			echo "FAIL: the pane of $1 never showed /$2/; it shows:"
			$tm capture-pane -p -t "$1"; return 1
		fi
		sleep 0.1
	done
	return 0
}

# A terminal of 120x30 running top; afterwards the shell reports the
# terminal's mode and top's exit status, and waits to be read.
run_top() { # session
	$tm new-session -d -s "$1" -x 120 -y 30 \
		"$ctl --socket $sock top --interval 0.3; echo EXIT=\$?; stty -a | tr ' ' '\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\n' ' '; echo; sleep 30"
}

run_top live || die "tmux new-session"
wait_pane live "^WORKER +CORE +BUSY%" || fail=1
wait_pane live "^trade-mlp +[0-9]+ +primary" || fail=1
wait_pane live "^quiverd running +up" || fail=1
# Traffic: the row of trade-mlp shows it.
"$client" stream "$sock" trade-mlp 1 >/dev/null 2>&1 &
cpid=$!
wait_pane live "^trade-mlp +[0-9]+ +primary +[1-9][0-9]*\.[0-9]" || fail=1
wait_pane live "^0 +[0-9]+ +[0-9.]+ +1 +[1-9]" || fail=1   # worker 0: one channel, requests/s
kill $cpid 2>/dev/null; wait $cpid 2>/dev/null; cpid=
$tm send-keys -t live q
wait_pane live "^EXIT=0$" || fail=1
wait_pane live "^icanon echo *$" || fail=1
if $tm capture-pane -p -t live | grep -q "^WORKER"; then
	echo "FAIL: the table stayed on the screen after q (alternate screen not left)"; fail=1
fi

run_top ctrlc || die "tmux new-session"
wait_pane ctrlc "^WORKER" || fail=1
$tm send-keys -t ctrlc C-c
wait_pane ctrlc "^EXIT=0$" || fail=1
wait_pane ctrlc "^icanon echo *$" || fail=1

kill $dpid; wait $dpid; rc=$?; dpid=
[ $rc -eq 0 ] || { echo "FAIL: quiverd exit $rc"; fail=1; }
[ $fail -eq 0 ] && echo ok
exit $fail
