#!/usr/bin/env bash
# Integration harness: start the whole stack (Postgres, Redis, the FastCGI
# worker pool, nginx) with the project's own ./deploy.sh in a temporary
# directory on a free loopback port, run tests/integration/*.bats against
# it, and always stop it again.
#
#   tests/run-integration.sh [--asan] [--suite integration|faults|soak] [FILTER]
#
# --suite faults runs tests/faults/ (make faults) instead of
# tests/integration/, with the deployed defaults and four workers, and
# prints the table of what each fault measured. --suite soak runs
# tests/soak/ (make soak) with the deployed defaults and one worker, and
# prints what the soak measured. FILTER goes to
# `bats --filter`. --asan runs the stack on the sanitizer
# build (make asan: build/asan/orders-worker and orders-invalidator, with
# ASan, LeakSanitizer and UBSan), names each TAP line "asan: ...", and
# after the stack has stopped (LeakSanitizer reports at exit) turns every
# sanitizer report into a "not ok - sanitizer: ..." line. It leaves out
# 46-roles, 48-redis-tls and 49-pgbouncer (deploy.sh's roles, tunnel and
# pooler: several stacks each, for little C the other files do not run).
#
# TIMING=1 adds each test's duration to its TAP line (bats --timing).
#
# Prints the TAP output and, as its last line, "N passed, N failed" (plus
# ", N skipped" when some were). Exits 0 iff nothing failed and something
# passed.

set -u
set -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO" || exit 2
ASAN=''
SUITE=integration
while [[ ${1-} == --* ]]; do
  case $1 in
  --asan) ASAN=1 ;;
  --suite)
    SUITE=${2-}
    shift
    ;;
  *) break ;;
  esac
  shift
done
[[ -d tests/$SUITE && $SUITE != */* ]] || {
  echo "usage: tests/run-integration.sh [--asan] [--suite integration|faults|soak] [FILTER]" >&2
  exit 2
}
FILTER=${1-}
LABEL=${ASAN:+asan: } # names this run's TAP lines
SAN_DIR=''            # --asan: where the sanitizers write their reports

T=$(mktemp -d "${TMPDIR:-/tmp}/orders-it.XXXXXX") || exit 2
TAP='' # every TAP line of the run, the harness's own included
CLEANED=''
DEPLOY_TIMEOUT=${DEPLOY_TIMEOUT:-600}
SUITE_TIMEOUT=${SUITE_TIMEOUT:-900}

say() { printf '%s\n' "$*"; }
note() { printf '%s\n' "$@" | sed 's/^/# /'; }

# harness_fail DESCRIPTION: a failed harness check, shown and counted like a
# failed test. (Passed harness checks are only TAP comments: "passed" counts
# the suite's tests.)
harness_fail() {
  local line="not ok - ${LABEL}harness: $1"
  say "$line"
  TAP+=$line$'\n'
}

# run_detached LOG CMD...: run CMD with stdin from /dev/null, stdout and
# stderr to LOG, and no other inherited descriptor (daemons it starts must
# not hold our pipes open).
run_detached() {
  local log=$1
  shift
  (
    for fd in "/proc/$BASHPID/fd/"*; do
      fd=${fd##*/}
      ((fd > 2)) && eval "exec $fd>&-"
    done
    exec "$@"
  ) >"$log" 2>&1 </dev/null
}

# label: TAP lines named after this run ("ok 3 asan: ..." with --asan).
label() {
  if [[ -n $LABEL ]]; then
    sed -u -E "s/^(not )?ok [0-9]+ /&$LABEL/"
  else
    cat
  fi
}

# port_in_use PORT, pick_port
# shellcheck source=tests/lib/ports.bash
. "$REPO/tests/lib/ports.bash"

# ---------------------------------------------------------------- cleanup

