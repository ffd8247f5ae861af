#!/usr/bin/env bats
# Several machines, on this one: two worker hosts (./deploy.sh worker, each
# its own STATE_DIR, pool on a TCP port) against the suite's Postgres and
# Redis, and an edge (./deploy.sh edge, nginx alone) in front of them.
# What the edge must do: spread requests, route around a worker host that
# is gone, resend only what is safe to resend; what a worker host must do:
# take requests from its edges alone.

load helpers
source "$REPO/tests/lib/ports.bash"

# role_sh DIR ARGS...: ./deploy.sh for the host whose STATE_DIR is DIR
role_sh() {
  local dir=$1
  shift
  STATE_DIR=$dir deploy_sh "$@"
}

# a worker host: WORKER_LISTEN 127.0.0.1:PORT, against the suite's servers
start_worker_host() {
  local dir=$1 port=$2 edges=${3:-127.0.0.1}
  WORKER_LISTEN=127.0.0.1:$port EDGE_ADDRS=$edges WORKERS=2 ORDERS_TEST_HOOKS=1 \
    DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL CACHE_TTL=$CACHE_TTL CACHE_PREFIX=$CACHE_PREFIX \
    role_sh "$dir" worker
}

setup_file() {
  ROLES=$(mktemp -d /tmp/orders-roles.XXXXXX)
  export ROLES
  W1_PORT=$(pick_port) && W2_PORT=$((W1_PORT + 1)) && EDGE_PORT=$((W1_PORT + 2)) ||
    flunk "no free loopback ports"
  export W1_PORT W2_PORT EDGE_PORT
  export W1=$ROLES/w1 W2=$ROLES/w2 EDGE=$ROLES/edge W3=$ROLES/w3
  start_worker_host "$W1" "$W1_PORT" || { show_deploy_log; flunk "./deploy.sh worker (w1) failed"; }
  start_worker_host "$W2" "$W2_PORT" || { show_deploy_log; flunk "./deploy.sh worker (w2) failed"; }
  PORT=$EDGE_PORT WORKER_HOSTS="127.0.0.1:$W1_PORT,127.0.0.1:$W2_PORT" UPSTREAM_FAIL_TIMEOUT=3 \
    role_sh "$EDGE" edge || { show_deploy_log; flunk "./deploy.sh edge failed"; }
  export EDGE_BASE=http://127.0.0.1:$EDGE_PORT
}

teardown_file() {
  other_stack_stop "$EDGE"
  other_stack_stop "$W1"
  other_stack_stop "$W2"
  other_stack_stop "$W3"
  rm -rf -- "$ROLES"
}

# edge_get PATH: the status code of a GET through the edge
edge_get() { curl -s -o /dev/null -w '%{http_code}' --max-time 15 "$EDGE_BASE$1"; }

# served_by N: how many of the last N requests in the edge's access log went
# to each worker host ("COUNT ADDR" lines)
served_by() { tail -n "$1" "$EDGE/log/access.log" | grep -o 'ua=[^ ]*' | sort | uniq -c; }

# both_in_rotation: wait (10 s at most) until the edge sends requests to
# both worker hosts again: one that failed is left alone for fail_timeout
# (3 s here) even once it is back.
both_in_rotation() {
  local i out
  for ((i = 0; i < 20; i++)); do
    edge_get /orders/1 >/dev/null
    edge_get /orders/2 >/dev/null
    out=$(served_by 2)
    [[ $out == *":$W1_PORT"* && $out == *":$W2_PORT"* ]] && return 0
    sleep 0.5
  done
  flunk "the edge did not send to both worker hosts within 10 s:" "$out"
}

# last_upstreams: the worker hosts the edge's last request went to, in order
# ("127.0.0.1:P1, 127.0.0.1:P2" when it was sent twice)
last_upstreams() { tail -n 1 "$EDGE/log/access.log" | sed -n 's/.* ua=\(.*\) uct=.*/\1/p'; }

