#!/usr/bin/env bash
# bench/run-bench.sh (make bench): the service against its floors, in one
# run, on a private stack.
#
# Starts Postgres, Redis, the pool, the invalidator and nginx with
# ./deploy.sh in a temporary directory on a free loopback port, with
# BENCH_ROWS (1,000,000) orders, and always stops them again (EXIT trap:
# ./deploy.sh stop, then whatever survived it, then the directories; the
# rows sweep below runs one stack at a time, each stopped the same way).
# Then, through the same nginx and its configuration, by turns:
#
#   floor round    the pool is build/floor (bench/floor.c: answers at once)
#                  and then build/floor-redis (bench/floor-redis.c: one
#                  Redis GET per request), each at 8 and 64 connections
#   service round  the pool is build/orders-worker: cache-hit GET
#                  /orders/count, cache-hit GET /orders/{id}, cold misses
#                  (a new count per request), POST /orders, a 95/5
#                  read/write mix, each at 8 and 64 connections
#
# in the order F S F S F (BENCH_REPS service rounds, each between two floor
# rounds; a ratio is to the mean of the floors just before and after, so
# that drift hits both alike). The pool is switched with
# WORKER_BIN=... ./deploy.sh scale N, which changes nothing but the pool.
# Each case is wrk -t2 --latency for BENCH_SECONDS.
#
# Then the service against the tutorial's own app (BENCH_TUTORIAL): the
# app (bench/tutorial/app.py: FastAPI, psycopg2, redis-py, the cache a
# decorator), run by uvicorn with as many worker processes as the pool on
# a free loopback port (bench/tutorial/serve.py: with uvicorn's 40 ms
# delayed-ACK bug of --workers N fixed, see there), beside the service
# pool. wrk goes straight to uvicorn: no nginx in front of it, which
# favours the tutorial app. Its keys are under CACHE_PREFIX "tutorial:"
# (the stack's REDIS_URL may only touch CACHE_PREFIX); its writes are not
# announced to the invalidator (orders.self_invalidating in its connection
# string): the tutorial has no triggers, and the service's own writes are
# not announced either. Both programs' speed moves by a third from one
# minute to the next on this machine, so they meet back to back, as the
# hits meet their floor below: BENCH_TUTORIAL_ROUNDS rounds, in each of
# which every kind of request the app has (count-hit, id-hit, miss, post,
# with the same wrk scripts, at each connection count) runs on the service
# and then on the app, or on the app and then on the service (turn about,
# ABBA), BENCH_TUTORIAL_SECONDS each; a round's ratio is the service's
# req/s over the app's in that round, and the table gives each round's
# ratio, their mean and least, and issue 6's target (3 x; 2.5 x for POST).
#
# Then the hits' duel (BENCH_DUELS rounds): the floor rounds above are a
# minute and more away from some of the service's cases, and the floors
# themselves move by up to a quarter in that time on a noisy 2-core
# machine. So the cache hits meet floor-redis again, back to back: each
# round is floor-redis then the hits, or the hits then floor-redis (turn
# about, ABBA, so that a steady drift favours neither), each case for
# BENCH_DUEL_SECONDS; a hit's ratio is to the floor-redis of its own
# round, and the table gives each round's ratio, their mean and issue 6's
# target (0.9 x). Six rounds by default: an even number, so that each side
# goes first as often, and single rounds range over a quarter and more.
#
# Then resource accounting: Redis round trips (total_reads_processed) and
# commands (INFO commandstats, a script's own included) per request of each
# case, over the measured runs (the benchmark's own INFO and AUTH left
# out); Postgres transactions per request (pg_stat_database
# xact_commit + xact_rollback deltas over short runs of their own, each
# counted after 11 s of quiet: a backend reports its counts at most once a
# second and, idle, 10 s later; an idle window of the same length is
# counted too, as the background); each worker's VmRSS after each round.
#
# Then the sweeps (BENCH_SWEEPS), each with BENCH_SWEEP_SECONDS per case:
#
#   workers        on the same stack, for each pool size of
#                  BENCH_SWEEP_WORKERS, one repetition F S F of the rounds
#                  above, floors and service at that size: a table per
#                  size and a summary (req/s, p99 and ratio to the floors
#                  per size), to choose the pool's default size
#   rows           the stack stopped, for each count of BENCH_SWEEP_ROWS a
#                  stack of its own (./deploy.sh generates the orders with
#                  sql/data.sql, as for any deploy; its time is printed),
#                  cache-hit count and id, and misses, at WORKERS workers:
#                  the hits should stay flat and the misses grow; a
#                  miss's cost is given in id-hits (id-hit's req/s over
#                  its own)
#
# Prints one table per round, the accounting and the sweeps, writes them to
# bench/out/bench.txt, the figures to bench/out/results.tsv (main table),
# workers.tsv and rows.tsv (sweeps) and, with gnuplot, bench/out/bench.png
# (req/s and p99 per case) and sweeps.png (req/s per pool size; req/s and
# cost per count of orders); the service against the tutorial app in
# bench/out/tutorial.tsv, the hits' duel in duel.tsv. It asserts
# nothing about speed: it exits 1 only when a case had errors (non-2xx
# answers, socket errors; the tutorial app's timeouts are only reported:
# they are its slowness, not a fault of the run) or a stack failed.
#
# At the defaults on the 2-core development machine, about 30 minutes: 16
# for the main table (of which some 5 for the service and the tutorial app
# back to back), 7 for the workers sweep, 5 for the rows sweep (of which
# some 3 to load 10,000,000 orders).
#
# Settings (environment):
#   BENCH_ROWS (1000000)  orders loaded (ORDERS_ROWS of deploy.sh)
#   BENCH_SECONDS (8)     per measured case of the main table
#   BENCH_REPS (2)        service rounds
#   BENCH_WARMUP (2)      seconds of warm-up after each switch of the pool
#   BENCH_ACCT_SECONDS (3) per Postgres accounting window
#   BENCH_SETTLE (11)     seconds of quiet before each Postgres count
#   WORKERS (6)           the pool's size, floors and service alike (not in
#                         the workers sweep)
#   BENCH_CONNS ("8 64")  connection counts
#   BENCH_MAIN (1)        0: no main table and no accounting, only sweeps
#   BENCH_TUTORIAL_CONNECT (process)  the tutorial app's connections: kept,
#                         one each per process (process), or new for each
#                         request as its code has it (request)
#   BENCH_TUTORIAL (1)    0: no tutorial app (it needs /usr/bin/python3
#                         with FastAPI, uvicorn, psycopg2 and redis-py:
#                         ./deploy.sh deps --bench)
#   BENCH_TUTORIAL_ROUNDS (4)  rounds of the service against the tutorial app
#   BENCH_TUTORIAL_SECONDS (4)  per measured case and side of those rounds
#   BENCH_DUELS (6)       rounds of the hits' duel (below); 0 for none
#   BENCH_DUEL_SECONDS (5)  per measured case of the duel
#   BENCH_SWEEPS ("workers rows")  the sweeps to run; "" for none
#   BENCH_SWEEP_WORKERS ("1 2 4 6 8")  pool sizes of the workers sweep
#   BENCH_SWEEP_ROWS ("100000 1000000 10000000")  orders of the rows sweep
#   BENCH_SWEEP_SECONDS (4)  per measured case of the sweeps
#   SCHED_BATCH (1)       deploy.sh's: the stack's scheduling policy, which
#                         the tutorial app gets too (0: SCHED_OTHER for both)

set -u
set -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO" || exit 2

