#!/usr/bin/env bats
# The fault suite (make faults): each fault is injected under a steady load
# (wrk reading, a writer retrying every POST under its Idempotency-Key until
# it is acknowledged, a probe logging every answer), and afterwards: no
# acknowledged write lost, only the statuses the fault allows, recovery on
# its own within the promised time. Each test adds a row to the report the
# harness prints at the end.

load helpers

REDIS_TIMEOUT_MS=${REDIS_TIMEOUT_MS:-100}
STATEMENT_TIMEOUT_MS=${STATEMENT_TIMEOUT_MS:-5000}

teardown() {
  # never leave Redis stopped or the load running for the next fault
  [[ -n ${STOPPED_REDIS-} ]] && kill -CONT "$STOPPED_REDIS" 2>/dev/null
  if [[ -n ${L-} && ! -e $L/stop ]]; then
    load_stop || true
  fi
  # whatever a fault took down comes back before the next one
  if ! rcli PING >/dev/null 2>&1 || ! psqlc 'SELECT 1' >/dev/null 2>&1; then
    deploy_sh || true
  fi
}

# pool_pid: the multiwatch that keeps the workers.
pool_pid() { pid_of pool; }
workers_now() { ps -o pid= --ppid "$1" | wc -l; }

# ms_of_log_ts TS: a log line's ts=... as epoch ms.
ms_of_log_ts() { date -d "$1" +%s%3N; }

