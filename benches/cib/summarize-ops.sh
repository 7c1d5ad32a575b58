#!/bin/bash
# Summarises "op SIZE I T0_US T1_US" lines (from pacemaker-cib.sh / phalanx-cib.sh):
# per size and per method label: count, ops/s (closed loop, one at a time: count / sum
# of latencies, so gaps between runs do not count), p50, p99, max (ms).
set -eu
awk '$1 == "op" || $1 == "opm" {
  key = ($1 == "op" ? "process-per-op" : $1) " " $2;
  if ($1 == "opm") key = $3 " " $2;
  t0 = ($1 == "op" ? $4 : $5); t1 = ($1 == "op" ? $5 : $6);
  lat[key, ++n[key]] = (t1 - t0) / 1000.0;
  busy[key] += (t1 - t0) / 1e6;
}
$1 == "failed" { failed[$2]++ }
END {
  for (f in failed) printf "failed requests at %s KB: %d (not in the latencies)\n", f, failed[f];
  printf "%-16s %-8s %6s %8s %9s %9s %9s\n", "method", "size_kb", "ops", "ops/s", "p50_ms", "p99_ms", "max_ms";
  for (k in n) {
    m = n[k];
    for (i = 1; i <= m; i++) v[i] = lat[k, i];
    # insertion sort (m is small)
    for (i = 2; i <= m; i++) { x = v[i]; j = i - 1; while (j > 0 && v[j] > x) { v[j+1] = v[j]; j-- } v[j+1] = x }
    p50 = v[int((m - 1) * 0.50 + 0.5) + 1]; p99 = v[int((m - 1) * 0.99 + 0.5) + 1];
    split(k, kk, " ");
    printf "%-16s %-8s %6d %8.1f %9.2f %9.2f %9.2f\n", kk[1], kk[2], m, m / busy[k], p50, p99, v[m];
  }
}' "$1" | sort -k2,2n -k1,1
