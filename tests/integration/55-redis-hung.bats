#!/usr/bin/env bats
# Redis hung (SIGSTOP): it still accepts connections (the kernel does) but
# answers nothing. No read may wait for it longer than the Redis timeout;
# after a few failures each worker's circuit breaker opens and stops trying
# (kv.c), then probes, and closes again once Redis answers (SIGCONT).

load helpers

TIMEOUT_MS=${REDIS_TIMEOUT_MS:-100} # deploy.sh's default; the suite keeps it
MARGIN_MS=100                       # curl, nginx, Postgres, a busy 2-core box
STOP_SECONDS=3

setup() {
  redis_pid=$(pid_of redis)
  [[ $redis_pid =~ ^[0-9]+$ ]] || flunk "no redis PID in ./deploy.sh status" "$(stack_status)" || return 1
  log=$STATE_DIR/log/workers.log
  [[ -f $log ]] || flunk "no workers' log at $log" || return 1
  c=$(psqlc "SELECT customerid FROM orders WHERE customerid <= 20000
             GROUP BY customerid ORDER BY count(*) DESC, customerid LIMIT 1")
  path="/orders/count?customerid=$c"
  expected=$(rows_of "$c")
  # Every worker uses Redis again before we start (an earlier test may
  # have left a breaker open).
  wait_for 15 redis_in_use || flunk "reads still BYPASS before the test: ${seen-}" || return 1
}

teardown() {
  [[ ${inv_pid-} =~ ^[0-9]+$ ]] && kill -CONT "$inv_pid" 2>/dev/null
  rcli CLIENT UNPAUSE >/dev/null 2>&1
  # Never leave Redis stopped, whatever failed: later tests need it, and
  # the workers' breakers closed again.
  if [[ ${redis_pid-} =~ ^[0-9]+$ ]]; then
    kill -CONT "$redis_pid" 2>/dev/null || true
    wait_for 15 redis_in_use >/dev/null 2>&1 || true
  fi
}

# redis_in_use: 2 x WORKERS reads at once (par_get) answered with Redis
# (not BYPASS), so every worker's breaker is very likely closed. seen:
# what the reads said (STATUS/X-CACHE each).
redis_in_use() {
  par_get "$path" $((2 * WORKERS))
  seen=$par_seen
  [[ -n $seen ]] && ! tr ' ' '\n' <<<"$seen" | grep -qvE '^(200/(HIT|MISS))?$'
}

# all_closed: reads (redis_in_use) until every worker of $opens has
# logged 'circuit closed': a worker closes its circuit on its next call
# to Redis, so each must have had a read.
all_closed() {
  local pid
  redis_in_use || return 1
  closes=$(first_times 'redis: circuit closed')
  while read -r pid _; do
    grep -q "^$pid " <<<"$closes" || return 1
  done <<<"$opens"
}

now_us() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }

# log_mark: remember where the workers' log ends; log_since prints what
# was written after the mark.
log_mark() { log_off=$(stat -c %s "$log"); }
log_since() { tail -c +$((log_off + 1)) "$log"; }

# first_times PATTERN: for each worker, the first line after the mark whose
# message starts with PATTERN, as "PID MS" (MS: milliseconds after
# stop_us, the moment Redis was stopped). One line per worker.
first_times() {
  local pid ts sec
  log_since | awk -v p="msg=\"$1" '
    index($0, p) {
      w = ""; t = ""
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^worker=/) w = substr($i, 8)
        if ($i ~ /^ts=/) t = substr($i, 4)
      }
      if (w != "" && !(w in seen)) { seen[w] = 1; print w, t }
    }' | while read -r pid ts; do
    sec=$(date -u -d "$ts" +%s%3N) || continue
    echo "$pid $((sec - stop_us / 1000))"
  done
}

