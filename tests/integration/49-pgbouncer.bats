#!/usr/bin/env bats
# PgBouncer (Debian's) in transaction mode in front of the suite's Postgres,
# with one server connection for all the workers: DATABASE_POOL_MODE=
# transaction keeps the workers off named prepared statements and session
# settings, which would land on each other's sessions there. The
# invalidator LISTENs, which needs a session of its own: it connects
# straight to Postgres (DATABASE_DIRECT_URL).

load helpers
source "$REPO/tests/lib/ports.bash"

pb_sh() { STATE_DIR=$PB/stack deploy_sh "$@"; }

setup_file() {
  command -v pgbouncer >/dev/null || [[ -x /usr/sbin/pgbouncer ]] || skip "pgbouncer is not installed"
  PB=$(mktemp -d /tmp/orders-pgb.XXXXXX)
  export PB
  chmod 0755 "$PB"
  PB_PORT=$(pick_port) && APP_PORT=$((PB_PORT + 1)) || flunk "no free loopback ports"
  export PB_PORT APP_PORT
  # postgresql://orders_app:PASSWORD@HOST:PORT/orders?...
  [[ $DATABASE_URL =~ ^postgresql://([^:]+):([^@]+)@([^:/]+):([0-9]+)/ ]] ||
    flunk "cannot read user, password, host and port from DATABASE_URL"
  local user=${BASH_REMATCH[1]} pw=${BASH_REMATCH[2]} host=${BASH_REMATCH[3]} port=${BASH_REMATCH[4]}
  printf '"%s" "%s"\n' "$user" "$pw" >"$PB/userlist.txt"
  cat >"$PB/pgbouncer.ini" <<-EOF
	[databases]
	orders = host=$host port=$port dbname=orders
	[pgbouncer]
	listen_addr = 127.0.0.1
	listen_port = $PB_PORT
	unix_socket_dir =
	auth_type = scram-sha-256
	auth_file = $PB/userlist.txt
	pool_mode = transaction
	default_pool_size = 1
	max_client_conn = 50
	server_connect_timeout = 5
	pidfile = $PB/pgbouncer.pid
	logfile = $PB/pgbouncer.log
	EOF
  chown -R postgres:postgres "$PB"
  chmod 0600 "$PB/userlist.txt"
  # PgBouncer will not run as root
  setpriv --reuid=postgres --regid=postgres --init-groups -- \
    "$(command -v pgbouncer || echo /usr/sbin/pgbouncer)" -d "$PB/pgbouncer.ini" </dev/null 3>&- ||
    flunk "pgbouncer did not start" "$(cat "$PB/pgbouncer.log" 2>/dev/null)"
  export PB_URL="postgresql://$user:$pw@127.0.0.1:$PB_PORT/orders?sslmode=disable&gssencmode=disable"
  for ((i = 0; i < 40; i++)); do
    psql "$PB_URL" -X -tAc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.25
  done
  PORT=$APP_PORT DATABASE_URL=$PB_URL DATABASE_POOL_MODE=transaction DATABASE_DIRECT_URL=$DATABASE_URL \
    REDIS_URL=$REDIS_URL CACHE_TTL=$CACHE_TTL CACHE_PREFIX=${CACHE_PREFIX}pgb: WORKERS=3 pb_sh ||
    flunk "./deploy.sh through PgBouncer failed" "$(tail -n 30 "$deploy_log")"
}

teardown_file() {
  if [[ -d ${PB-} ]]; then
    other_stack_stop "$PB/stack"
    [[ -f $PB/pgbouncer.pid ]] && kill "$(cat "$PB/pgbouncer.pid")" 2>/dev/null
    sleep 0.3
    rm -rf -- "$PB"
  fi
}

pb_get() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$APP_PORT$1"; }

@test "PgBouncer, transaction mode, one server connection: 3 workers read, write and count, with no statement error" {
  cid=$(fresh_customer)
  bad=0
  for ((i = 0; i < 30; i++)); do
    pids=()
    for ((j = 0; j < 3; j++)); do
      # distinct misses, at once: the three workers share the one server
      # connection in turns
      curl -s -o /dev/null --max-time 10 "http://127.0.0.1:$APP_PORT/orders/count?customerid=$((cid + i * 3 + j))&from=2004-0$((j + 1))-01" &
      pids+=($!)
    done
    wait "${pids[@]}"
    c=$(pb_get "/orders/$((i + 1))")
    [[ $c == 200 ]] || bad=$((bad + 1))
  done
  assert_eq "GETs through PgBouncer not answered 200" 0 "$bad"
  for ((i = 0; i < 5; i++)); do
    c=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H 'Content-Type: application/json' \
      --data-binary "{\"customerid\": $cid, \"netamount\": 1, \"tax\": 0}" "http://127.0.0.1:$APP_PORT/orders")
    assert_eq "POST through PgBouncer" 201 "$c"
  done
  body=$(curl -s --max-time 10 "http://127.0.0.1:$APP_PORT/orders/count?customerid=$cid")
  assert_match "count through PgBouncer after 5 POSTs" '"count": ?5[,}]' "$body"
  errors=$(grep -c 'statement failed\|prepared statement' "$PB/stack/log/workers.log" || true)
  assert_eq "statement errors in the workers' log" 0 "$errors"
}

@test "PgBouncer: the invalidator LISTENs on Postgres itself: a write made with psql is dropped from the cache" {
  cid=$(fresh_customer)
  c=$(pb_get "/orders/count?customerid=$cid")
  assert_eq "first count" 200 "$c"
  body=$(curl -s --max-time 10 "http://127.0.0.1:$APP_PORT/orders/count?customerid=$cid")
  assert_match "count before" '"count": ?0[,}]' "$body"
  psql_super "INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES (current_date, $cid, 1, 0, 1)" >/dev/null
  # (its keys are under a prefix of their own: the suite's invalidator
  # does not know them)
  [[ $(rcli EXISTS "${CACHE_PREFIX}pgb:count:customerid=$cid") == 1 ]] || flunk "the count was not cached"
  gone() { [[ $(rcli EXISTS "${CACHE_PREFIX}pgb:count:customerid=$cid") == 0 ]]; }
  wait_for 5 gone || flunk "the invalidator did not drop the entry of a write made with psql"
  grep -q 'listening on orders_changed' "$PB/stack/log/invalidator.log" ||
    flunk "the invalidator is not listening:" "$(tail -n 5 "$PB/stack/log/invalidator.log")"
}
