#!/bin/sh
# Runs the cmocka unit-test binaries given as arguments with TAP output.
# Exit status: non-zero if any failed.
rc=0
for t in "$@"; do
	CMOCKA_MESSAGE_OUTPUT=TAP "$t" || rc=1
done
exit $rc