# fcgi_healthz HOST PORT: a FastCGI GET /healthz sent by hand (BEGIN_REQUEST,
# PARAMS, empty PARAMS, empty STDIN); prints what came back.
fcgi_healthz() {
  (
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    # BEGIN_REQUEST id 1, responder; PARAMS: 14+3 and 11+8 bytes of pairs
    printf '\x01\x01\x00\x01\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00' >&3
    printf '\x01\x04\x00\x01\x00\x28\x00\x00' >&3
    printf '\x0e\x03REQUEST_METHODGET\x0b\x08REQUEST_URI/healthz' >&3
    printf '\x01\x04\x00\x01\x00\x00\x00\x00\x01\x05\x00\x01\x00\x00\x00\x00' >&3
    timeout 5 cat <&3 | tr -d '\0'
  ) 2>/dev/null
}

@test "roles: each host's status says what it runs; a worker host without the shared servers, or an edge without worker hosts, is refused" {
  role_sh "$W1" status || { show_deploy_log; flunk "./deploy.sh status on w1 exited non-zero"; }
  out=$(cat "$deploy_log")
  [[ $out != *nginx* ]] || flunk "a worker host lists nginx:" "$out"
  assert_eq "w1's worker lines" 2 "$(grep -c '^worker [0-9]* running$' <<<"$out")"
  assert_match "w1's postgres line" '^postgres - external$' "$(grep '^postgres' <<<"$out")"
  grep -q '^invalidator [0-9]* running$' <<<"$out" || flunk "no invalidator on w1:" "$out"
  role_sh "$EDGE" status || { show_deploy_log; flunk "./deploy.sh status on the edge exited non-zero"; }
  assert_match "the edge's status" '^nginx [0-9]+ running$' "$(cat "$deploy_log")"

  d=$ROLES/refused
  ! DATABASE_URL='' REDIS_URL='' role_sh "$d" worker || flunk "./deploy.sh worker ran without DATABASE_URL/REDIS_URL"
  grep -q 'DATABASE_URL and REDIS_URL must name' "$deploy_log" || { show_deploy_log; flunk "no reason given"; }
  rm -rf -- "$d"
  ! WORKER_HOSTS='' role_sh "$d" edge || flunk "./deploy.sh edge ran without WORKER_HOSTS"
  grep -q 'WORKER_HOSTS must name' "$deploy_log" || { show_deploy_log; flunk "no reason given"; }
  ! WORKER_HOSTS='10.0.0.1:9000;rm' role_sh "$d" edge || flunk "./deploy.sh edge took a malformed WORKER_HOSTS"
  # a STATE_DIR keeps its role
  ! role_sh "$W1" edge || flunk "the worker host's STATE_DIR was redeployed as an edge"
  grep -q 'runs the worker role' "$deploy_log" || { show_deploy_log; flunk "no reason given"; }
  rm -rf -- "$d"
}

