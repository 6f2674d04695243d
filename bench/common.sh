# What bench/run.sh and bench/profile.sh share: tools from Debian, a work
# folder whose processes are stopped on exit, ports, the request body, and
# a relay config (one route of saved events to a webhook). The sourcing
# script sets TOKEN and ADMIN_TOKEN, and BIN (the binaries' folder) before
# starting a relay.

need() {
    command -v "$1" >/dev/null 2>&1 && return
    echo "installing $2 from Debian" >&2
    if [[ -z "${APT_UPDATED:-}" ]]; then apt-get update -qq >/dev/null; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

# WORK, a folder removed on exit; every pid in PIDS is stopped then.
make_work_dir() {
    WORK=$(mktemp -d)
    PIDS=()
    trap cleanup EXIT
}
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 500); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.01
    done
    echo "nothing listens on $1" >&2; return 1
}

# The request body: the documented example, its flowId (and customer id)
# replaced per request by bench/post.lua.
write_body() {
    sed -e 's/"flowId": "your-flow-id"/"flowId": "__FLOW__"/' -e 's/"id": "customer-id"/"id": "__CUSTOMER__"/' \
        config/events/saved-switch-plan.json >"$WORK/body.json"
    export BENCH_BODY="$WORK/body.json" BENCH_TOKEN="$TOKEN"
}

# A relay config: one route (saved events) to a webhook destination.
relay_config() {
    local dir=$1 listen=$2 sink=$3 store=$4
    mkdir -p "$dir"
    cp -r templates "$dir/templates"
    printf '{"flow": "{{flowId}}", "sentAt": "{{sentAt}}"}' >"$dir/templates/bench.json.hbs"
    cat >"$dir/relay.toml" <<TOML
templates_dir = "templates"
[server]
listen = "$listen"
[raaft]
tokens = ["$TOKEN"]
[admin]
tokens = ["$ADMIN_TOKEN"]
[store]
url = "$store"
[retry]
max_attempts = 1000
initial_backoff = "100ms"
max_backoff = "1s"
[destinations.sink]
kind = "webhook"
url = "$sink"
template = "bench.json.hbs"
[[routes]]
name = "saves"
when = { outcome = "saved" }
to = ["sink"]
TOML
}

start_relay() { # config -> pid in RELAY_PID
    RUST_LOG=warn "$BIN/raaft-relay" --config "$1" serve >"$1.out" 2>&1 &
    RELAY_PID=$!
    PIDS+=("$RELAY_PID")
}
