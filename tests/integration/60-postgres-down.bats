#!/usr/bin/env bats
# Postgres down: what needs Postgres is a clean 503 JSON error (never a
# crash, never a hang), what Redis holds is still served; after ./deploy.sh
# has started Postgres again the same workers serve again.

load helpers

setup_file() {
  # everything that needs Postgres is looked up before it goes away
  export PG_ID PG_C_COUNT PG_C_POST PG_C_CACHED PG_WORKERS
  PG_ID=$(psqlc "SELECT max(orderid) FROM orders WHERE customerid <= 20000")
  PG_C_COUNT=$(fresh_customer)
  PG_C_POST=$(fresh_customer)
  PG_C_CACHED=$(fresh_customer)
  PG_WORKERS=$(worker_pids | tr '\n' ' ')
  pid=$(pid_of postgres)
  if ! [[ $pid =~ ^[0-9]+$ ]]; then
    echo "no postgres PID in ./deploy.sh status:"
    stack_status
    return 1
  fi
  kill -INT "$pid" # fast shutdown
  for i in $(seq 1 80); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "postgres ($pid) still alive 20 s after SIGINT"
    return 1
  fi
}

teardown_file() {
  rdel "$(ckey "count:customerid=$PG_C_CACHED")"
  if ! psqlc 'SELECT 1' >/dev/null 2>&1; then
    deploy_sh || show_deploy_log
    for i in $(seq 1 80); do
      req GET /healthz
      [[ $status_code == 200 ]] && break
      sleep 0.25
    done
  fi
}

@test "postgres down: psql cannot reach it; /healthz is 503 with postgres down" {
  run psqlc 'SELECT 1'
  [[ $status != 0 ]] || flunk "psql still answers: Postgres was not stopped"
  req GET /healthz
  assert_status 503
  assert_json_type
  assert_json '.postgres == "down"'
}

@test "postgres down: GET /orders/<uncached id> is 503 JSON, and nothing is cached" {
  key=$(ckey "id:$PG_ID")
  rdel "$key"
  for i in 1 2 3; do
    req GET "/orders/$PG_ID"
    assert_error_json 503
  done
  run rcli EXISTS "$key"
  assert_eq "EXISTS $key after the 503s" 0 "$output"
}

@test "postgres down: GET /orders/count?customerid=<uncached> is 503 JSON" {
  rdel "$(ckey "count:customerid=$PG_C_COUNT")"
  for i in 1 2 3; do
    req GET "/orders/count?customerid=$PG_C_COUNT"
    assert_error_json 503
  done
  run rcli EXISTS "$(ckey "count:customerid=$PG_C_COUNT")"
  assert_eq "cached count after the 503s" 0 "$output"
}

@test "postgres down: POST /orders and DELETE are 503 JSON (the POST's row is checked once Postgres is back)" {
  post_json "{\"customerid\": $PG_C_POST, \"netamount\": 1, \"tax\": 0}"
  assert_error_json 503
  req DELETE "/orders/$PG_ID"
  assert_error_json 503
}

@test "postgres down: what Redis holds is still served (HIT), Redis is consulted first" {
  key=$(ckey "count:customerid=$PG_C_CACHED")
  rcli SET "$key" '{"count": 3}' EX 60 >/dev/null
  req GET "/orders/count?customerid=$PG_C_CACHED"
  assert_status 200
  assert_cache HIT
  assert_json '.count == 3'
}

# A write that never reached Postgres cannot have committed: it must not
# invalidate (else each failed POST of an outage would empty the cache that
# is serving the reads meanwhile).
@test "postgres down: POSTs and DELETEs that never reached it invalidate nothing; the cached count is still a HIT" {
  key=$(ckey "count:customerid=$PG_C_CACHED")
  rcli SET "$key" '{"count": 3}' EX 60 >/dev/null
  g0=$(rcli GET "$(ckey gen:count)")
  for i in $(seq 1 $((2 * WORKERS))); do
    post_json "{\"customerid\": $PG_C_POST, \"netamount\": 1, \"tax\": 0}"
    assert_error_json 503
    req DELETE "/orders/$PG_ID"
    assert_error_json 503
  done
  assert_eq "$(ckey gen:count) after writes that never reached Postgres" "$g0" "$(rcli GET "$(ckey gen:count)")"
  req GET "/orders/count?customerid=$PG_C_CACHED"
  assert_status 200
  assert_cache HIT
  assert_json '.count == 3'
}

@test "postgres down: bad requests still get their 4xx, not 503" {
  req GET "/orders/count?foo=1"
  assert_error_json 400
  req GET /nope
  assert_error_json 404
  post_json '{"customerid": 1, "netamount": 12.345, "tax": 0}'
  assert_error_json 422
}

@test "postgres back via ./deploy.sh: within ~10 s the same workers serve again; the 503 POST inserted nothing" {
  deploy_sh || {
    show_deploy_log
    flunk "./deploy.sh (to start Postgres again) failed"
  }
  # poll until 6 answers in a row are 200 (so every worker reconnected)
  ok=0 seen=''
  for i in $(seq 1 60); do # ~15 s at most
    req GET "/orders/count?customerid=$PG_C_COUNT"
    seen+="$status_code "
    if [[ $status_code == 200 ]]; then
      ok=$((ok + 1))
      ((ok >= 6)) && break
    else
      ok=0
      sleep 0.25
    fi
  done
  ((ok >= 6)) || flunk "expected 6 good answers in a row after Postgres came back, saw: $seen"
  assert_count_is 0

  req GET /healthz
  assert_status 200
  assert_json '.postgres == "ok" and .redis == "ok"'
  req GET "/orders/$PG_ID"
  assert_status 200
  assert_json ".orderid == $PG_ID"

  assert_eq "rows for customer $PG_C_POST (its POST got a 503)" 0 "$(rows_of "$PG_C_POST")"
  post_json "{\"customerid\": $PG_C_POST, \"netamount\": 1, \"tax\": 0}"
  assert_status 201
  assert_eq "rows for customer $PG_C_POST" 1 "$(rows_of "$PG_C_POST")"

  now=$(worker_pids | tr '\n' ' ')
  assert_eq "worker PIDs before the outage and after (workers must not be restarted)" "$PG_WORKERS" "$now"
}
