#!/bin/bash
# Replicated modify cost of Phalanx's CIB with three real phalanxd processes, the same
# method as pacemaker-cib.sh: for each size, replace <resources> with KB kilobytes of
# primitives (pad-resources.sh), then OPS small nvpair modifies, each one a new
# `phalanx-cibadmin -M -o crm_config` process talking to node 1's admin socket
# (process per op), one at a time. phalanx-cibadmin answers once the change has been
# applied by every node of the configuration.
# Topology: loopback UDP (127.0.0.1, three ports), crypto off (the Pacemaker rig runs
# knet without crypto), state directories on /dev/shm or $TMPDIR.
#
# Usage: phalanx-cib.sh BINDIR OUTDIR OPS KB...
#   BINDIR holds phalanxd and phalanx-cibadmin (e.g. target/release).
set -eu
BIN=${1:?bindir}; OUT=${2:?outdir}; OPS=${3:?ops}; shift 3
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="$(cd "$BIN" && pwd)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
W=$(mktemp -d "${TMPDIR:-/dev/shm}/cibperf-phalanxd.XXXXXX")
BASE=$((20000 + RANDOM % 20000))
cat > "$W/corosync.conf" <<CONF
totem {
    cluster_name: cibperf
    crypto_cipher: none
    crypto_hash: none
}
system {
    state_dir: $W
}
nodelist {
    node {
        nodeid: 1
        name: n1
        ring0_addr: 127.0.0.1:$BASE
    }
    node {
        nodeid: 2
        name: n2
        ring0_addr: 127.0.0.1:$((BASE + 1))
    }
    node {
        nodeid: 3
        name: n3
        ring0_addr: 127.0.0.1:$((BASE + 2))
    }
}
quorum {
    provider: corosync_votequorum
}
cib {
    enabled: yes
}
CONF
PIDS=""
stop() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap stop EXIT
for i in 1 2 3; do
  "$BIN/phalanxd" --config "$W/corosync.conf" --node-id "$i" --no-realtime >"$W/n$i.out" 2>"$W/n$i.err" &
  PIDS="$PIDS $!"
done
ADM() { "$BIN/phalanx-cibadmin" --socket "$W/admin-$1.sock" "${@:2}"; }
cpu_of() { # CPU seconds (user+sys) of the three daemons
  for p in $PIDS; do awk '{sub(/^[^)]*\) /, ""); printf "%.2f ", ($12 + $13) / 100}' /proc/$p/stat 2>/dev/null; done
}
# until all three answer and a change goes through (every node in the configuration)
for t in $(seq 1 300); do
  ADM 1 -M -c -o crm_config -X '<cluster_property_set id="bench-options"><nvpair id="bench-options-counter" name="counter" value="start"/></cluster_property_set>' >/dev/null 2>&1 && break
  sleep 0.2
done
for KB in "$@"; do
  "$HERE/pad-resources.sh" "$KB" > "$OUT/resources-$KB.xml"
  ADM 1 -R -o resources -x "$OUT/resources-$KB.xml"
  BYTES=$(ADM 1 -Q | wc -c)
  echo "size_kb=$KB cib_bytes=$BYTES load=$(cut -d' ' -f1-3 /proc/loadavg) cpu_before: $(cpu_of)" | tee -a "$OUT/raw.txt"
  for i in $(seq 1 "$OPS"); do
    t0=$EPOCHREALTIME
    ADM 1 -M -o crm_config -X "<cluster_property_set id=\"bench-options\"><nvpair id=\"bench-options-counter\" name=\"counter\" value=\"$i\"/></cluster_property_set>" || echo "FAILED $i" >&2
    t1=$EPOCHREALTIME
    echo "op $KB $i ${t0/./} ${t1/./}"
  done >> "$OUT/raw.txt"
  echo "size_kb=$KB done load=$(cut -d' ' -f1-3 /proc/loadavg) cpu_after: $(cpu_of)" | tee -a "$OUT/raw.txt"
  for i in 1 2 3; do ADM $i -Q | head -c 400 | grep -o 'epoch="[0-9]*"\|num_updates="[0-9]*"' | tr '\n' ' '; echo " (n$i)"; done | tee -a "$OUT/raw.txt"
done
"$HERE/summarize-ops.sh" "$OUT/raw.txt" | tee "$OUT/summary.txt"
