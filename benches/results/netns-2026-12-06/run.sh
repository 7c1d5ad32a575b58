#!/bin/bash
# Like for like, one session: Phalanx CPG workers (phalanx-bench --topology netns,
# MTU 1500, max_frame 1400) with segmentation offload on and off, and Corosync 3.1.7
# through the rig (../shared/bench copied to $CB: same namespaces, veth + bridge,
# MTU 1500), repetitions interleaved so that drift of the machine spreads over all.
# Needs root, the rig's packages, and `cargo build --release --bin phalanx-bench`.
# Usage: REPS=3 SECS=5 CB=/tmp/cbench benches/results/netns-2026-12-06/run.sh
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$HERE}"
SECS="${SECS:-5}"
REPS="${REPS:-3}"
CB="${CB:-/tmp/cbench}"
NODES="${NODES:-3}"
BIN="${BIN:-$(cd "$HERE/../../.." && pwd)/target/release/phalanx-bench}"
PHALANXD="${PHALANXD:-$(cd "$HERE/../../.." && pwd)/target/release/phalanxd}"
mkdir -p "$OUT/corosync" "$OUT/phalanxd"
: > "$OUT/raw.txt"
{ date -u; uptime; } > "$OUT/load.txt"
for rep in $(seq 1 "$REPS"); do
    for gso in on off; do
        name=phalanx-cpg; [ "$gso" = off ] && name=phalanx-cpg-nogso
        echo "== rep $rep $name $(date -u +%T)"
        "$BIN" --topology netns --mtu 1500 --nodes "${NODES// /,}" --scenario tput1,tputN,lat1 \
            --size 64,1024,16384 --gso "$gso" --name "$name" --secs "$SECS" --reps 1 \
            --rep-start "$rep" --out "$OUT/p-$gso" > /dev/null 2>> "$OUT/phalanx-stderr.txt"
    done
    echo "== rep $rep phalanx-cpg-spin30 $(date -u +%T)"
    "$BIN" --topology netns --mtu 1500 --nodes "${NODES// /,}" --scenario lat1,tput1 \
        --size 64,1024 --driver-spin-us 30 --name phalanx-cpg-spin30 --secs "$SECS" --reps 1 \
        --rep-start "$rep" --out "$OUT/p-spin" > /dev/null 2>> "$OUT/phalanx-stderr.txt"
    echo "== rep $rep phalanxd (rig, cpgperf over libqb shm) $(date -u +%T)"
    (cd "$CB" && COROSYNC="$PHALANXD" ./bench.sh --nodes "$NODES" --transport knet \
        --scenarios "tput1 tputN lat1" --sizes "64 1024 16384" --reps 1 --secs "$SECS" \
        --out "$OUT/phalanxd/r$rep" > /dev/null)
    echo "== rep $rep corosync knet $(date -u +%T)"
    (cd "$CB" && ./bench.sh --nodes "$NODES" --transport knet --scenarios "tput1 tputN lat1" \
        --sizes "64 1024 16384" --reps 1 --secs "$SECS" --out "$OUT/corosync/knet-r$rep" > /dev/null)
    echo "== rep $rep corosync udpu $(date -u +%T)"
    (cd "$CB" && ./bench.sh --nodes "$NODES" --transport udpu --scenarios "lat1" \
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
for rep in $(seq 1 "$REPS"); do
    sed -E "s/^(RESULT label=)knet:(.*):r1 /\1phalanxd:\2:r$rep /; s/^(# (FAILED|STEAL) )knet:([^ ]*):r1( |$)/\1phalanxd:\3:r$rep\4/" \
        "$OUT/phalanxd/r$rep/raw.txt" >> "$OUT/corosync-raw.txt"
done
cat "$OUT"/p-on/raw.txt "$OUT"/p-off/raw.txt "$OUT"/p-spin/raw.txt "$OUT/corosync-raw.txt" > "$OUT/raw.txt"
"$CB/summarize.sh" "$OUT/raw.txt" > "$OUT/summarize-sh.md"
echo "== done $(date -u +%T)"
