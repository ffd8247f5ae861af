#!/usr/bin/env bats
# The invalidator: writes made outside the service (psql here) drop the cache
# entries they made stale, through the triggers of sql/triggers.sql (NOTIFY
# orders_changed at commit) and build/orders-invalidator (LISTEN, then the
# same invalidation as a worker's). It survives losing its Postgres
# connection (and then drops everything: what was written meanwhile went
# unannounced) and being killed (multiwatch starts it again).

load helpers

INV_LOG=$STATE_DIR/log/invalidator.log
LIMIT_FLAG=$BATS_FILE_TMPDIR/connlimit.changed

setup_file() {
  # An earlier file may have restarted Postgres: the invalidator is back
  # within its reconnect backoff (5 s at most). If it is not, the tests say
  # so one by one.
  local i
  for i in $(seq 1 40); do
    [[ -n $(invalidator_backends 2>/dev/null) ]] && return 0
    sleep 0.25
  done
  return 0
}

teardown() {
  # test (c) shuts orders_app out for a while: always let it in again
  if [[ -e $LIMIT_FLAG ]]; then
    psql_super "ALTER ROLE orders_app CONNECTION LIMIT $(cat "$LIMIT_FLAG")" || true
    rm -f "$LIMIT_FLAG"
  fi
}

# invalidator_status_pid: the PID of "invalidator PID running", or nothing.
invalidator_status_pid() {
  stack_status | awk '$1 == "invalidator" && $3 == "running" && $2 ~ /^[0-9]+$/ { print $2 }'
}

# listening_and_settled PID: invalidator PID has logged the full
# invalidation that follows its LISTEN: from then on, what it drops is due
# to the notifications it gets.
listening_and_settled() {
  grep -q "invalidator=$1 .*full invalidation done (now listening" "$INV_LOG"
}

# invalidator_backends: pids of the invalidator's Postgres sessions.
invalidator_backends() {
  psql_super "SELECT pid FROM pg_stat_activity WHERE application_name = 'orders-invalidator'
              AND backend_type = 'client backend' ORDER BY pid"
}

