#!/usr/bin/env bash
# scripts/bench.sh quick|full — the comparison behind `make bench` and `make bench-quick`.
#
# Starts three echo servers on loopback ports chosen by the kernel: the reactor (`netlab serve`),
# the threaded baseline (`netlab serve --model threaded`) and a minimal hand-written mio echo loop
# (`netlab bench minimal-server`). Then runs every scenario against each of them in turn,
# interleaved (reactor, threaded, minimal for one connection count, then the next count), so that
# machine noise hits every model alike. Results go to bench/results.jsonl (one JSON object per run,
# with its exact command); `netlab bench report` turns them into bench/REPORT.md and SVG plots.
#
# A benchmark never fails the build: a failed run is logged and skipped, and this script exits 0.
set -u
cd "$(dirname "$0")/.."

mode=${1:-quick}
bin=target/release/netlab
out=bench
results=$out/results.jsonl
logs=$out/logs

case $mode in
quick)
    conns="1 10 100 1000 10000"
    secs=2s
    rounds=1
    idle_conns="1000 10000"
    idle_secs=1s
    chat_conns="100 1000"
    tftp_conns="4"
    command="make bench-quick"
    ;;
full)
    conns="1 10 100 1000 10000"
    secs=10s
    rounds=3
    idle_conns="100 1000 10000"
    idle_secs=5s
    chat_conns="10 100 1000"
    tftp_conns="1 8 32"
    command="make bench"
    ;;
*)
    echo "usage: $0 quick|full" >&2
    exit 0
    ;;
esac

if [ ! -x "$bin" ]; then
    echo "bench: $bin missing (run cargo build --release)" >&2
    exit 0
fi
mkdir -p "$out" "$logs"
: >"$results"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT

# Both models serve echo and chat; the chat's flood limit is raised so the senders' rate is allowed.
serve=(--echo 127.0.0.1:0 --chat 127.0.0.1:0 --chat-flood-rate 1000 --chat-flood-burst 1000 --tftp off --celsius off)
# Only the reactor serves TFTP (the threaded model has no TFTP): a 1 MB file of random bytes.
tftp_root=$out/logs/tftp-root
mkdir -p "$tftp_root"
head -c 1000000 /dev/urandom >"$tftp_root/1mb.bin"
tftp=(--tftp 127.0.0.1:0 --tftp-root "$tftp_root" --tftp-max-per-client 64)

# listener LOG NAME: the address of "listening NAME ADDR" in LOG, if logged yet.
listener() {
    sed -n "s#.*listening $2 \([^ ]*\).*#\1#p" "$1" | head -1
}

# start NAME: start server NAME (reactor, threaded or minimal) afresh, stopping an earlier one, and
# set NAME_pid, NAME_tcp and NAME_udp from its "listening" lines.
start() {
    local name=$1 log=$logs/$1.log old_var=${1}_pid
    if [ -n "${!old_var:-}" ]; then
        kill "${!old_var}" 2>/dev/null
        wait "${!old_var}" 2>/dev/null
    fi
    case $name in
    reactor) RUST_LOG=info "$bin" serve "${serve[@]}" "${tftp[@]}" 2>"$log" & ;;
    threaded) RUST_LOG=info "$bin" serve --model threaded "${serve[@]}" 2>"$log" & ;;
    minimal) RUST_LOG=info "$bin" bench minimal-server --target 127.0.0.1:0 2>"$log" & ;;
    esac
    local pid=$! tcp="" last=chat/tcp
    [ "$name" = minimal ] && last=minimal/tcp
    [ "$name" = reactor ] && last=tftp/udp
    pids+=("$pid")
    for _ in $(seq 100); do
        [ -n "$(listener "$log" $last)" ] && break
        sleep 0.1
    done
    tcp=$(listener "$log" "[a-z]*/tcp")
    if [ -z "$tcp" ]; then
        echo "bench: $name did not start; see $log" >&2
        return 1
    fi
    eval "${name}_pid=$pid ${name}_tcp=$tcp ${name}_udp=$(listener "$log" echo/udp) ${name}_chat=$(listener "$log" chat/tcp) ${name}_tftp=$(listener "$log" tftp/udp)"
    echo "bench: $name (pid $pid) on $tcp" >&2
}

# run NAME SCENARIO ARGS...: one run against server NAME, appended to the results.
run() {
    local name=$1 scenario=$2
    shift 2
    local addr_var=${name}_tcp pid_var=${name}_pid
    [ "$scenario" = udp-echo ] && addr_var=${name}_udp
    [ "$scenario" = chat ] && addr_var=${name}_chat
    [ "$scenario" = tftp ] && addr_var=${name}_tftp
    # A server that died (or was killed from outside) is started again, and the event logged.
    if ! kill -0 "${!pid_var}" 2>/dev/null; then
        echo "bench: $name (pid ${!pid_var}) is gone; starting it again" >&2
        start "$name" || return 0
    fi
    echo "bench: $scenario $* against $name" >&2
    if ! "$bin" bench "$scenario" --target "${!addr_var}" --server-pid "${!pid_var}" --label "$name" --json "$@" \
        >>"$results" 2>>"$logs/client.log"; then
        echo "bench: $scenario $* against $name failed (see $logs/client.log)" >&2
    fi
}

"$bin" bench floor --duration "$secs" --json >>"$results" 2>>"$logs/client.log"

for round in $(seq "$rounds"); do
    # Idle first, each count on fresh servers: RSS before connecting is then the server's baseline,
    # not memory kept from an earlier scenario's connections.
    for n in $idle_conns; do
        for server in reactor threaded; do
            start "$server" || continue
            run "$server" idle --conns "$n" --duration "$idle_secs"
        done
    done
    for server in reactor threaded minimal; do
        start "$server"
    done
    for n in $conns; do
        for server in reactor threaded minimal; do
            run "$server" tcp-echo --conns "$n" --duration "$secs"
        done
    done
    for n in 1 100; do
        for server in reactor threaded; do
            run "$server" udp-echo --conns "$n" --depth 4 --duration "$secs"
        done
    done
    for n in $chat_conns; do
        for server in reactor threaded; do
            run "$server" chat --conns "$n" --senders 10 --rate 10 --duration "$secs"
        done
    done
    for n in $tftp_conns; do
        run reactor tftp --conns "$n" --file 1mb.bin --expect "$tftp_root/1mb.bin" --duration "$secs"
        run reactor tftp --conns "$n" --file 1mb.bin --expect "$tftp_root/1mb.bin" --duration "$secs" \
            --blksize 8192 --windowsize 8 --label "reactor (blksize 8192, window 8)"
    done
    echo "bench: round $round of $rounds done" >&2
done

"$bin" bench report --results "$results" --out "$out/REPORT.md" --command "$command" ||
    echo "bench: report failed" >&2
exit 0
