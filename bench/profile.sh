#!/usr/bin/env bash
# Where ingest spends its time: the relay on SQLite under the load of
# bench/run.sh's row (b) (wrk, 64 connections, the documented example with
# a fresh flowId per request), sampled with perf, and the top functions of
# each thread by its own time printed. Run it before and after a change to
# ingest, and keep both in docs/benchmarks.md.
#
#   bench/profile.sh               one customer per event (row b)
#   bench/profile.sh --one-customer every event from one customer
#
# Needs: a Rust toolchain; wrk and perf (installed from Debian when
# missing); permission to run perf (root, or kernel.perf_event_paranoid <= 1).
set -euo pipefail
cd "$(dirname "$0")/.."

ONE_CUSTOMER=0
for arg in "$@"; do
    case "$arg" in
        --one-customer) ONE_CUSTOMER=1 ;;
        *) echo "unknown option \"$arg\" (expected --one-customer)" >&2; exit 2 ;;
    esac
done
SECONDS_SAMPLED=15
TOP=12
TOKEN=bench-token
ADMIN_TOKEN=bench-admin-token

source bench/common.sh
need wrk wrk
need perf linux-perf

echo "building release binaries" >&2
cargo build --release --quiet --bin raaft-relay --examples
BIN="$PWD/target/release"

make_work_dir
write_body
export BENCH_PATH=/webhooks/raaft BENCH_RUN="$RANDOM$RANDOM"
if ((ONE_CUSTOMER)); then export BENCH_ONE_CUSTOMER=1; fi

SINK_PORT=$(free_port)
"$BIN/examples/bench_sink" "127.0.0.1:$SINK_PORT" &
PIDS+=($!)
wait_port "$SINK_PORT"

PORT=$(free_port)
relay_config "$WORK/relay" "127.0.0.1:$PORT" "http://127.0.0.1:$SINK_PORT/in" "sqlite://$WORK/relay/relay.db"
start_relay "$WORK/relay/relay.toml"
wait_port "$PORT"

# Warm up, then sample while the load runs.
wrk -t2 -c64 -d3s -s bench/post.lua "http://127.0.0.1:$PORT" >/dev/null
wrk -t2 -c64 -d"$((SECONDS_SAMPLED + 2))s" --latency -s bench/post.lua "http://127.0.0.1:$PORT" >"$WORK/wrk.out" &
LOAD=$!
sleep 1
perf record -q -F 997 -p "$RELAY_PID" -o "$WORK/perf.data" -- sleep "$SECONDS_SAMPLED" 2>/dev/null
wait "$LOAD"
grep -E 'Requests/sec| 99%' "$WORK/wrk.out" | sed 's/^ */wrk: /'

# Each thread's share of the samples, then its top functions by own time.
threads=$(perf report -i "$WORK/perf.data" --no-children --sort comm --stdio 2>/dev/null |
    sed -n 's/^ *\([0-9.]*%\) *\(.*[^ ]\) *$/\1\t\2/p')
while IFS=$'\t' read -r share thread; do
    printf 'thread %-18s %7s of samples\n' "$thread" "$share"
done <<<"$threads"
while IFS=$'\t' read -r share thread; do
    awk -v s="$share" 'BEGIN { exit !(s + 0 >= 2) }' || continue
    echo "== $thread (share of all samples, own time)"
    perf report -i "$WORK/perf.data" --no-children --comms "$thread" --sort dso,symbol --stdio 2>/dev/null </dev/null |
        sed -n 's/^ *\([0-9.]*%\) *\(.*[^ ]\) *$/\1  \2/p' | sed -e 's/  *\[/ [/' -e 's/[[:space:]]*-[[:space:]]*-$//' |
        head -n "$TOP" | sed 's/^/  /' || true
done <<<"$threads"
