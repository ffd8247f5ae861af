#!/usr/bin/env bash
# make fuzz: run each libFuzzer target given as an argument (build/fuzz/NAME)
# for FUZZ_SECONDS (default 60) on a temporary copy of its seed corpus,
# tests/fuzz/corpus/NAME: the run never writes into the repository, and
# what it finds is dropped at the end. FUZZ_MERGE=1 merges the inputs that
# found new coverage back into the seeds instead (keep them few and small).
#
# One TAP line per target, "ok N - NAME (S s, X runs)", or "not ok" with the
# reproducer's path: a crash, a sanitizer report, a leak, a timeout or a
# broken property (the targets abort on one) all fail it. Reproducers stay
# in build/fuzz/artifacts/NAME/, each run's full log in build/fuzz/NAME.log.
# Exit status: 0 iff every target passed.

set -u
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SECS=${FUZZ_SECONDS:-60}
MAX_LEN=20000

if ! [[ $SECS =~ ^[1-9][0-9]*$ ]]; then
	echo "not ok 1 - fuzz: FUZZ_SECONDS must be a positive integer: $SECS"
	exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/orders-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT

# field LOG NAME: the last value libFuzzer printed for "NAME: value".
field() { grep -oE "$2: *[0-9]+" "$1" | tail -n 1 | grep -oE '[0-9]+$'; }

echo "1..$#"
n=0
rc=0
for bin in "$@"; do
	n=$((n + 1))
	name=$(basename -- "$bin")
	seeds=$REPO/tests/fuzz/corpus/$name
	corpus=$work/$name
	art=$(cd "$(dirname -- "$bin")" && pwd -P)/artifacts/$name/
	log=${art%/artifacts/*}/$name.log
	mkdir -p "$corpus" "$art"
	if [[ -d $seeds ]]; then
		cp -- "$seeds"/* "$corpus"/ 2>/dev/null
	else
		echo "# $name: no seed corpus in ${seeds#"$REPO"/}"
	fi
	started=$SECONDS
	"$bin" -max_total_time="$SECS" -max_len="$MAX_LEN" -timeout=10 \
		-print_final_stats=1 -artifact_prefix="$art" "$corpus" \
		>"$log" 2>&1 </dev/null
	status=$?
	took=$((SECONDS - started))
	runs=$(field "$log" 'stat::number_of_executed_units')
	if ((status == 0)) && [[ -n $runs ]]; then
		echo "ok $n - $name ($SECS s, $runs runs)"
		# The last status line: coverage, corpus size, speed.
		echo "# $name: $((runs / (took > 0 ? took : 1))) runs/s," \
			"cov $(field "$log" cov), ft $(field "$log" ft)," \
			"corpus $(find "$corpus" -type f | wc -l) inputs" \
			"($(find "$seeds" -type f 2>/dev/null | wc -l) seeds)"
		if [[ ${FUZZ_MERGE-} == 1 && -d $seeds ]]; then
			"$bin" -merge=1 -max_len="$MAX_LEN" "$seeds" "$corpus" \
				>>"$log" 2>&1 </dev/null &&
				echo "# $name: merged into ${seeds#"$REPO"/}:" \
					"$(find "$seeds" -type f | wc -l) seeds"
		fi
		continue
	fi
	rc=1
	repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
	[[ -z $runs ]] && runs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
	echo "not ok $n - $name (after ${runs:-0} runs in $took s, exit $status${repro:+: reproducer $repro})"
	# The report's first lines (what, where), and its summary.
	awk '!on && /==[0-9]+==ERROR|runtime error|deadly signal|ALARM|out-of-memory/ { on = 1 }
		on && n < 10 { print; n++ } /^SUMMARY/ { print }' "$log" | sed 's/^/#   /'
	[[ -n $repro ]] && echo "#   reproduce: $bin $repro"
	echo "#   full log: $log"
done
exit $rc