# pid:starttime of every process that belongs to the stack: the PIDs that
# ./deploy.sh status and the pid files name, every process whose environment
# carries our STATE_DIR or whose command line names $T, the Postgres
# directory or the run directory, and their children; never this script or
# its own children.
STACK_PROCS=()
pid_start() { awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null; }
is_ours() { # is PID this script or one of its descendants?
  local p=$1 i
  for ((i = 0; i < 64 && p > 1; i++)); do
    [[ $p == "$$" ]] && return 0
    p=$(awk '{ sub(/^.*\) /, ""); print $2 }' "/proc/$p/stat" 2>/dev/null) || return 1
    [[ -n $p ]] || return 1
  done
  return 1
}
collect_stack_procs() {
  local pgpath=$1 runpath=$2 pid f st
  local -A seen=()
  local -a cand=()
  if [[ -x ./deploy.sh && -d $T/state ]]; then
    cand+=($(timeout 30 ./deploy.sh status 2>/dev/null </dev/null | awk '$2 ~ /^[0-9]+$/ { print $2 }'))
  fi
  for f in $(find "$T" ${pgpath:+"$pgpath"} ${runpath:+"$runpath"} -maxdepth 3 -name '*.pid' 2>/dev/null); do
    cand+=($(head -1 "$f" 2>/dev/null | grep -E '^[0-9]+$'))
  done
  for f in /proc/[0-9]*; do
    pid=${f#/proc/}
    if { tr '\0' '\n' <"$f/environ"; } 2>/dev/null | grep -qxF "STATE_DIR=$T/state" ||
      { tr '\0' ' ' <"$f/cmdline"; } 2>/dev/null | grep -qF -e "$T" ${pgpath:+-e "$pgpath"} ${runpath:+-e "$runpath"}; then
      cand+=("$pid")
    fi
  done
  # children of candidates (postgres's backends, nginx's workers)
  for pid in "${cand[@]}"; do
    cand+=($(ps -o pid= --ppid "$pid" 2>/dev/null))
  done
  for pid in "${cand[@]}"; do
    [[ -n ${seen[$pid]-} ]] && continue
    seen[$pid]=1
    ((pid > 1)) || continue
    is_ours "$pid" && continue
    st=$(pid_start "$pid") || continue
    [[ -n $st ]] && STACK_PROCS+=("$pid:$st")
  done
}

# survivors: the collected processes that still run (same PID, same start).
survivors() {
  local e pid
  for e in "${STACK_PROCS[@]}"; do
    pid=${e%%:*}
    [[ $(pid_start "$pid") == "${e#*:}" ]] && echo "$pid"
  done
}

cleanup() {
  [[ -n $CLEANED ]] && return 0
  CLEANED=1
  local pgpath='' runpath='' rc pid i left
  [[ -f $T/state/pg.path ]] && pgpath=$(head -1 "$T/state/pg.path")
  [[ -f $T/state/run.path ]] && runpath=$(head -1 "$T/state/run.path")
  collect_stack_procs "$pgpath" "$runpath"
  if [[ -x ./deploy.sh ]]; then
    rc=0
    STATE_DIR=$T/state run_detached "$T/stop.log" timeout 120 ./deploy.sh stop || rc=$?
    if ((rc == 0)); then
      note "harness: ./deploy.sh stop ok"
    else
      harness_fail "./deploy.sh stop exited $rc"
      sed 's/^/#   /' "$T/stop.log"
    fi
  fi
  # give the servers a moment to finish shutting down, then kill leftovers
  for ((i = 0; i < 40; i++)); do
    [[ -z $(survivors) ]] && break
    sleep 0.25
  done
  left=$(survivors)
  if [[ -n $left ]]; then
    harness_fail "no process of the stack survives ./deploy.sh stop"
    for pid in $left; do
      note "  left running: $(ps -o pid=,user=,args= -p "$pid" 2>/dev/null)"
    done
    for pid in $left; do kill -TERM "$pid" 2>/dev/null; done
    for ((i = 0; i < 20; i++)); do
      [[ -z $(survivors) ]] && break
      sleep 0.25
    done
    for pid in $(survivors); do kill -KILL "$pid" 2>/dev/null; done
  elif ((${#STACK_PROCS[@]} > 0)); then
    note "harness: none of the ${#STACK_PROCS[@]} processes of the stack survived ./deploy.sh stop"
  fi
  if [[ -n ${port-} ]] && port_in_use "$port"; then
    harness_fail "port $port is free again after ./deploy.sh stop"
  fi
  [[ -n $SAN_DIR ]] && sanitizer_reports
  rm -rf "$T"
  # deploy.sh may have put Postgres's directory (pg.path) and its run
  # directory (run.path) outside STATE_DIR, where a 0700 mktemp dir is out
  # of reach of users postgres and www-data.
  remove_outside "$pgpath"
  remove_outside "$runpath"
}

# remove_outside DIR: rm -rf DIR, only when it is plainly a directory of its
# own (e.g. /var/lib/postgresql/orders-ID, /run/orders-ID), never a system
# directory, a home, or the repository.
remove_outside() {
  local d=${1%/}
  [[ -n $d && $d == /?*/?* && -d $d && ! -L $d ]] || return 0
  case $d in
  /var/lib/postgresql | /var/lib/postgresql/[0-9]* | /var/lib/redis | /var/run/* | /run/user | /run/user/*) return 0 ;;
  /var/*/* | /run/* | /tmp/* | /srv/*/* | /opt/*/*) ;;
  *) return 0 ;;
  esac
  case $d in
  /var/lib/* | /var/log/* | /var/cache/* | /var/spool/* | /var/mail/*)
    [[ $d == /var/*/*/* ]] || return 0 ;; # not /var/lib/NAME itself
  esac
  [[ $d == "$REPO" || $d == "$REPO"/* || $REPO == "$d"/* ]] && return 0
  rm -rf -- "$d"
}

# ---------------------------------------------------------------- --asan

# asan_setup: the sanitizer build's programs for ./deploy.sh (WORKER_BIN,
# INVALIDATOR_BIN), and the sanitizers' options, which deploy.sh passes on
# to both: a memory error aborts the process, UB stops it, leaks are
# reported at exit, and every report goes to a file of its own in SAN_DIR
# (log_path: NAME.PID), not only to a log where it would go unnoticed.
asan_setup() {
  local b
  for b in orders-worker orders-invalidator; do
    if [[ ! -x $REPO/build/asan/$b ]]; then
      harness_fail "build/asan/$b exists (make asan)"
      return 1
    fi
  done
  SAN_DIR=$(mktemp -d /tmp/orders-san.XXXXXX) || {
    harness_fail "made a directory for the sanitizers' reports"
    return 1
  }
  # As root, the workers and the invalidator run as www-data.
  if (($(id -u) == 0)); then
    chown www-data:www-data "$SAN_DIR" &&
      setpriv --reuid=www-data --regid=www-data --init-groups -- test -w "$SAN_DIR" || {
      harness_fail "www-data can write the sanitizers' reports into $SAN_DIR"
      return 1
    }
  fi
  export WORKER_BIN=$REPO/build/asan/orders-worker
  export INVALIDATOR_BIN=$REPO/build/asan/orders-invalidator
  export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:log_path=$SAN_DIR/asan
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$SAN_DIR/ubsan
  note "sanitizer build: $WORKER_BIN, $INVALIDATOR_BIN; reports to $SAN_DIR"
}

# sanitizer_reports: once the stack has stopped, each report in SAN_DIR is
# a failure, shown with its first lines; so is a report that went to the
# stack's logs instead (a sanitizer that could not open its log_path).
# Then SAN_DIR goes.
sanitizer_reports() {
  # Anchored: a log line starts "ts=", so no client can forge one.
  local f n=0 pat='^==[0-9]+==ERROR: [A-Za-z]+Sanitizer|^[^ ]+:[0-9]+:[0-9]+: runtime error:|^SUMMARY: [A-Za-z]+Sanitizer'
  for f in "$SAN_DIR"/* "$STATE_DIR"/log/workers.log "$STATE_DIR"/log/invalidator.log; do
    [[ -f $f ]] && grep -q -E "$pat" "$f" || continue
    n=$((n + 1))
    sanitizer_fail "$f" "$pat"
  done
  ((n == 0)) && note "sanitizer: no report from the workers or the invalidator"
  rm -rf "$SAN_DIR"
  SAN_DIR=''
}

# sanitizer_fail FILE PATTERN: a "not ok" line for the report in FILE, what
# it found first, then the report's first lines and its summary.
sanitizer_fail() {
  local f=$1 what line head
  what=$(grep -m 1 -E "$2" "$f" | sed -E 's/^.*==[0-9]+==//' | cut -c 1-200)
  line="not ok - sanitizer: $what (${f##*/})"
  say "$line"
  TAP+=$line$'\n'
  head=$(grep -A 24 -m 1 -E "$2" "$f" | grep -v -E '^=+$|^$')
  printf '%s\n' "$head" | sed 's/^/#   /'
  [[ $head == *$'\n'SUMMARY:* ]] || grep -m 1 '^SUMMARY' "$f" | sed 's/^/#   /'
}

# ---------------------------------------------------------------- summary

# fault_table FILE: the fault suite's rows ("fault|reads|failed|acked|
# write failures|lost|recovery|note"), as a table of TAP comments.
fault_table() {
  note "" "what the fault suite measured:"
  {
    echo "fault|reads|reads failed|writes acked|write attempts failed|acked writes lost|recovery|note"
    cat "$1"
  } | awk -F'|' '
    { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NR; nf = NF }
    END {
      for (r = 1; r <= n; r++) {
        line = ""
        for (i = 1; i <= nf; i++) line = line sprintf("%-" w[i] "s  ", cell[r, i])
        sub(/ +$/, "", line); print "# " line
      }
    }'
}

summary() {
  local passed failed skipped line
  passed=$(printf '%s' "$TAP" | awk '/^ok / && !/# *[Ss][Kk][Ii][Pp]/ { n++ } END { print n + 0 }')
  skipped=$(printf '%s' "$TAP" | awk '/^ok / && /# *[Ss][Kk][Ii][Pp]/ { n++ } END { print n + 0 }')
  failed=$(printf '%s' "$TAP" | awk '/^not ok / { n++ } END { print n + 0 }')
  line="$passed passed, $failed failed"
  ((skipped > 0)) && line+=", $skipped skipped"
  say "$line"
  ((failed == 0 && passed > 0))
}

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -z $CLEANED ]]; then # interrupted or failed before the end
    [[ -z $TAP && -f $T/tap ]] && TAP=$(label <"$T/tap")$'\n'
    cleanup
    summary
    exit 1
  fi
  exit $rc
}
# on_signal: stop the suite (timeout passes the signal on to bats's whole
# process group), then leave through on_exit, which stops the stack.
on_signal() {
  trap '' INT TERM
  if [[ -n ${BATS_PID-} ]]; then
    kill -TERM "$BATS_PID" 2>/dev/null
    wait "$BATS_PID" 2>/dev/null
  fi
  note "interrupted"
  exit 130
}
BATS_PID=''
trap on_exit EXIT
trap on_signal INT TERM

