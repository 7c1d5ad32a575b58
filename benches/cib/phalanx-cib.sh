#!/bin/bash
# Replicated modify cost of Phalanx's CIB with three real phalanxd processes, the same
# method as pacemaker-cib.sh: for each size, replace <resources> with KB kilobytes of
# primitives (pad-resources.sh; here every node starts from that CIB), then OPS small nvpair modifies, each one a new
# `phalanx-cibadmin -M -o crm_config` process talking to node 1's admin socket
# (process per op), one at a time. phalanx-cibadmin answers once the change has been
# applied by every node of the configuration.
# Topology: loopback UDP (127.0.0.1, three ports), crypto off and token 3000 (the
# Pacemaker rig runs knet without crypto and Corosync's default token), state directories on /dev/shm or $TMPDIR.
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
    # Corosync's default (3000 ms, 3650 with three nodes), as on the Pacemaker rig;
    # Phalanx's own default is 300 ms.
    token: 3000
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
stop_nodes() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=""; }
trap 'stop_nodes; rm -rf "$W"' EXIT
ADM() { "$BIN/phalanx-cibadmin" --socket "$W/admin-$1.sock" "${@:2}"; }
cpu_of() { # CPU seconds (user+sys) of the three daemons
  for p in $PIDS; do awk '{sub(/^[^)]*\) /, ""); printf "%.2f ", ($12 + $13) / 100}' /proc/$p/stat 2>/dev/null; done
}
for KB in "$@"; do
  # The admin socket takes requests of up to 4 KiB, so the padded CIB is not
  # loaded with -R: every node starts from it as its cib.xml (a fresh cluster per
  # size; the copies are identical, the start-up sync finds nothing to do).
  "$HERE/pad-resources.sh" "$KB" > "$W/resources-$KB.xml"
  for i in 1 2 3; do
    rm -rf "$W/cib-$i"; mkdir -p "$W/cib-$i"
    { printf '<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0"><configuration><crm_config/><nodes/>'
      tr -d '\n' < "$W/resources-$KB.xml"
      printf '<constraints/></configuration><status/></cib>\n'; } > "$W/cib-$i/cib.xml"
  done
  for i in 1 2 3; do
    "$BIN/phalanxd" --config "$W/corosync.conf" --node-id "$i" --no-realtime >"$W/n$i.out" 2>"$W/n$i.err" &
    PIDS="$PIDS $!"
  done
  # until a change goes through (it answers once every node of the configuration applied it)
  for t in $(seq 1 600); do
    ADM 1 -M -c -o crm_config -X '<cluster_property_set id="bench-options"><nvpair id="bench-options-counter" name="counter" value="start"/></cluster_property_set>' >/dev/null 2>&1 && break
    sleep 0.2
  done
  BYTES=$(ADM 1 -Q | wc -c)
  echo "size_kb=$KB cib_bytes=$BYTES load=$(cut -d' ' -f1-3 /proc/loadavg) cpu_before: $(cpu_of)" | tee -a "$OUT/raw.txt"
  for i in $(seq 1 "$OPS"); do
    t0=$EPOCHREALTIME
    if msg=$(ADM 1 -M -o crm_config -X "<cluster_property_set id=\"bench-options\"><nvpair id=\"bench-options-counter\" name=\"counter\" value=\"$i\"/></cluster_property_set>" 2>&1); then
      t1=$EPOCHREALTIME
      echo "op $KB $i ${t0/./} ${t1/./}"
    else
      # a failed request is not a latency sample: counted apart, with the reason
      echo "failed $KB $i $msg"
    fi
  done >> "$OUT/raw.txt"
  echo "size_kb=$KB done load=$(cut -d' ' -f1-3 /proc/loadavg) cpu_after: $(cpu_of)" | tee -a "$OUT/raw.txt"
  for i in 1 2 3; do ADM $i -Q > "$W/q.xml"; head -c 400 "$W/q.xml" | grep -o 'epoch="[0-9]*"\|num_updates="[0-9]*"' | tr '\n' ' '; echo " (n$i)"; done | tee -a "$OUT/raw.txt"
  stop_nodes
done
"$HERE/summarize-ops.sh" "$OUT/raw.txt" | tee "$OUT/summary.txt"
