#!/bin/bash
# Writes a <resources> section of about KB kilobytes to stdout, padded exactly the way
# cib/benches/service_replicas.rs pads its CIB: primitives rscN (ocf:pacemaker:Dummy;
# the in-process bench says "heartbeat", one byte more per primitive) each with one
# instance_attributes of three nvpairs, until the compact serialisation of the
# primitives reaches KB*1000 bytes.
# Usage: pad-resources.sh KB > resources.xml
set -eu
KB=${1:?kilobytes}
awk -v limit=$((KB * 1000)) 'BEGIN {
  printf "<resources>";
  size = 0;
  for (i = 0; size < limit; i++) {
    id = "rsc" i;
    p = "<primitive id=\"" id "\" class=\"ocf\" provider=\"pacemaker\" type=\"Dummy\"><instance_attributes id=\"" id "-ia\">";
    for (k = 0; k < 3; k++)
      p = p "<nvpair id=\"" id "-ia-p" k "\" name=\"param" k "\" value=\"value-" i "-" k "\"/>";
    p = p "</instance_attributes></primitive>";
    size += length(p);
    printf "%s", p;
  }
  printf "</resources>\n";
}'
