#!/bin/bash
# Like for like, one session (2026-12-08): the library's CPG workers
# (phalanx-bench --topology netns, MTU 1500, max_frame 1400, GSO on) with the
# defaults and with totem's send hold (`--send-hold-us $HOLD`), and Corosync
# 3.1.7 through the rig (../shared/bench copied to $CB: the same namespaces,
# veth + bridge, MTU 1500), repetitions interleaved.
# Needs root, the rig's packages, and `cargo build --release --bin phalanx-bench`.
# Usage: REPS=3 SECS=5 CB=/tmp/cbench benches/results/rig-2026-12-08/run.sh
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$HERE}"
SECS="${SECS:-5}"
REPS="${REPS:-3}"
CB="${CB:-/tmp/cbench}"
NODES="${NODES:-3}"
HOLD="${HOLD:-400}"
BIN="${BIN:-$(cd "$HERE/../../.." && pwd)/target/release/phalanx-bench}"
mkdir -p "$OUT/corosync"
{ date -u; uptime; } > "$OUT/load.txt"
for rep in $(seq 1 "$REPS"); do
    echo "== rep $rep phalanx-cpg $(date -u +%T)"
    "$BIN" --topology netns --mtu 1500 --nodes "$NODES" --scenario tput1,tputN,lat1,latN \
        --size 64,1024,16384 --name phalanx-cpg --secs "$SECS" --reps 1 \
        --rep-start "$rep" --out "$OUT/p-default" > /dev/null 2>> "$OUT/phalanx-stderr.txt"
    echo "== rep $rep phalanx-cpg-hold $(date -u +%T)"
    "$BIN" --topology netns --mtu 1500 --nodes "$NODES" --scenario tput1,tputN,lat1,latN \
        --size 64,1024,16384 --name "phalanx-cpg-hold$HOLD" --send-hold-us "$HOLD" \
        --secs "$SECS" --reps 1 --rep-start "$rep" --out "$OUT/p-hold" \
        > /dev/null 2>> "$OUT/phalanx-stderr.txt"
    echo "== rep $rep corosync knet $(date -u +%T)"
    (cd "$CB" && ./bench.sh --nodes "$NODES" --transport knet --scenarios "tput1 tputN lat1 latN" \
        --sizes "64 1024 16384" --reps 1 --secs "$SECS" --out "$OUT/corosync/knet-r$rep" > /dev/null)
    echo "== rep $rep corosync udpu $(date -u +%T)"
    (cd "$CB" && ./bench.sh --nodes "$NODES" --transport udpu --scenarios "lat1 latN" \
        --sizes "64 1024 16384" --reps 1 --secs "$SECS" --out "$OUT/corosync/udpu-r$rep" > /dev/null)
    { date -u +%T; uptime; } >> "$OUT/load.txt"
done
# bench.sh labels every single-rep pass r1: relabel to the pass's repetition.
: > "$OUT/corosync-raw.txt"
for t in knet udpu; do
    for rep in $(seq 1 "$REPS"); do
        sed -E "s/^(RESULT label=[^ ]*):r1 /\1:r$rep /; s/^(# (FAILED|STEAL) [^ ]*):r1( |$)/\1:r$rep\3/" \
            "$OUT/corosync/$t-r$rep/raw.txt" >> "$OUT/corosync-raw.txt"
    done
done
cat "$OUT"/p-default/raw.txt "$OUT"/p-hold/raw.txt "$OUT/corosync-raw.txt" > "$OUT/raw.txt" 2>/dev/null
"$CB/summarize.sh" "$OUT/raw.txt" > "$OUT/summarize-sh.md"
echo "== done $(date -u +%T)"
