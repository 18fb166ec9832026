#!/usr/bin/env bash
# Prints one plain closing line for an ava run from its output: "<label>: N passed, M failed".
# ava's own summary says "N tests passed" only when none failed, so the passed tests are counted from
# their "✔" lines (known failures, "✔ [expected fail]", are not passes); the failed from ava's summary.
#
# Usage: ava-closing-line.sh <label> <log file>
set -uo pipefail
label=$1
log=$2
passed=$(grep -E '^ *✔ ' "$log" | grep -cv '✔ \[expected fail\]')
failed=$(grep -Eo '^ *[0-9]+ tests? failed' "$log" | tail -n1 | grep -Eo '[0-9]+' || echo 0)
echo "$label: ${passed} passed, ${failed} failed"
