#!/usr/bin/env bats
# REDIS_URL=rediss://: a Redis that speaks TLS only (Debian's redis-server,
# tls-port and port 0, a self-signed certificate), reached through the
# stunnel that deploy.sh starts and supervises (Debian 12's hiredis has no
# TLS). The stack: the suite's Postgres (DATABASE_URL), the TLS Redis, and
# deploy.sh's pool, invalidator, tunnel and nginx in a STATE_DIR of its own.

load helpers
source "$REPO/tests/lib/ports.bash"

tls_sh() {
  local dir=$1
  shift
  STATE_DIR=$dir deploy_sh "$@"
}

# self_signed NAME: NAME.crt and NAME.key in $TLS, for IP 127.0.0.1
self_signed() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=orders test $1" \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$TLS/$1.key" -out "$TLS/$1.crt" 2>/dev/null
}

# tcli ARGS...: redis-cli to the TLS Redis, over TLS
tcli() {
  timeout 10 redis-cli --tls --cacert "$TLS/server.crt" -h 127.0.0.1 -p "$TLS_PORT" \
    --user default --pass "$TLS_PW" --no-auth-warning "$@" </dev/null
}

setup_file() {
  TLS=$(mktemp -d /tmp/orders-tls.XXXXXX)
  export TLS
  self_signed server || flunk "openssl could not make a certificate"
  self_signed other || flunk "openssl could not make a certificate"
  chmod 0644 "$TLS"/*.key # redis-server below runs as this user; tests only
  TLS_PORT=$(pick_port) && APP_PORT=$((TLS_PORT + 1)) && APP2_PORT=$((TLS_PORT + 2)) ||
    flunk "no free loopback ports"
  TLS_PW=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
  export TLS_PORT APP_PORT APP2_PORT TLS_PW
  # TLS only: no plain-text port at all
  redis-server --port 0 --tls-port "$TLS_PORT" --bind 127.0.0.1 \
    --tls-cert-file "$TLS/server.crt" --tls-key-file "$TLS/server.key" \
    --tls-ca-cert-file "$TLS/server.crt" --tls-auth-clients no \
    --requirepass "$TLS_PW" --save '' --appendonly no --dir "$TLS" \
    --daemonize yes --pidfile "$TLS/redis.pid" --logfile "$TLS/redis.log" </dev/null 9>&- 3>&- ||
    flunk "redis-server with TLS did not start"
  for ((i = 0; i < 40; i++)); do
    [[ $(tcli PING 2>/dev/null) == PONG ]] && break
    sleep 0.25
  done
  [[ $(tcli PING) == PONG ]] || flunk "the TLS Redis does not answer over TLS" "$(cat "$TLS/redis.log")"
  export A=$TLS/a B=$TLS/b
  export TLS_URL="rediss://default:$TLS_PW@127.0.0.1:$TLS_PORT/0"
  PORT=$APP_PORT REDIS_URL=$TLS_URL REDIS_TLS_CA=$TLS/server.crt DATABASE_URL=$DATABASE_URL \
    CACHE_TTL=$CACHE_TTL CACHE_PREFIX=$CACHE_PREFIX WORKERS=1 tls_sh "$A" ||
    { show_deploy_log; flunk "./deploy.sh with a rediss:// REDIS_URL failed"; }
}

teardown_file() {
  other_stack_stop "$A"
  other_stack_stop "$B"
  [[ -f $TLS/redis.pid ]] && kill "$(cat "$TLS/redis.pid")" 2>/dev/null
  sleep 0.2
  rm -rf -- "$TLS"
}

# get PATH [BASE]: curl through that stack; sets code and xcache
get() {
  local out
  out=$(curl -s -D - -o /dev/null --max-time 10 "${2:-http://127.0.0.1:$APP_PORT}$1" | tr -d '\r')
  code=$(sed -n '1s/^HTTP\/1.1 \([0-9]*\).*/\1/p' <<<"$out")
  xcache=$(sed -n 's/^X-Cache: //ip' <<<"$out")
}

