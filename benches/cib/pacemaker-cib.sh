#!/bin/bash
# Replicated modify cost of Pacemaker 2.1's CIB on the 3-node Corosync rig
# (../shared/bench: pacemaker-up.sh WORKDIR must have been run; each node in its own
# network namespace cpgb-n<i>, knet over veths to a bridge).
#
# For each size: replace the <resources> section with KB kilobytes of primitives
# (pad-resources.sh, the padding of cib/benches/service_replicas.rs), wait for the
# cluster to settle, then time OPS small nvpair modifies, each one a new
# `cibadmin -M -o crm_config` process on node n1 (process per op, like an operator or a
# resource agent calling cibadmin), one at a time. Latency = fork+exec of cibadmin
# to its exit (the reply: Pacemaker answers once the local node has applied the
# change, which it does in the agreed CPG order with the other nodes).
# So that the scheduler does not start thousands of Dummy resources, the cluster
# runs with stop-all-resources=true and enable-startup-probes=false (the scheduler
# still runs after every change: that is Pacemaker's real cost, but it is the
# controller's, reported separately as CPU seconds per daemon).
#
# Then the same OPS through one libcib connection (pcmk-cib-loop.c, closed loop).
#
# Usage: pacemaker-cib.sh OUTDIR OPS KB...
set -eu
OUT=${1:?outdir}; OPS=${2:?ops}; shift 2
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$OUT"
# the closed-loop libcib client (needs pacemaker-dev)
LOOP="$OUT/pcmk-cib-loop"
cc -O2 -Wall -o "$LOOP" "$HERE/pcmk-cib-loop.c" $(pkg-config --cflags --libs pacemaker-cib)
N1="ip netns exec cpgb-n1"
$N1 crm_attribute -t crm_config -n stop-all-resources -v true >/dev/null
$N1 crm_attribute -t crm_config -n enable-startup-probes -v false >/dev/null
$N1 cibadmin -M -c -o crm_config -X '<cluster_property_set id="bench-options"><nvpair id="bench-options-counter" name="counter" value="start"/></cluster_property_set>'
cpu_of() { # CPU seconds (user+sys, from /proc/PID/stat) of the daemons, summed per name
  for p in $(pgrep -d' ' 'pacemaker|corosync'); do
    awk '{sub(/^[0-9]+ \(/, ""); n=$0; sub(/\).*/, "", n); sub(/^[^)]*\) /, ""); print n, ($12 + $13) / 100}' /proc/$p/stat 2>/dev/null
  done | awk '{t[$1]+=$2} END {for (n in t) printf "%s=%.2f ", n, t[n]}'
}
for KB in "$@"; do
  "$HERE/pad-resources.sh" "$KB" > "$OUT/resources-$KB.xml"
  $N1 cibadmin --timeout 900 --replace -o resources -x "$OUT/resources-$KB.xml"
  $N1 crm_resource --wait --timeout 600 >/dev/null 2>&1 || true
  BYTES=$($N1 cibadmin -Q | wc -c)
  echo "size_kb=$KB cib_bytes=$BYTES load=$(cut -d' ' -f1-3 /proc/loadavg) cpu_before: $(cpu_of)" | tee -a "$OUT/raw.txt"
  # One namespace entry for the whole loop: the per-op cost is cibadmin's own.
  $N1 bash -c '
    for i in $(seq 1 '"$OPS"'); do
      t0=$EPOCHREALTIME
      cibadmin -M -o crm_config -X "<cluster_property_set id=\"bench-options\"><nvpair id=\"bench-options-counter\" name=\"counter\" value=\"$i\"/></cluster_property_set>" || echo "FAILED $i" >&2
      t1=$EPOCHREALTIME
      echo "op '"$KB"' $i ${t0/./} ${t1/./}"
    done' >> "$OUT/raw.txt"
  # closed loop through one libcib connection (no process start per op)
  $N1 "$LOOP" "$KB" "$OPS" >> "$OUT/raw.txt"
  echo "size_kb=$KB done load=$(cut -d' ' -f1-3 /proc/loadavg) cpu_after: $(cpu_of)" | tee -a "$OUT/raw.txt"
  # all three copies agree (same epoch/num_updates)
  for i in 1 2 3; do ip netns exec cpgb-n$i cibadmin -Q -l | head -1 | grep -o 'epoch="[0-9]*"\|num_updates="[0-9]*"\|admin_epoch="[0-9]*"' | tr '\n' ' '; echo " (n$i)"; done | tee -a "$OUT/raw.txt"
done
"$HERE/summarize-ops.sh" "$OUT/raw.txt" | tee "$OUT/summary.txt"