# new_order CUSTOMER: insert one order with psql, print its orderid, and wait
# until the invalidator has handled that INSERT (the count of CUSTOMER,
# filled before it, is gone), so that what a test caches next is not
# dropped by it.
new_order() {
  local c=$1 key id
  key=$(ckey "count:customerid=$c")
  req GET "/orders/count?customerid=$c" >/dev/null
  id=$(psqlc "INSERT INTO orders (customerid, netamount, tax, totalamount)
              VALUES ($c, 3, 0.25, 3.25) RETURNING orderid") || return 1
  keys_gone_within 3 "$key" ||
    flunk "the INSERT of order $id: $key still cached $gone_after s later" || return 1
  printf '%s\n' "$id"
}

@test "invalidator: ./deploy.sh status lists 'invalidator PID running', a live orders-invalidator under multiwatch, with its LISTEN session" {
  run stack_status
  [[ $status == 0 ]] || flunk "./deploy.sh status exited $status:" "$output"
  line=$(awk '$1 == "invalidator"' <<<"$output")
  [[ $line =~ ^invalidator\ [0-9]+\ running$ ]] || flunk "status line for the invalidator: expected 'invalidator PID running', got '$line'" "$output"
  pid=$(awk '{print $2}' <<<"$line")
  alive "$pid" || flunk "invalidator PID $pid is not a live process"
  assert_eq "command of PID $pid" orders-invalida "$(ps -o comm= -p "$pid")"
  parent=$(ps -o ppid= -p "$pid" | tr -d ' ')
  assert_eq "command of its parent ($parent)" multiwatch "$(ps -o comm= -p "$parent")"
  if [[ $(id -u) == 0 ]]; then
    assert_eq "user of the invalidator" www-data "$(ps -o user= -p "$pid")"
  fi
  sessions=$(psql_super "SELECT count(*) FROM pg_stat_activity
                         WHERE application_name = 'orders-invalidator' AND query = 'LISTEN orders_changed'
                           OR application_name = 'orders-invalidator' AND query = 'SELECT 1'")
  assert_eq "Postgres sessions of the invalidator (LISTEN, or its liveness check)" 1 "$sessions"
}

@test "invalidator: a DELETE with psql drops the order's entry and the counts from Redis within a second" {
  c=$(fresh_customer)
  id=$(new_order "$c")
  kid=$(ckey "id:$id") kcount=$(ckey "count:customerid=$c") kall=$(ckey count:all)
  req GET "/orders/$id"
  assert_status 200
  req GET "/orders/count?customerid=$c"
  assert_count_is 1
  req GET /orders/count
  assert_status 200
  assert_eq "EXISTS of the three entries before the write" 3 "$(rcli EXISTS "$kid" "$kcount" "$kall")"

  psqlc "DELETE FROM orders WHERE orderid = $id"
  keys_gone_within 1.5 "$kid" "$kcount" "$kall" ||
    flunk "still cached $gone_after s after a psql DELETE: $(for k in "$kid" "$kcount" "$kall"; do [[ $(rcli EXISTS "$k") == 1 ]] && printf '%s ' "$k"; done)"
  req GET "/orders/$id"
  assert_error_json 404
  req GET "/orders/count?customerid=$c"
  assert_count_is 0
  assert_cache MISS
}

@test "invalidator: a bulk INSERT of 150 rows (payload *) drops every <prefix>count:* and <prefix>id:* entry" {
  c=$(fresh_customer)
  other=$(psqlc "SELECT min(customerid) FROM orders")
  # entries the write does not name: counts of others, orders of others
  for q in "" "?customerid=$other" "?min_total=100" "?customerid=$c"; do
    req GET "/orders/count$q"
    assert_status 200
  done
  for id in $(psqlc "SELECT orderid FROM orders WHERE customerid <= 20000 ORDER BY orderid LIMIT 5"); do
    req GET "/orders/$id"
    assert_status 200
  done
  before=$(scan_keys "$(ckey 'count:*')" "$(ckey 'id:*')")
  (($(wc -l <<<"$before") >= 9)) || flunk "expected >= 9 count and id entries before the write, got:" "$before"
  # Outlive the wait below: only an invalidation, not the TTL, may remove them.
  for k in $before; do rcli EXPIRE "$k" 120 >/dev/null; done

  psqlc "INSERT INTO orders (customerid, netamount, tax, totalamount)
         SELECT $c, g, 0, g FROM generate_series(1, 150) AS g"
  start=$EPOCHREALTIME
  while :; do
    left=$(scan_keys "$(ckey 'count:*')" "$(ckey 'id:*')")
    [[ -z $left ]] && break
    awk -v e="$(elapsed_since "$start")" 'BEGIN { exit !(e >= 3) }' &&
      flunk "entries left 3 s after a 150-row INSERT:" "$left"
    sleep 0.05
  done
  grep -q 'full invalidation done (notification \*' "$INV_LOG" ||
    flunk "no 'full invalidation done (notification *' line in $INV_LOG:" "$(tail -n 5 "$INV_LOG")"
  req GET "/orders/count?customerid=$c"
  assert_count_is 150
  assert_cache MISS
  psqlc "DELETE FROM orders WHERE customerid = $c"
}

@test "invalidator: its Postgres connection killed (pg_terminate_backend); a write while it is away is dropped when it is back" {
  c=$(fresh_customer)
  id=$(new_order "$(fresh_customer)")
  kid=$(ckey "id:$id") kcount=$(ckey "count:customerid=$c")

  # Keep it out once its session is gone: orders_app may open no new
  # connection (the workers keep theirs; writes go through the superuser).
  psql_super "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'orders_app'" >"$LIMIT_FLAG"
  psql_super "ALTER ROLE orders_app CONNECTION LIMIT 0"
  old=$(invalidator_backends)
  [[ $old =~ ^[0-9]+$ ]] || flunk "expected one Postgres session of the invalidator, got '$old'"
  psql_super "SELECT pg_terminate_backend($old)" >/dev/null
  gone() { [[ -z $(invalidator_backends) ]]; }
  wait_for 5 gone || flunk "the invalidator's session $old still there 5 s after pg_terminate_backend"
  sleep 0.5 # it has tried to connect again by now, and been refused

  # Meanwhile: entries get cached, and psql writes make them stale. Nobody
  # listens: the notifications are lost.
  req GET "/orders/$id"
  assert_json ".netamount == 3"
  assert_cache MISS
  req GET "/orders/count?customerid=$c"
  assert_count_is 0
  # Outlive the waits below: only an invalidation, not the TTL, may remove
  # them in this test.
  rcli EXPIRE "$kid" 120 >/dev/null
  rcli EXPIRE "$kcount" 120 >/dev/null
  psql_super "UPDATE orders SET netamount = 4, totalamount = 4.25 WHERE orderid = $id"
  psql_super "INSERT INTO orders (customerid, netamount, tax, totalamount) VALUES ($c, 1, 0, 1)"
  sleep 1
  assert_eq "EXISTS of both entries 1 s after the writes, with nobody listening" 2 "$(rcli EXISTS "$kid" "$kcount")"

  # Let it in: it reconnects (its backoff is 5 s at most) and, since it
  # cannot know what it missed, drops everything.
  psql_super "ALTER ROLE orders_app CONNECTION LIMIT $(cat "$LIMIT_FLAG")"
  rm -f "$LIMIT_FLAG"
  back() { [[ -n $(invalidator_backends) ]]; }
  wait_for 10 back || flunk "the invalidator did not connect again within 10 s:" "$(tail -n 8 "$INV_LOG")"
  keys_gone_within 1 "$kid" "$kcount" ||
    flunk "entries still cached $gone_after s after the invalidator connected again:" "$(tail -n 8 "$INV_LOG")"
  req GET "/orders/$id"
  assert_json ".netamount == 4"
  assert_cache MISS
  req GET "/orders/count?customerid=$c"
  assert_count_is 1
  assert_cache MISS
}

@test "invalidator: killed with SIGKILL, multiwatch starts a new one within seconds, and psql writes are invalidated again" {
  old=$(invalidator_status_pid)
  [[ $old =~ ^[0-9]+$ ]] || flunk "no 'invalidator PID running' in ./deploy.sh status:" "$(stack_status)"
  kill -KILL "$old"
  wait_gone "$old" 5
  restarted() {
    new=$(invalidator_status_pid)
    [[ -n $new && $new != "$old" ]]
  }
  wait_for 5 restarted || flunk "no new invalidator within 5 s of killing $old; ./deploy.sh status:" "$(stack_status)"
  settled() { listening_and_settled "$new"; }
  wait_for 5 settled || flunk "the new invalidator ($new) did not listen within 5 s:" "$(tail -n 8 "$INV_LOG")"

  c=$(fresh_customer)
  key=$(ckey "count:customerid=$c")
  req GET "/orders/count?customerid=$c"
  assert_count_is 0
  assert_cache MISS
  psqlc "INSERT INTO orders (customerid, netamount, tax, totalamount) VALUES ($c, 1, 0, 1)"
  keys_gone_within 1.5 "$key" || flunk "$key still cached $gone_after s after a psql INSERT (new invalidator $new)"
  req GET "/orders/count?customerid=$c"
  assert_count_is 1
  assert_cache MISS
}

@test "invalidator: ./deploy.sh again and ./deploy.sh scale leave the running invalidator alone" {
  before=$(invalidator_status_pid)
  [[ $before =~ ^[0-9]+$ ]] || flunk "no 'invalidator PID running' in ./deploy.sh status:" "$(stack_status)"
  deploy_sh || {
    show_deploy_log
    flunk "./deploy.sh (again) failed"
  }
  grep -q "^invalidator: running (pid $before)" "$deploy_log" ||
    flunk "./deploy.sh did not say 'invalidator: running (pid $before)':" "$(cat "$deploy_log")"
  deploy_sh scale "$WORKERS" || {
    show_deploy_log
    flunk "./deploy.sh scale $WORKERS failed"
  }
  assert_eq "invalidator PID after ./deploy.sh and ./deploy.sh scale" "$before" "$(invalidator_status_pid)"
}
