#!/usr/bin/env bats
# Redis high availability with Sentinel (issue 8). This file runs a stack of
# its own beside the suite's: a Redis master and a replica, three sentinels
# (quorum 2), all with a password, on free loopback ports in a temporary
# directory; the pool and the invalidator deployed against them by
# ./deploy.sh (REDIS_SENTINELS, REDIS_MASTER_NAME; REDIS_URL gives only the
# password), and the suite's Postgres. Then a failover under reads, and a
# failover onto a replica that holds an entry a write had invalidated on
# the master: the workers must not serve it (cgi-src/cache.c, "Failovers").
#
# Every process started here is recorded and stopped in teardown_file,
# whatever happened, and the directory removed.

load helpers

# shellcheck source=tests/lib/ports.bash
. "$REPO/tests/lib/ports.bash"

SN_NAME=orders-t
# A failover: the master is down for SN_DOWN_MS, the sentinels elect a
# leader (again after 2 x failover-timeout when a vote splits: 3 s here),
# which promotes the replica.
SN_DOWN_MS=1000

# sn_state: where this file keeps what it started, for every test (bats
# runs each test in a subshell, so variables set in one do not reach the
# next; files do).
sn_load() {
  # shellcheck disable=SC1091
  . "$SN_DIR/vars"
}
sn_save() { printf '%s=%q\n' "$1" "$2" >>"$SN_DIR/vars"; }

# sn_redis_cli PORT ARGS...: redis-cli to a Redis of ours, with the password.
sn_rcli() {
  local port=$1
  shift
  REDISCLI_AUTH=$SN_PW timeout 5 redis-cli --no-auth-warning -h 127.0.0.1 -p "$port" "$@" </dev/null
}
# sn_scli PORT ARGS...: to a sentinel (no password).
sn_scli() {
  local port=$1
  shift
  timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@" </dev/null
}