@test "edge: requests spread over both worker hosts (least_conn), at least 30% each, all answered" {
  pids=()
  for ((i = 0; i < 40; i++)); do
    curl -s -o /dev/null --max-time 10 "$EDGE_BASE/orders/$((i % 9 + 1))" &
    pids+=($!)
    if ((${#pids[@]} == 8)); then
      wait "${pids[@]}"
      pids=()
    fi
  done
  out=$(served_by 40)
  for p in "$W1_PORT" "$W2_PORT"; do
    n=$(awk -v a="ua=127.0.0.1:$p" '$2 == a { print $1 }' <<<"$out")
    ((${n:-0} >= 12)) || flunk "worker host :$p served ${n:-0} of 40 requests (at least 12 wanted)" "$out"
  done
  assert_eq "non-200 answers in the last 40" 0 "$(tail -n 40 "$EDGE/log/access.log" | grep -vc '" 200 ')"
}

@test "a worker host takes FastCGI requests from EDGE_ADDRS alone" {
  out=$(fcgi_healthz 127.0.0.1 "$W1_PORT") || true
  [[ $out == *'"postgres"'* ]] || flunk "w1 (EDGE_ADDRS 127.0.0.1) did not answer a FastCGI request from 127.0.0.1:" "$out"
  port=$((EDGE_PORT + 1))
  port_in_use "$port" && skip "port $port is taken"
  start_worker_host "$W3" "$port" 127.0.0.9 || { show_deploy_log; flunk "./deploy.sh worker (w3) failed"; }
  # (a refused peer is closed on at once: our writes may meet SIGPIPE)
  out=$(fcgi_healthz 127.0.0.1 "$port") || true
  [[ -z $out ]] || flunk "w3 (EDGE_ADDRS 127.0.0.9) answered a request from 127.0.0.1:" "$out"
  other_stack_stop "$W3"
}

@test "a worker host stopped: every GET and POST through the edge still answered by the other" {
  before=$(rows_total)
  role_sh "$W1" stop || { show_deploy_log; flunk "./deploy.sh stop (w1) failed"; }
  bad=0
  for ((i = 0; i < 20; i++)); do
    c=$(edge_get "/orders/$((i + 1))")
    [[ $c == 200 ]] || bad=$((bad + 1))
  done
  assert_eq "GETs not answered 200 with w1 down" 0 "$bad"
  c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 -X POST -H 'Content-Type: application/json' \
    --data-binary '{"customerid": 900901, "netamount": 1, "tax": 0}' "$EDGE_BASE/orders")
  # refused before anything was sent: safe to send to the other host
  assert_eq "POST with w1 down" 201 "$c"
  assert_eq "rows after one POST" $((before + 1)) "$(rows_total)"
  start_worker_host "$W1" "$W1_PORT" || { show_deploy_log; flunk "./deploy.sh worker (w1) did not come back"; }
  both_in_rotation
}

@test "a worker host dies mid-POST: a keyed POST is resent to the other (one row, replayed), an unkeyed one is not (503, one row)" {
  both_in_rotation
  cid=$(fresh_customer)
  key=roles-$(date +%s%N)
  out=$(curl -s -D - --max-time 20 -X POST -H 'Content-Type: application/json' \
    -H "Idempotency-Key: $key" -H 'X-Test-Die-After-Commit: 1' \
    --data-binary "{\"customerid\": $cid, \"netamount\": 5, \"tax\": 1}" "$EDGE_BASE/orders" | tr -d '\r')
  assert_match "keyed POST whose first worker died after its commit" '^HTTP/1.1 201' "$out"
  grep -qi '^Idempotent-Replayed: true' <<<"$out" || flunk "the answer is not the replay from the other host:" "$out"
  assert_eq "rows with that key" 1 "$(psqlc "SELECT count(*) FROM orders WHERE idempotency_key = '$key'")"
  ua=$(last_upstreams)
  [[ $ua == *", "* ]] || flunk "the edge did not try a second worker host: $ua"

  cid=$(fresh_customer)
  c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -X POST -H 'Content-Type: application/json' \
    -H 'X-Test-Die-After-Commit: 1' \
    --data-binary "{\"customerid\": $cid, \"netamount\": 5, \"tax\": 1}" "$EDGE_BASE/orders")
  assert_eq "unkeyed POST whose worker died after its commit" 503 "$c"
  assert_eq "rows of that customer (committed once, never resent)" 1 "$(rows_of "$cid")"
  ua=$(last_upstreams)
  [[ $ua != *", "* ]] || flunk "the edge resent an unkeyed POST: $ua"
}

@test "./deploy.sh scale on a worker host: GETs through the edge keep answering 200 meanwhile" {
  both_in_rotation
  (
    bad=0
    for ((i = 0; i < 200; i++)); do
      c=$(edge_get "/orders/$((i % 9 + 1))")
      [[ $c == 200 ]] || bad=$((bad + 1))
      [[ -e $ROLES/stop-load ]] && break
    done
    echo "$bad" >"$ROLES/load-bad"
  ) &
  load=$!
  role_sh "$W2" scale 1 || { show_deploy_log; flunk "./deploy.sh scale 1 on w2 failed"; }
  touch "$ROLES/stop-load"
  wait "$load"
  assert_eq "GETs not answered 200 during the scale" 0 "$(cat "$ROLES/load-bad")"
  role_sh "$W2" status || { show_deploy_log; flunk "w2 not running after scale"; }
  assert_eq "w2's workers after scale 1" 1 "$(grep -c '^worker [0-9]* running$' "$deploy_log")"
}
