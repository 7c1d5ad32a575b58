#!/bin/bash
# The scale table of the proof-at-scale issue, one session, release builds:
# - throughput: phalanx-bench CPG workers in the like-for-like topology (one network
#   namespace per node, veth MTU 1500 into a bridge), tput1 at 64 B and 16 KiB, for
#   3, 5, 8 and 16 nodes;
# - formation, failover and rejoin of real phalanxd processes (phalanx-nemesis
#   --failovers: crypto on, default timeouts, SCHED_RR as the daemon asks), lighter
#   background load (a message every 200 ms per node, CPG every 200 ms) so that the
#   nemesis's single reader keeps up with 16 nodes' event lines;
# - the same three times for 32 simulated nodes (phalanx-sim scale, virtual time).
# Needs root and `cargo build --release --bin phalanx-bench --bin phalanxd
# --bin phalanx-nemesis -p phalanx -p phalanx-bench` and `-p phalanx-sim`.
# Usage: SECS=5 REPS=3 ROUNDS=6 SEEDS=10 benches/results/scale-2026-12-06/run.sh
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
OUT="${OUT:-$HERE}"
SECS="${SECS:-5}"
REPS="${REPS:-3}"
ROUNDS="${ROUNDS:-6}"
SEEDS="${SEEDS:-10}"
NODES="${NODES:-3 5 8 16}"
REL="$ROOT/target/release"
{ date -u; uptime; } > "$OUT/load.txt"
: > "$OUT/failover.txt"
for n in $NODES; do
    echo "== nemesis failovers, $n nodes $(date -u +%T)"
    "$REL/phalanx-nemesis" --nodes "$n" --failovers "$ROUNDS" --seed "$n" \
        --load-ms 200 --cpg-ms 200 >> "$OUT/failover.txt" 2>&1
    { date -u +%T; uptime; } >> "$OUT/load.txt"
done
echo "== throughput $(date -u +%T)"
"$REL/phalanx-bench" --topology netns --mtu 1500 --nodes "${NODES// /,}" --scenario tput1 \
    --size 64,16384 --secs "$SECS" --reps "$REPS" --out "$OUT/tput" > /dev/null \
    2>> "$OUT/phalanx-stderr.txt"
{ date -u +%T; uptime; } >> "$OUT/load.txt"
echo "== simulated 32 nodes $(date -u +%T)"
"$REL/phalanx-sim" scale --nodes 32 --seeds "$SEEDS" > "$OUT/sim32.txt" 2>&1
{ date -u +%T; uptime; } >> "$OUT/load.txt"
grep -h '^SCALE' "$OUT/failover.txt" "$OUT/sim32.txt"
echo "== done $(date -u +%T)"
