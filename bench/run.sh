#!/usr/bin/env bash
# raaft-relay benchmarks: ingest throughput and latency against a bare
# baseline and a peer, end-to-end latency, backlog drain, memory, routing
# and rendering cost, and start-up time, printed as one table. Every ratio
# is measured in the same run as its baseline.
#
#   bench/run.sh                  full run (a few minutes)
#   bench/run.sh --quick          a few seconds per figure (smoke test)
#   bench/run.sh --quick --dev    the smoke test on the unoptimised build
#                                 that `cargo test` already made (CI: the
#                                 figures are meaningless, the script runs)
#
# (f), the bare baseline forwarding each body to the receiver, shows what
# delivering while ingesting costs before the relay does any work of its own.
#
# Needs: a Rust toolchain; wrk and webhook (installed from Debian when
# missing); PostgreSQL for the PostgreSQL row (BENCH_POSTGRES, default
# postgres://postgres@127.0.0.1:5432/test; the row is skipped when it does
# not answer).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

QUICK=0
PROFILE=release
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        --dev) PROFILE=dev ;;
        *) echo "unknown option \"$arg\" (expected --quick or --dev)" >&2; exit 2 ;;
    esac
done
if ((QUICK)); then
    DURATION=3s; BACKLOG=5000; E2E_SECONDS=3; CRITERION=(--warm-up-time 0.3 --measurement-time 1)
else
    DURATION=15s; BACKLOG=100000; E2E_SECONDS=20; CRITERION=()
fi
CONNECTIONS=64
TOKEN=bench-token
ADMIN_TOKEN=bench-admin-token
PG_SERVER="${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"

source bench/common.sh
need wrk wrk
need webhook webhook

echo "building $PROFILE binaries" >&2
cargo build --profile "$PROFILE" --quiet --bin raaft-relay --examples
if [[ $PROFILE == dev ]]; then BIN="$ROOT/target/debug"; else BIN="$ROOT/target/release"; fi

make_work_dir
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }

write_body

# wrk at $CONNECTIONS connections; prints "req_per_s p50_ms p99_ms non2xx".
load() {
    local url=$1 path=$2
    local out
    out=$(BENCH_PATH="$path" BENCH_RUN="$RANDOM$RANDOM" wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/post.lua "$url")
    awk '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /Requests\/sec/ { rps = $2 }
        /^ +50%/ { p50 = ms($2) }
        /^ +99%/ { p99 = ms($2) }
        /Non-2xx/ { bad = $NF }
        END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, bad + 0 }
    ' <<<"$out"
}

ROWS=()
row() { ROWS+=("$(printf '%-44s %14s   %s' "$1" "$2" "${3:-}")"); }
check() { # value op target -> "ok" or "MISSED" ("not judged" on the unoptimised build)
    if [[ $PROFILE == dev ]]; then echo "not judged (unoptimised build)"; return; fi
    awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { ok = (op == ">=") ? (v >= t) : (v <= t); print ok ? "ok" : "MISSED" }'
}

SINK_PORT=$(free_port)
"$BIN/examples/bench_sink" "127.0.0.1:$SINK_PORT" &
PIDS+=($!)
wait_port "$SINK_PORT"
SINK="http://127.0.0.1:$SINK_PORT/in"

# (a) the bare baseline
BARE_PORT=$(free_port)
RAAFT_TOKEN=$TOKEN "$BIN/examples/bench_bare" "127.0.0.1:$BARE_PORT" &
PIDS+=($!)
wait_port "$BARE_PORT"
echo "measuring (a) bare baseline" >&2
read -r A_RPS A_P50 A_P99 A_BAD < <(load "http://127.0.0.1:$BARE_PORT" /webhooks/raaft)