# The reads: batches of 10 sequential GETs per curl (a curl process takes
# ~0.1 s to start on a busy 2-core box, longer than a read), until SECONDS
# have passed, in a bash of its own (under bats every command of a test
# costs a DEBUG trap). One line per read: N STATUS MS X-CACHE BODY (MS:
# curl's time_total of that read).
READER='
batch=()
for ((i = 0; i < 10; i++)); do batch+=("$url"); done
end=$((10#${EPOCHREALTIME/./} + secs * 1000000))
while ((10#${EPOCHREALTIME/./} < end)); do
  curl -s --max-time 10 -w "\t%{http_code}\t%{time_total}\t%header{x-cache}\n" "${batch[@]}"
done | awk -F "\t" '"'"'{
  x = $4; gsub(/[ \r]/, "", x)
  printf "%d %s %d %s %s\n", NR, $2, $3 * 1000, x == "" ? "none" : x, $1 == "" ? "-" : $1
}'"'"''

# timed_reads SECONDS: GET $path one after another for SECONDS. Every
# answer must be 200 with the right count, in at most TIMEOUT_MS +
# MARGIN_MS. Sets nreads, slowest_ms and tally (X-Cache: count).
timed_reads() {
  local limit=$((TIMEOUT_MS + MARGIN_MS)) reads=$BATS_TEST_TMPDIR/reads bad
  secs=$1 url=$BASE$path bash -c "$READER" >"$reads"
  read -r nreads slowest_ms < <(awk '{ if ($3 > m) m = $3 } END { print NR, m + 0 }' "$reads")
  declare -gA tally=()
  while read -r k v; do tally[$k]=$v; done < <(awk '{ n[$4]++ } END { for (k in n) print k, n[k] }' "$reads")
  bad=$(awk -v want="{\"count\":$expected}" -v limit="$limit" '
    $2 != 200 { print "read " $1 ": status " $2 ", X-Cache " $4 ": " $5; next }
    $5 != want { print "read " $1 ": expected " want ", got " $5; next }
    $3 > limit { print "read " $1 " took " $3 " ms (X-Cache " $4 "), over the Redis timeout + margin, " limit " ms" }' "$reads")
  [[ -z $bad ]] || flunk "$bad" || return 1
  ((nreads > 0)) || flunk "no read at all in $1 s" || return 1
}

tally_str() {
  local k s=''
  for k in "${!tally[@]}"; do s+="$k=${tally[$k]} "; done
  echo "${s% }"
}

stop_redis() {
  log_mark
  kill -STOP "$redis_pid"
  stop_us=$(now_us)
}

@test "redis hung (SIGSTOP): reads stay 200 and within the timeout, the circuit opens within a second, and closes after SIGCONT" {
  stop_redis
  timed_reads "$STOP_SECONDS" || return 1
  ((${tally[BYPASS]:-0} > 0)) || flunk "no read was BYPASS while Redis was stopped: $(tally_str)"
  # Each worker that met the hang says so once, within about a second of
  # meeting it (its first Redis complaint). The reads come one at a time,
  # down the connection nginx keeps, so one worker meets it first and the
  # others only when a read happens to go to them.
  opens=$(first_times 'redis: circuit open')
  [[ -n $opens ]] || flunk "no worker logged 'circuit open' while Redis was stopped" "$(log_since | tail -n 20)"
  met=$(first_times 'redis: ')
  first=$(awk 'NR == 1 || $2 < m { m = $2 } END { print m }' <<<"$opens")
  ((first <= 1000)) || flunk "the first 'circuit open' came $first ms after the STOP (want <= 1 s)" "$opens"
  slowest=$(awk 'NR == FNR { met[$1] = $2; next } { d = $2 - met[$1]; if (d > m) m = d } END { print m + 0 }' \
    <(printf '%s\n' "$met") <(printf '%s\n' "$opens"))
  ((slowest <= 1000)) || flunk "a worker's 'circuit open' came $slowest ms after its first Redis complaint (want <= 1 s)" "$opens" "$met"
  # /healthz keeps its contract while the breaker is open: degraded, fast.
  req GET /healthz
  assert_status 200
  assert_json '.redis == "down" and .postgres == "ok"'
  hz=$(curl -s -o /dev/null -w '%{time_total}' --max-time 10 "$BASE/healthz")
  hz_ms=$((10#${hz/./} / 1000))
  ((hz_ms <= TIMEOUT_MS + MARGIN_MS)) || flunk "/healthz took $hz_ms ms while Redis was stopped"

  kill -CONT "$redis_pid"
  cont_us=$(now_us)
  wait_for 12 redis_in_use || flunk "reads still BYPASS 12 s after SIGCONT: $seen"
  back_ms=$((($(now_us) - cont_us) / 1000))
  # Every worker that opened its circuit closed it again, and said so.
  wait_for 10 all_closed || true
  while read -r pid _; do
    grep -q "^$pid " <<<"$closes" || flunk "worker $pid opened its circuit and never logged 'circuit closed'" "$(log_since | grep "worker=$pid" | tail -n 15)"
  done <<<"$opens"
  echo "# hung ${STOP_SECONDS}s: $nreads reads ($(tally_str)), slowest $slowest_ms ms (limit $((TIMEOUT_MS + MARGIN_MS))); circuit open after: $(awk '{ printf "%s%s ms (worker %s)", (NR > 1 ? ", " : ""), $2, $1 }' <<<"$opens"); /healthz $hz_ms ms; Redis used again $back_ms ms after SIGCONT" >&3
}

@test "redis hung: while the breaker is open the workers barely try it (connections and log lines bounded, not one per read)" {
  before=$(rcli INFO stats | tr -d '\r' | awk -F: '$1 == "total_connections_received" { print $2 }')
  [[ $before =~ ^[0-9]+$ ]] || flunk "no total_connections_received in INFO stats: '$before'"
  stop_redis
  timed_reads "$STOP_SECONDS" || return 1
  kill -CONT "$redis_pid"
  # Connections made while Redis was stopped waited in its listen queue;
  # it accepts (and counts) them all before it reads our INFO.
  after=$(rcli INFO stats | tr -d '\r' | awk -F: '$1 == "total_connections_received" { print $2 }')
  [[ $after =~ ^[0-9]+$ ]] || flunk "no total_connections_received in INFO stats after SIGCONT: '$after'"
  made=$((after - before - 1)) # less redis-cli's own
  # Per worker: two reconnects before the circuit opens (~0.5 s), then one
  # probe per interval (about 1 s, then 2 s): 4 at most in 3 s. Without a
  # breaker it would be one per read that reaches Redis.
  ((nreads >= 30)) || flunk "only $nreads reads in ${STOP_SECONDS} s: too few for the bound to mean anything"
  ((made <= 4 * WORKERS + 2)) || flunk "$made connections to Redis during $nreads reads in ${STOP_SECONDS} s with it stopped (want <= $((4 * WORKERS + 2)))"
  # And the log says so a few times per worker, not once per read.
  per_worker=$(log_since | grep 'level=warn' | grep -o 'worker=[0-9]* .*msg="redis:' |
    awk '{ n[$1]++ } END { for (w in n) print w, n[w] }')
  worst=$(awk '$2 > m { m = $2 } END { print m + 0 }' <<<"$per_worker")
  ((worst > 0)) || flunk "no worker logged a Redis warning while it was stopped"
  ((worst <= 10)) || flunk "a worker logged $worst Redis warnings during $nreads reads (want <= 10)" "$per_worker"
  echo "# hung ${STOP_SECONDS}s: $nreads reads ($(tally_str)), slowest $slowest_ms ms; $made connections to Redis; warn lines per worker: $(tr '\n' ' ' <<<"$per_worker")" >&3
}

@test "a POST's invalidation lost (Redis paused writes, the worker gave up on it): no read serves the count from before the POST" {
  c=$(fresh_customer)
  count_path="/orders/count?customerid=$c"
  one_order_counted "$c" 3000 || return 1
  # The invalidator, told of the write (db_announce), would make it within
  # a second of Redis taking writes again: held, it shows what the workers
  # do alone (as on a host cut off from Postgres too, which cannot tell it).
  inv_pid=$(pid_of invalidator)
  [[ $inv_pid =~ ^[0-9]+$ ]] || flunk "no invalidator PID in ./deploy.sh status" "$(stack_status)"
  log_mark
  kill -STOP "$inv_pid"
  # Redis keeps answering reads but holds every write: the worker's
  # invalidation times out, and Redis drops it with the worker's connection.
  rcli CLIENT PAUSE 10000 WRITE >/dev/null
  post_json "{\"customerid\": $c, \"netamount\": 4, \"tax\": 0}"
  assert_status 201
  tally=''
  for ((i = 0; i < 3 * WORKERS; i++)); do
    req GET "$count_path"
    tally+="$(header X-Cache) "
    assert_count_is 2 || flunk "read $i while Redis held writes (X-Cache so far: $tally)"
  done
  rcli CLIENT UNPAUSE >/dev/null
  tally+='| '
  for ((i = 0; i < 6 * WORKERS; i++)); do
    req GET "$count_path"
    tally+="$(header X-Cache) "
    assert_count_is 2 || flunk "read $i after UNPAUSE (X-Cache so far: $tally)"
  done
  kill -CONT "$inv_pid"
  log_since | grep -q 'msg="redis: made the invalidation owed since Redis failed it' ||
    flunk "no worker logged making the owed invalidation" "$(log_since | tail -n 15)"
  wait_for 10 redis_in_use || flunk "reads still BYPASS 10 s after UNPAUSE: $seen"
  echo "# reads while Redis held writes | after: $tally" >&3
}
