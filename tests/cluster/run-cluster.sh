#!/usr/bin/env bash
# tests/cluster/run-cluster.sh (make test-cluster): the service on several
# machines, made of network namespaces on this one, under load, through
# failures.
#
# The machines (each a namespace with one veth into a bridge that lives in a
# namespace of its own, addresses 10.77.0.0/24 inside them only; nothing is
# added to this machine's own network):
#
#   edge  .10   ./deploy.sh edge over w1 and w2
#   w1    .11   ./deploy.sh worker, and a Redis sentinel
#   w2    .12   ./deploy.sh worker, and a Redis sentinel
#   pg1   .21   Postgres primary (TLS only, to the service: sslmode=verify-full)
#   pg2   .22   Postgres streaming replica (pg_basebackup -R), TLS likewise
#   r1    .31   Redis master
#   r2    .32   Redis replica, and a Redis sentinel
#   cl    .100  the clients: wrk's read load, and tests/cluster/checker.sh
#
# The phases, with the read load and the checker running all through:
#
#   steady     both worker hosts serve at least 30% of the requests each
#   cut        w1's link goes down (on the bridge): only requests in flight
#              may fail, and the edge routes around w1 within fail_timeout
#   redis      the Redis master is SIGKILLed: reads keep answering, and the
#              worker hosts hit again on the new master within 10 s
#   replay     replay is paused on the Postgres replica while writes go on
#   (all)      the checker saw no stale read and lost no acknowledged
#              write; every answer was 200, 201, 404 or 503 (but for
#              the cut's requests in flight, which its own check counts)
#
# Prints TAP lines, the figures each phase measured, and as its last line
# "N passed, N failed". Always removes its namespaces, processes and
# directories. Needs root (ip netns). CLUSTER_PHASE_SECONDS (10) sets the
# length of each phase.

set -u
set -o pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$REPO" || exit 2

PHASE=${CLUSTER_PHASE_SECONDS:-10}
NET=10.77.0
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
PW_APP=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
PW_REPL=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
PW_REDIS=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
ID=oc$$
HOSTS=(edge:10 w1:11 w2:12 pg1:21 pg2:22 r1:31 r2:32 cl:100)
PASSED=0 FAILED=0 N=0

say() { printf '# [%3ds] %s\n' "$SECONDS" "$*"; }
ok() { N=$((N + 1)) PASSED=$((PASSED + 1)); printf 'ok %d - %s\n' "$N" "$1"; }
notok() {
  N=$((N + 1)) FAILED=$((FAILED + 1))
  printf 'not ok %d - %s\n' "$N" "$1"
  shift
  local l
  for l; do printf '#   %s\n' "$l"; done
}
# check DESC CONDITION-CMD... [-- DETAIL...]
check() {
  local desc=$1
  shift
  if "$@"; then ok "$desc"; else notok "$desc" "${DETAIL[@]}"; fi
  DETAIL=()
}
DETAIL=()

fail_early() {
  notok "$1" "${@:2}"
  finish
}

(($(id -u) == 0)) || { echo "run-cluster.sh: needs root (ip netns)"; exit 2; }
for c in ip wrk curl redis-server redis-cli psql; do
  command -v "$c" >/dev/null || { echo "run-cluster.sh: $c is missing: ./deploy.sh deps --test"; exit 2; }
done
[[ -x $PGBIN/initdb ]] || { echo "run-cluster.sh: no Postgres server binaries"; exit 2; }

T=$(mktemp -d /tmp/orders-cluster.XXXXXX) || exit 2
chmod 0755 "$T"

ns() { printf '%s-%s' "$ID" "$1"; }
in_ns() {
  local h=$1
  shift
  ip netns exec "$(ns "$h")" "$@"
}
addr() {
  local e
  for e in "${HOSTS[@]}"; do [[ ${e%%:*} == "$1" ]] && { printf '%s.%s' "$NET" "${e#*:}"; return; }; done
}

# ---------------------------------------------------------------- teardown