ROWS=${BENCH_ROWS:-1000000}
SECS=${BENCH_SECONDS:-8}
REPS=${BENCH_REPS:-2}
WARMUP=${BENCH_WARMUP:-2}
ACCT_SECS=${BENCH_ACCT_SECONDS:-3}
NWORKERS=${WORKERS:-6}
CONNS=${BENCH_CONNS:-8 64}
OUT=$REPO/bench/out
SETTLE=${BENCH_SETTLE:-11} # pg_stat: 10 s idle flush interval, plus one
MAIN=${BENCH_MAIN:-1}
TUTORIAL=${BENCH_TUTORIAL:-1}
TUTORIAL_PY=/usr/bin/python3 # Debian's, with python3-fastapi and the rest (deploy.sh deps --bench)
# The tutorial app runs under the scheduling policy deploy.sh gives the
# stack (SCHED_BATCH there), so that the two are measured the same way.
case ${SCHED_BATCH:-1} in
1) SCHED=batch ;;
0) SCHED=other ;;
*) echo "run-bench.sh: SCHED_BATCH=$SCHED_BATCH: 1 or 0" >&2; exit 2 ;;
esac
SWEEPS=${BENCH_SWEEPS-workers rows}
SWEEP_WORKERS=${BENCH_SWEEP_WORKERS:-1 2 4 6 8}
SWEEP_ROWS=${BENCH_SWEEP_ROWS:-100000 1000000 10000000}
SWEEP_SECS=${BENCH_SWEEP_SECONDS:-4}
DUELS=${BENCH_DUELS:-6}
DUEL_SECS=${BENCH_DUEL_SECONDS:-5}
TUT_ROUNDS=${BENCH_TUTORIAL_ROUNDS:-4}
TUT_SECS=${BENCH_TUTORIAL_SECONDS:-4}

usage_error() { echo "run-bench.sh: $*" >&2; exit 2; }
[[ $DUELS =~ ^[0-9]+$ ]] || usage_error "BENCH_DUELS must be 0 or a positive integer: $DUELS"
for v in ROWS SECS REPS WARMUP ACCT_SECS NWORKERS SWEEP_SECS DUEL_SECS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || usage_error "$v must be a positive integer: ${!v}"
done
((ROWS >= 1000)) || usage_error "BENCH_ROWS must be 1000 or more"
[[ $MAIN == [01] ]] || usage_error "BENCH_MAIN must be 0 or 1: $MAIN"
[[ $TUTORIAL == [01] ]] || usage_error "BENCH_TUTORIAL must be 0 or 1: $TUTORIAL"
for v in $SWEEPS; do
  [[ $v == workers || $v == rows ]] || usage_error "BENCH_SWEEPS: no sweep \"$v\" (workers, rows)"
done
for v in $SWEEP_WORKERS; do
  [[ $v =~ ^[1-9][0-9]*$ && $v -le 256 ]] || usage_error "BENCH_SWEEP_WORKERS: not a pool size (1..256): $v"
done
for v in $SWEEP_ROWS; do
  [[ $v =~ ^[1-9][0-9]*$ && $v -ge 1000 ]] || usage_error "BENCH_SWEEP_ROWS: not a count of 1000 or more: $v"
done
for b in build/orders-worker build/orders-invalidator build/floor build/floor-redis; do
  [[ -x $b ]] || { echo "run-bench.sh: no $b: run make bench (or make all bench-build)" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "run-bench.sh: wrk is missing: ./deploy.sh deps --test" >&2; exit 2; }
((MAIN)) || TUTORIAL=0 # its rounds are part of the main table
if ((TUTORIAL)) && ! "$TUTORIAL_PY" -c 'import fastapi, uvicorn, psycopg2, redis' 2>/dev/null; then
  echo "run-bench.sh: the tutorial's app needs $TUTORIAL_PY with FastAPI, uvicorn, psycopg2 and redis-py:" \
    "./deploy.sh deps --bench (or BENCH_TUTORIAL=0 to leave it out)" >&2
  exit 2
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/orders-bench.XXXXXX") || exit 2
export STATE_DIR=$T/state
unset DATABASE_URL REDIS_URL REDIS_ADMIN_URL WORKER_BIN INVALIDATOR_BIN ORDERS_TEST_HOOKS
export BENCH_LUA=$REPO/bench
mkdir -p "$OUT"
: >"$T/report.txt"

ERRORS=0    # cases with errors
TUT_TIMEOUTS=0 # tutorial cases with timeouts (reported, not errors)
# process: the tutorial app keeps its connections (bench/tutorial/app.py);
# request: a new one per request, as the tutorial's code does
TUT_CONNECT=${BENCH_TUTORIAL_CONNECT:-process}
[[ $TUT_CONNECT == process || $TUT_CONNECT == request ]] ||
  { echo "run-bench.sh: BENCH_TUTORIAL_CONNECT is process or request" >&2; exit 2; }
WRK_PID=''
TUT_PGID='' # the tutorial app's process group: uvicorn and its workers
STARTED=$SECONDS

log() { printf '# %s\n' "$*" >&2; }
# say: a line of the report (stdout and bench/out/bench.txt)
say() { printf '%s\n' "$*" | tee -a "$T/report.txt"; }
fail() {
  printf 'run-bench.sh: %s\n' "$*" >&2
  exit 1
}

# port_in_use PORT, pick_port
# shellcheck source=tests/lib/ports.bash
. "$REPO/tests/lib/ports.bash"

# deploy ARGS...: ./deploy.sh, bounded, its output to T/deploy.log.
deploy() {
  timeout -k 10 "${DEPLOY_TIMEOUT:-120}" ./deploy.sh "$@" >>"$T/deploy.log" 2>&1 </dev/null
}

# ---------------------------------------------------------------- cleanup

