#!/usr/bin/env bats
# deploy.sh as an operator uses it: status, the env file, running it again,
# a worker killed and replaced, scaling under load.

load helpers
source "$REPO/tests/lib/ports.bash"

teardown() {
  # the stack of the STATE_DIR-removed test, whatever happened to it
  if [[ -n ${ORPHAN-} ]]; then
    other_stack_stop "$ORPHAN/state"
    [[ ${ORPHAN_PG-} == /var/lib/postgresql/orders-* ]] && rm -rf -- "$ORPHAN_PG"
    [[ ${ORPHAN_RUN-} == /run/orders-* ]] && rm -rf -- "$ORPHAN_RUN"
    rm -rf -- "$ORPHAN"
  fi
  return 0
}

teardown_file() {
  # leave two workers behind for the files that follow, whatever happened
  n=$(worker_pids | wc -l)
  if [[ $n != "$WORKERS" ]]; then
    deploy_sh scale "$WORKERS" || true
  fi
}

@test "deploy.sh status: postgres, redis, nginx, pool running, and one 'worker PID running' per worker" {
  run stack_status
  [[ $status == 0 ]] || flunk "./deploy.sh status exited $status:" "$output"
  for name in postgres redis nginx pool; do
    line=$(awk -v n="$name" '$1 == n' <<<"$output")
    [[ $line =~ ^$name\ [0-9]+\ running$ ]] || flunk "status line for $name: expected '$name PID running', got '$line'" "$output"
    pid=$(awk '{print $2}' <<<"$line")
    alive "$pid" || flunk "$name's PID $pid is not a live process"
  done
  workers=$(awk '$1 == "worker"' <<<"$output")
  assert_eq "worker lines" "$WORKERS" "$(grep -c '^worker [0-9][0-9]* running$' <<<"$workers")"
  for pid in $(awk '{print $2}' <<<"$workers"); do
    alive "$pid" || flunk "worker PID $pid is not a live process"
  done
}

# sched_classes PID...: "PID COMM CLASS" for each PID and its children (ps's
# CLS: B is SCHED_BATCH, TS SCHED_OTHER)
sched_classes() {
  local pid
  for pid; do
    ps -o pid=,comm=,cls= -p "$pid"
    ps -o pid=,comm=,cls= --ppid "$pid" || true
  done
}

# worker_classes: "COUNT CLASS" lines for the running workers
worker_classes() {
  for p in $(worker_pids); do ps -o cls= -p "$p" | tr -d " "; done | sort | uniq -c
}

@test "every process of the stack runs SCHED_BATCH (deploy.sh's default), and a pool started with SCHED_BATCH=0 runs SCHED_OTHER" {
  plain_pass_only
  status_out=$(stack_status)
  pids=$(awk '$2 ~ /^[0-9]+$/ && $3 == "running" { print $2 }' <<<"$status_out")
  procs=$(sched_classes $pids)
  # with their children: the postmaster's backends, nginx's workers, the
  # pool's multiwatch's workers
  for comm in postgres redis-server nginx multiwatch orders-worker orders-invalida; do
    grep -q " $comm " <<<"$procs " || flunk "no $comm among the stack's processes:" "$procs"
  done
  other=$(awk '$3 != "B"' <<<"$procs")
  [[ -z $other ]] || flunk "processes of the stack not SCHED_BATCH (CLS B):" "$other"

  SCHED_BATCH=0 deploy_sh scale "$WORKERS" || { show_deploy_log; flunk "SCHED_BATCH=0 ./deploy.sh scale $WORKERS failed"; }
  classes=$(worker_classes)
  assert_match "the new pool's workers' classes, SCHED_BATCH=0" "^ *$WORKERS TS$" "$classes"
  deploy_sh scale "$WORKERS" || { show_deploy_log; flunk "./deploy.sh scale $WORKERS failed"; }
  classes=$(worker_classes)
  assert_match "the new pool's workers' classes, by default" "^ *$WORKERS B$" "$classes"
  SCHED_BATCH=yes deploy_sh status && flunk "SCHED_BATCH=yes was taken"
  grep -q 'SCHED_BATCH=yes: 1 or 0' "$deploy_log" || flunk "SCHED_BATCH=yes: no clear error" "$(cat "$deploy_log")"
}