# pg_ready_at FILE: in the background, write to FILE the epoch ms at which
# Postgres first accepts connections.
pg_ready_at() {
  local pgdir port
  pgdir=$(head -1 "$STATE_DIR/pg.path")
  port=${DATABASE_URL##*:}
  port=${port%%/*}
  (
    until pg_isready -q -h "$pgdir/run" -p "$port" -t 1; do sleep 0.05; done
    now_ms >"$1"
  ) </dev/null 3>&- &
}

# app_connections: the service's sessions in Postgres (workers, invalidator).
app_connections() {
  psql_super "SELECT count(*) FROM pg_stat_activity WHERE usename = 'orders_app'"
}

@test "redis-server SIGKILL, restarted 10 s later: reads keep succeeding from Postgres, no acknowledged write lost" {
  load_start redis-kill 1
  sleep 3
  pid=$(pid_of redis)
  kill -KILL "$pid"
  sleep 10
  deploy_sh || flunk "./deploy.sh did not bring Redis back" "$(show_deploy_log)"
  t_back=$(now_ms)
  sleep 5
  load_stop
  check_statuses
  check_writes
  failed=$(reads_failed)
  ((failed == 0)) || flunk "$failed reads failed while only Redis was down" "$(cat "$L/wrk")"
  bypass=$(awk '$3 == "BYPASS"' "$L/probe" | wc -l)
  ((bypass > 0)) || flunk "the probe never saw X-Cache: BYPASS: was Redis down at all?"
  back=$(awk -v t="$t_back" '$1 >= t && $2 == 200 && $3 != "BYPASS" { print $1 - t; exit }' "$L/probe")
  [[ -n $back ]] || flunk "the cache was not used again within 5 s of Redis's return"
  report "redis SIGKILL, back after 10 s" "cache used ${back} ms after restart" "$bypass probe answers BYPASS"
}

@test "redis-server SIGSTOP for 5 s: no answer waits on Redis longer than its timeout + 50 ms; the breaker opens within 1 s" {
  load_start redis-stop 2
  sleep 3
  STOPPED_REDIS=$(pid_of redis)
  log=$STATE_DIR/log/workers.log
  lines_before=$(wc -l <"$log")
  t_stop=$(now_ms)
  kill -STOP "$STOPPED_REDIS"
  sleep 5
  kill -CONT "$STOPPED_REDIS"
  t_cont=$(now_ms)
  STOPPED_REDIS=''
  sleep 4
  load_stop
  check_statuses
  check_writes
  # what the service says it spent on Redis, answer by answer
  worst=$(awk -v a="$t_stop" -v b="$t_cont" '$1 >= a && $1 <= b + 500 && $4 != "-" { if ($4 > m) m = $4 } END { print m + 0 }' "$L/probe")
  awk -v w="$worst" -v lim=$((REDIS_TIMEOUT_MS + 50)) 'BEGIN { exit !(w <= lim) }' ||
    flunk "an answer spent ${worst} ms on Redis (cache;dur), over REDIS_TIMEOUT_MS + 50 = $((REDIS_TIMEOUT_MS + 50))"
  opened=$(tail -n +"$((lines_before + 1))" "$log" | grep -m 1 'circuit open' | sed -E 's/^ts=([^ ]+) .*/\1/')
  [[ -n $opened ]] || flunk "no worker logged 'circuit open' while Redis was stopped"
  open_ms=$(($(ms_of_log_ts "$opened") - t_stop))
  ((open_ms <= 1000)) || flunk "the first breaker opened ${open_ms} ms after SIGSTOP, over 1 s"
  failed=$(reads_failed)
  ((failed == 0)) || flunk "$failed reads failed while Redis was stopped" "$(cat "$L/wrk")"
  report "redis SIGSTOP 5 s" "breaker open after ${open_ms} ms" "worst cache;dur ${worst} ms"
}

@test "Postgres immediate shutdown, restarted 10 s later: no acknowledged write lost, first write within 5 s of its return" {
  load_start pg-immediate 3
  sleep 3
  pid=$(pid_of postgres)
  kill -QUIT "$pid" # immediate shutdown: no checkpoint, crash recovery at start
  wait_gone "$pid" 20
  sleep 10
  pg_ready_at "$L/ready"
  deploy_sh || flunk "./deploy.sh did not bring Postgres back" "$(show_deploy_log)"
  wait_for 10 test -s "$L/ready" || flunk "Postgres never accepted connections"
  sleep 6
  load_stop
  check_statuses
  check_writes
  t_ready=$(<"$L/ready")
  first=$(first_ok_write_after "$t_ready")
  ((first >= 0 && first <= 5000)) || flunk "first acknowledged write ${first} ms after Postgres was back (limit 5000)"
  down=$(awk '$3 == 503' "$L/writes" | wc -l)
  ((down > 0)) || flunk "no write was refused: was Postgres down at all?"
  conns=$(app_connections)
  ((conns <= WORKERS + 1)) || flunk "$conns app connections after recovery, over workers + invalidator = $((WORKERS + 1))"
  report "Postgres immediate stop, back after 10 s" "first write ${first} ms after it was ready" "$conns app connections after"
}

@test "every app connection killed with pg_terminate_backend: at most one failed request per worker" {
  load_start pg-terminate 4
  sleep 3
  n=$(psql_super "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'orders_app'")
  ((n >= WORKERS)) || flunk "terminated only $n sessions, fewer than the $WORKERS workers"
  sleep 5
  load_stop
  check_statuses
  check_writes
  failures=$(($(reads_failed) + $(write_failures)))
  ((failures <= WORKERS)) || flunk "$failures requests failed, over one per worker ($WORKERS)" "$(cat "$L/wrk")"
  conns=$(app_connections)
  ((conns <= WORKERS + 1)) || flunk "$conns app connections after, over workers + invalidator"
  report "pg_terminate_backend of $n sessions" "-" "$failures failed requests"
}

@test "LOCK TABLE orders held 10 s: 503 within statement_timeout, no hung worker after" {
  load_start lock 5
  sleep 3
  access=$STATE_DIR/log/access.log
  from_line=$(($(wc -l <"$access") + 1))
  psql_super "BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(10); COMMIT" >/dev/null 3>&- &
  lock_pid=$!
  wait "$lock_pid" || flunk "the session holding the lock failed"
  t_release=$(now_ms)
  sleep 5
  load_stop
  check_statuses
  check_writes
  # Every 503 of the workers', from nginx's access log: how long the
  # worker took to give up (its Server-Timing total, which the log keeps;
  # the request's own time, and nginx's upstream time, also count its
  # wait for a free worker, all of them stuck on the lock).
  read -r refused worst < <(tail -n +"$from_line" "$access" | awk '
    / 503 / && match($0, /total;dur=[0-9.]+/) {
      n++; t = substr($0, RSTART + 10, RLENGTH - 10) + 0; if (t > m) m = t
    }
    END { printf "%d %.0f\n", n, m }')
  ((refused > 0)) || flunk "no request was answered 503 while the table was locked"
  ((worst <= STATEMENT_TIMEOUT_MS + 250)) ||
    flunk "a worker took ${worst} ms to answer 503, over statement_timeout + 250 ms"
  # after the release every answer is good again, and nothing is stuck
  late=$(awk -v t=$((t_release + 2000)) '$1 >= t && $2 != 200' "$L/probe" | wc -l)
  ((late == 0)) || flunk "$late probe answers not 200 from 2 s after the lock was released"
  hung=$(psql_super "SELECT count(*) FROM pg_stat_activity WHERE usename = 'orders_app' AND state = 'active' AND now() - query_start > interval '2 s'")
  ((hung == 0)) || flunk "$hung app sessions still busy for over 2 s after the lock went"
  report "LOCK TABLE orders for 10 s" "each 503 within ${worst} ms of the worker's" "$refused answers 503"
}

@test "a worker SIGKILLed every 5 s: failures no more than requests in flight, pool back to full size within 2 s" {
  load_start worker-kill 6
  mw=$(pool_pid)
  [[ $mw =~ ^[0-9]+$ ]] || flunk "no pool (multiwatch) PID in ./deploy.sh status"
  kills=0 slowest=0
  for k in 1 2 3 4; do
    sleep 2
    victims=($(ps -o pid= --ppid "$mw"))
    ((${#victims[@]} == WORKERS)) || flunk "the pool has ${#victims[@]} workers, not $WORKERS"
    victim=${victims[RANDOM % ${#victims[@]}]}
    t=$(now_ms)
    kill -KILL "$victim"
    kills=$((kills + 1))
    until (($(workers_now "$mw") == WORKERS)) && ! alive "$victim"; do
      (($(now_ms) - t > 5000)) && break
      sleep 0.02
    done
    back=$(($(now_ms) - t))
    ((back > slowest)) && slowest=$back
    sleep 3
  done
  sleep 2
  load_stop
  check_statuses
  check_writes
  ((slowest <= 2000)) || flunk "the pool took ${slowest} ms to be full again after a kill (limit 2000)"
  failures=$(($(reads_failed) + $(write_failures)))
  ((failures <= kills)) || flunk "$failures requests failed for $kills workers killed (at most one in flight each)" "$(cat "$L/wrk")"
  report "a worker SIGKILLed every 5 s ($kills kills)" "pool full after at most ${slowest} ms" "$failures failed requests"
}

@test "all at once (Redis and Postgres killed, a worker killed, sessions terminated): then the cached count equals SELECT count(*)" {
  load_start all 7
  sleep 3
  mw=$(pool_pid)
  redis=$(pid_of redis)
  pg=$(pid_of postgres)
  victims=($(ps -o pid= --ppid "$mw"))
  psql_super "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'orders_app'" >/dev/null
  kill -KILL "${victims[0]}" "$redis"
  kill -QUIT "$pg"
  wait_gone "$pg" 20
  sleep 10
  pg_ready_at "$L/ready"
  deploy_sh || flunk "./deploy.sh did not bring Redis and Postgres back" "$(show_deploy_log)"
  wait_for 10 test -s "$L/ready" || flunk "Postgres never accepted connections"
  sleep 6
  load_stop
  check_statuses
  check_writes
  first=$(first_ok_write_after "$(<"$L/ready")")
  ((first >= 0 && first <= 5000)) || flunk "first acknowledged write ${first} ms after Postgres was back (limit 5000)"
  (($(workers_now "$mw") == WORKERS)) || flunk "the pool is not back to $WORKERS workers"
  conns=$(app_connections)
  ((conns <= WORKERS + 1)) || flunk "$conns app connections after recovery, over workers + invalidator"
  # no write is left unseen by the cache: the count served twice (the
  # second from Redis) is the table's
  want=$(psqlc 'SELECT count(*) FROM orders')
  req GET /orders/count
  assert_count_is "$want"
  req GET /orders/count
  assert_cache HIT
  assert_count_is "$want"
  report "all of the above at once" "first write ${first} ms after Postgres was ready" "cached count = SELECT count(*) = $want"
}

@test "./deploy.sh scale up, down, and a rolling restart under load: not one request dropped" {
  load_start scale 8
  sleep 2
  for n in $((WORKERS + 2)) "$WORKERS"; do
    deploy_sh scale "$n" || flunk "./deploy.sh scale $n failed" "$(show_deploy_log)"
    sleep 1
  done
  deploy_sh restart || flunk "./deploy.sh restart failed" "$(show_deploy_log)"
  sleep 2
  load_stop
  check_statuses
  check_writes
  failures=$(($(reads_failed) + $(write_failures)))
  ((failures == 0)) || flunk "$failures requests failed while the pool was replaced" "$(cat "$L/wrk")"
  n=$(worker_pids | wc -l)
  ((n == WORKERS)) || flunk "$n workers after the restart, not $WORKERS"
  report "scale +2, scale back, rolling restart" "-" "$failures failed requests"
}
