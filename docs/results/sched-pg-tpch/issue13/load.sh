#!/bin/bash
# cluster up (16MB pool) + TPC-H scale 0.1; usage: D=DIR load.sh
. "$(dirname "$0")/env.sh"
date -u
$L up --dir $D --shared-buffers 16MB
/usr/bin/time -f "load %e s" $L load --dir $D --dataset tpch --scale 0.1
date -u