@test "deploy.sh wrote STATE_DIR/env, mode 0600, with export lines for DATABASE_URL, REDIS_URL, PORT" {
  f=$STATE_DIR/env
  [[ -f $f ]] || flunk "$f does not exist"
  assert_eq "mode of $f" 600 "$(stat -c %a "$f")"
  for v in DATABASE_URL REDIS_URL PORT; do
    grep -Eq "^export .*\b$v=" "$f" || flunk "$f has no 'export $v=' line:" "$(cat "$f")"
  done
  got=$(env -i bash -c 'source "$1" && echo "$PORT"' _ "$f")
  assert_eq "PORT from $f" "${BASE##*:}" "$got"
}

@test "least privilege in Redis: the service's user (REDIS_URL) runs its own commands on its own keys, nothing else; the admin's is separate" {
  [[ -n ${REDIS_ADMIN_URL-} ]] || flunk "deploy.sh wrote no REDIS_ADMIN_URL to $STATE_DIR/env"
  [[ $REDIS_URL == redis://orders:* ]] || flunk "the service does not connect to Redis as user orders"
  [[ $REDIS_URL != "$REDIS_ADMIN_URL" ]] || flunk "REDIS_URL is the administrator's"
  k=$(ckey "acl-test")
  out=$(rcli_as "$REDIS_URL" SET "$k" 1)
  assert_eq "SET of a key under $CACHE_PREFIX as the service" OK "$out"
  rcli_as "$REDIS_URL" DEL "$k" >/dev/null
  # refused: another key, and the commands the service never uses
  for cmd in "SET other:key 1" "GET other:key" "FLUSHALL" "CONFIG GET maxmemory" "KEYS nothing" \
    "SCRIPT FLUSH" "SHUTDOWN" "ACL LIST" "MONITOR" "SUBSCRIBE x" "EXPIRE $k 1"; do
    # shellcheck disable=SC2086
    out=$(rcli_as "$REDIS_URL" $cmd 2>&1)
    [[ $out == *NOPERM* ]] || flunk "as the service, '$cmd' was not refused (NOPERM): $out"
  done
  # a script may not reach outside the prefix either
  out=$(rcli_as "$REDIS_URL" EVAL "return redis.call('GET', KEYS[1])" 1 other:key 2>&1)
  [[ $out == *NOPERM* ]] || flunk "a script as the service read other:key: $out"
  # the administrator may do all of it
  assert_eq "CONFIG GET as the administrator" maxmemory-policy "$(rcli CONFIG GET maxmemory-policy | head -1)"
  # and the default user has a password: no password, no access
  out=$(redis-cli -u "redis://127.0.0.1:${REDIS_URL##*:}" --no-auth-warning PING 2>&1 </dev/null)
  [[ $out == *NOAUTH* ]] || flunk "Redis answered without a password: $out"
}

@test "the pool and the invalidator reach the local Redis over its Unix socket, which asks for a password and which only Redis's user and www-data may open" {
  run_dir=$(head -1 "$STATE_DIR/run.path" 2>/dev/null) || run_dir=$STATE_DIR/run
  sock=$run_dir/redis/redis.sock
  [[ -S $sock ]] || flunk "Redis has no socket at $sock" "$(ls -la "$run_dir")"
  req GET /orders/count
  assert_status 200
  clients=$(rcli CLIENT LIST | grep ' user=orders ')
  [[ -n $clients ]] || flunk "no connection of user orders in Redis's CLIENT LIST"
  tcp=$(grep -v " addr=$sock:" <<<"$clients" || true)
  [[ -z $tcp ]] || flunk "connections of user orders that do not come through $sock:" "$tcp"
  out=$(redis-cli -s "$sock" PING 2>&1 </dev/null)
  [[ $out == *NOAUTH* ]] || flunk "Redis answered over its socket without a password: $out"
  if ((EUID == 0)); then
    out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups -- redis-cli -s "$sock" PING 2>&1 </dev/null) || true
    [[ $out == *"Permission denied"* ]] || flunk "user nobody reached $sock: $out" "$(ls -la "$run_dir/redis")"
  fi
}

@test "the bench's floor-redis, as the pool, reads Redis with the URL deploy.sh gives the pool: its stored value, 200" {
  plain_pass_only # (floor-redis has no sanitizer build)
  make -s -C "$REPO" bench-build >/dev/null 2>&1 || flunk "make bench-build failed"
  value='{"floor":"of a hit"}'
  rcli SET "$(ckey bench:floor)" "$value" EX 120 >/dev/null
  WORKER_BIN=$REPO/build/floor-redis deploy_sh scale "$WORKERS" ||
    flunk "./deploy.sh scale with WORKER_BIN=build/floor-redis failed" "$(show_deploy_log)"
  req GET /floor
  status_was=$status_code body_was=$body
  deploy_sh scale "$WORKERS" || flunk "./deploy.sh scale back to the service failed" "$(show_deploy_log)"
  rcli DEL "$(ckey bench:floor)" >/dev/null
  assert_eq "floor-redis's status" 200 "$status_was"
  assert_eq "floor-redis's body" "$value" "$body_was"
  req GET /healthz
  assert_status 200
}

@test "a STATE_DIR removed, stopped first or still running, and deployed again: the cluster left outside it keeps its orders, on the new port and password" {
  ((EUID == 0)) || skip "as root only: else Postgres lives inside STATE_DIR and goes with it"
  plain_pass_only
  ORPHAN=$(mktemp -d /tmp/orders-orphan.XXXXXX)
  s=$ORPHAN/state
  port=$(pick_port) || flunk "no free loopback port"
  # a stack of its own: not the suite's servers (deploy_log stays set)
  up() {
    local db=$DATABASE_URL redis=$REDIS_URL admin=${REDIS_ADMIN_URL-} rc=0
    unset DATABASE_URL REDIS_URL REDIS_ADMIN_URL
    STATE_DIR=$s PORT=$port ORDERS_ROWS=100 WORKERS=1 deploy_sh || rc=$?
    export DATABASE_URL=$db REDIS_URL=$redis REDIS_ADMIN_URL=$admin
    return $rc
  }
  # the orders as psql sees them through the env file's URL (TCP, password)
  orders_in() { (. "$s/env" && psql -X "$DATABASE_URL" -tAc 'SELECT count(*) FROM orders' 2>&1); }
  counted() { curl -s --max-time 10 "http://127.0.0.1:$port/orders/count"; }
  up || flunk "./deploy.sh failed" "$(show_deploy_log)"
  ORPHAN_PG=$(head -n 1 "$s/pg.path") ORPHAN_RUN=$(head -n 1 "$s/run.path")
  [[ $ORPHAN_PG == /var/lib/postgresql/orders-* ]] || skip "Postgres lives in $ORPHAN_PG, not outside STATE_DIR"
  (. "$s/env" && psql -X -q "$DATABASE_URL" -c "INSERT INTO orders (customerid, netamount, tax, totalamount) VALUES (7, 1, 0, 1)") ||
    flunk "no INSERT through the env file's URL"
  STATE_DIR=$s deploy_sh stop || flunk "./deploy.sh stop failed" "$(show_deploy_log)"
  rm -rf -- "$s"
  up || flunk "./deploy.sh after STATE_DIR was removed (stopped first) failed" "$(show_deploy_log)"
  grep -q 'from an earlier deploy of this STATE_DIR' "$deploy_log" || flunk "deploy.sh did not say it kept the cluster" "$(show_deploy_log)"
  assert_eq "orders through the new env file's URL, after a stop" 101 "$(orders_in)"
  assert_eq "the service's count, after a stop" '{"count":101}' "$(counted)"
  rm -rf -- "$s"
  up || flunk "./deploy.sh after STATE_DIR was removed (running) failed" "$(show_deploy_log)"
  grep -q 'stopping what an earlier deploy of it left running' "$deploy_log" || flunk "deploy.sh did not stop what was left running" "$(show_deploy_log)"
  assert_eq "orders through the new env file's URL, while running" 101 "$(orders_in)"
  assert_eq "the service's count, while running" '{"count":101}' "$(counted)"
}

@test "running ./deploy.sh again is harmless: same servers, data not reloaded, service answers" {
  plain_pass_only
  before=$(stack_status | awk '$1 == "postgres" || $1 == "redis" || $1 == "nginx"' | sort)
  rows=$(rows_total)
  deploy_sh || {
    show_deploy_log
    flunk "./deploy.sh (second run) failed"
  }
  after=$(stack_status | awk '$1 == "postgres" || $1 == "redis" || $1 == "nginx"' | sort)
  assert_eq "postgres/redis/nginx status lines before and after a second ./deploy.sh" "$before" "$after"
  assert_eq "rows in orders after a second ./deploy.sh" "$rows" "$(rows_total)"
  req GET /healthz
  assert_status 200
  assert_eq "worker count" "$WORKERS" "$(worker_pids | wc -l)"
}

@test "./deploy.sh brings a running nginx's configuration up to date (here: an older one naming a pool's socket), with a reload" {
  plain_pass_only
  run_dir=$(head -1 "$STATE_DIR/run.path" 2>/dev/null) || run_dir=$STATE_DIR/run
  conf=$run_dir/nginx/nginx.conf
  [[ -f $conf ]] || flunk "no nginx configuration at $conf"
  grep -q "unix:$run_dir/fcgi.sock;" "$conf" || flunk "nginx does not connect through the link $run_dir/fcgi.sock"
  sock=$run_dir/$(readlink "$run_dir/fcgi.sock")
  [[ -S $sock ]] || flunk "the link does not lead to a socket: $sock"
  # what an older deploy.sh wrote: the pool's own socket, and no limits
  sed -i -e "s|unix:$run_dir/fcgi.sock;|unix:$sock;|" -e '/limit_conn per_addr_conn/d' "$conf"
  nginx_pid=$(pid_of nginx)
  deploy_sh || flunk "./deploy.sh failed" "$(show_deploy_log)"
  grep -q 'configuration changed, reloaded' "$deploy_log" || flunk "./deploy.sh did not say it reloaded nginx" "$(show_deploy_log)"
  grep -q "unix:$run_dir/fcgi.sock;" "$conf" || flunk "nginx's configuration still names the pool's socket"
  grep -q 'limit_conn per_addr_conn' "$conf" || flunk "nginx's configuration is not the template's"
  assert_eq "nginx master PID (a reload, not a restart)" "$nginx_pid" "$(pid_of nginx)"
  req GET /healthz
  assert_status 200
  # and a third run changes nothing
  deploy_sh || flunk "./deploy.sh (third run) failed" "$(show_deploy_log)"
  ! grep -q 'configuration changed' "$deploy_log" || flunk "./deploy.sh reloaded nginx though nothing changed"
}

@test "the metrics file is named after its layout: a restart onto it drops the files of other layouts, the workers map it, /metrics counts on" {
  run_dir=$(head -1 "$STATE_DIR/run.path" 2>/dev/null) || run_dir=$STATE_DIR/run
  layout=$("$REPO/build/orders-worker" --metrics-layout)
  [[ $layout =~ ^orders[0-9]+$ ]] || flunk "orders-worker --metrics-layout said '$layout'"
  f=$run_dir/metrics.$layout
  [[ -f $f ]] || flunk "no $f" "$(ls -la "$run_dir")"
  # what earlier builds left: the unnamed file, another layout's
  printf 'old' >"$run_dir/metrics"
  printf 'old' >"$run_dir/metrics.orders03"
  req GET /healthz
  deploy_sh restart || flunk "./deploy.sh restart failed" "$(show_deploy_log)"
  [[ ! -e $run_dir/metrics && ! -e $run_dir/metrics.orders03 ]] || flunk "the files of other layouts are still there" "$(ls -la "$run_dir")"
  [[ -f $f ]] || flunk "no $f after the restart"
  for pid in $(worker_pids); do
    grep -q " $f\$" "/proc/$pid/maps" || flunk "worker $pid does not map $f" "$(grep metrics "/proc/$pid/maps")"
  done
  req GET /metrics
  assert_status 200
  [[ $body == *orders_workers\ $WORKERS* ]] || flunk "/metrics does not count $WORKERS workers from the one file" "$(grep orders_workers <<<"$body")"
}

@test "a worker killed with SIGKILL is replaced (new PID) and the service goes on" {
  old=$(worker_pids)
  assert_eq "workers before" "$WORKERS" "$(wc -l <<<"$old")"
  victim=$(head -1 <<<"$old")
  kill -KILL "$victim"
  wait_gone "$victim" 5

  # requests right after the kill are answered by the other worker(s)
  for i in $(seq 1 10); do
    req GET /orders/count
    assert_status 200
  done

  replaced() {
    now=$(worker_pids)
    [[ $(wc -l <<<"$now") == "$WORKERS" ]] && ! grep -qx "$victim" <<<"$now"
  }
  wait_for 10 replaced || flunk "worker $victim not replaced within 10 s; ./deploy.sh status:" "$(stack_status)"
  new=$(comm -13 <(sort <<<"$old") <(sort <<<"$now"))
  [[ -n $new ]] || flunk "no new worker PID: before '$old', now '$now'"
  for pid in $now; do alive "$pid" || flunk "worker $pid from status is not alive"; done

  for i in $(seq 1 10); do
    req GET /orders/count
    assert_status 200
  done
  c=$(fresh_customer)
  post_json "{\"customerid\": $c, \"netamount\": 1, \"tax\": 0}"
  assert_status 201
}

@test "nginx keeps its connection to the pool: 20 sequential requests over one, closed by both ends 2 s after the last" {
  command -v ss >/dev/null || skip "no ss (iproute2)"
  wait_for 5 no_pool_conns || flunk "connections held before the test: $(pool_conns)"
  c=$(fresh_customer)
  for i in $(seq 1 20); do
    req GET "/orders/count?customerid=$c&to=2004-01-$(printf %02d $((i % 28 + 1)))"
    assert_status 200
  done
  assert_eq "connections the pool holds after 20 requests" 1 "$(pool_conns)"
  # nginx closes an idle one after 2 s (keepalive_timeout), and the worker
  # its end as soon as it sees that: nothing left open on either side
  wait_for 5 no_pool_conns || flunk "still held 5 s after the last request: $(pool_conns)"
}

@test "a body the handler did not read (a 405 with 12 KiB) is skipped: the connection stays kept, and the next POST on it is a 201" {
  command -v ss >/dev/null || skip "no ss (iproute2)"
  c=$(fresh_customer)
  big=$(head -c 12000 /dev/zero | tr '\0' 'x')
  no_kept_conns || flunk "connections held before the test: $(pool_conns)"
  for i in 1 2 3; do
    req POST "/orders/count" -H 'Content-Type: application/json' --data-binary "{\"pad\": \"$big\"}"
    assert_status 405
    # Left in the socket, the rest of that body would come before the
    # next request, and libfcgi would close the connection on it: under
    # load, with the next request (a POST nginx does not send twice)
    # already written to it.
    assert_eq "connections the pool holds after the 405" 1 "$(pool_conns)"
    post_json "{\"customerid\": $c, \"netamount\": $i, \"tax\": 0}"
    assert_status 201
  done
  assert_eq "connections the pool holds after 6 requests" 1 "$(pool_conns)"
  assert_eq "orders of the customer" 3 "$(rows_of "$c")"
}

# load_loop FILE STOPFILE: sequential GETs until STOPFILE exists and at least
# 200 were made; one status code per line in FILE.
load_loop() {
  local n=0
  while [[ ! -e $2 ]] || ((n < 200)); do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 10 "$BASE/orders/count?customerid=$((n % 50 + 1))" >>"$1"
    n=$((n + 1))
    ((n < 5000)) || break
  done
}

@test "a worker killed in the middle of a request: that request is a 503 JSON error from nginx (not its HTML 502), the next ones are 200" {
  c=$(fresh_customer)
  f=$BATS_TEST_TMPDIR/inflight
  pids=$(worker_pids)
  [[ -n $pids ]] || flunk "no worker PIDs in ./deploy.sh status"
  # A POST that leads its batch and waits 5 s (the hook's most) before the
  # insert; a second into that wait every worker is killed. nginx never
  # sends a POST twice, so the answer is its own error page. (A GET in
  # flight on a kept connection that breaks, nginx sends again on a new
  # one, and the new workers answer it.)
  curl -s -o "$f.body" -D "$f.h" -w '%{http_code}' --max-time 20 \
    -H 'Content-Type: application/json' -H 'X-Test-Lead-Delay: 5000' \
    --data-binary "{\"customerid\": $c, \"netamount\": 1, \"tax\": 0}" \
    "$BASE/orders" >"$f.status" &
  cpid=$!
  sleep 1
  # shellcheck disable=SC2086
  kill -KILL $pids
  wait "$cpid" || true
  assert_eq "status of the request in flight" 503 "$(cat "$f.status")"
  grep -qi '^content-type: application/json' "$f.h" || flunk "the 503 is not JSON:" "$(cat "$f.h")"
  jq -e '.error | type == "string"' "$f.body" >/dev/null || flunk "the 503 body is not a JSON error: $(cat "$f.body")"
  replaced() { [[ $(worker_pids | wc -l) == "$WORKERS" ]]; }
  wait_for 10 replaced || flunk "the pool did not come back to $WORKERS workers"
  assert_eq "orders of the customer (killed before its insert)" 0 "$(rows_of "$c")"
  req GET "/orders/count?customerid=$c"
  assert_status 200
  assert_count_is 0
  post_json "{\"customerid\": $c, \"netamount\": 2, \"tax\": 0}"
  assert_status 201
}

@test "deploy.sh scale 3 under a loop of sequential GETs: every answer 200, then 3 workers; scale 2 likewise" {
  for target in 3 2; do
    codes=$BATS_TEST_TMPDIR/codes.$target stop=$BATS_TEST_TMPDIR/stop.$target
    : >"$codes"
    load_loop "$codes" "$stop" 3>&- &
    loop=$!
    sleep 0.3
    rc=0
    deploy_sh scale "$target" || rc=$?
    touch "$stop"
    wait "$loop"
    [[ $rc == 0 ]] || {
      show_deploy_log
      flunk "./deploy.sh scale $target exited $rc"
    }
    total=$(wc -l <"$codes")
    bad=$(grep -vc '^200$' "$codes" || true)
    ((total >= 200)) || flunk "only $total requests made during scale $target"
    assert_eq "non-200 answers among $total GETs during 'scale $target' (codes: $(sort "$codes" | uniq -c | tr -s ' \n' ' '))" 0 "$bad"
    n=$(worker_pids | wc -l)
    assert_eq "running workers after 'scale $target'" "$target" "$n"
  done
}
