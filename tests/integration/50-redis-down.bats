#!/usr/bin/env bats
# Redis is only a cache: with Redis down every read is answered from
# Postgres (X-Cache: BYPASS), writes work, /healthz says degraded; once
# ./deploy.sh has started Redis again the workers reconnect by themselves.

load helpers

setup_file() {
  pid=$(pid_of redis)
  if ! [[ $pid =~ ^[0-9]+$ ]]; then
    echo "no redis PID in ./deploy.sh status:"
    stack_status
    return 1
  fi
  kill "$pid"
  for i in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "redis ($pid) still alive 10 s after SIGTERM"
    return 1
  fi
}

redis_gone() { ! kill -0 "$pid" 2>/dev/null; }

teardown_file() {
  # put Redis back for whatever runs next, even when the recovery test failed
  if ! rcli PING >/dev/null 2>&1; then
    deploy_sh || show_deploy_log
    for i in $(seq 1 40); do
      req GET /healthz
      [[ $status_code == 200 ]] && jq -e '.redis == "ok"' >/dev/null 2>&1 <<<"$body" && break
      sleep 0.25
    done
  fi
}

@test "redis down: redis-cli cannot reach it; /healthz is 200 with redis down, postgres ok" {
  run rcli PING
  [[ $status != 0 ]] || flunk "redis-cli PING still answers '$output': Redis was not stopped"
  req GET /healthz
  assert_status 200
  assert_json_type
  assert_json '.redis == "down" and .postgres == "ok"'
}

@test "redis down: counts are 200, X-Cache BYPASS, and correct, every time" {
  c=$(psqlc "SELECT customerid FROM orders WHERE customerid <= 20000
             GROUP BY customerid ORDER BY count(*) DESC, customerid LIMIT 1")
  for q in "" "?customerid=$c" "?min_total=100&from=2004-01-01"; do
    case $q in
    "") sql="SELECT count(*) FROM orders" ;;
    "?customerid=$c") sql="SELECT count(*) FROM orders WHERE customerid = $c" ;;
    *) sql="SELECT count(*) FROM orders WHERE totalamount >= 100 AND orderdate >= '2004-01-01'" ;;
    esac
    expected=$(psqlc "$sql")
    for i in 1 2 3; do
      req GET "/orders/count$q"
      assert_count_is "$expected"
      assert_cache BYPASS
    done
  done
}

@test "redis down: GET /orders/{id} is 200 BYPASS with the row; a missing order is still 404" {
  id=$(psqlc "SELECT min(orderid) FROM orders")
  net=$(psqlc "SELECT netamount FROM orders WHERE orderid = $id")
  for i in 1 2 3; do
    req GET "/orders/$id"
    assert_status 200
    assert_cache BYPASS
    assert_json ".orderid == $id and .netamount == $net"
  done
  req GET /orders/999999999
  assert_error_json 404
}

@test "redis down: POST is 201 and DELETE 204, and reads see them at once" {
  c=$(fresh_customer)
  post_json "{\"customerid\": $c, \"netamount\": 3, \"tax\": 0.3}"
  assert_status 201
  id=$(jq -r .orderid <<<"$body")
  assert_eq "rows for customer $c" 1 "$(rows_of "$c")"
  req GET "/orders/count?customerid=$c"
  assert_count_is 1
  assert_cache BYPASS
  req DELETE "/orders/$id"
  assert_status 204
  req GET "/orders/count?customerid=$c"
  assert_count_is 0
  assert_cache BYPASS
}

@test "redis down: bad requests still get their 4xx JSON errors" {
  req GET "/orders/count?foo=1"
  assert_error_json 400
  post_json '{"customerid": 1, "netamount": -1, "tax": 0}'
  assert_error_json 422
}

@test "redis back via ./deploy.sh: within seconds reads are MISS, then HIT on every worker; /healthz ok" {
  c=$(fresh_customer)
  deploy_sh || {
    show_deploy_log
    flunk "./deploy.sh (to start Redis again) failed"
  }
  run rcli PING
  assert_eq "redis-cli PING after ./deploy.sh" PONG "$output"

  # first answer that is not BYPASS: must be a MISS (Redis restarted empty)
  seen=''
  for i in $(seq 1 32); do # ~8 s
    req GET "/orders/count?customerid=$c"
    assert_count_is 0
    seen+="$(header X-Cache) "
    [[ $(header X-Cache) != BYPASS ]] && break
    sleep 0.25
  done
  [[ $(header X-Cache) == MISS ]] || flunk "expected BYPASS... then MISS after Redis came back, saw: $seen"
  # The writes above were made while Redis was down, so the invalidator owes
  # a full invalidation, and pays it within about a second of Redis's
  # return: a fill made just before goes with it. Soon a read's answer stays.
  key=$(ckey "count:customerid=$c")
  # One GET per look: a second GET to assert on could come after that
  # owed invalidation and find nothing, though the first found the value.
  stored=''
  for i in $(seq 1 32); do # ~8 s
    stored=$(rcli GET "$key")
    [[ $stored == "$body" ]] && break
    sleep 0.25
    req GET "/orders/count?customerid=$c"
    assert_count_is 0
  done
  assert_eq "value stored under $key" "$body" "$stored"

  # then every worker must find the entry: 6 reads at once (so that they
  # reach several workers, not the one nginx keeps a connection to), all
  # HITs, within ~5 s
  seen=''
  for i in $(seq 1 20); do
    par_get "/orders/count?customerid=$c" 6
    seen+="($par_seen) "
    [[ $par_seen == "200/HIT 200/HIT 200/HIT 200/HIT 200/HIT 200/HIT " ]] && break
    sleep 0.25
  done
  [[ $par_seen == "200/HIT 200/HIT 200/HIT 200/HIT 200/HIT 200/HIT " ]] ||
    flunk "expected 6 HITs at once once Redis was back, saw: $seen"

  req GET /healthz
  assert_status 200
  assert_json '.redis == "ok" and .postgres == "ok"'
}

@test "redis restarted while idle: no worker answers BYPASS once it is back (a dead connection is replaced at once)" {
  rcli PING >/dev/null || flunk "Redis is not back (the previous test restores it)"
  # Warm every worker's connection, then restart Redis with no request
  # in between: each worker holds a connection Redis has closed. (Reads
  # at once: one after another they would all reach one worker.)
  for i in 1 2 3; do par_get /orders/count $((WORKERS * 3)); done
  pid=$(pid_of redis)
  kill "$pid"
  wait_for 10 redis_gone || flunk "redis ($pid) did not stop"
  deploy_sh || flunk "./deploy.sh did not restart Redis" "$(cat "$deploy_log")"
  rcli PING >/dev/null || flunk "Redis did not come back"
  sleep 1.2 # past any worker's pause after a failure, had there been one
  for i in 1 2 3; do
    par_get /orders/count $((WORKERS * 3))
    [[ -n $par_seen ]] && ! tr ' ' '\n' <<<"$par_seen" | grep -qvE '^(200/(HIT|MISS))?$' ||
      flunk "reads after the restart (round $i), STATUS/X-Cache: $par_seen: a worker answered without Redis"
  done
}