# (f) the forwarding ceiling: the bare baseline that also sends each body
# on to the receiver, as any relay delivering while it ingests must.
F_PORT=$(free_port)
RAAFT_TOKEN=$TOKEN "$BIN/examples/bench_forward" "127.0.0.1:$F_PORT" "$SINK" &
F_PID=$!
PIDS+=("$F_PID")
wait_port "$F_PORT"
echo "measuring (f) forwarding ceiling" >&2
read -r F_RPS F_P50 F_P99 F_BAD < <(load "http://127.0.0.1:$F_PORT" /webhooks/raaft)
kill "$F_PID"; wait "$F_PID" 2>/dev/null || true

# (b) the relay on SQLite
B_PORT=$(free_port)
relay_config "$WORK/sqlite" "127.0.0.1:$B_PORT" "$SINK" "sqlite://$WORK/sqlite/relay.db"
start_relay "$WORK/sqlite/relay.toml"
wait_port "$B_PORT"
sleep 0.5
IDLE_RSS=$(rss_kb "$RELAY_PID")
echo "measuring (b) relay on SQLite" >&2
read -r B_RPS B_P50 B_P99 B_BAD < <(load "http://127.0.0.1:$B_PORT" /webhooks/raaft)
echo "measuring (b) with one customer for every event" >&2
export BENCH_ONE_CUSTOMER=1
read -r B1_RPS B1_P50 B1_P99 B1_BAD < <(load "http://127.0.0.1:$B_PORT" /webhooks/raaft)
unset BENCH_ONE_CUSTOMER
B_HWM=$(hwm_kb "$RELAY_PID")
kill "$RELAY_PID"; wait "$RELAY_PID" 2>/dev/null || true

# (c) the relay on PostgreSQL
C_RPS=""; C_P50=""; C_P99=""
if psql "$PG_SERVER" -qtAc 'SELECT 1' >/dev/null 2>&1; then
    psql "$PG_SERVER" -qc 'DROP DATABASE IF EXISTS raaft_relay_bench' >/dev/null
    psql "$PG_SERVER" -qc 'CREATE DATABASE raaft_relay_bench' >/dev/null
    PG_URL="${PG_SERVER%/*}/raaft_relay_bench"
    C_PORT=$(free_port)
    relay_config "$WORK/pg" "127.0.0.1:$C_PORT" "$SINK" "$PG_URL"
    start_relay "$WORK/pg/relay.toml"
    wait_port "$C_PORT"
    echo "measuring (c) relay on PostgreSQL" >&2
    read -r C_RPS C_P50 C_P99 C_BAD < <(load "http://127.0.0.1:$C_PORT" /webhooks/raaft)
    kill "$RELAY_PID"; wait "$RELAY_PID" 2>/dev/null || true
else
    echo "PostgreSQL at $PG_SERVER does not answer: skipping (c)" >&2
fi

# (d) adnanh/webhook with an equivalent header-token rule
D_PORT=$(free_port)
cat >"$WORK/hooks.json" <<JSON
[{"id": "raaft", "execute-command": "/bin/true",
  "trigger-rule": {"match": {"type": "value", "value": "$TOKEN", "parameter": {"source": "header", "name": "x-raaft-token"}}}}]
JSON
webhook -hooks "$WORK/hooks.json" -ip 127.0.0.1 -port "$D_PORT" >"$WORK/webhook.out" 2>&1 &
PIDS+=($!)
wait_port "$D_PORT"
echo "measuring (d) adnanh/webhook" >&2
read -r D_RPS D_P50 D_P99 D_BAD < <(load "http://127.0.0.1:$D_PORT" /hooks/raaft)

