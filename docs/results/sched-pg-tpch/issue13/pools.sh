#!/bin/bash
# extra rows (after chain.sh, same cluster and load, same 8 streams): exact sets, 1 client, no learned policy,
# at another pool size; usage: pools.sh SIZE (e.g. 64MB: most queries' sets fit, the stream's union does not)
P=$(dirname "$(readlink -f "$0")")
[ "$(date -u +%H%M)" -ge 0330 ] && [ "$(date -u +%H%M)" -lt 2300 ] && { echo "too late"; exit 0; }
/tmp/lab-heavy1 $P/run.sh exact 1 none $1
