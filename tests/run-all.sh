#!/usr/bin/env bash
# make test: the unit tests (cmocka binaries given as arguments), then the
# integration suite against real nginx, Postgres and Redis. Ends with one
# line for CI: "N passed, N failed".
set -u
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "# unit tests"
"$REPO/tests/run-unit.sh" "$@" 2>&1 | tee -a "$out"
echo "# integration tests"
"$REPO/tests/run-integration.sh" 2>&1 | tee -a "$out"

# cmocka's TAP numbers each group's tests ("ok 3 - name"); its group lines
# are comments ("# ok - query"). Skipped tests count as neither.
passed=$(grep -Ec '^ok ' "$out" | tr -d ' ')
skipped=$(grep -Ec '^ok .*# ?[Ss][Kk][Ii][Pp]' "$out" | tr -d ' ')
failed=$(grep -Ec '^not ok' "$out" | tr -d ' ')
passed=$((passed - skipped))
echo
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
