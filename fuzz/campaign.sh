#!/usr/bin/env bash
# Re-runs the fuzz campaign: every target in turn (one process, one thread: no
# -jobs/-workers, which is libFuzzer's -jobs=1 -workers=1), under nice 19, each
# until it has run RUNS executions or SECONDS_PER_TARGET seconds, whichever comes
# first; then the corpus is minimised with `cargo fuzz cmin` and a table row is
# printed: target, executions, seconds, corpus files, coverage (libFuzzer's final
# `cov:` edges and `ft:` features), crashes (new files in artifacts/<target>).
#
#   fuzz/campaign.sh [target ...]          # default: every target
#
# Environment:
#   RUNS=10000000            execution budget per target
#   SECONDS_PER_TARGET=1800  time budget per target (seconds)
#   SECONDS_<target>=N       time budget of one target (e.g. SECONDS_totem_node=300)
#   SEED=1                   make the corpora from the seed generator first (default
#                            1 for a target whose corpus directory is empty)
#   TOOLCHAIN=+nightly       the toolchain argument for cargo
#   LOG_DIR=fuzz/logs        where each target's libFuzzer output goes
#   CORPUS_MAX_FILES=200     most files kept per minimised corpus (seeds first,
#                            then the smallest)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain. Targets are
# built without a sanitizer (the code under test is safe Rust: the bugs to find are
# panics, overflows and hangs, which need none) and with debug assertions, so
# arithmetic overflow panics as in tests.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
RUNS=${RUNS:-10000000}
SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-1800}
TOOLCHAIN=${TOOLCHAIN:-+nightly}
LOG_DIR=${LOG_DIR:-$here/logs}
BUILD_FLAGS=(--sanitizer none --debug-assertions)
mkdir -p "$LOG_DIR"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//' | sort)
fi

nice -n 19 cargo "$TOOLCHAIN" fuzz build "${BUILD_FLAGS[@]}" >&2
bin_dir=$here/target/x86_64-unknown-linux-gnu/release

# Seeds for targets whose corpus is empty (or all of them with SEED=1): the seed
# generator (real traffic and encodings from the crates), the example configs and a
# fence agent's metadata.
seed_all=${SEED:-0}
need_seeds=0
for t in "${targets[@]}"; do
    if [ "$seed_all" = 1 ] || [ -z "$(ls -A "corpus/$t" 2>/dev/null)" ]; then
        need_seeds=1
    fi
done
if [ "$need_seeds" = 1 ]; then
    "$bin_dir/make_seeds" "$here/corpus" >&2
    mkdir -p corpus/config_corosync corpus/fence_agent_text
    for f in ../examples/conf/*; do
        cp "$f" "corpus/config_corosync/seed-$(basename "$f")"
    done
    printf 'action=metadata\n' | ../fence/test-agents/fence_phalanx_test \
        > corpus/fence_agent_text/seed-metadata.xml 2>/dev/null || true
fi

printf '| target | executions | seconds | corpus files | corpus bytes | cov (edges) | ft (features) | crashes |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    secs_var="SECONDS_$t"
    secs=${!secs_var:-$SECONDS_PER_TARGET}
    before=$(ls "artifacts/$t" | wc -l)
    log="$LOG_DIR/$t.log"
    start=$(date +%s)
    status=0
    nice -n 19 cargo "$TOOLCHAIN" fuzz run "${BUILD_FLAGS[@]}" "$t" -- \
        -runs="$RUNS" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        > "$log" 2>&1 || status=$?
    elapsed=$(( $(date +%s) - start ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    after=$(ls "artifacts/$t" | wc -l)
    crashes=$(( after - before ))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes="exit $status"
    fi
    # cmin rewrites the corpus under content-hash names: the named inputs (the
    # generator's seed-*, the fixed crashes' regress-*) are put back after it.
    keep=$(mktemp -d)
    find "corpus/$t" -maxdepth 1 -type f \( -name 'seed-*' -o -name 'regress-*' \) -exec cp {} "$keep/" \;
    nice -n 19 cargo "$TOOLCHAIN" fuzz cmin "${BUILD_FLAGS[@]}" "$t" > "$LOG_DIR/$t.cmin.log" 2>&1 || true
    cp "$keep"/* "corpus/$t/" 2>/dev/null || true
    rm -rf "$keep"
    # Keep the committed corpus small: past CORPUS_MAX_FILES, the generator's seeds
    # and the fixed crashes' inputs, then the smallest stay (the others' coverage is lost
    # to the next run).
    max_files=${CORPUS_MAX_FILES:-200}
    if [ "$(ls "corpus/$t" | wc -l)" -gt "$max_files" ]; then
        (cd "corpus/$t" && { ls -1 | grep -E '^(seed|regress)-' || true; ls -1S -r | grep -v -E '^(seed|regress)-'; } \
            | tail -n +"$((max_files + 1))" | xargs -r rm -f)
    fi
    files=$(ls "corpus/$t" | wc -l)
    bytes=$(du -sb "corpus/$t" | cut -f1)
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$t" "${execs:-?}" "$elapsed" "$files" "$bytes" "${cov:-?}" "${ft:-?}" "$crashes"
done
