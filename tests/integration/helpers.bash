# Helpers shared by every tests/integration/*.bats file (`load helpers`).
#
# The suite runs against one stack started by tests/run-integration.sh, which
# exports BASE, REPO, STATE_DIR, PORT, DATABASE_URL, REDIS_URL, CACHE_TTL,
# CACHE_PREFIX and WORKERS. Tests are written so that they do not depend on
# rows or cache entries that other tests made: they use customerids in the
# 900000+ range (the generated data has 1..20000), delete the cache keys they
# look at before they start, and compute expected counts with psql.

: "${BASE:?BASE is not set: run the suite with tests/run-integration.sh}"
: "${DATABASE_URL:?DATABASE_URL is not set}"
: "${REDIS_URL:?REDIS_URL is not set}"
REPO=${REPO:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}
CACHE_TTL=${CACHE_TTL:-5}
CACHE_PREFIX=${CACHE_PREFIX:-orders:}
WORKERS=${WORKERS:-2}
# Failures point at the test's line, not into these helpers; it also spares
# bats's DEBUG trap a stack capture per helper command (a big speed-up).
bats_add_debug_exclude_path "$BATS_TEST_DIRNAME" 2>/dev/null || true
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5}

# ---------------------------------------------------------------- HTTP

# req METHOD PATH [curl args...]
# Sets status_code (curl's %{http_code}, 000 when no answer), headers (CR
# stripped; every header block curl saw), body, body_size (bytes received)
# and curl_rc; the last header block is indexed for `header`. HEAD is sent
# with curl -I (curl would otherwise wait for a body). Written to fork as
# little as it can: bats makes every command of a test slow.
req() {
  local method=$1 path=$2
  shift 2
  local dir=${BATS_TEST_TMPDIR:-${BATS_FILE_TMPDIR:-${TMPDIR:-/tmp}}}
  local bf="$dir/req.body" hf="$dir/req.headers" wf="$dir/req.w"
  local -a how=(-X "$method")
  [[ $method == HEAD ]] && how=(-I)
  : >"$bf"
  : >"$hf"
  curl_rc=0
  curl -s -o "$bf" -D "$hf" -w '%{http_code} %{size_download}' --max-time 10 \
    "${how[@]}" "$@" "$BASE$path" >"$wf" || curl_rc=$?
  status_code=000 body_size=0
  read -r status_code body_size <"$wf" || true
  IFS= read -r -d '' headers <"$hf" || true
  headers=${headers//$'\r'/}
  while [[ $headers == *$'\n' ]]; do headers=${headers%$'\n'}; done
  if [[ $method == HEAD ]]; then
    body='' body_size=0 # curl -I writes the headers to the output file
  else
    IFS= read -r -d '' body <"$bf" || true
    while [[ $body == *$'\n' ]]; do body=${body%$'\n'}; done
  fi
  last_req="$method $path"
  # "\nname:value\n" per header of the last block (the one after a 100
  # Continue, say), names lowercased, repeated headers joined with ", "
  hdr_index=$'\n'$(awk '
    /^HTTP\// { k = 0; split("", names); split("", vals); next }
    {
      i = index($0, ":"); if (i == 0) next
      nm = tolower(substr($0, 1, i - 1)); v = substr($0, i + 1)
      gsub(/^[ \t]+|[ \t]+$/, "", v)
      if (nm in vals) vals[nm] = vals[nm] ", " v; else { names[++k] = nm; vals[nm] = v }
    }
    END { for (j = 1; j <= k; j++) print names[j] ":" vals[names[j]] }' <<<"$headers")$'\n'
}

# post_json JSON [curl args...]: POST /orders with Content-Type application/json.
post_json() {
  local json=$1
  shift
  req POST /orders -H 'Content-Type: application/json' --data-binary "$json" "$@"
}

# header_value NAME: REPLY = the value of NAME in the last response
# (case-insensitive, several occurrences joined with ", "); returns 1, REPLY
# empty, when there is no such header.
header_value() {
  local re=$'\n'"${1,,}:([^"$'\n'"]*)"$'\n'
  REPLY=''
  [[ ${hdr_index-} =~ $re ]] || return 1
  REPLY=${BASH_REMATCH[1]}
}

# header NAME: print that value (empty when absent).
header() {
  header_value "$1" || true
  printf '%s\n' "$REPLY"
}

has_header() { header_value "$1"; }

# ---------------------------------------------------------------- stores

# psqlc SQL: one query as the application user, unaligned, tuples only.
psqlc() {
  timeout 20 psql "$DATABASE_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"
}

# rcli ARGS...: redis-cli as Redis's administrator (REDIS_ADMIN_URL, which
# deploy.sh writes for its local Redis), else as the service (REDIS_URL),
# whose user may touch only its own keys. Fails (does not hang) while
# Redis is down. redis-cli 7.0's -u only knows redis:// and rediss://, so the
# unix:///path?password=..&db=N form is translated to -s/-a/-n.
rcli() { rcli_as "${REDIS_ADMIN_URL:-$REDIS_URL}" "$@"; }

# rcli_as URL ARGS...: redis-cli against URL.
rcli_as() {
  local -a conn
  local url=$1
  shift
  case $url in
  unix://*)
    local rest=${url#unix://} q='' kv pw='' db=''
    [[ $rest == *\?* ]] && q=${rest#*\?} && rest=${rest%%\?*}
    local IFS='&'
    for kv in $q; do
      case $kv in
      password=*) pw=${kv#password=} ;;
      db=*) db=${kv#db=} ;;
      esac
    done
    unset IFS
    conn=(-s "$rest")
    [[ -n $pw ]] && conn+=(-a "$pw")
    [[ -n $db ]] && conn+=(-n "$db")
    ;;
  *) conn=(-u "$url") ;;
  esac
  timeout 5 redis-cli "${conn[@]}" --no-auth-warning "$@" </dev/null
}

# ckey SUFFIX: a full cache key, e.g. ckey count:all -> orders:count:all
ckey() { printf '%s%s' "$CACHE_PREFIX" "$1"; }

# rdel KEY...: forget cache entries (best effort: Redis may be down).
rdel() { rcli DEL "$@" >/dev/null 2>&1 || true; }

# fresh_customer: a customerid in 900000..1899999 that has no orders (the
# generated data never has one) and no cached count entry of its own.
fresh_customer() {
  local c n i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    c=$((900000 + (RANDOM * 32768 + RANDOM) % 1000000))
    n=$(psqlc "SELECT count(*) FROM orders WHERE customerid = $c") || return 1
    if [[ $n == 0 ]]; then
      rdel "$(ckey "count:customerid=$c")"
      echo "$c"
      return 0
    fi
  done
  echo "fresh_customer: no unused customerid found" >&2
  return 1
}

# one_order_counted C MS: customer C (fresh_customer) gets one order through
# the service, whose count is then read until cached (a HIT of 1); skips
# the test when that entry has less than MS ms left to live, too little
# for what the test means to tell from its expiry.
one_order_counted() {
  local c=$1 ms=$2 pttl
  post_json "{\"customerid\": $c, \"netamount\": 3, \"tax\": 0}"
  assert_status 201 || return 1
  req GET "/orders/count?customerid=$c"
  req GET "/orders/count?customerid=$c"
  assert_cache HIT || return 1
  assert_count_is 1 || return 1
  pttl=$(rcli PTTL "$(ckey "count:customerid=$c")")
  ((pttl > ms)) || skip "the cached count has ${pttl} ms left: too little to tell"
}

rows_total() { psqlc 'SELECT count(*) FROM orders'; }
rows_of() { psqlc "SELECT count(*) FROM orders WHERE customerid = $1"; }

# psql_super SQL: one query as superuser postgres over the local cluster's
# private socket, as deploy.sh's psql_admin connects (STATE_DIR/pg.path
# names PG_DIR; the socket is in PG_DIR/run; the port is DATABASE_URL's).
# For what orders_app may not do: UPDATE, other sessions, its own role.
psql_super() {
  local pgdir port
  pgdir=$(head -1 "$STATE_DIR/pg.path" 2>/dev/null) && [[ -n $pgdir ]] ||
    flunk "no $STATE_DIR/pg.path: is Postgres the local one?" || return 1
  port=${DATABASE_URL##*:}
  port=${port%%/*}
  timeout 20 psql -h "$pgdir/run" -p "$port" -U postgres -d orders \
    -XAtq -v ON_ERROR_STOP=1 -c "$1"
}

# elapsed_since START: seconds (2 decimals) since START, an $EPOCHREALTIME.
elapsed_since() {
  awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'
}

# keys_gone_within SECONDS KEY...: poll Redis (every 0.05 s) until none of
# the KEYs exists; fails when some still do after SECONDS. Sets gone_after
# (seconds it took, or how long we waited).
keys_gone_within() {
  local secs=$1 start n
  shift
  start=$EPOCHREALTIME
  while :; do
    n=$(rcli EXISTS "$@") || n=error
    gone_after=$(elapsed_since "$start")
    [[ $n == 0 ]] && return 0
    awk -v e="$gone_after" -v s="$secs" 'BEGIN { exit !(e >= s) }' && return 1
    sleep 0.05
  done
}

# scan_keys PATTERN...: every key matching one of the PATTERNs (glob, full
# key names), one per line.
scan_keys() {
  local p
  for p; do rcli --scan --pattern "$p"; done
}

# ---------------------------------------------------------------- deploy.sh

# deploy_sh ARGS...: run ./deploy.sh with the suite's environment. Its
# output goes to $deploy_log (a file), and every inherited descriptor above 2
# is closed first: a daemon that kept bats's fd 3 open would hang the run.
deploy_sh() {
  deploy_log="${BATS_FILE_TMPDIR:-${TMPDIR:-/tmp}}/deploy-$(date +%s%N).log"
  (
    cd "$REPO" || exit 1
    for fd in "/proc/$BASHPID/fd/"*; do
      fd=${fd##*/}
      ((fd > 2)) && eval "exec $fd>&-"
    done
    exec timeout 180 ./deploy.sh "$@"
  ) >"$deploy_log" 2>&1 </dev/null
}

# other_stack_stop DIR: ./deploy.sh stop for another stack than the suite's
# (STATE_DIR=DIR, started with STATE_DIR=DIR deploy_sh ...), and its run
# directory when deploy.sh put it outside DIR.
other_stack_stop() {
  local d=$1 run
  [[ -d $d ]] || return 0
  run=$(head -n 1 "$d/run.path" 2>/dev/null)
  STATE_DIR=$d deploy_sh stop || true
  [[ $run == /run/orders-* ]] && rm -rf -- "$run"
  return 0
}

show_deploy_log() {
  echo "--- ./deploy.sh output ($deploy_log):"
  tail -n 40 "$deploy_log" 2>/dev/null | sed 's/^/    /'
}

# stack_status: ./deploy.sh status, output on stdout.
stack_status() {
  deploy_sh status || {
    local rc=$?
    cat "$deploy_log"
    return $rc
  }
  cat "$deploy_log"
}

# pid_of NAME: the PID of component NAME from ./deploy.sh status.
pid_of() { stack_status | awk -v n="$1" '$1 == n && $2 ~ /^[0-9]+$/ { print $2; exit }'; }

# worker_pids: the PIDs of running workers, sorted, one per line.
worker_pids() { stack_status | awk '$1 == "worker" && $3 == "running" && $2 ~ /^[0-9]+$/ { print $2 }' | sort -n; }

alive() { kill -0 "$1" 2>/dev/null; }

# wait_gone PID [SECONDS]
wait_gone() {
  local i
  for ((i = 0; i < ${2:-15} * 4; i++)); do
    alive "$1" || return 0
    sleep 0.25
  done
  flunk "process $1 still alive after ${2:-15}s"
}

# wait_for SECONDS CMD...: retry CMD every 0.25 s until it succeeds.
wait_for() {
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 4; i++)); do
    "$@" && return 0
    sleep 0.25
  done
  "$@"
}

# pool_conns: how many connections from nginx the pool holds now (ss names
# the pool's end of each by the socket it was accepted on).
pool_conns() {
  local sock
  sock=$(readlink -f "$(head -1 "$STATE_DIR/run.path")/fcgi.sock") || return 1
  ss -xnH state established | awk -v s="$sock" '$4 == s' | wc -l
}

# par_get PATH N: N GETs of PATH at once (one curl, --parallel), so that
# they reach every worker: one after another they would all go down the
# connection nginx keeps, to one worker. Sets par_seen: STATUS/X-CACHE of
# each, space-separated.
par_get() {
  local i
  local -a args=()
  for ((i = 0; i < $2; i++)); do args+=(-o /dev/null "$BASE$1"); done
  par_seen=$(curl -s --parallel --parallel-immediate --max-time 10 \
    -w '%{http_code}/%header{x-cache} ' "${args[@]}")
}

# no_kept_conns: wait (3 s at most: nginx closes an idle one after 2) until
# nginx holds no connection to the pool, so that the next requests go to
# whichever worker is free, not down a connection an earlier test left to
# a worker this test is about to keep busy.
no_kept_conns() {
  command -v ss >/dev/null || return 0
  wait_for 3 no_pool_conns
}

# no_pool_conns: true when nginx holds no connection to the pool.
no_pool_conns() { [[ $(pool_conns) == 0 ]]; }

# ---------------------------------------------------------------- assertions

# plain_pass_only: skips the test in the sanitizer pass (--asan), for a
# test of deploy.sh or the bench alone, where that pass would run no C of
# ours that the plain pass does not, only take its time again.
plain_pass_only() {
  [[ ${WORKER_BIN-} != */asan/* ]] || skip "deploy.sh's or the bench's alone: the plain pass runs it"
}

flunk() {
  {
    printf '%s\n' "$@"
    if [[ -n ${last_req-} ]]; then
      echo "--- last request: $last_req"
      echo "--- status: $status_code (curl exit $curl_rc)"
      echo "--- headers:"
      printf '%s\n' "$headers" | sed 's/^/    /'
      echo "--- body:"
      printf '%s\n' "${body:0:1500}" | sed 's/^/    /'
    fi
  } >&2
  return 1
}

# assert_eq WHAT EXPECTED ACTUAL
assert_eq() {
  [[ "$3" == "$2" ]] || flunk "$1: expected '$2', got '$3'"
}

# assert_match WHAT REGEX ACTUAL
assert_match() {
  [[ "$3" =~ $2 ]] || flunk "$1: expected to match /$2/, got '$3'"
}

# assert_status CODE [CODE...]: the last status is one of them.
assert_status() {
  local c
  for c in "$@"; do [[ $status_code == "$c" ]] && return 0; done
  flunk "status: expected $*, got $status_code"
}

# assert_header NAME VALUE (exact, after trimming)
assert_header() {
  header_value "$1" || flunk "header $1: expected '$2', but there is no $1 header" || return 1
  [[ $REPLY == "$2" ]] || flunk "header $1: expected '$2', got '$REPLY'"
}

# assert_header_match NAME REGEX
assert_header_match() {
  header_value "$1" || flunk "header $1: expected to match /$2/, but there is no $1 header" || return 1
  [[ $REPLY =~ $2 ]] || flunk "header $1: expected to match /$2/, got '$REPLY'"
}

assert_cache() { assert_header X-Cache "$1"; }

assert_json_type() {
  assert_header_match Content-Type '^application/json([ ]*;.*)?$'
}

# assert_json JQ-EXPR: the body is JSON and the expression is true.
assert_json() {
  local rc=0
  jq -e "$1" >/dev/null 2>&1 <<<"$body" || rc=$?
  case $rc in
  0) ;;
  1) flunk "body: expected jq '$1' to be true" ;;
  *) flunk "body: not JSON, or jq '$1' failed on it (jq exit $rc)" ;;
  esac
}

# assert_json_eq JQ-EXPR EXPECTED: jq -c EXPR on the body prints EXPECTED.
assert_json_eq() {
  local v
  v=$(jq -c "$1" <<<"$body" 2>&1) || flunk "body: not JSON, or jq '$1' failed on it: $v" || return 1
  [[ $v == "$2" ]] || flunk "body $1: expected $2, got $v"
}

# assert_error_json CODE [CODE...]: an error answer as the contract wants it.
assert_error_json() {
  assert_status "$@" || return 1
  assert_json_type || return 1
  assert_json '(.error | type == "string") and (.error | length > 0)'
}

assert_empty_body() {
  [[ $body_size == 0 ]] || flunk "expected an empty body, got $body_size bytes"
}

# assert_count_is EXPECTED: the body is {"count": EXPECTED}
assert_count_is() {
  assert_status 200 || return 1
  assert_json_type || return 1
  assert_json_eq .count "$1"
}

# good_requests_follow: a few good reads right after a bad request succeed
# (several, so that more than one worker is likely to answer).
good_requests_follow() {
  local i
  for i in 1 2 3; do
    req GET "/orders/count?customerid=$((i + 10))"
    [[ $status_code == 200 ]] || flunk "a good request after the bad one failed" || return 1
  done
}
