#!/usr/bin/env bash
# Runs each fuzz target (event parser, rule evaluator, render and wrap) for
# SECONDS seconds (default 60), seeded with the sample events in
# config/events. Needs cargo-fuzz (installed when missing); builds on the
# stable toolchain with RUSTC_BOOTSTRAP=1 for the sanitizer flags.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=(event rules render)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in "${TARGETS[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    for sample in config/events/*.json; do
        name=$(basename "$sample" .json)
        case "$target" in
            rules) { printf 'outcome == "canceled" && subscription.plan.amount >= 10\n'; cat "$sample"; } >"$corpus/seed-$name" ;;
            *) cp "$sample" "$corpus/seed-$name" ;;
        esac
    done
    echo "fuzzing $target for ${SECONDS_EACH}s" >&2
    cargo fuzz run --fuzz-dir fuzz "$target" "$corpus" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096
done