# End to end at a steady 200 events/s.
E_PORT=$(free_port)
E_SINK_PORT=$(free_port)
"$BIN/examples/bench_sink" "127.0.0.1:$E_SINK_PORT" &
PIDS+=($!)
wait_port "$E_SINK_PORT"
relay_config "$WORK/e2e" "127.0.0.1:$E_PORT" "http://127.0.0.1:$E_SINK_PORT/in" "sqlite://$WORK/e2e/relay.db"
start_relay "$WORK/e2e/relay.toml"
wait_port "$E_PORT"
echo "measuring end to end at 200 events/s" >&2
RAAFT_TOKEN=$TOKEN "$BIN/examples/bench_post" "http://127.0.0.1:$E_PORT/webhooks/raaft" --rate 200 --seconds "$E2E_SECONDS" >/dev/null
sleep 1
read -r E_P50 E_P99 < <(curl -s "http://127.0.0.1:$E_SINK_PORT/stats" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("%.2f %.2f" % (s["p50_ms"], s["p99_ms"]))')
kill "$RELAY_PID"; wait "$RELAY_PID" 2>/dev/null || true

# Backlog: accepted while the destination is down, then drained; on
# SQLite, and on PostgreSQL when it answers. Prints "accepted_per_s
# not_accepted drained_per_s peak_rss_kb".
backlog() { # name store
    local dir="$WORK/backlog-$1" port sink_port sink_pid count start end
    port=$(free_port)
    sink_port=$(free_port)
    relay_config "$dir" "127.0.0.1:$port" "http://127.0.0.1:$sink_port/in" "$2"
    start_relay "$dir/relay.toml"
    wait_port "$port"
    RAAFT_TOKEN=$TOKEN "$BIN/examples/bench_post" "http://127.0.0.1:$port/webhooks/raaft" --count "$BACKLOG" --connections 64 >"$dir/post.out"
    "$BIN/examples/bench_sink" "127.0.0.1:$sink_port" &
    sink_pid=$!
    PIDS+=("$sink_pid")
    start=$(date +%s.%N)
    count=0
    for _ in $(seq 1 6000); do
        count=$(curl -s "http://127.0.0.1:$sink_port/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' 2>/dev/null || echo 0)
        [[ "$count" -ge "$BACKLOG" ]] && break
        sleep 0.2
    done
    end=$(date +%s.%N)
    local hwm
    hwm=$(hwm_kb "$RELAY_PID")
    [[ "$1" == sqlite ]] && console_pages "$port" >"$WORK/console-pages"
    kill "$RELAY_PID"; wait "$RELAY_PID" 2>/dev/null || true
    kill "$sink_pid"; wait "$sink_pid" 2>/dev/null || true
    awk -v n="$count" -v a="$start" -v b="$end" -v hwm="$hwm" '
        NR == 1 { printf "%.0f %d %.0f %d\n", $4 / $8, $6, n / (b - a), hwm }' "$dir/post.out"
}
# Each console page, 20 times, with the backlog's deliveries in the store:
# one line per page, "name median_ms p99_ms".
console_pages() {
    local base="http://127.0.0.1:$1/console" cookie delivery event
    cookie=$(curl -s -o /dev/null -D - -d "token=$ADMIN_TOKEN" "$base/login" | awk -F'[ ;]' 'tolower($1) == "set-cookie:" {print $2}')
    # The console's links are relative to its folder (href="deliveries/ID").
    delivery=$(curl -s -H "cookie: $cookie" "$base/deliveries" | { grep -o 'href="deliveries/[0-9a-z]*"' || true; } | head -1 | cut -d/ -f2 | tr -d '"')
    event=$(curl -s -H "cookie: $cookie" "$base/events" | { grep -o 'href="events/[0-9a-z]*"' || true; } | head -1 | cut -d/ -f2 | tr -d '"')
    for page in "overview:/" "deliveries:/deliveries" "deliveries, dead only:/deliveries?status=dead" \
        "deliveries, one customer:/deliveries?customer=cus_42" "deliveries, page 2:/deliveries?before=$delivery" \
        "delivery detail:/deliveries/$delivery" "events:/events" "event detail:/events/$event" \
        "destinations:/destinations" "templates:/templates"; do
        local name=${page%%:*} path=${page#*:}
        local times
        times=$(for _ in $(seq 1 20); do
            curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H "cookie: $cookie" "$base$path"
        done)
        awk '$1 != 200 { bad++ } { print $2 * 1000, bad + 0 }' <<<"$times" | sort -n |
            awk -v name="$name" '{ t[NR] = $1; if ($2 > bad) bad = $2 }
                END { printf "%s|%.1f|%.1f|%d\n", name, t[int((NR + 1) / 2)], t[NR], bad + 0 }'
    done
}

echo "measuring a backlog of $BACKLOG events on SQLite" >&2
read -r G_IN G_FAILED G_RATE G_HWM < <(backlog sqlite "sqlite://$WORK/backlog-sqlite/relay.db")
H_IN=""
if [[ -n "${PG_URL:-}" ]]; then
    psql "$PG_SERVER" -qc 'DROP DATABASE IF EXISTS raaft_relay_bench_backlog' >/dev/null
    psql "$PG_SERVER" -qc 'CREATE DATABASE raaft_relay_bench_backlog' >/dev/null
    echo "measuring a backlog of $BACKLOG events on PostgreSQL" >&2
    read -r H_IN H_FAILED H_RATE H_HWM < <(backlog pg "${PG_SERVER%/*}/raaft_relay_bench_backlog")
fi

# Start-up on the shipped config, exec to accepting connections (median of 5).
S_PORT=$(free_port)
STARTS=()
for _ in 1 2 3 4 5; do
    t0=$(date +%s%N)
    RAAFT_TOKEN=$TOKEN RAAFT_RELAY_LISTEN="127.0.0.1:$S_PORT" RAAFT_RELAY_STORE="sqlite://$WORK/startup.db" RUST_LOG=warn \
        "$BIN/raaft-relay" --config config/relay.toml serve >/dev/null 2>&1 &
    pid=$!
    until (exec 3<>"/dev/tcp/127.0.0.1/$S_PORT") 2>/dev/null; do :; done
    t1=$(date +%s%N)
    STARTS+=($(((t1 - t0) / 1000)))
    kill "$pid"; wait "$pid" 2>/dev/null || true
done
STARTUP_MS=$(printf '%s\n' "${STARTS[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}')

# Routing and rendering per event (criterion).
echo "measuring routing and rendering" >&2
cargo bench --quiet --profile "$PROFILE" --bench routing_render -- "${CRITERION[@]}" >"$WORK/criterion.out" 2>&1
micro() {
    awk -v name="$1" '
        $1 == name { found = 1 }
        found && /time:/ {
            gsub(/[\[\]]/, "")
            for (i = 1; i <= NF; i++) if ($i == "time:") { print $(i + 3) " " $(i + 4); exit }
        }' "$WORK/criterion.out"
}
# A micro figure ("182.48 ns", "7.29 µs") in microseconds.
micro_us() {
    micro "$1" | awk '{ v = $1; if ($2 == "ns") v /= 1000; else if ($2 == "ms") v *= 1000; printf "%.2f", v }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
BA=$(ratio "$B_RPS" "$A_RPS")
FA=$(ratio "$F_RPS" "$A_RPS")
BF=$(ratio "$B_RPS" "$F_RPS")
BD=$(ratio "$B_RPS" "$D_RPS")

# A run that answered anything but 2xx measured failures, not work.
answered() { if [[ "$1" -gt 0 ]]; then echo ", INVALID: $1 answers were not 2xx"; fi; }
row "(a) bare warp + token check" "$A_RPS req/s" "p50 ${A_P50} ms, p99 ${A_P99} ms$(answered "$A_BAD")"
row "(b) raaft-relay, SQLite, fsync per commit" "$B_RPS req/s" "p50 ${B_P50} ms, p99 ${B_P99} ms$(answered "$B_BAD")"
row "(b) with one customer for every event" "$B1_RPS req/s" "p50 ${B1_P50} ms, p99 ${B1_P99} ms$(answered "$B1_BAD"): a history growing with every event"
if [[ -n "$C_RPS" ]]; then
    row "(c) raaft-relay, PostgreSQL" "$C_RPS req/s" "p50 ${C_P50} ms, p99 ${C_P99} ms$(answered "$C_BAD")"
    row "(c)/(b)" "$(ratio "$C_RPS" "$B_RPS")" "target >= 0.5: $(check "$(ratio "$C_RPS" "$B_RPS")" '>=' 0.5)"
else
    row "(c) raaft-relay, PostgreSQL" "skipped" "PostgreSQL not reachable"
fi
row "(d) adnanh/webhook, header rule" "$D_RPS req/s" "p50 ${D_P50} ms, p99 ${D_P99} ms$(answered "$D_BAD")"
row "(f) bare + forward to the receiver" "$F_RPS req/s" "p50 ${F_P50} ms, p99 ${F_P99} ms$(answered "$F_BAD")"
row "(f)/(a): ceiling for delivering while ingesting" "$FA" ""
row "(b)/(f)" "$BF" ""
row "(b)/(a)" "$BA" "target >= 0.5: $(check "$BA" '>=' 0.5)"
row "(b)/(d)" "$BD" "target >= 5: $(check "$BD" '>=' 5)"
row "(b) p99 ingest latency" "$B_P99 ms" "target <= 10 ms: $(check "$B_P99" '<=' 10) (the ceiling (f): p99 $F_P99 ms)"
row "end to end at 200 events/s, p50" "$E_P50 ms" ""
row "end to end at 200 events/s, p99" "$E_P99 ms" "target <= 50 ms: $(check "$E_P99" '<=' 50)"
row "backlog of $BACKLOG: accepted (destination down)" "$G_IN /s" "64 connections, $G_FAILED not accepted"
row "backlog of $BACKLOG: drain rate" "$G_RATE /s" "target >= 2000: $(check "$G_RATE" '>=' 2000)"
if [[ -n "$H_IN" ]]; then
    row "backlog on PostgreSQL: accepted" "$H_IN /s" "64 connections, $H_FAILED not accepted"
    row "backlog on PostgreSQL: drain rate" "$H_RATE /s" "peak RSS $(mb "$H_HWM") MB"
fi
row "backlog: peak RSS" "$(mb "$G_HWM") MB" "target <= 128 MB: $(check "$(mb "$G_HWM")" '<=' 128)"
row "idle RSS after start" "$(mb "$IDLE_RSS") MB" "target <= 16 MB: $(check "$(mb "$IDLE_RSS")" '<=' 16)"
row "peak RSS during (b)" "$(mb "$B_HWM") MB" "target <= 64 MB: $(check "$(mb "$B_HWM")" '<=' 64)"
for bench in parse_event route_table route_cel render_text render_json history_facts route_cel_history render_json_history; do
    row "routing/rendering: $bench" "$(micro "$bench")" ""
done
ROUTE_RENDER=$(awk -v a="$(micro_us route_table)" -v b="$(micro_us render_text)" 'BEGIN { printf "%.2f", a + b }')
row "routing (table) + text rendering" "$ROUTE_RENDER µs" "target <= 10 µs: $(check "$ROUTE_RENDER" '<=' 10)"
while IFS='|' read -r name median worst bad; do
    note="p99 of 20 $worst ms, target median <= 50 ms: $(check "$median" '<=' 50)"
    [[ "$bad" -gt 0 ]] && note="$note, INVALID: $bad answers were not 200"
    row "console with $BACKLOG deliveries: $name" "$median ms" "$note"
done <"$WORK/console-pages"
row "start-up on the shipped config (median of 5)" "$STARTUP_MS ms" "target <= 100 ms: $(check "$STARTUP_MS" '<=' 100)"

echo
printf '%-44s %14s   %s\n' "figure" "value" "notes"
printf '%s\n' "${ROWS[@]}"