# remove_outside DIR: Postgres's and the run directory, when deploy.sh put
# them outside STATE_DIR (as root: /var/lib/postgresql/orders-ID,
# /run/orders-ID); nothing else.
remove_outside() {
  local d=${1%/}
  [[ -n $d && -d $d && ! -L $d ]] || return 0
  case $d in
  /var/lib/postgresql/orders-* | /run/orders-* | "$T"/*) rm -rf -- "$d" ;;
  esac
}

# stack_stop: ./deploy.sh stop on the stack of STATE_DIR, then whatever
# survived it, then its directories; 1 when something had to be killed.
stack_stop() {
  local rc=0 pgpath runpath pids pid i left
  [[ -d $STATE_DIR ]] || return 0
  pgpath=$(head -1 "$STATE_DIR/pg.path" 2>/dev/null)
  runpath=$(head -1 "$STATE_DIR/run.path" 2>/dev/null)
  pids=$(timeout 30 ./deploy.sh status 2>/dev/null </dev/null | awk '$2 ~ /^[0-9]+$/ { print $2 }')
  if ! DEPLOY_TIMEOUT=120 deploy stop; then
    log "./deploy.sh stop failed:"
    tail -n 20 "$T/deploy.log" >&2
    rc=1
  fi
  # what ./deploy.sh stop left running (it should be nothing)
  for ((i = 0; i < 20; i++)); do
    left=''
    for pid in $pids; do [[ -d /proc/$pid ]] && left+=" $pid"; done
    [[ -z $left ]] && break
    sleep 0.25
  done
  if [[ -n $left ]]; then
    log "left running after ./deploy.sh stop:$left; killing"
    kill -TERM $left 2>/dev/null
    sleep 2
    kill -KILL $left 2>/dev/null
    rc=1
  fi
  rm -rf -- "$STATE_DIR"
  remove_outside "$pgpath"
  remove_outside "$runpath"
  return "$rc"
}

# tut_alive: a process of the tutorial app's session (setsid: the session
# and process group of uvicorn, its workers and multiprocessing's resource
# tracker) still runs (zombies left out: uvicorn is our child).
tut_alive() {
  ps -o stat= --sid "$TUT_PGID" 2>/dev/null | awk '$1 !~ /^Z/ { n++ } END { exit !n }'
}

# tutorial_stop: the tutorial app's process group ended (SIGTERM, on which
# uvicorn stops its workers; SIGKILL to what is left after 10 s); 1 when
# something had to be killed.
tutorial_stop() {
  local i rc=0
  [[ -n $TUT_PGID ]] || return 0
  kill -TERM -- "-$TUT_PGID" 2>/dev/null
  for ((i = 0; i < 40; i++)); do
    tut_alive || break
    sleep 0.25
  done
  if tut_alive; then
    log "the tutorial app outlived SIGTERM (process group $TUT_PGID); killing"
    kill -KILL -- "-$TUT_PGID" 2>/dev/null
    rc=1
  fi
  wait "$TUT_PGID" 2>/dev/null
  TUT_PGID=''
  return "$rc"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [[ -n $WRK_PID ]]; then
    kill -TERM "$WRK_PID" 2>/dev/null
    wait "$WRK_PID" 2>/dev/null
  fi
  tutorial_stop || rc=1
  stack_stop || rc=1
  [[ -s $T/report.txt ]] && cp -f "$T/report.txt" "$OUT/bench.txt"
  rm -rf -- "$T"
  exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# ---------------------------------------------------------------- probes

# envvar NAME: NAME as STATE_DIR/env says, without putting it in ours.
envvar() { (. "$STATE_DIR/env" && printf '%s' "${!1}"); }

rcli() { timeout 10 redis-cli --no-auth-warning -u "$REDIS_ADMIN" "$@"; }
sql() { PGCONNECT_TIMEOUT=10 timeout 30 psql "$DB_URL" -X -tA -c "$1"; }

# redis_calls FILE: "command calls" per line, from INFO commandstats (the
# benchmark's own INFO and AUTH left out; commands a script runs are
# counted too), and "@reads N": total_reads_processed, the read events on
# client connections, about one per round trip of a client that waits for
# each answer (as the workers do; the benchmark's redis-cli adds 3).
redis_calls() {
  rcli INFO stats commandstats | tr -d '\r' |
    sed -n -E -e 's/^cmdstat_([^:]+):calls=([0-9]+),.*/\1 \2/p' \
      -e 's/^total_reads_processed:([0-9]+)/@reads \1/p' |
    grep -v -E '^(info|auth) ' >"$1"
}

# redis_delta BEFORE AFTER REQUESTS: "RT CMDS BREAKDOWN": round trips per
# request, commands per request, and those of at least 0.005 per request
# ("get=1.00,evalsha=1.00").
redis_delta() {
  awk -v n="$3" '
    NR == FNR { before[$1] = $2; next }
    $1 == "@reads" { rt = $2 - before[$1] - 3; next }
    { d = $2 - before[$1]; if (d > 0) { delta[$1] = d; total += d } }
    END {
      if (n <= 0) { print "- - -"; exit }
      s = ""
      for (c in delta) if (delta[c] / n >= 0.005) s = s (s == "" ? "" : ",") sprintf("%s=%.2f", c, delta[c] / n)
      printf "%.2f %.2f %s\n", rt / n, total / n, (s == "" ? "-" : s)
    }' "$1" "$2"
}

pg_xacts() {
  sql "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
}

worker_pids() { ./deploy.sh status 2>/dev/null </dev/null | awk '$1 == "worker" && $2 ~ /^[0-9]+$/ { print $2 }'; }

# rss_line [PIDS]: the VmRSS of PIDS (the pool's workers), in MiB
rss_line() {
  local pid kb all='' pids=${1-$(worker_pids)}
  for pid in $pids; do
    kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
    [[ -n $kb ]] && all+=" $kb"
  done
  [[ -n $all ]] || { echo "-"; return; }
  printf '%s\n' $all | awk '{ s += $1; if (NR == 1 || $1 > mx) mx = $1; if (NR == 1 || $1 < mn) mn = $1 }
    END { printf "%d workers, VmRSS min %.1f / mean %.1f / max %.1f MiB", NR, mn / 1024, s / NR / 1024, mx / 1024 }'
}

# ---------------------------------------------------------------- stack

STACKS=0

