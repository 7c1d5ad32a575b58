#!/bin/bash
# One session's like-for-like matrix: phalanxd and Corosync 3.1.7 under the same
# rig (../shared/bench copied to $RIG), same cpgperf client, same namespaces and
# MTU 1500, repetitions interleaved so that drift of the machine spreads over both;
# then the in-process library (phalanx-bench, netns topology, MTU 1500).
# Usage: REPS=3 SECS=5 RIG=/tmp/cbench benches/results/rig-2026-12-06/run.sh
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
RIG=${RIG:-/tmp/cbench}
REPS=${REPS:-3}
SECS=${SECS:-5}
NODES=${NODES:-"3 5"}
PHALANXD=$ROOT/target/release/phalanxd
load() { echo "$(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) $1" >> "$HERE/load.txt"; }
for rep in $(seq 1 "$REPS"); do
    load "rep $rep phalanxd"
    (cd "$RIG" && COROSYNC=$PHALANXD ./bench.sh --nodes "$NODES" --transport knet --reps 1 \
        --secs "$SECS" --out "$HERE/phalanxd-knet-r$rep") > "$HERE/phalanxd-knet-r$rep.log" 2>&1
    load "rep $rep corosync knet"
    (cd "$RIG" && ./bench.sh --nodes "$NODES" --transport knet --reps 1 \
        --secs "$SECS" --out "$HERE/corosync-knet-r$rep") > "$HERE/corosync-knet-r$rep.log" 2>&1
    load "rep $rep corosync udpu"
    (cd "$RIG" && ./bench.sh --nodes "$NODES" --transport udpu --reps 1 \
        --secs "$SECS" --out "$HERE/corosync-udpu-r$rep") > "$HERE/corosync-udpu-r$rep.log" 2>&1
done
load "library"
"$ROOT/target/release/phalanx-bench" --topology netns --mtu 1500 --nodes "${NODES// /,}" \
    --scenario tput1,tputN,lat1 --size 64,1024,16384 --secs "$SECS" --reps "$REPS" \
    --out "$HERE/library" > "$HERE/library.log" 2>&1
load "end"
