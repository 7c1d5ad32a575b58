#!/bin/bash
# Merges the passes of run.sh into raw.txt (phalanxd's lines relabelled
# `phalanxd:…`, every pass's `:r1` relabelled to its repetition) and writes the
# rig's median table to summary.md.
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RIG=${RIG:-/tmp/cbench}
cd "$HERE"
: > raw.txt
for d in phalanxd-knet-r*/ corosync-knet-r*/ corosync-udpu-r*/; do
    d=${d%/}
    rep=${d##*-r}
    sed -E "s/:r1 /:r$rep /; s/^(# (FAILED|STEAL) [^ ]*):r1( |$)/\1:r$rep\3/" "$d/raw.txt" |
        if [[ $d == phalanxd-* ]]; then sed -E 's/label=knet:/label=phalanxd:/; s/^(# (FAILED|STEAL) )knet:/\1phalanxd:/'; else cat; fi >> raw.txt
done
"$RIG/summarize.sh" raw.txt > summary.md