# sn_start NAME CONF [ARGS...]: start redis-server CONF in the background,
# no descriptor of bats's inherited; its PID goes to $SN_DIR/pids.
sn_start() {
  local name=$1 conf=$2 pid
  shift 2
  (
    for fd in "/proc/$BASHPID/fd/"*; do
      fd=${fd##*/}
      ((fd > 2)) && eval "exec $fd>&-"
    done
    exec redis-server "$conf" "$@"
  ) >>"$SN_DIR/$name.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >>"$SN_DIR/pids"
  echo "$pid"
}

# sn_redis_conf FILE PORT: a master's or replica's configuration.
sn_redis_conf() {
  mkdir -p "$SN_DIR/data-$2"
  cat >"$1" <<EOF
bind 127.0.0.1
port $2
protected-mode yes
requirepass $SN_PW
masterauth $SN_PW
save ""
appendonly no
dir $SN_DIR/data-$2
maxmemory-policy volatile-lru
EOF
}

# sn_sentinel_conf FILE PORT MASTER_PORT
sn_sentinel_conf() {
  cat >"$1" <<EOF
bind 127.0.0.1
port $2
dir $SN_DIR
sentinel monitor $SN_NAME 127.0.0.1 $3 2
sentinel auth-pass $SN_NAME $SN_PW
sentinel down-after-milliseconds $SN_NAME $SN_DOWN_MS
sentinel failover-timeout $SN_NAME 1500
sentinel parallel-syncs $SN_NAME 1
EOF
}

# sn_wait SECONDS CMD...: like wait_for, every 0.1 s, quietly.
sn_wait() {
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 10; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  "$@"
}

# replica_has KEY VALUE: the replica holds KEY with VALUE.
replica_has() { [[ $(sn_rcli "$SN_R" GET "$1") == "$2" ]]; }
link_down() { ! linked "$1"; }
linked() { [[ $(sn_rcli "$1" INFO replication | tr -d '\r' | grep '^master_link_status:') == master_link_status:up ]]; }
is_master() { sn_rcli "$1" ROLE | head -1 | grep -qx master; }
# sentinels_agree PORT: every sentinel names 127.0.0.1:PORT as the master,
# and knows the two other sentinels and one replica in working order.
sentinels_agree() {
  local s
  for s in "${SN_SENTINELS[@]}"; do
    [[ $(sn_scli "$s" SENTINEL get-master-addr-by-name "$SN_NAME" | tr '\n' ' ') == "127.0.0.1 $1 " ]] || return 1
    [[ $(sn_scli "$s" SENTINEL sentinels "$SN_NAME" | grep -c '^name$') == 2 ]] || return 1
    sn_scli "$s" SENTINEL replicas "$SN_NAME" | grep -A1 '^flags$' | grep -qx slave || return 1
  done
}

# sn_deploy ARGS...: ./deploy.sh for this file's stack.
sn_deploy() {
  (
    cd "$REPO" || exit 1
    for fd in "/proc/$BASHPID/fd/"*; do
      fd=${fd##*/}
      ((fd > 2)) && eval "exec $fd>&-"
    done
    unset REDIS_ADMIN_URL ORDERS_TEST_HOOKS
    export STATE_DIR=$SN_DIR/state PORT=$SN_HTTP WORKERS=2 CACHE_TTL=60 \
      CACHE_PREFIX=orders: LOG_LEVEL=debug \
      REDIS_URL="redis://:$SN_PW@127.0.0.1:$SN_M/0" \
      REDIS_SENTINELS=$SN_SENTINELS_LIST REDIS_MASTER_NAME=$SN_NAME
    exec timeout 180 ./deploy.sh "$@"
  ) >>"$SN_DIR/deploy.log" 2>&1 </dev/null
}

# sget PATH: GET against this file's stack (req's variables).
sget() {
  local base=$BASE
  BASE=http://127.0.0.1:$SN_HTTP
  req GET "$1"
  BASE=$base
}

# distinct_ports N: N free loopback ports, none the same.
distinct_ports() {
  local -A seen=()
  local -a out=()
  local p i tries=0
  while ((${#out[@]} < $1 && tries++ < 50)); do
    p=$(pick_port) || return 1
    for i in 0 1 2; do
      if [[ -z ${seen[$((p + i))]-} ]] && ! port_in_use $((p + i)); then
        seen[$((p + i))]=1
        out+=($((p + i)))
      fi
    done
  done
  ((${#out[@]} >= $1)) || return 1
  echo "${out[@]:0:$1}"
}

setup_file() {
  local -a ports
  SN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/orders-sentinel.XXXXXX") || return 1
  export SN_DIR
  : >"$SN_DIR/vars"
  : >"$SN_DIR/pids"
  read -r -a ports <<<"$(distinct_ports 6)" || return 1
  ((${#ports[@]} == 6)) || { echo "no 6 free ports"; return 1; }
  SN_PW=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  SN_M=${ports[0]} SN_R=${ports[1]} SN_HTTP=${ports[2]}
  SN_SENTINELS=("${ports[3]}" "${ports[4]}" "${ports[5]}")
  SN_SENTINELS_LIST="127.0.0.1:${ports[3]},127.0.0.1:${ports[4]},127.0.0.1:${ports[5]}"
  sn_save SN_PW "$SN_PW"
  sn_save SN_HTTP "$SN_HTTP"
  sn_save SN_SENTINELS_LIST "$SN_SENTINELS_LIST"
  echo "SN_SENTINELS=(${SN_SENTINELS[*]})" >>"$SN_DIR/vars"
  # The roles move with failovers: these say which port is which now.
  sn_save SN_M "$SN_M"
  sn_save SN_R "$SN_R"

  sn_redis_conf "$SN_DIR/redis-$SN_M.conf" "$SN_M"
  sn_redis_conf "$SN_DIR/redis-$SN_R.conf" "$SN_R"
  sn_save "PID_$SN_M" "$(sn_start "redis-$SN_M" "$SN_DIR/redis-$SN_M.conf")"
  sn_wait 10 sn_rcli "$SN_M" PING || { echo "master did not start"; cat "$SN_DIR/redis-$SN_M.log"; return 1; }
  sn_save "PID_$SN_R" "$(sn_start "redis-$SN_R" "$SN_DIR/redis-$SN_R.conf" --replicaof 127.0.0.1 "$SN_M")"
  sn_wait 10 linked "$SN_R" || { echo "replica did not link"; cat "$SN_DIR/redis-$SN_R.log"; return 1; }
  local s
  for s in "${SN_SENTINELS[@]}"; do
    # each its own file: Sentinel rewrites it
    sn_sentinel_conf "$SN_DIR/sentinel-$s.conf" "$s" "$SN_M"
    sn_start "sentinel-$s" "$SN_DIR/sentinel-$s.conf" --sentinel >/dev/null
  done
  sn_wait 30 sentinels_agree "$SN_M" || {
    echo "the sentinels did not settle on master $SN_M with 2 peers and a replica"
    for s in "${SN_SENTINELS[@]}"; do tail -n 20 "$SN_DIR/sentinel-$s.log"; done
    return 1
  }
  sn_deploy || {
    echo "./deploy.sh of the sentinel stack failed:"
    tail -n 40 "$SN_DIR/deploy.log"
    return 1
  }
  local i
  for ((i = 0; i < 60; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$SN_HTTP/healthz") == 200 ]] && break
    sleep 0.25
  done
}

teardown_file() {
  local pid run
  [[ -n ${SN_DIR-} && -d $SN_DIR ]] || return 0
  sn_load
  if [[ -d $SN_DIR/state ]]; then
    run=$(head -1 "$SN_DIR/state/run.path" 2>/dev/null || true)
    sn_deploy stop || tail -n 20 "$SN_DIR/deploy.log" >&2
  fi
  # The Redis servers and the sentinels, by the PIDs we recorded (a stopped
  # one is continued first, or SIGTERM would wait).
  while read -r pid; do
    [[ $pid =~ ^[0-9]+$ ]] || continue
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == redis-* ]] || continue
    kill -CONT "$pid" 2>/dev/null
    kill -KILL "$pid" 2>/dev/null
  done <"$SN_DIR/pids"
  # deploy.sh's run directory, outside STATE_DIR when www-data cannot
  # enter it (as root): only ever a /run/orders-* of our own.
  [[ -n ${run-} && $run == /run/orders-* && -d $run && ! -L $run ]] && rm -rf -- "$run"
  rm -rf -- "$SN_DIR"
}

setup() { sn_load; }

workers_log() { cat "$SN_DIR/state/log/workers.log" 2>/dev/null; }
# what the sentinels and the workers said lately, for a failure's message
sn_logs() {
  local s
  for s in "${SN_SENTINELS[@]}"; do
    echo "--- sentinel $s:"
    tail -n 15 "$SN_DIR/sentinel-$s.log"
  done
  echo "--- workers.log:"
  workers_log | grep redis | tail -n 20
}

# fresh_c: a customer without orders, and its count key forgotten in the
# current master.
fresh_c() {
  local c
  c=$(fresh_customer) || return 1
  sn_rcli "$SN_M" DEL "orders:count:customerid=$c" >/dev/null
  echo "$c"
}

# failover_to PORT SECONDS: wait until every sentinel names PORT.
names_master() {
  local s
  for s in "${SN_SENTINELS[@]}"; do
    [[ $(sn_scli "$s" SENTINEL get-master-addr-by-name "$SN_NAME" | head -1) == 127.0.0.1 ]] || return 1
    [[ $(sn_scli "$s" SENTINEL get-master-addr-by-name "$SN_NAME" | sed -n 2p) == "$1" ]] || return 1
  done
}

# swap_roles: after a failover, the old replica is the master; the old
# master (dead) comes back as its replica, and the sentinels know it again.
swap_roles() {
  local old_m=$SN_M
  SN_M=$SN_R SN_R=$old_m
  sn_save SN_M "$SN_M"
  sn_save SN_R "$SN_R"
  sn_save "PID_$SN_R" "$(sn_start "redis-$SN_R" "$SN_DIR/redis-$SN_R.conf" --replicaof 127.0.0.1 "$SN_M")"
  sn_wait 15 linked "$SN_R" || flunk "the old master did not come back as a replica of $SN_M" "$(tail -n 20 "$SN_DIR/redis-$SN_R.log")" || return 1
  sn_wait 30 sentinels_agree "$SN_M" || flunk "the sentinels do not agree on master $SN_M with its replica $SN_R"
}

# reads_until_hits SECONDS N KEYPATH: GET KEYPATH until N answers in a row
# are HIT, or SECONDS pass. Every answer must be 200 with body $want_body.
# Sets took (seconds), tally ("HIT:n MISS:n BYPASS:n 5xx:n"), bad.
reads_until_hits() {
  local secs=$1 n=$2 path=$3 start streak=0 xc
  local -A t=()
  start=$EPOCHREALTIME
  bad=''
  while :; do
    sget "$path"
    took=$(elapsed_since "$start")
    if [[ $status_code != 200 ]]; then
      t[$status_code]=$((${t[$status_code]-0} + 1))
      bad+="$status_code at ${took}s; "
      streak=0
    else
      xc=$(header X-Cache)
      t[$xc]=$((${t[$xc]-0} + 1))
      [[ $body == "$want_body" ]] || bad+="$xc body $body at ${took}s; "
      if [[ $xc == HIT ]]; then streak=$((streak + 1)); else streak=0; fi
    fi
    ((streak >= n)) && break
    awk -v e="$took" -v s="$secs" 'BEGIN { exit !(e >= s) }' && break
    sleep 0.05
  done
  tally=''
  for xc in "${!t[@]}"; do tally+="$xc:${t[$xc]} "; done
  ((streak >= n))
}

# pair_ready: the master SN_M with its replica SN_R linked, and the
# sentinels agreeing, as a test that fails over starts from (flunks if not).
pair_ready() {
  linked "$SN_R" && sentinels_agree "$SN_M" ||
    flunk "not set up: master $SN_M with its replica $SN_R linked, and the sentinels agreeing (did the test before fail?)" "$(sn_logs)"
}

@test "sentinel: the workers find the master through the sentinels; reads hit" {
  c=$(fresh_c)
  want_body='{"count":0}'
  sget "/orders/count?customerid=$c"
  assert_status 200
  reads_until_hits 5 4 "/orders/count?customerid=$c" ||
    flunk "no 4 HITs in a row within 5 s: $tally" "$(workers_log | grep redis | tail -n 20)"
  [[ -z $bad ]] || flunk "bad answers: $bad"
  workers_log | grep -q "redis: connected to master $SN_NAME at 127.0.0.1:$SN_M" ||
    flunk "workers.log does not say it connected to master $SN_NAME at 127.0.0.1:$SN_M" "$(workers_log | grep redis | tail -n 20)"
  [[ $(sn_rcli "$SN_M" GET orders:meta:replid) == $(sn_rcli "$SN_M" INFO replication | tr -d '\r' | sed -n 's/^master_replid://p') ]] ||
    flunk "orders:meta:replid is not the master's replication id"
}

@test "sentinel: SIGKILL the master: every read answers 200, and within 10 s the workers hit on the new master" {
  c=$(fresh_c)
  want_body='{"count":0}'
  reads_until_hits 5 2 "/orders/count?customerid=$c" || flunk "no HIT before the failover: $tally"
  pid_var=PID_$SN_M
  kill -KILL "${!pid_var}"
  reads_until_hits 10 6 "/orders/count?customerid=$c" ||
    flunk "no 6 HITs in a row within 10 s of the SIGKILL: $tally" "$(sn_logs)"
  [[ -z $bad ]] || flunk "bad answers during the failover: $bad" "$(workers_log | grep redis | tail -n 30)"
  echo "# failover: 6 HITs in a row $took s after SIGKILL of the master; answers: $tally" >&3
  names_master "$SN_R" || flunk "the sentinels do not name the replica $SN_R as the master"
  workers_log | grep -q "redis: connected to master $SN_NAME at 127.0.0.1:$SN_R" ||
    flunk "workers.log does not say it connected to the new master" "$(workers_log | grep redis | tail -n 20)"
  # the invalidator found it too: its full invalidation (owed while Redis
  # was away, or on its next write) reaches the new master
  swap_roles
}

@test "sentinel: an entry the master invalidated but the promoted replica still holds is never served" {
  pair_ready || return 1
  c=$(fresh_c)
  key="orders:count:customerid=$c"
  want_body='{"count":0}'
  reads_until_hits 5 2 "/orders/count?customerid=$c" || flunk "no HIT before the failover: $tally"
  sn_wait 5 replica_has "$key" '{"count":0}' ||
    flunk "the replica $SN_R did not get $key"
  # Cut the replica off: it keeps the entry, and cannot link again (wrong
  # password) to hear of the invalidation.
  sn_rcli "$SN_R" CONFIG SET masterauth wrong-password >/dev/null
  sn_rcli "$SN_R" CLIENT KILL TYPE master >/dev/null
  sn_wait 5 link_down "$SN_R" ||
    flunk "the replica's link did not go down"
  # A write through the service: the worker deletes the entry in the master.
  BASE=http://127.0.0.1:$SN_HTTP post_json "{\"customerid\": $c, \"netamount\": 10, \"tax\": 1}" --max-time 10
  assert_status 201
  [[ $(sn_rcli "$SN_M" EXISTS "$key") == 0 ]] || flunk "the master still has $key after the POST"
  [[ $(sn_rcli "$SN_R" GET "$key") == '{"count":0}' ]] || flunk "the replica lost $key: the test would prove nothing"
  pid_var=PID_$SN_M
  kill -KILL "${!pid_var}"
  sn_rcli "$SN_R" CONFIG SET masterauth "$SN_PW" >/dev/null
  want_body='{"count":1}'
  [[ $(rows_of "$c") == 1 ]] || flunk "Postgres does not have the order of customer $c"
  reads_until_hits 12 6 "/orders/count?customerid=$c" ||
    flunk "no 6 HITs in a row within 12 s of the SIGKILL: $tally; $bad" "$(sn_logs)"
  [[ -z $bad ]] || flunk "stale or failed answers after the failover: $bad" "$(workers_log | grep redis | tail -n 30)"
  echo "# stale failover: 6 HITs in a row after $took s; answers: $tally" >&3
  names_master "$SN_R" || flunk "the sentinels do not name the replica $SN_R as the master"
  workers_log | grep -q 'dropping them before serving reads' ||
    flunk "workers.log does not say the entries of the earlier dataset were dropped"
  swap_roles
}

@test "sentinel: SENTINEL FAILOVER (the master demoted, not killed): reads stay 200, the workers move, a write after it invalidates on the new master" {
  pair_ready || return 1
  c=$(fresh_c)
  want_body='{"count":0}'
  reads_until_hits 5 2 "/orders/count?customerid=$c" || flunk "no HIT before the failover: $tally"
  log_from=$(($(workers_log | wc -l) + 1))
  [[ $(sn_scli "${SN_SENTINELS[0]}" SENTINEL FAILOVER "$SN_NAME") == OK ]] ||
    flunk "SENTINEL FAILOVER was refused" "$(sn_logs)"
  old_m=$SN_M
  # Reads all along, until the old master says it is a replica: every one
  # 200 with the count.
  start=$EPOCHREALTIME
  nbad='' n=0
  while ! [[ $(sn_rcli "$old_m" ROLE | head -1) == slave ]]; do
    sget "/orders/count?customerid=$c"
    n=$((n + 1))
    [[ $status_code == 200 && $body == "$want_body" ]] || nbad+="$status_code $body; "
    awk -v e="$(elapsed_since "$start")" 'BEGIN { exit !(e >= 15) }' &&
      flunk "the old master $old_m is not a replica 15 s after SENTINEL FAILOVER" "$(sn_logs)"
    sleep 0.05
  done
  [[ -z $nbad ]] || flunk "bad answers while the master was demoted: $nbad"
  reads_until_hits 10 6 "/orders/count?customerid=$c" ||
    flunk "no 6 HITs in a row within 10 s of the demotion: $tally" "$(sn_logs)"
  [[ -z $bad ]] || flunk "bad answers after the failover: $bad" "$(sn_logs)"
  echo "# SENTINEL FAILOVER: $n reads until the old master was demoted, then 6 HITs in a row after $took s; answers: $tally" >&3
  names_master "$SN_R" || flunk "the sentinels do not name $SN_R as the master" "$(sn_logs)"
  # both workers left the old master for the new one, once each has had a
  # read. One after another, reads all go down the one connection nginx
  # keeps, to one worker: so one read waits on a lease taken by hand (for
  # up to CACHE_WAIT_MS) while three more go to the other worker.
  c2=$(fresh_c)
  sn_rcli "$SN_R" SET "orders:lock:count:customerid=$c2" by-hand PX 3000 >/dev/null
  curl -s -o /dev/null --max-time 10 "http://127.0.0.1:$SN_HTTP/orders/count?customerid=$c2" &
  held=$!
  sleep 0.3
  for i in 1 2 3; do sget "/orders/count?customerid=$c"; done
  wait "$held" || true
  moved=$(workers_log | tail -n +"$log_from" | grep -c "redis: connected to master $SN_NAME at 127.0.0.1:$SN_R\"")
  ((moved >= 2)) || flunk "$moved workers logged connecting to the new master $SN_R (want 2)" "$(workers_log | tail -n +"$log_from" | grep redis)"
  SN_M=$SN_R SN_R=$old_m
  sn_save SN_M "$SN_M"
  sn_save SN_R "$SN_R"
  sn_wait 15 linked "$SN_R" || flunk "the old master $SN_R is not a linked replica of $SN_M" "$(sn_logs)"
  # A write now: its invalidation must reach the new master, whichever
  # connection the worker held before.
  BASE=http://127.0.0.1:$SN_HTTP post_json "{\"customerid\": $c, \"netamount\": 10, \"tax\": 1}" --max-time 10
  assert_status 201
  want_body='{"count":1}'
  reads_until_hits 5 4 "/orders/count?customerid=$c" ||
    flunk "no 4 HITs in a row of the new count within 5 s: $tally; $bad" "$(sn_logs)"
  [[ -z $bad ]] || flunk "stale or failed answers after the write: $bad" "$(sn_logs)"
}
