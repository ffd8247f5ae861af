#!/usr/bin/env bash
# make test: the unit tests (cmocka binaries given as arguments), the
# integration suite against real nginx, Postgres and Redis, the same suite
# against the sanitizer build (build/asan/: its lines read "ok N asan: ..."),
# the several-machine test (tests/cluster/, as root: network namespaces),
# then each fuzz target of build/fuzz/ for FUZZ_SECONDS (20 here). Ends
# with one line for CI: "N passed, N failed".
set -u
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "# unit tests"
"$REPO/tests/run-unit.sh" "$@" 2>&1 | tee -a "$out"
echo "# integration tests"
"$REPO/tests/run-integration.sh" 2>&1 | tee -a "$out"
echo "# integration tests against the sanitizer build (ASan, LeakSanitizer, UBSan)"
"$REPO/tests/run-integration.sh" --asan 2>&1 | tee -a "$out"
echo "# several machines in network namespaces (make test-cluster)"
if (($(id -u) == 0)) && command -v ip >/dev/null; then
	"$REPO/tests/cluster/run-cluster.sh" 2>&1 | tee -a "$out"
else
	echo "ok - cluster # SKIP needs root and ip (network namespaces): make test-cluster as root" | tee -a "$out"
fi
export FUZZ_SECONDS=${FUZZ_SECONDS:-20}
echo "# fuzzing, $FUZZ_SECONDS s per target"
fuzz=()
for f in "$REPO"/build/fuzz/fuzz_*; do
	[[ -f $f && -x $f && ${f##*/} != *.* ]] && fuzz+=("$f")
done
if ((${#fuzz[@]} > 0)); then
	"$REPO/tests/run-fuzz.sh" "${fuzz[@]}" 2>&1 | tee -a "$out"
else
	echo "not ok - fuzz: no targets in build/fuzz/ (make fuzz-build)" | tee -a "$out"
fi

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
