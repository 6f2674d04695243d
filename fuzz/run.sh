#!/usr/bin/env bash
# Runs each fuzz target (event parser, rule evaluator, render and wrap,
# template compile and render) for SECONDS seconds (default 60), seeded
# with the sample events in config/events (the template target with the
# shipped templates, each followed by the shipped partials), as many side
# by side as there are processors. Needs cargo-fuzz (installed when
# missing); builds on the stable toolchain with RUSTC_BOOTSTRAP=1 for the
# sanitizer flags.
#
#   fuzz/run.sh [--dev] [SECONDS] [TARGET...]
#
# By default the targets are optimised and run under AddressSanitizer.
# --dev builds them unoptimised and without a sanitizer: the build takes
# about half the time and each target runs a few times slower; CI uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=()
if [[ ${1:-} == --dev ]]; then
    BUILD=(--dev --sanitizer none)
    shift
fi
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=(event rules render template)
[[ $SECONDS_EACH =~ ^[0-9]+$ ]] || { echo "SECONDS must be a whole number, got \"$SECONDS_EACH\"" >&2; exit 2; }
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cargo fuzz build --fuzz-dir fuzz "${BUILD[@]}"
# Writes the seed inputs of target $1 into folder $2.
seed() {
    local target=$1 corpus=$2 file name
    if [[ $target == template ]]; then
        # A template, then each shipped partial after a NUL byte.
        for file in $(find templates -name '*.hbs' -not -path 'templates/partials/*'); do
            name=$(echo "$file" | tr '/.' '--')
            { cat "$file"; for partial in templates/partials/*.hbs; do printf '\0'; cat "$partial"; done; } \
                >"$corpus/seed-$name"
        done
        return
    fi
    for file in config/events/*.json; do
        name=$(basename "$file" .json)
        case "$target" in
            rules) { printf 'outcome == "canceled" && subscription.plan.amount >= 10\n'; cat "$file"; } >"$corpus/seed-$name" ;;
            *) cp "$file" "$corpus/seed-$name" ;;
        esac
    done
}

# Runs target $1 on corpus $2; its output goes to $3.
fuzz() {
    # A crash or an input that runs past -timeout stops the run, with the
    # input saved under fuzz/artifacts/.
    cargo fuzz run --fuzz-dir fuzz "${BUILD[@]}" "$1" "$2" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 >"$3" 2>&1
}

# libFuzzer keeps one processor busy: the targets run side by side, as many
# at a time as there are processors, each one's output printed when it ends.
JOBS=$(nproc 2>/dev/null || echo 1)
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
FAILED=()
for ((i = 0; i < ${#TARGETS[@]}; i += JOBS)); do
    PIDS=()
    BATCH=("${TARGETS[@]:i:JOBS}")
    for target in "${BATCH[@]}"; do
        corpus="fuzz/corpus/$target"
        mkdir -p "$corpus"
        seed "$target" "$corpus"
        echo "fuzzing $target for ${SECONDS_EACH}s" >&2
        fuzz "$target" "$corpus" "$LOGS/$target" &
        PIDS+=($!)
    done
    for j in "${!BATCH[@]}"; do
        if ! wait "${PIDS[j]}"; then FAILED+=("${BATCH[j]}"); fi
        echo "--- ${BATCH[j]}" >&2
        cat "$LOGS/${BATCH[j]}" >&2
    done
done
if [[ ${#FAILED[@]} -gt 0 ]]; then
    echo "fuzzing found a problem in: ${FAILED[*]} (the input is under fuzz/artifacts/)" >&2
    exit 1
fi
