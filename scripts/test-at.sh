#!/usr/bin/env bash
# Run the tests with the clock set to another moment, to find assertions that depend on the date, the time of
# day or the local timezone (Debian's faketime: apt-get install faketime).
#
#   scripts/test-at.sh 'WHEN' [TZ] [pytest arguments ...]
#
# WHEN is a UTC moment the clock starts at and runs on from ('2026-12-31 23:59:40'); TZ the local timezone of every
# process (default UTC), e.g. Pacific/Kiritimati (UTC+14) or America/Los_Angeles, which puts the local date on the
# other side of the UTC one. Every process the tests start (Spark's JVM, PostgreSQL, Chromium, the CLI) inherits
# the clock. Examples:
#
#   scripts/test-at.sh '2026-12-31 23:59:40' Pacific/Kiritimati       # month and year end, midnight on the way
#   scripts/test-at.sh '2027-03-01 00:00:05' America/Los_Angeles tests/test_desk_store.py
set -euo pipefail
cd "$(dirname "$0")/.."
when="${1:?usage: scripts/test-at.sh 'YYYY-MM-DD hh:mm:ss' [TZ] [pytest args]}"; shift
tz="${1:-UTC}"; [ $# -gt 0 ] && shift
lib=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -n 1) || true
[ -n "$lib" ] || { echo "test-at: libfaketime is not installed (apt-get install faketime)" >&2; exit 2; }
# An offset from now ("+N" seconds), not an absolute stamp: libfaketime reads those in the local timezone. The
# monotonic clock stays real: the JVM and every timeout measure elapsed time with it.
offset=$(( $(date -u -d "$when UTC" +%s) - $(date +%s) ))
export LD_PRELOAD="$lib" FAKETIME="+$offset" FAKETIME_DONT_FAKE_MONOTONIC=1 TZ="$tz"
echo "test-at: clock from $when UTC (now $(date -u '+%F %T') UTC here), TZ=$tz" >&2
exec .venv/bin/pytest "$@"
