#!/usr/bin/env bash
# Run the tests with the clock set to another moment, to find assertions that depend on the date, the time of
# day or the local timezone.
#
#   scripts/test-at.sh [--all-processes] 'WHEN' [TZ] [pytest arguments ...]
#
# WHEN is a UTC moment the clock starts at and runs on from ('2026-12-31 23:59:40'); TZ the local timezone of every
# process (default UTC), e.g. Pacific/Kiritimati (UTC+14) or America/Los_Angeles, which puts the local date on the
# other side of the UTC one.
#
# Default: the test process's clock moves (time-machine: time.time, datetime.now, date.today in every thread);
# the processes it starts keep the machine's clock. Every test runs, Kafka and PostgreSQL ones included.
# --all-processes: every process's clock moves (Debian's libfaketime, apt-get install faketime): Spark's JVM,
# Chromium and the CLI too; Kafka and PostgreSQL tests are skipped there (librdkafka's timed waits hang and
# initdb fails under it). Examples:
#
#   scripts/test-at.sh '2026-12-31 23:59:40' Pacific/Kiritimati       # month and year end, midnight on the way
#   scripts/test-at.sh --all-processes '2027-03-01 00:00:05' America/Los_Angeles tests/desk/test_store.py
set -euo pipefail
cd "$(dirname "$0")/.."
all=0; if [ "${1:-}" = "--all-processes" ]; then all=1; shift; fi
when="${1:?usage: scripts/test-at.sh [--all-processes] 'YYYY-MM-DD hh:mm:ss' [TZ] [pytest args]}"; shift
tz="${1:-UTC}"; [ $# -gt 0 ] && shift
stamp=$(date -u -d "$when UTC" +%s) || { echo "test-at: cannot read the moment '$when'" >&2; exit 2; }
export TZ="$tz"
if [ "$all" = 1 ]; then
  lib=$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -n 1) || true
  [ -n "$lib" ] || { echo "test-at: libfaketime is not installed (apt-get install faketime)" >&2; exit 2; }
  # An offset from now ("+N" seconds), not an absolute stamp: libfaketime reads those in the local timezone. The
  # monotonic clock stays real: the JVM and every timeout measure elapsed time with it.
  export LD_PRELOAD="$lib" FAKETIME="+$(( stamp - $(date +%s) ))" FAKETIME_DONT_FAKE_MONOTONIC=1
else
  export TWEETDESK_TEST_AT="$(date -u -d "@$stamp" +%FT%T)"
fi
echo "test-at: clock from $when UTC ($([ $all = 1 ] && echo 'every process' || echo 'the test process')), TZ=$tz" >&2
exec .venv/bin/pytest "$@"