@test "rediss://: through deploy.sh's TLS tunnel the reads miss, then hit, and the entry is in the TLS-only Redis" {
  tls_sh "$A" status || { show_deploy_log; flunk "./deploy.sh status exited non-zero"; }
  grep -q '^tunnel [0-9]* running$' "$deploy_log" || { show_deploy_log; flunk "no tunnel line in status"; }
  cid=$(fresh_customer)
  tcli DEL "$(ckey "count:customerid=$cid")" >/dev/null
  get "/orders/count?customerid=$cid"
  assert_eq "first read" "200 MISS" "$code $xcache"
  get "/orders/count?customerid=$cid"
  assert_eq "second read" "200 HIT" "$code $xcache"
  assert_match "the entry, read over TLS" '"count":' "$(tcli GET "$(ckey "count:customerid=$cid")")"
  ttl=$(tcli TTL "$(ckey "count:customerid=$cid")")
  ((ttl > 0 && ttl <= CACHE_TTL)) || flunk "TTL of the entry: $ttl"
  # and the env file keeps the user's rediss:// URL, not the tunnel's
  grep -q "REDIS_URL='rediss://" "$A/env" || flunk "the env file lost the rediss:// URL:" "$(grep REDIS_URL "$A/env")"
}

@test "rediss://: a POST invalidates through the tunnel: the next read counts the new order" {
  cid=$(fresh_customer)
  get "/orders/count?customerid=$cid"
  get "/orders/count?customerid=$cid"
  assert_eq "cached" "200 HIT" "$code $xcache"
  c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H 'Content-Type: application/json' \
    --data-binary "{\"customerid\": $cid, \"netamount\": 2, \"tax\": 0}" "http://127.0.0.1:$APP_PORT/orders")
  assert_eq "POST" 201 "$c"
  body=$(curl -s --max-time 10 "http://127.0.0.1:$APP_PORT/orders/count?customerid=$cid")
  assert_match "count after the POST" '"count": ?1[,}]' "$body"
}

@test "rediss://: the tunnel is supervised: killed, it is back within seconds and reads hit again" {
  tls_sh "$A" status
  pid=$(awk '$1 == "tunnel" { print $2 }' "$deploy_log")
  [[ $pid =~ ^[0-9]+$ ]] || { show_deploy_log; flunk "no tunnel pid"; }
  kill -KILL "$pid"
  back() {
    tls_sh "$A" status || return 1
    npid=$(awk '$1 == "tunnel" { print $2 }' "$deploy_log")
    [[ $npid =~ ^[0-9]+$ && $npid != "$pid" ]]
  }
  wait_for 10 back || { show_deploy_log; flunk "the tunnel did not come back"; }
  hit() {
    get /orders/7
    get /orders/7
    [[ "$code $xcache" == "200 HIT" ]]
  }
  wait_for 10 hit || flunk "no hit after the tunnel came back: $code $xcache"
}

@test "rediss://: a server certificate that does not chain to REDIS_TLS_CA is refused: reads answer BYPASS from Postgres" {
  PORT=$APP2_PORT REDIS_URL=$TLS_URL REDIS_TLS_CA=$TLS/other.crt DATABASE_URL=$DATABASE_URL \
    CACHE_TTL=$CACHE_TTL CACHE_PREFIX=$CACHE_PREFIX WORKERS=1 tls_sh "$B" ||
    { show_deploy_log; flunk "./deploy.sh (B) failed"; }
  get /orders/3 "http://127.0.0.1:$APP2_PORT"
  assert_eq "a read with the Redis certificate refused" "200 BYPASS" "$code $xcache"
  grep -qi 'certificate verify failed\|CERT' "$B/log/tunnel.log" ||
    flunk "the tunnel's log does not say why:" "$(tail -n 5 "$B/log/tunnel.log")"
  other_stack_stop "$B"
}
