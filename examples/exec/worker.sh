#!/bin/sh
# A worker in any language: started as `procslot exec [options] -- ./worker.sh ITEM`, it holds slot
# $PROCSLOT_ID of $PROCSLOT_COUNT for as long as it runs, and derives what must be unique from it.
# Example: xargs -P 8 -n1 procslot exec --file /run/myapp/slots --slots 8 --wait 60000 -- ./worker.sh < items
set -eu
port=$((8000 + PROCSLOT_ID))
echo "item ${1:-?}: worker $PROCSLOT_ID of $PROCSLOT_COUNT (pid $$), port $port, slot file $PROCSLOT_FILE"