# stack_start ROWS: a new stack (STATE_DIR of its own, a free port, ROWS
# orders, POOL_N workers), up and answering; sets BASE, DB_URL,
# REDIS_ADMIN, HIT_ID, HOT_IDS and DEPLOY_SECS (./deploy.sh's time: initdb,
# the load of ROWS orders, the start of everything). The floor-redis key
# holds the service's own answer for the id-hit case.
stack_start() {
  local rows=$1 port t0 i body prefix
  STACKS=$((STACKS + 1))
  export STATE_DIR=$T/state.$STACKS
  port=$(pick_port) || fail "no free loopback port"
  log "stack $STACKS in $STATE_DIR, nginx on 127.0.0.1:$port, $rows orders, $POOL_N workers"
  t0=$SECONDS
  export PORT=$port WORKERS=$POOL_N ORDERS_ROWS=$rows
  DEPLOY_TIMEOUT=1200 deploy ||
    { tail -n 30 "$T/deploy.log" >&2; fail "./deploy.sh did not start the stack"; }
  DEPLOY_SECS=$((SECONDS - t0))
  BASE=http://127.0.0.1:$port
  DB_URL=$(envvar DATABASE_URL)
  REDIS_ADMIN=$(envvar REDIS_ADMIN_URL)
  prefix=$(envvar CACHE_PREFIX)
  [[ -n $DB_URL && -n $REDIS_ADMIN ]] || fail "no DATABASE_URL / REDIS_ADMIN_URL in $STATE_DIR/env"
  for ((i = 0; i < 40; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/healthz") == 200 ]] && break
    sleep 0.25
  done
  HIT_ID=$((rows < 4242 ? rows : 4242))
  HOT_IDS=$((rows < 10000 ? rows : 10000))
  body=$(curl -s --max-time 10 "$BASE/orders/$HIT_ID")
  [[ $body == '{'* ]] || fail "GET /orders/$HIT_ID answered: $body"
  [[ $(rcli SET "${prefix}bench:floor" "$body") == OK ]] || fail "cannot SET ${prefix}bench:floor"
  log "deployed in ${DEPLOY_SECS}s; ${#body}-byte value for floor-redis"
}

# ---------------------------------------------------------------- wrk

RUN_NO=0
COUNTER_NO=0 # runs of the scripts with counters (miss, post, mixed)

# run_wrk CONNS SECONDS SCRIPT PATH: wrk against the stack; sets R
# (report.lua's line: requests=... rps=... p50_ms=...), WRK_OUT.
run_wrk() {
  local c=$1 s=$2 script=$3 path=$4
  RUN_NO=$((RUN_NO + 1))
  WRK_OUT=$T/wrk.$RUN_NO
  # a base of its own for the counters of miss.lua, post.lua, mixed.lua:
  # no count, no body of an earlier run again (2 threads x 60,000 each,
  # some 10 times what a miss run here asks; miss.lua's counts repeat
  # after 7,320,000, some 60 such runs: the main table and the workers
  # sweep take about 50 on one stack)
  [[ $script == static.lua ]] || COUNTER_NO=$((COUNTER_NO + 1))
  BENCH_REPORT=$WRK_OUT.report BENCH_BASE=$((COUNTER_NO * 120000)) BENCH_STRIDE=60000 \
    BENCH_IDS=$HOT_IDS timeout -k 5 $((s + 30)) \
    wrk -t 2 -c "$c" -d "${s}s" --latency --timeout 10s -s "bench/$script" "$BASE$path" \
    >"$WRK_OUT.out" 2>&1 </dev/null &
  WRK_PID=$!
  wait "$WRK_PID"
  local rc=$?
  WRK_PID=''
  R=$(cat "$WRK_OUT.report" 2>/dev/null)
  if ((rc != 0)) || [[ -z $R ]]; then
    log "wrk failed (exit $rc): $(tail -n 3 "$WRK_OUT.out" | tr '\n' ' ')"
    R="requests=0 seconds=$s rps=0 p50_ms=0 p99_ms=0 non2xx=0 connect=1 read=0 write=0 timeout=0"
  fi
}

# field NAME: NAME's value in R
field() { sed -n -E "s/.*(^| )$1=([^ ]+).*/\2/p" <<<"$R"; }
errors_of() { awk '{ n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^(non2xx|connect|read|write|timeout)=/) { split($i, a, "="); n += a[2] } print n }' <<<"$R"; }

# the cases: NAME|SCRIPT|PATH
FLOOR_CASES=("floor|static.lua|/floor")
FLOOR_REDIS_CASES=("floor-redis|static.lua|/floor")
SERVICE_CASES=(
  "count-hit|static.lua|/orders/count?customerid=42"
  "id-hit|static.lua|/orders/@ID@"
  "miss|miss.lua|/"
  "post|post.lua|/"
  "mixed-95/5|mixed.lua|/"
)

# pool BIN: the pool becomes POOL_N processes of BIN (WORKER_BIN of
# deploy.sh scale; "" for the service).
pool() {
  if [[ -n $1 ]]; then
    WORKER_BIN=$REPO/$1 deploy scale "$POOL_N" || fail "./deploy.sh scale $POOL_N with WORKER_BIN=$1 failed"
  else
    deploy scale "$POOL_N" || fail "./deploy.sh scale $POOL_N (the service) failed"
  fi
}

# measure ROUND NAME SCRIPT PATH CONNS: one measured case; a line of
# RESULTS: round name conns rps p50 p99 errors redis-round-trips/req
# redis-commands/req breakdown
measure() {
  local round=$1 name=$2 script=$3 path=$4 c=$5 e rq rd
  path=${path//@ID@/$HIT_ID}
  log "round $round: $name at $c connections"
  if [[ $name == count-hit || $name == id-hit ]]; then
    # cached before the clock starts
    curl -s -o /dev/null --max-time 10 "$BASE$path"
    if [[ $round == T* ]]; then # the tutorial app says nothing of its cache
      [[ $(rcli EXISTS "$(tutorial_key "$name")") == 1 ]] ||
        log "warning: no key $(tutorial_key "$name") after a first request of $path"
    else
      [[ $(curl -s -o /dev/null -D - --max-time 10 "$BASE$path" | tr -d '\r' | sed -n 's/^X-Cache: //Ip') == HIT ]] ||
        log "warning: $path is not a cache hit after a first request"
    fi
  fi
  redis_calls "$T/rc.before"
  run_wrk "$c" "$SECS" "$script" "$path"
  redis_calls "$T/rc.after"
  e=$(errors_of)
  rq=$(field requests)
  rd=$(redis_delta "$T/rc.before" "$T/rc.after" "$rq" | tr ' ' '\t')
  if [[ $round == T* ]] && (($(field timeout) > 0)); then
    # the tutorial app too slow for wrk's 10 s: reported (errors column,
    # the tables' notes), not an error of the run
    TUT_TIMEOUTS=$((TUT_TIMEOUTS + 1))
    log "the tutorial app: $(field timeout) timeouts in $name at $c"
    e=$((e - $(field timeout)))
  fi
  if ((e > 0)); then
    ERRORS=$((ERRORS + 1))
    log "errors in $name at $c: $R"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$c" "$(field rps)" \
    "$(field p50_ms)" "$(field p99_ms)" "$(errors_of)" "$rd" >>"$RESULTS"
}

floor_round() {
  local f=$1 spec name script path c
  pool build/floor
  run_wrk 64 "$WARMUP" static.lua /floor
  for spec in "${FLOOR_CASES[@]}"; do
    IFS='|' read -r name script path <<<"$spec"
    for c in $CONNS; do measure "F$f" "$name" "$script" "$path" "$c"; done
  done
  RSS_FLOOR[$f]=$(rss_line)
  pool build/floor-redis
  run_wrk 64 "$WARMUP" static.lua /floor
  for spec in "${FLOOR_REDIS_CASES[@]}"; do
    IFS='|' read -r name script path <<<"$spec"
    for c in $CONNS; do measure "F$f" "$name" "$script" "$path" "$c"; done
  done
  RSS_FLOOR_REDIS[$f]=$(rss_line)
}

service_round() {
  local s=$1 spec name script path c
  pool ''
  run_wrk 64 "$WARMUP" miss.lua /
  run_wrk 64 "$WARMUP" mixed.lua /
  for spec in "${SERVICE_CASES[@]}"; do
    IFS='|' read -r name script path <<<"$spec"
    for c in $CONNS; do measure "S$s" "$name" "$script" "$path" "$c"; done
  done
  RSS_SERVICE[$s]=$(rss_line)
}

# duel_side D SIDE: duel round D's floor-redis (SIDE floor) or hits (SIDE
# hits), each at CONNS, into RESULTS as round D<D>.
duel_side() {
  local d=$1 c
  if [[ $2 == floor ]]; then
    pool build/floor-redis
    run_wrk 64 "$WARMUP" static.lua /floor
    for c in $CONNS; do measure "D$d" floor-redis static.lua /floor "$c"; done
  else
    pool ''
    run_wrk 64 "$WARMUP" static.lua "/orders/count?customerid=42"
    for c in $CONNS; do
      measure "D$d" count-hit static.lua "/orders/count?customerid=42" "$c"
      measure "D$d" id-hit static.lua "/orders/@ID@" "$c"
    done
  fi
}

# duel: the hits' duel (see the top), its table, bench/out/duel.tsv.
duel() {
  local d secs=$SECS results=$RESULTS tsv=$OUT/duel.tsv
  ((DUELS > 0)) || return 0
  SECS=$DUEL_SECS
  RESULTS=$T/results.duel
  : >"$RESULTS"
  for ((d = 1; d <= DUELS; d++)); do
    if ((d % 2)); then
      duel_side "$d" floor
      duel_side "$d" hits
    else
      duel_side "$d" hits
      duel_side "$d" floor
    fi
  done
  awk -F'\t' -v OFS='\t' -v n="$DUELS" '
    $2 == "floor-redis" { f[$1, $3] = $4; next }
    { k = $2 SUBSEP $3; if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }; s[$1, k] = $4; p99[$1, k] = $6 }
    END {
      for (i = 1; i <= nk; i++) {
        k = keys[i]; split(k, kc, SUBSEP); per = ""; sum = 0; m = 0; min = ""; fs = 0; ss = 0; ps = ""
        for (d = 1; d <= n; d++) {
          r = "D" d
          if (!(((r, kc[2]) in f) && f[r, kc[2]] > 0 && ((r, k) in s))) { per = per (per == "" ? "" : " / ") "-"; continue }
          x = s[r, k] / f[r, kc[2]]; sum += x; m++; fs += f[r, kc[2]]; ss += s[r, k]
          if (min == "" || x < min) min = x
          per = per (per == "" ? "" : " / ") sprintf("%.2f", x)
          ps = ps (ps == "" ? "" : " / ") sprintf("%.2f", p99[r, k])
        }
        mean = m ? sum / m : 0
        print kc[1], kc[2], (m ? sprintf("%.0f", ss / m) : "-"), (m ? sprintf("%.0f", fs / m) : "-"),
          (m ? sprintf("%.2f", mean) : "-"), (m ? sprintf("%.2f", min) : "-"), "0.90",
          (m ? (mean >= 0.9 ? "yes" : "no") : "-"), per, ps
      }
    }' "$RESULTS" >"$T/duel"
  say ""
  say "hits against floor-redis, back to back: $DUELS rounds, floor-redis and the hits turn about (ABBA), ${SECS}s per case"
  awk -F'\t' '
    function rowout(a, b, c, d, e, f, g, h, i, j) {
      printf "%-10s %5s %9s %11s %6s %6s %6s %4s  %-22s %s\n", a, b, c, d, e, f, g, h, i, j
    }
    BEGIN { rowout("case", "conns", "req/s", "floor-redis", "mean", "min", "target", "met", "ratio per round", "p99 ms per round") }
    { rowout($1, $2, $3, $4, $5 " x", $6 " x", $7 " x", $8, "(" $9 ")", "(" $10 ")") }' "$T/duel" | tee -a "$T/report.txt"
  say "  req/s: means over the rounds; a round's ratio: the hits' req/s over the floor-redis of that round"
  {
    printf 'case\tconns\thit_rps\tfloor_redis_rps\tmean_ratio\tmin_ratio\ttarget\tmet\n'
    cut -f 1-8 "$T/duel"
  } >"$tsv"
  say "  figures: $tsv"
  SECS=$secs
  RESULTS=$results
}

# ---------------------------------------------------------------- tutorial

# the tutorial duel's cases: NAME|SCRIPT|PATH, the kinds of request the
# tutorial's app has (miss.lua's counts, customerid and to=, it takes)
TUTORIAL_CASES=(
  "count-hit|static.lua|/orders/count?customerid=42"
  "id-hit|static.lua|/orders/@ID@"
  "miss|miss.lua|/"
  "post|post.lua|/"
)

# tutorial_key NAME: the key that case NAME's hits read (cache_key of
# bench/tutorial/app.py)
tutorial_key() {
  case $1 in
  count-hit) printf '%scount:customerid=42' "$TUT_PREFIX" ;;
  id-hit) printf '%sorder:orderid=%s' "$TUT_PREFIX" "$HIT_ID" ;;
  esac
}

