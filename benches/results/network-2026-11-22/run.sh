#!/bin/bash
# The same-session Phalanx vs Corosync measurement of docs/performance.md
# ("Phalanx vs Corosync on this machine (network)"): three repetitions, each one
# Phalanx pass then one Corosync pass (knet: tput1 + lat1; udpu: lat1), so slow
# drift of the machine spreads over both. Needs root, the Corosync packages of
# the rig's README (../shared/bench beside the repository), a writable copy of
# the rig in $CB, and `cargo build --release --bin phalanx-bench`.
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$HERE}"
SECS="${SECS:-5}"
CB="${CB:-/tmp/cbench}"
BIN="${BIN:-$(cd "$HERE/../../.." && pwd)/target/release/phalanx-bench}"
mkdir -p "$OUT/corosync"
{ date -u; uptime; top -bn1 | head -15; } > "$OUT/load-before.txt"
for rep in $(seq 1 "${REPS:-3}"); do
    echo "== rep $rep phalanx $(date -u +%T)"
    "$BIN" --nodes 3,5 --scenario tput1,lat1,raw --size 64,1024,16384 --crypto off,on \
        --secs "$SECS" --reps 1 --rep-start "$rep" --out "$OUT" \
        > /dev/null 2>> "$OUT/phalanx-stderr.txt"
    echo "== rep $rep corosync knet $(date -u +%T)"
    (cd "$CB" && ./bench.sh --nodes "3 5" --transport knet --scenarios "tput1 lat1" \
        --sizes "64 1024 16384" --reps 1 --secs "$SECS" --out "$OUT/corosync/knet-r$rep" > /dev/null)
    echo "== rep $rep corosync udpu $(date -u +%T)"
    (cd "$CB" && ./bench.sh --nodes "3 5" --transport udpu --scenarios "lat1" \
        --sizes "64 1024 16384" --reps 1 --secs "$SECS" --out "$OUT/corosync/udpu-r$rep" > /dev/null)
    (cd "$CB" && ./teardown.sh > /dev/null)
    { date -u +%T; uptime; } >> "$OUT/load-during.txt"
done
{ date -u; uptime; top -bn1 | head -15; } > "$OUT/load-after.txt"
# bench.sh labels every single-rep pass r1: relabel to the pass's repetition.
: > "$OUT/corosync-raw.txt"
for t in knet udpu; do
    for rep in $(seq 1 "${REPS:-3}"); do
        sed -E "s/^(RESULT label=[^ ]*):r1 /\1:r$rep /; s/^(# (FAILED|STEAL) [^ ]*):r1( |$)/\1:r$rep\3/" \
            "$OUT/corosync/$t-r$rep/raw.txt" >> "$OUT/corosync-raw.txt"
    done
done
cp "$OUT/raw.txt" "$OUT/phalanx-raw.txt"
cat "$OUT/phalanx-raw.txt" "$OUT/corosync-raw.txt" > "$OUT/raw.txt"
"$BIN" --report "$OUT"
"$CB/summarize.sh" "$OUT/raw.txt" > "$OUT/summarize-sh.md"
echo "== done $(date -u +%T)"