CLEANED=''
cleanup() {
  [[ -n $CLEANED ]] && return
  CLEANED=1
  local h d run pid
  touch "$T/checker/stop" 2>/dev/null
  for h in edge w1 w2; do
    d=$T/$h
    [[ -d $d ]] || continue
    run=$(head -n 1 "$d/run.path" 2>/dev/null)
    in_ns "$h" env STATE_DIR="$d" timeout 60 ./deploy.sh stop >>"$T/stop.log" 2>&1 </dev/null
    [[ $run == /run/orders-* ]] && rm -rf -- "$run"
  done
  for h in pg1 pg2; do
    [[ -d $T/$h/data ]] && setpriv --reuid=postgres --regid=postgres --init-groups -- \
      "$PGBIN/pg_ctl" -D "$T/$h/data" -m immediate -w -t 20 stop >/dev/null 2>&1
  done
  # whatever still runs in a namespace of ours
  for h in "${HOSTS[@]}" sw:0; do
    h=${h%%:*}
    for pid in $(ip netns pids "$(ns "$h")" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
  sleep 0.3
  for h in "${HOSTS[@]}" sw:0; do ip netns del "$(ns "${h%%:*}")" 2>/dev/null; done
  rm -rf -- "$T"
}
finish() {
  trap - EXIT
  cleanup
  printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
  ((FAILED == 0 && PASSED > 0)) && exit 0
  exit 1
}
trap 'finish' EXIT
trap 'exit 1' INT TERM

# ---------------------------------------------------------------- network

net_up() {
  local e h a
  ip netns add "$(ns sw)" || return 1
  ip -n "$(ns sw)" link add br0 type bridge || return 1
  ip -n "$(ns sw)" link set br0 up
  for e in "${HOSTS[@]}"; do
    h=${e%%:*} a=$NET.${e#*:}
    ip netns add "$(ns "$h")" || return 1
    ip -n "$(ns "$h")" link set lo up
    ip -n "$(ns sw)" link add "p-$h" type veth peer name eth0 netns "$(ns "$h")" || return 1
    ip -n "$(ns sw)" link set "p-$h" master br0 up
    ip -n "$(ns "$h")" addr add "$a/24" dev eth0
    ip -n "$(ns "$h")" link set eth0 up
  done
}

# link HOST up|down: that machine's cable, at the switch
link() { ip -n "$(ns sw)" link set "p-$1" "$2"; }

# ---------------------------------------------------------------- Postgres

as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

# Postgres speaks TLS only to the service (hostssl), with a certificate
# for both servers' addresses from a CA of the test's own: the workers
# connect with sslmode=verify-full, as to a managed Postgres.
pg_tls() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=orders cluster test CA" \
    -keyout "$T/ca.key" -out "$T/ca.crt" 2>/dev/null &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=orders cluster postgres" \
      -keyout "$T/pg.key" -out "$T/pg.csr" 2>/dev/null &&
    openssl x509 -req -in "$T/pg.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
      -extfile <(printf 'subjectAltName=IP:%s,IP:%s\n' "$(addr pg1)" "$(addr pg2)") \
      -out "$T/pg.crt" 2>/dev/null || return 1
  chmod 0644 "$T/ca.crt"
}

pg_up() {
  local d=$T/pg1 r=$T/pg2 i
  mkdir -p "$d" "$r"
  chown postgres:postgres "$d" "$r"
  pg_tls || return 1
  as_pg "$PGBIN/initdb" -D "$d/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C >"$T/initdb.log" 2>&1 || return 1
  install -o postgres -g postgres -m 0600 "$T/pg.key" "$d/data/server.key"
  install -o postgres -g postgres -m 0644 "$T/pg.crt" "$d/data/server.crt"
  as_pg sh -c 'cat >>"$1"' sh "$d/data/postgresql.conf" <<-EOF
	listen_addresses = '$(addr pg1)'
	port = 5432
	unix_socket_directories = '$d'
	wal_level = replica
	max_wal_senders = 4
	hot_standby = on
	ssl = on
	EOF
  as_pg sh -c 'cat >"$1"' sh "$d/data/pg_hba.conf" <<-EOF
	local     all         all                    trust
	hostssl   orders      orders_app $NET.0/24   scram-sha-256
	hostssl   replication repl       $NET.0/24   scram-sha-256
	EOF
  in_ns pg1 setpriv --reuid=postgres --regid=postgres --init-groups -- \
    env HOME="$d" "$PGBIN/pg_ctl" -D "$d/data" -l "$d/log" -w -t 30 start >/dev/null || return 1
  as_pg psql -X -q -h "$d" -d postgres -v ON_ERROR_STOP=1 \
    -c "CREATE ROLE repl LOGIN REPLICATION PASSWORD '$PW_REPL'" -c 'CREATE DATABASE orders' || return 1
  PGOPTIONS="-c client_min_messages=warning" as_pg psql -X -q -h "$d" -d orders -v ON_ERROR_STOP=1 -f - >/dev/null <<-EOF || return 1
	\\set app_password '$PW_APP'
	\\set rows 20000
	BEGIN;
	\\i '$REPO/sql/schema.sql'
	\\i '$REPO/sql/roles.sql'
	\\i '$REPO/sql/data.sql'
	COMMIT;
	\\i '$REPO/sql/triggers.sql'
	VACUUM (ANALYZE) orders;
	EOF
  # the replica: a base backup over the network, then streaming
  in_ns pg2 setpriv --reuid=postgres --regid=postgres --init-groups -- \
    env HOME="$r" PGPASSWORD="$PW_REPL" "$PGBIN/pg_basebackup" -h "$(addr pg1)" -U repl -D "$r/data" -R -X stream -c fast \
    >"$T/basebackup.log" 2>&1 || return 1
  as_pg sed -i -e "s/^listen_addresses = .*/listen_addresses = '$(addr pg2)'/" \
    -e "s|^unix_socket_directories = .*|unix_socket_directories = '$r'|" "$r/data/postgresql.conf"
  in_ns pg2 setpriv --reuid=postgres --regid=postgres --init-groups -- \
    env HOME="$r" "$PGBIN/pg_ctl" -D "$r/data" -l "$r/log" -w -t 30 start >/dev/null || return 1
  for ((i = 0; i < 40; i++)); do
    # in recovery, and streaming from the primary (over TLS, as the
    # service's connections)
    [[ $(pg_replica "SELECT status FROM pg_stat_wal_receiver") == streaming ]] && return 0
    sleep 0.25
  done
  return 1
}
pg_primary() { as_pg psql -X -q -tA -h "$T/pg1" -d orders -c "$1"; }
pg_replica() { as_pg psql -X -q -tA -h "$T/pg2" -d orders -c "$1"; }

# ---------------------------------------------------------------- Redis

redis_up() {
  local h
  mkdir -p "$T/r1" "$T/r2" "$T/s-w1" "$T/s-w2" "$T/s-r2"
  in_ns r1 redis-server --bind "$(addr r1)" --port 6379 --requirepass "$PW_REDIS" --masterauth "$PW_REDIS" \
    --save '' --appendonly no --dir "$T/r1" --daemonize yes --pidfile "$T/r1/pid" --logfile "$T/r1/log" || return 1
  in_ns r2 redis-server --bind "$(addr r2)" --port 6379 --requirepass "$PW_REDIS" --masterauth "$PW_REDIS" \
    --replicaof "$(addr r1)" 6379 \
    --save '' --appendonly no --dir "$T/r2" --daemonize yes --pidfile "$T/r2/pid" --logfile "$T/r2/log" || return 1
  for h in w1 w2 r2; do
    cat >"$T/s-$h/sentinel.conf" <<-EOF
	bind $(addr "$h")
	port 26379
	dir $T/s-$h
	sentinel monitor orders $(addr r1) 6379 2
	sentinel auth-pass orders $PW_REDIS
	sentinel down-after-milliseconds orders 1000
	sentinel failover-timeout orders 5000
	sentinel parallel-syncs orders 1
	EOF
    in_ns "$h" redis-server "$T/s-$h/sentinel.conf" --sentinel --daemonize yes \
      --pidfile "$T/s-$h/pid" --logfile "$T/s-$h/log" || return 1
  done
  for ((i = 0; i < 40; i++)); do
    [[ $(rcli r2 INFO replication | tr -d '\r' | grep -c '^master_link_status:up') == 1 ]] && return 0
    sleep 0.25
  done
  return 1
}
rcli() {
  local h=$1
  shift
  in_ns "$h" timeout 5 redis-cli -h "$(addr "$h")" -p 6379 --user default --pass "$PW_REDIS" --no-auth-warning "$@"
}

# ---------------------------------------------------------------- the service

deploy() {
  local h=$1
  shift
  in_ns "$h" env STATE_DIR="$T/$h" "$@" timeout 180 ./deploy.sh "${DEPLOY_CMD[@]}" >"$T/deploy-$h.log" 2>&1 </dev/null
}

service_up() {
  local h
  for h in w1 w2; do
    DEPLOY_CMD=(worker)
    deploy "$h" WORKER_LISTEN="$(addr "$h"):9000" EDGE_ADDRS="$(addr edge)" WORKERS=2 \
      DATABASE_URL="postgresql://orders_app:$PW_APP@$(addr pg1):5432/orders?sslmode=verify-full&sslrootcert=$T/ca.crt" \
      DATABASE_REPLICA_URL="postgresql://orders_app:$PW_APP@$(addr pg2):5432/orders?sslmode=verify-full&sslrootcert=$T/ca.crt" \
      REDIS_URL="redis://default:$PW_REDIS@$(addr r1):6379/0" \
      REDIS_SENTINELS="$(addr w1):26379,$(addr w2):26379,$(addr r2):26379" REDIS_MASTER_NAME=orders \
      CACHE_TTL=60 || { tail -n 20 "$T/deploy-$h.log"; return 1; }
  done
  DEPLOY_CMD=(edge)
  deploy edge LISTEN_ADDR="$(addr edge)" PORT=8080 WORKER_HOSTS="$(addr w1):9000 $(addr w2):9000" \
    RATE_LIMIT_EXEMPT="$(addr cl)" || { tail -n 20 "$T/deploy-edge.log"; return 1; }
}

BASE=http://$(addr edge):8080

# ---------------------------------------------------------------- load

# reads SECONDS NAME: wrk's read load for that long, its counts in T/NAME.wrk
reads() {
  in_ns cl env CLUSTER_ORDERS=2000 CLUSTER_CUSTOMERS=500 \
    wrk -t1 -c8 -d"$1s" --timeout 15s -s "$REPO/tests/cluster/reads.lua" "$BASE" >"$T/$2.wrk" 2>&1
}
# wrk_get FILE KEY: a figure of a reads run ("status 200" -> count)
wrk_get() { awk -v k="$2" '{ v = $NF; $NF = ""; sub(/ $/, ""); if ($0 == k) print v }' "$1"; }

# access log lines of the edge from line FROM on
edge_log_from() { tail -n +"$1" "$T/edge/log/access.log"; }
edge_log_lines() { wc -l <"$T/edge/log/access.log"; }

# ---------------------------------------------------------------- run

say "namespaces $ID-*, network $NET.0/24 inside them only; directory $T"
net_up || fail_early "network: namespaces, veths and a bridge"
pg_up || fail_early "Postgres primary and streaming replica" "$(tail -n 5 "$T/pg1/log" "$T/pg2/log" "$T/basebackup.log" 2>/dev/null)"
say "postgres: primary $(addr pg1), replica $(addr pg2) streaming from it"
redis_up || fail_early "Redis master, replica and three sentinels" "$(tail -n 5 "$T/r2/log" 2>/dev/null)"
say "redis: master $(addr r1), replica $(addr r2); sentinels on w1, w2, r2"
service_up || fail_early "./deploy.sh worker on w1 and w2, ./deploy.sh edge"
say "service: $BASE (edge) over $(addr w1):9000 and $(addr w2):9000"
c=$(in_ns cl curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$BASE/orders/1")
[[ $c == 200 ]] || fail_early "the edge answers GET /orders/1 from the client's machine (got $c)"

tls=$(pg_primary "SELECT count(*) FILTER (WHERE s.ssl) || ' ' || count(*) FROM pg_stat_activity a
  JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'orders_app'")
say "postgres: ${tls% *} of the service's ${tls#* } connections to the primary over TLS (sslmode=verify-full)"
DETAIL=("TLS connections of orders_app: $tls")
check "the worker hosts reach Postgres over TLS, its certificate verified (sslmode=verify-full)" \
  eval "[[ \${tls% *} -gt 0 && \${tls% *} == \${tls#* } ]]"

mkdir -p "$T/checker"
CUSTOMER=$((990000 + RANDOM % 9000))
in_ns cl bash "$REPO/tests/cluster/checker.sh" "$BASE" "$T/checker" "$CUSTOMER" &
CHECKER=$!

# steady state
from=$(($(edge_log_lines) + 1))
replica_x0=$(pg_replica "SELECT xact_commit FROM pg_stat_database WHERE datname = 'orders'")
reads "$PHASE" steady &
load=$!
sleep $((PHASE / 2))
lag=$(pg_primary "SELECT coalesce(round(extract(epoch FROM replay_lag) * 1000, 1)::text, '-') || ' ms replay lag, '
  || pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) || ' bytes behind' FROM pg_stat_replication")
wait "$load"
sleep 1 # a backend reports its counts at most once a second
replica_x1=$(pg_replica "SELECT xact_commit FROM pg_stat_database WHERE datname = 'orders'")
lines=$(edge_log_from "$from")
total=$(grep -c . <<<"$lines")
n1=$(grep -c "ua=$(addr w1):9000 " <<<"$lines")
n2=$(grep -c "ua=$(addr w2):9000 " <<<"$lines")
rps=$(awk '$1 == "requests" { r = $2 } $1 == "seconds" { s = $2 } END { if (s > 0) printf "%.0f", r / s }' "$T/steady.wrk")
say "steady: $total requests in ${PHASE}s through the edge (reads ~${rps}/s), w1 $n1, w2 $n2"
DETAIL=("w1 served $n1 and w2 $n2 of $total")
check "steady state: both worker hosts serve at least 30% of the requests each" \
  eval "((total > 0 && n1 * 10 >= total * 3 && n2 * 10 >= total * 3))"
misses=$(wrk_get "$T/steady.wrk" "cache MISS")
on_replica=$((replica_x1 - replica_x0))
say "steady: ${misses:-0} misses; $on_replica transactions on the replica (2 per miss read there: its position, then the read); mid-phase the replica was at $lag"
# Each acknowledged write of the checker raises the bar; a miss just after
# one may find the replica behind and read the primary; at least half go
# to the replica (2 transactions there each).
DETAIL=("transactions on the replica during the steady phase: $on_replica, misses: ${misses:-0}")
check "misses read from the replica (DATABASE_REPLICA_URL) once it has replayed the writes" \
  eval "((on_replica >= ${misses:-0}))"

# w1's link down
reads $((PHASE + 6)) cut &
load=$!
sleep 2
from=$(($(edge_log_lines) + 1))
link w1 down
sleep $((PHASE + 2))
link w1 up
# what was sent to w1 during the cut is logged by the time its timeouts end
sleep 2
lines=$(edge_log_from "$from")
wait "$load"
bad=$(wrk_get "$T/cut.wrk" "status 0")
non2=$(awk '$1 == "status" && $2 != 200 && $2 != 404 { s += $3 } END { print s + 0 }' "$T/cut.wrk")
# requests the edge sent to w1 first while it was cut off (each then waited
# for a timeout, and a GET went on to w2)
to_w1=$(awk -v w="$(addr w1):9000" 'index($0, "ua=" w ", ") { n++ } END { print n + 0 }' <<<"$lines")
inflight=8
say "cut: w1's link down for $((PHASE + 2))s: $non2 answers other than 200/404; $to_w1 requests tried w1 first and went on to w2"
DETAIL=("answers other than 200/404 while w1 was cut off: $non2 (wrk's connections, the most that can be in flight: $inflight)" "$(grep '^status' "$T/cut.wrk" | tr '\n' ' ')")
check "a worker host cut off: only requests in flight fail" eval "((non2 <= inflight))"
# the edge tries w1 again once per fail_timeout (5 s) (max_fails 2: two
# tries), each try costing one connect timeout (2 s) before the request
# goes to w2; and the requests in flight when the link went down
DETAIL=("requests whose first worker host was w1 during the cut: $to_w1")
check "the edge routes around the cut worker host within fail_timeout" \
  eval "((to_w1 <= inflight + 3 * ((PHASE + 2) / 5 + 1)))"

# Redis master SIGKILLed
sleep 6 # w1 back in rotation (fail_timeout)
reads $((PHASE + 10)) redis &
load=$!
sleep 2
from=$(($(edge_log_lines) + 1))
kill -KILL "$(cat "$T/r1/pid")"
t_kill=$(date +%s%N)
# followed: once each worker host has answered a read from the cache again
# (only the new master can have served it), by the edge's access log
followed=''
for ((i = 0; i < 120; i++)); do
  lines=$(edge_log_from "$from")
  if grep -q "ua=$(addr w1):9000 .*cache=HIT" <<<"$lines" &&
    grep -q "ua=$(addr w2):9000 .*cache=HIT" <<<"$lines"; then
    followed=$((($(date +%s%N) - t_kill) / 1000000))
    break
  fi
  sleep 0.1
done
wait "$load"
newmaster=$(in_ns w1 timeout 5 redis-cli -h "$(addr w1)" -p 26379 SENTINEL get-master-addr-by-name orders | head -n 1)
non2=$(awk '$1 == "status" && $2 != 200 && $2 != 404 && $2 != 503 { s += $3 } END { print s + 0 }' "$T/redis.wrk")
s503=$(wrk_get "$T/redis.wrk" "status 503")
say "redis: master SIGKILLed; sentinels name $newmaster; hits again after ${followed:-never} ms; reads: $(grep -E '^(status|cache)' "$T/redis.wrk" | tr '\n' ' ')"
DETAIL=("answers other than 200/404/503: $non2; 503s: ${s503:-0}")
check "Redis master SIGKILLed: reads keep answering" eval "((non2 == 0 && ${s503:-0} == 0))"
DETAIL=("the sentinels name $newmaster; a hit on both worker hosts after ${followed:-no} ms")
check "Redis master SIGKILLed: the pool follows the new master within 10 s" \
  eval "[[ -n \$followed && \$followed -le 10000 && \$newmaster == $(addr r2) ]]"

# replay paused on the replica while writes go on
pg_replica "SELECT pg_wal_replay_pause()" >/dev/null
reads "$PHASE" replay
lag=$(pg_replica "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())")
pg_replica "SELECT pg_wal_replay_resume()" >/dev/null
say "replay: paused for ${PHASE}s; the replica was $lag bytes of WAL behind when it resumed"

touch "$T/checker/stop"
wait "$CHECKER"
rounds=$(cat "$T/checker/rounds" 2>/dev/null || echo 0)
stale=$(cat "$T/checker/stale" 2>/dev/null || echo 0)
acked=$(grep -c . "$T/checker/acked")
found=0
if ((acked > 0)); then
  found=$(pg_primary "SELECT count(*) FROM orders WHERE orderid IN ($(paste -sd, "$T/checker/acked"))")
fi
codes=$(sort -n "$T/checker/statuses" | tr '\n' ' ')
say "checker: customer $CUSTOMER, $rounds rounds, $acked writes acknowledged, statuses: $codes"
DETAIL=("$(grep -E 'STALE|more than' "$T/checker/log" | head -n 5)")
check "no read returned a count missing an acknowledged write, nor a 404 for one (checker: $rounds rounds)" \
  eval "((rounds > 0 && stale == 0))"
DETAIL=("acknowledged $acked, found on the primary $found")
check "0 acknowledged writes lost" eval "((acked > 0 && found == acked))"
# A request in flight to w1 when its link went down may end as a socket
# error (wrk's status 0): the cut's own check counts those against the
# requests that can be in flight; here they are left out of cut.wrk only.
others=$(for f in "$T"/*.wrk; do
  awk -v cut="$([[ $f == "$T/cut.wrk" ]] && echo 1)" '$1 == "status" && $2 !~ /^(200|201|404|503)$/ && !(cut && $2 == 0) { s += $3 } END { print s + 0 }' "$f"
done | awk '{ s += $1 } END { print s + 0 }')
others=$((others + $(awk '$1 !~ /^(200|201|404|503)$/ { s += $2 } END { print s + 0 }' "$T/checker/statuses")))
DETAIL=("$(grep -h '^status' "$T"/*.wrk | sort | tr '\n' ' ') checker: $codes")
check "all through: only 200, 201, 404 and 503 answered" eval "((others == 0))"