# tutorial_start: bench/tutorial/app.py under uvicorn with POOL_N worker
# processes on a free loopback port, in a session and process group of its
# own (setsid: TUT_PGID, which tutorial_stop ends whole), answering; sets
# TUT_BASE and TUT_PREFIX. uvicorn as "pip install uvicorn" has it, the
# tutorial's install: asyncio and h11 (no uvloop, no httptools); no access
# log (the tutorial's would print a line per request). Through
# bench/tutorial/serve.py, uvicorn's own command line with one fix: with
# --workers N, uvicorn 0.17 leaves TCP_NODELAY off and every keep-alive
# request waits some 40 ms for a delayed ACK (uvicorn issue #3149), which
# the tutorial's one process (uvicorn main:app) does not.
tutorial_start() {
  local port db i
  port=$(pick_port) || fail "no free loopback port for the tutorial app"
  TUT_PREFIX="$(envvar CACHE_PREFIX)tutorial:"
  TUT_BASE=http://127.0.0.1:$port
  # The stack's DATABASE_URL, with the session setting that keeps the
  # triggers of sql/triggers.sql from announcing its writes to the
  # invalidator: the tutorial has no such triggers (its INSERT is an INSERT),
  # and the service's own writes skip them likewise.
  db=$DB_URL
  if [[ $db == *\?* ]]; then db+='&'; else db+='?'; fi
  db+='options=-c%20orders.self_invalidating%3Don'
  log "the tutorial app on 127.0.0.1:$port: uvicorn, $POOL_N workers"
  # (PYTHONDONTWRITEBYTECODE: no __pycache__ left in bench/tutorial/)
  DATABASE_URL=$db REDIS_URL=$(envvar REDIS_URL) TUTORIAL_PREFIX=$TUT_PREFIX CACHE_TTL=$(envvar CACHE_TTL) \
    TUTORIAL_CONNECT=$TUT_CONNECT PYTHONDONTWRITEBYTECODE=1 \
    setsid chrt "--$SCHED" 0 "$TUTORIAL_PY" "$REPO/bench/tutorial/serve.py" --app-dir "$REPO/bench/tutorial" app:app \
    --host 127.0.0.1 --port "$port" --workers "$POOL_N" --loop asyncio --http h11 \
    --no-access-log --log-level warning >>"$T/tutorial.log" 2>&1 </dev/null &
  TUT_PGID=$!
  for ((i = 0; i < 120; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$TUT_BASE/orders/count?customerid=42") == 200 ]] &&
      return 0
    tut_alive || break
    sleep 0.25
  done
  tail -n 20 "$T/tutorial.log" >&2
  fail "the tutorial app did not answer on $TUT_BASE"
}

# tutorial_workers: the pids of uvicorn's worker processes
tutorial_workers() { pgrep -P "$TUT_PGID" -f multiprocessing.spawn; }

# tutorial_side D SIDE NAME SCRIPT PATH C: round D of the tutorial duel,
# one side (tutorial or service) of one case at C connections, into RESULTS
# as round T<D> (the tutorial app) or P<D> (the service, its pair).
tutorial_side() {
  local d=$1 side=$2 base=$BASE
  if [[ $side == tutorial ]]; then
    BASE=$TUT_BASE
    measure "T$d" "$3" "$4" "$5" "$6"
    BASE=$base
  else
    measure "P$d" "$3" "$4" "$5" "$6"
  fi
}

# tutorial_duel: the service against the tutorial app (see the top): the
# app started beside the service pool and warmed up (WARMUP s of hits, so
# that every worker has started); then TUT_ROUNDS rounds, in each of which
# every case of TUTORIAL_CASES at each of CONNS runs on the service and on
# the tutorial app back to back, the service first in odd rounds and second
# in even ones (ABBA), TUT_SECS each; the app's workers' RSS noted, the app
# stopped. Results in T/results.tut.
tutorial_duel() {
  local d spec name script path c results=$RESULTS secs=$SECS
  pool ''
  run_wrk 64 "$WARMUP" miss.lua /
  tutorial_start
  BASE=$TUT_BASE run_wrk 64 "$WARMUP" static.lua "/orders/count?customerid=42"
  SECS=$TUT_SECS
  RESULTS=$T/results.tut
  : >"$RESULTS"
  for ((d = 1; d <= TUT_ROUNDS; d++)); do
    for spec in "${TUTORIAL_CASES[@]}"; do
      IFS='|' read -r name script path <<<"$spec"
      for c in $CONNS; do
        if ((d % 2)); then
          tutorial_side "$d" service "$name" "$script" "$path" "$c"
          tutorial_side "$d" tutorial "$name" "$script" "$path" "$c"
        else
          tutorial_side "$d" tutorial "$name" "$script" "$path" "$c"
          tutorial_side "$d" service "$name" "$script" "$path" "$c"
        fi
      done
    done
  done
  RSS_TUTORIAL=$(rss_line "$(tutorial_workers)")
  tutorial_stop || fail "the tutorial app did not stop on SIGTERM"
  SECS=$secs
  RESULTS=$results
}

# ---------------------------------------------------------------- report

# round_stats REP: service round REP of RESULTS against the floors of
# rounds REP and REP+1 (their mean is the ratio's denominator; cache hits
# are held against floor-redis, the rest against floor), one line per case:
# name conns req/s p50 p99 errors note redis-RT redis-cmd ratio, tab-
# separated; a floor's note is its rounds' req/s ("(5486 / 5908)") and its
# ratio "-", a case's note its ratio ("0.55 x floor-redis").
round_stats() {
  local r=$1
  awk -F'\t' -v OFS='\t' -v s="S$r" -v fa="F$r" -v fb="F$((r + 1))" '
    ($1 == fa || $1 == fb) {
      k = $2 SUBSEP $3; n[k]++; rps[k] += $4; p50[k] += $5; p99[k] += $6; err[k] += $7
      one[k] = one[k] (one[k] == "" ? "" : " / ") sprintf("%.0f", $4); rt[k] = $8; cmd[k] = $9
      if (!(k in order)) { order[k] = ++nk; keys[nk] = k }
    }
    $1 == s { rows[++ns] = $0 }
    END {
      for (i = 1; i <= nk; i++) {
        k = keys[i]; split(k, kc, SUBSEP)
        print kc[1], kc[2], sprintf("%.0f", rps[k] / n[k]), sprintf("%.2f", p50[k] / n[k]),
          sprintf("%.2f", p99[k] / n[k]), err[k], "(" one[k] ")", rt[k], cmd[k], "-"
      }
      for (i = 1; i <= ns; i++) {
        split(rows[i], f, "\t")
        fl = (f[2] ~ /hit$/) ? "floor-redis" : "floor"
        k = fl SUBSEP f[3]
        ratio = (n[k] && rps[k] > 0) ? sprintf("%.2f", f[4] / (rps[k] / n[k])) : "-"
        print f[2], f[3], sprintf("%.0f", f[4]), sprintf("%.2f", f[5]), sprintf("%.2f", f[6]), f[7],
          (ratio == "-" ? "-" : ratio " x " fl), f[8], f[9], ratio
      }
    }' "$RESULTS"
}

# stats_table RATIO-HEADING: round_stats-shaped lines (stdin) as a table of
# the report.
stats_table() {
  awk -F'\t' -v rh="$1" '
    function rowout(name, c, rps, p50, p99, err, ratio, rt, cmds) {
      printf "%-12s %5s %9s %8s %8s %7s  %-22s %9s %9s\n", name, c, rps, p50, p99, err, ratio, rt, cmds
    }
    BEGIN { rowout("case", "conns", "req/s", "p50 ms", "p99 ms", "errors", rh, "redis RT", "redis cmd") }
    { rowout($1, $2, $3, $4, $5, $6, $7, $8, $9) }' | tee -a "$T/report.txt"
}

# table REP HEADING: service round REP and its floors, as a table.
table() {
  local r=$1
  say ""
  say "$2"
  round_stats "$r" | stats_table "ratio to floor"
  say "  floors: mean of F$r and F$((r + 1)) (each in parentheses); ratio: req/s over that mean, hits over floor-redis;"
  say "  redis RT: round trips per request (read events); redis cmd: commands per request, a script's own included"
  say "  worker RSS after S$r: ${RSS_SERVICE[$r]}"
}

# vs_table: the tutorial duel, case by case: req/s of each side (means over
# the rounds), the ratio of each round (the service's req/s over the
# tutorial app's just before or after it), their mean and least, and issue
# 6's target (3 x; 2.5 x for post); a table of the report and
# bench/out/tutorial.tsv.
vs_table() {
  local tsv=$OUT/tutorial.tsv
  awk -F'\t' -v OFS='\t' -v n="$TUT_ROUNDS" '
    { side = substr($1, 1, 1); d = substr($1, 2); k = $2 SUBSEP $3 }
    side == "T" { if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
                  t[d, k] = $4; tp50[k] += $5; tp99[k] += $6; terr[k] += $7; tn[k]++ }
    side == "P" { s[d, k] = $4; sp99[k] += $6; sn[k]++ }
    END {
      for (i = 1; i <= nk; i++) {
        k = keys[i]; split(k, kc, SUBSEP); per = ""; sum = 0; m = 0; min = ""; ss = 0; ts = 0
        for (d = 1; d <= n; d++) {
          if (!(((d, k) in s) && ((d, k) in t) && t[d, k] > 0)) { per = per (per == "" ? "" : " / ") "-"; continue }
          x = s[d, k] / t[d, k]; sum += x; m++; ss += s[d, k]; ts += t[d, k]
          if (min == "" || x < min) min = x
          per = per (per == "" ? "" : " / ") sprintf("%.1f", x)
        }
        target = (kc[1] == "post") ? 2.5 : 3
        mean = m ? sum / m : 0
        print kc[1], kc[2], (m ? sprintf("%.0f", ss / m) : "-"), (m ? sprintf("%.0f", ts / m) : "-"),
          (m ? sprintf("%.2f", mean) : "-"), (m ? sprintf("%.2f", min) : "-"), sprintf("%.1f", target),
          (m ? (mean >= target ? "yes" : "no") : "-"),
          sprintf("%.2f", tp50[k] / tn[k]), sprintf("%.2f", tp99[k] / tn[k]), terr[k],
          (sn[k] ? sprintf("%.2f", sp99[k] / sn[k]) : "-"), per
      }
    }' "$T/results.tut" >"$T/vs"
  say ""
  say "service vs the tutorial app, back to back: $TUT_ROUNDS rounds, each case on the service and on the"
  say "  tutorial app in turn (ABBA: the service first in odd rounds), ${TUT_SECS}s each; the service through"
  say "  nginx, the tutorial app (bench/tutorial/app.py, $POOL_N uvicorn workers) straight from wrk: no nginx"
  say "  in front of it, which favours it; target (issue 6): at least 3 x, 2.5 x for POST"
  awk -F'\t' '
    function rowout(a, b, c, d, e, f, g, h, i, j, k, l) {
      printf "%-10s %5s %9s %9s %7s %7s %7s %4s %8s %8s %5s  %s\n", a, b, c, d, e, f, g, h, i, j, k, l
    }
    BEGIN { rowout("case", "conns", "service", "tutorial", "mean", "min", "target", "met", "p99 ms", "tut. p99", "t.err", "ratio per round") }
    { rowout($1, $2, $3, $4, $5 " x", $6 " x", $7 " x", $8, $12, $10, $11, "(" $13 ")") }' "$T/vs" | tee -a "$T/report.txt"
  say "  service, tutorial: req/s, means over the rounds; a round's ratio: the service's req/s over the tutorial"
  say "  app's in that round; p99: the service's, mean over the rounds; t.err: the tutorial app's errors, all"
  say "  rounds (timeouts included; wrk: 10 s)"
  say "  tutorial app RSS after the duel: $RSS_TUTORIAL"
  {
    printf 'case\tconns\tservice_rps\ttutorial_rps\tmean_ratio\tmin_ratio\ttarget\tmet\ttutorial_p50_ms\ttutorial_p99_ms\ttutorial_errors\tservice_p99_ms\n'
    cut -f 1-12 "$T/vs"
  } >"$tsv"
  say "  figures: $tsv"
}

plot() {
  local tsv=$OUT/results.tsv
  # one line per case and conns: label, req/s and p99 of each service
  # round (floors: of each floor round)
  {
    printf 'label'
    for ((r = 1; r <= REPS; r++)); do printf '\trps%d' "$r"; done
    for ((r = 1; r <= REPS; r++)); do printf '\tp99_%d' "$r"; done
    printf '\n'
    awk -F'\t' -v reps="$REPS" '
      substr($1, 1, 1) == "T" { next } # the tutorial app: in tutorial.tsv
      { r = substr($1, 2) + 0; isf = substr($1, 1, 1) == "F"
        if (isf && r > reps) next   # the last floor round: no service round of its own
        k = $2 "@" $3; if (!(k in seen)) { seen[k] = ++nk; keys[nk] = k }
        rps[k, r] = $4; p99[k, r] = $6 }
      END {
        for (i = 1; i <= nk; i++) {
          k = keys[i]; line = k
          for (r = 1; r <= reps; r++) line = line "\t" (((k, r) in rps) ? rps[k, r] : "NaN")
          for (r = 1; r <= reps; r++) line = line "\t" (((k, r) in p99) ? p99[k, r] : "NaN")
          print line
        }
      }' "$RESULTS"
  } >"$tsv"
  if command -v gnuplot >/dev/null; then
    if timeout 60 gnuplot -e "datafile='$tsv'; outfile='$OUT/bench.png'; reps=$REPS" bench/plot.gp 2>"$T/gnuplot.err"; then
      say "plot: $OUT/bench.png (figures: $tsv)"
    else
      say "plot: gnuplot failed: $(head -c 300 "$T/gnuplot.err")"
    fi
  else
    say "plot: no gnuplot (apt-get install gnuplot-nox); figures in $tsv"
  fi
}

# ---------------------------------------------------------------- sweeps

# sweep_summary FILE NAME: the lines of FILE (a sweep's value, then
# round_stats's fields) pivoted: one line per case and conns, one column
# per value of the sweep: req/s, p99 ms and the ratio (the last field).
sweep_summary() {
  awk -F'\t' -v name="$2" '
    !($1 in seenv) { seenv[$1] = 1; vals[++nv] = $1 }
    { k = $2 SUBSEP $3; if (!(k in seenk)) { seenk[k] = 1; keys[++nk] = k }
      cell[$1, k] = sprintf("%7s %8s %5s", $4, $6, ($11 == "-" ? "" : $11)) }
    END {
      printf "%-12s %5s", "", ""
      for (j = 1; j <= nv; j++) printf " | %-22s", name "=" vals[j]
      printf "\n%-12s %5s", "case", "conns"
      for (j = 1; j <= nv; j++) printf " | %7s %8s %5s", "req/s", "p99 ms", "ratio"
      printf "\n"
      for (i = 1; i <= nk; i++) {
        split(keys[i], kc, SUBSEP)
        printf "%-12s %5s", kc[1], kc[2]
        for (j = 1; j <= nv; j++) printf " | %22s", ((vals[j], keys[i]) in cell) ? cell[vals[j], keys[i]] : "-"
        printf "\n"
      }
    }' "$1" | tee -a "$T/report.txt"
}

# workers_sweep: on the stack running, for each pool size of
# SWEEP_WORKERS, the main table's rounds F S F (floors and service at that
# size) with SWEEP_SECS per case; a table per size, then a summary;
# bench/out/workers.tsv.
workers_sweep() {
  local n secs=$SECS t0=$SECONDS
  SECS=$SWEEP_SECS # measure's case length
  say ""
  say "workers sweep: pool sizes $SWEEP_WORKERS, each F S F (floors, service, floors at that size), ${SECS}s per case"
  : >"$T/sweep.workers"
  for n in $SWEEP_WORKERS; do
    POOL_N=$n
    RESULTS=$T/results.w$n
    : >"$RESULTS"
    floor_round 1
    service_round 1
    floor_round 2
    table 1 "WORKERS=$n: floors F1 and F2 around service round S1"
    round_stats 1 | sed "s/^/$n\t/" >>"$T/sweep.workers"
  done
  SECS=$secs POOL_N=$NWORKERS
  say ""
  say "workers sweep, summary: req/s, p99 ms and ratio to the floors (hits: to floor-redis) per pool size"
  sweep_summary "$T/sweep.workers" WORKERS
  say "  the workers sweep took $((SECONDS - t0))s"
  {
    printf 'workers\tcase\tconns\trps\tp50_ms\tp99_ms\terrors\tratio\n'
    cut -f 1-7,11 "$T/sweep.workers"
  } >"$OUT/workers.tsv"
}

# the rows sweep's cases: NAME|SCRIPT|PATH
ROWS_CASES=(
  "count-hit|static.lua|/orders/count?customerid=42"
  "id-hit|static.lua|/orders/@ID@"
  "miss|miss.lua|/"
)

# cost_stats: the cases of RESULTS in round_stats's fields, the ratio being
# the cost in id-hits: id-hit's req/s over the case's, at the same conns.
cost_stats() {
  awk -F'\t' -v OFS='\t' '
    { line[++n] = $0; if ($2 == "id-hit") hit[$3] = $4 }
    END {
      for (i = 1; i <= n; i++) {
        split(line[i], f, "\t")
        cost = (hit[f[3]] > 0 && f[4] > 0) ? sprintf("%.2f", hit[f[3]] / f[4]) : "-"
        print f[2], f[3], sprintf("%.0f", f[4]), sprintf("%.2f", f[5]), sprintf("%.2f", f[6]), f[7],
          (cost == "-" ? "-" : cost " x id-hit"), f[8], f[9], cost
      }
    }' "$RESULTS"
}

# rows_sweep: the main stack stopped, for each count of SWEEP_ROWS a stack
# of its own (deploy.sh loads the orders with sql/data.sql), the hits and
# the misses at POOL_N workers, SWEEP_SECS per case, the stack stopped;
# a table per count, then a summary; bench/out/rows.tsv.
rows_sweep() {
  local n spec name script path c secs=$SECS size t0=$SECONDS
  SECS=$SWEEP_SECS
  stack_stop || fail "the stack did not stop cleanly"
  say ""
  say "rows sweep: orders $SWEEP_ROWS, a stack each (deployed, measured, stopped), $POOL_N workers, ${SECS}s per case;"
  say "  cost: id-hit's req/s over the case's (at the same conns)"
  : >"$T/sweep.rows"
  : >"$T/sweep.deploys"
  for n in $SWEEP_ROWS; do
    stack_start "$n"
    size=$(sql "SELECT pg_size_pretty(pg_total_relation_size('orders'))")
    RESULTS=$T/results.r$n
    : >"$RESULTS"
    run_wrk 64 "$WARMUP" miss.lua /
    for spec in "${ROWS_CASES[@]}"; do
      IFS='|' read -r name script path <<<"$spec"
      for c in $CONNS; do measure "R" "$name" "$script" "$path" "$c"; done
    done
    say ""
    say "$n orders: deployed (initdb, load, start) in ${DEPLOY_SECS}s; the table with its indexes: $size"
    cost_stats | stats_table "cost"
    cost_stats | sed "s/^/$n\t/" >>"$T/sweep.rows"
    printf '%s\t%s\n' "$n" "$DEPLOY_SECS" >>"$T/sweep.deploys"
    stack_stop || fail "the stack did not stop cleanly"
  done
  SECS=$secs
  say ""
  say "rows sweep, summary: req/s, p99 ms and cost in id-hits per count of orders"
  sweep_summary "$T/sweep.rows" rows
  say "  deployed in: $(awk '{ printf "%s%s orders %ss", (NR > 1 ? ", " : ""), $1, $2 }' "$T/sweep.deploys");" \
    "the rows sweep took $((SECONDS - t0))s"
  {
    printf 'rows\tcase\tconns\trps\tp50_ms\tp99_ms\terrors\tcost\n'
    cut -f 1-7,11 "$T/sweep.rows"
  } >"$OUT/rows.tsv"
}

# plot_sweeps: bench/out/sweeps.png from the sweeps' TSVs of this run
plot_sweeps() {
  local w='' r=''
  [[ -s $OUT/workers.tsv ]] && w=$OUT/workers.tsv
  [[ -s $OUT/rows.tsv ]] && r=$OUT/rows.tsv
  [[ -n $w$r ]] || return 0
  command -v gnuplot >/dev/null || return 0 # plot() said so
  if timeout 60 gnuplot -e "wfile='$w'; rfile='$r'; outfile='$OUT/sweeps.png'" bench/plot-sweeps.gp 2>"$T/gnuplot.err"; then
    say "plot: $OUT/sweeps.png (figures: ${w:+$w }$r)"
  else
    say "plot: gnuplot failed: $(head -c 300 "$T/gnuplot.err")"
  fi
}

# ---------------------------------------------------------------- main

# main_table: on the stack running, F S F S F ... at POOL_N workers, a
# table per repetition, the resource accounting, results.tsv and bench.png.
main_table() {
  local r x0 x1 idle spec name script path rq e
  RESULTS=$T/results.main
  : >"$RESULTS"
  for ((r = 1; r <= REPS; r++)); do
    floor_round "$r"
    service_round "$r"
  done
  floor_round $((REPS + 1))

  for ((r = 1; r <= REPS; r++)); do
    table "$r" "repetition $r of $REPS: floors F$r and F$((r + 1)) around service round S$r"
  done
  if ((TUTORIAL)); then
    tutorial_duel
    vs_table
  fi
  duel
  say ""
  say "worker RSS: floor ${RSS_FLOOR[1]}; floor-redis ${RSS_FLOOR_REDIS[1]}"

  # Postgres transactions per request, the service pool running: an idle
  # window, then each case alone, each counted after SETTLE s of quiet.
  log "Postgres accounting: ${ACCT_SECS}s per case, ${SETTLE}s of quiet between"
  pool ''
  sleep "$SETTLE"
  x0=$(pg_xacts)
  sleep "$ACCT_SECS"
  sleep "$SETTLE"
  x1=$(pg_xacts)
  idle=$((x1 - x0))
  say ""
  say "Postgres transactions per request: pg_stat_database xact_commit + xact_rollback of the database,"
  say "all sessions (this count's own psql, autovacuum; an idle window of the same length counted $idle):"
  say "an upper bound for statements run alone, so 0 means no statement; a read runs one statement, alone;"
  say "a POST is its INSERT alone, or shares it with other workers' POSTs (group commit: below 1 per request); the service's own writes are not announced to the invalidator"
  for spec in "count-hit|static.lua|/orders/count?customerid=42" "id-hit|static.lua|/orders/$HIT_ID" \
    "miss|miss.lua|/" "post|post.lua|/"; do
    IFS='|' read -r name script path <<<"$spec"
    curl -s -o /dev/null --max-time 10 "$BASE$path"
    curl -s -o /dev/null --max-time 10 "$BASE$path"
    sleep "$SETTLE"
    x0=$(pg_xacts)
    run_wrk 8 "$ACCT_SECS" "$script" "$path"
    sleep "$SETTLE"
    x1=$(pg_xacts)
    rq=$(field requests)
    e=$(errors_of)
    ((e > 0)) && { ERRORS=$((ERRORS + 1)); log "errors in accounting run $name: $R"; }
    say "$(awk -v n="$name" -v d="$((x1 - x0))" -v rq="$rq" 'BEGIN {
      printf "  %-10s %8d requests  %8d transactions  %.3f per request\n", n, rq, d, (rq > 0 ? d / rq : 0) }')"
  done
  say "worker RSS after the accounting: $(rss_line)"
  # the floor of any libpq client: the same libraries, mapped and touched
  # (with the workers' GNUTLS_NO_IMPLICIT_INIT: see deploy.sh, pool_env),
  # connected as the workers are (their DATABASE_URL, as their user: a
  # Unix socket, peer) and as people are (the env file's: TCP, SCRAM)
  local wpid wurl runas=() pq
  wpid=$(worker_pids | head -n 1)
  wurl=$(tr '\0' '\n' <"/proc/$wpid/environ" 2>/dev/null | sed -n 's/^DATABASE_URL=//p')
  ((EUID == 0)) && runas=(setpriv --reuid=www-data --regid=www-data --init-groups --)
  if [[ -n $wurl ]] && pq=$(env GNUTLS_NO_IMPLICIT_INIT=1 ${runas[@]+"${runas[@]}"} "$REPO/build/rss-libpq" "$wurl" 2>/dev/null); then
    say "$(awk '{ printf "  a process that only links libpq, connects as the workers do and runs SELECT 1 (build/rss-libpq): VmRSS %.1f MiB, Pss %.1f MiB", $2 / 1024, $4 / 1024 }' <<<"$pq")"
  fi
  if pq=$(GNUTLS_NO_IMPLICIT_INIT=1 "$REPO/build/rss-libpq" "$DB_URL" 2>/dev/null); then
    say "$(awk '{ printf "  the same over TCP with the password (SCRAM: most of libcrypto touched): VmRSS %.1f MiB, Pss %.1f MiB", $2 / 1024, $4 / 1024 }' <<<"$pq")"
  fi
  say ""
  say "Redis per request, by command (INFO commandstats over the measured runs of repetition 1; a script's"
  say "commands counted as well as its EVALSHA$( ((TUTORIAL)) && echo "; tutorial: the tutorial app's, its AUTH left out")):"
  awk -F'\t' '$1 == "S1" || $1 == "F1" || $1 == "T1" {
    printf "  %-18s %3s  RT %s  %s\n", ($1 == "T1" ? "tutorial " : "") $2, $3, $8, $10 }' \
    "$RESULTS" $( ((TUTORIAL)) && echo "$T/results.tut") | tee -a "$T/report.txt"
  plot
}