# ---------------------------------------------------------------- main

main() {
  if [[ ! -x ./deploy.sh ]]; then
    harness_fail "./deploy.sh exists and is executable"
    return
  fi
  port=$(pick_port) || {
    harness_fail "found a free loopback port"
    return
  }
  note "stack in $T, nginx on 127.0.0.1:$port"
  if [[ -n $ASAN ]]; then
    asan_setup || return
  fi

  export STATE_DIR=$T/state PORT=$port WORKERS=2 CACHE_TTL=5 CACHE_PREFIX=orders: ORDERS_ROWS=12000 ORDERS_TEST_HOOKS=1 LOG_LEVEL=debug CACHE_WAIT_MS=1500
  if [[ $SUITE == faults ]]; then
    # the service as deployed (default timeouts), a pool of four, and a
    # report that each fault adds a row to
    export WORKERS=4 CACHE_TTL=30 LOG_LEVEL=info CACHE_WAIT_MS=500 \
      REDIS_TIMEOUT_MS=100 STATEMENT_TIMEOUT_MS=5000 FAULT_REPORT=$T/fault-report
    unset ORDERS_TEST_HOOKS
  elif [[ $SUITE == soak ]]; then
    # the service as deployed, ONE worker (every request goes through
    # it), tests that take minutes (valgrind), and the report they write
    export WORKERS=1 CACHE_TTL=30 LOG_LEVEL=info CACHE_WAIT_MS=500 \
      SOAK_REPORT=$T/soak-report BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-1200}
    unset ORDERS_TEST_HOOKS
    ((SUITE_TIMEOUT >= 2400)) || SUITE_TIMEOUT=2400
  fi
  unset DATABASE_URL REDIS_URL REDIS_ADMIN_URL
  local rc=0 started=$SECONDS
  run_detached "$T/deploy.log" timeout -k 10 "$DEPLOY_TIMEOUT" ./deploy.sh || rc=$?
  if ((rc != 0)) || [[ ! -f $STATE_DIR/env ]]; then
    sed 's/^/#   /' "$T/deploy.log"
    if ((rc != 0)); then
      harness_fail "./deploy.sh started the stack (exit $rc)"
    else
      harness_fail "./deploy.sh wrote $STATE_DIR/env"
    fi
    return
  fi
  note "./deploy.sh took $((SECONDS - started)) s"

  # shellcheck disable=SC1091
  source "$STATE_DIR/env"
  export DATABASE_URL REDIS_URL REDIS_ADMIN_URL
  if [[ ${PORT-} != "$port" ]]; then
    note "warning: $STATE_DIR/env says PORT=${PORT-}, nginx was asked for $port"
    export PORT=$port
  fi
  export BASE=http://127.0.0.1:$port REPO BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-120}

  # deploy.sh should only return once it serves; allow it a few seconds more
  local i
  for ((i = 0; i < 60; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/healthz") == 200 ]] && break
    sleep 0.25
  done

  local -a args=(--tap)
  [[ -n $FILTER ]] && args+=(--filter "$FILTER")
  [[ -n ${TIMING-} ]] && args+=(--timing)
  # bats runs in the background so that a signal to this script is handled
  # at once (see on_signal); its output is shown as it comes.
  # The sanitizer pass leaves out the files that test deploy.sh's other
  # roles and tunnels (several stacks each, for little C the rest does not
  # run) and nginx's own limits on slow and greedy clients (47: timeouts
  # and 429s that no worker sees; the requests that do get through are
  # the ones every other file sends): make test stays near 14 minutes.
  local -a what=("tests/$SUITE/")
  if [[ -n $SAN_DIR && $SUITE == integration ]]; then
    local f
    what=()
    for f in tests/integration/*.bats; do
      case ${f##*/} in
      46-roles.bats | 47-slow-clients.bats | 48-redis-tls.bats | 49-pgbouncer.bats) ;;
      *) what+=("$f") ;;
      esac
    done
  fi
  : >"$T/tap"
  timeout -k 10 "$SUITE_TIMEOUT" bats "${args[@]}" "${what[@]}" >"$T/tap" 2>&1 </dev/null &
  BATS_PID=$!
  tail -n +1 -f --pid="$BATS_PID" "$T/tap" | label &
  local tail_pid=$!
  wait "$BATS_PID"
  wait "$tail_pid"
  BATS_PID=''
  TAP+=$(label <"$T/tap")$'\n'
  [[ -s ${FAULT_REPORT-} ]] && fault_table "$FAULT_REPORT"
  if [[ -s ${SOAK_REPORT-} ]]; then
    note "" "what the soak measured:"
    sed 's/^/# /' "$SOAK_REPORT"
  fi
  # A failure is easier to understand with what the stack logged around it.
  if grep -q '^not ok' "$T/tap"; then
    local f
    for f in "$STATE_DIR"/log/workers.log "$STATE_DIR"/log/invalidator.log \
      "$STATE_DIR"/log/nginx-error.log; do
      [[ -s $f ]] || continue
      note "last lines of $f:"
      tail -n 25 "$f" | sed 's/^/#   /'
    done
  fi
}

main
cleanup
summary