# has_sweep NAME: NAME is one of SWEEPS
has_sweep() { [[ " $SWEEPS " == *" $1 "* ]]; }

declare -A RSS_FLOOR RSS_FLOOR_REDIS RSS_SERVICE
RSS_TUTORIAL=''
POOL_N=$NWORKERS
MAIN_DEPLOY_SECS=''
rm -f "$OUT/workers.tsv" "$OUT/rows.tsv" "$OUT/sweeps.png" "$OUT/tutorial.tsv" "$OUT/duel.tsv"
say "make bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- cgi-src 2>/dev/null || echo ' (cgi-src modified)'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
say "  wrk -t2 --latency, connections: $CONNS; floors and service through the same nginx"
say "  scheduling: the stack (deploy.sh, SCHED_BATCH=${SCHED_BATCH:-1}), its floors and the tutorial app SCHED_${SCHED^^}; wrk SCHED_OTHER"
((MAIN)) && say "  main table: $ROWS orders, $NWORKERS workers, ${SECS}s per case, $REPS repetitions"
((TUTORIAL)) && say "  against the tutorial app: $TUT_ROUNDS rounds, ${TUT_SECS}s per case and side; bench/tutorial/app.py under uvicorn $("$TUTORIAL_PY" -c 'import uvicorn; print(uvicorn.__version__)' 2>/dev/null)" \
  "(asyncio, h11; TCP_NODELAY as with one process: bench/tutorial/serve.py), $NWORKERS workers," \
  "straight from wrk (no nginx: that favours it); connections: $([[ $TUT_CONNECT == process ]] &&
    echo "one to Postgres and one to Redis per process, kept (its strongest version)" ||
    echo "a new one to each per request, as the tutorial's code does")"
say "  sweeps: ${SWEEPS:-none}$([[ -n $SWEEPS ]] && echo ", ${SWEEP_SECS}s per case")"
if ((MAIN)) || has_sweep workers; then
  stack_start "$ROWS"
  MAIN_DEPLOY_SECS=$DEPLOY_SECS
fi
((MAIN)) && main_table
has_sweep workers && workers_sweep
has_sweep rows && rows_sweep
plot_sweeps
say ""
say "$([[ -n $MAIN_DEPLOY_SECS ]] && echo "deploy with $ROWS orders: ${MAIN_DEPLOY_SECS}s; ")whole run: $((SECONDS - STARTED))s; cases with errors: $ERRORS$( ((TUT_TIMEOUTS)) && echo "; tutorial cases with timeouts (not errors): $TUT_TIMEOUTS")"
((ERRORS == 0)) || exit 1
exit 0
