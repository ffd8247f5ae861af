# Helpers of the fault suite (tests/faults/*.bats, run by `make faults`).
#
# Each fault runs under a steady load: wrk reading (reads.lua), a writer
# that POSTs orders with an Idempotency-Key and retries each until it is
# acknowledged (logging every attempt), and a probe that sends one read at a
# time and logs what each answer said (status, X-Cache, Server-Timing).
# After the fault the same checks every time: no acknowledged write lost,
# nothing but the allowed statuses, and a row of the report that
# tests/run-integration.sh prints at the end.

load ../integration/helpers

FAULT_REPORT=${FAULT_REPORT:-$BATS_RUN_TMPDIR/fault-report}
# The writer's orders: customerids of their own, one per fault.
WRITER_BASE=970000

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# ---------------------------------------------------------------- load

# load_start NAME: wrk, the writer and the probe, in the background, until
# load_stop. Files go to $L (this fault's directory).
load_start() {
  L=$BATS_FILE_TMPDIR/$1
  mkdir -p "$L"
  : >"$L/writes" >"$L/probe"
  WRITER_C=$((WRITER_BASE + ${2:-0}))
  LOAD_T0=$(now_ms)
  # wrk stops by itself after 300 s; load_stop ends it sooner with SIGINT,
  # on which it still prints its summary.
  WRK_REPORT=$L/wrk wrk -t 2 -c 8 -d 300s --timeout 20s \
    -s "$BATS_TEST_DIRNAME/reads.lua" "$BASE" >"$L/wrk.out" 2>&1 </dev/null 3>&- &
  WRK_PID=$!
  writer "$L" "$WRITER_C" </dev/null 3>&- &
  WRITER_PID=$!
  probe "$L" </dev/null 3>&- &
  PROBE_PID=$!
}

# load_stop: stop the readers at once; the writer finishes the order in
# hand (retrying it until acknowledged), then stops.
load_stop() {
  touch "$L/stop"
  kill -INT "$WRK_PID" 2>/dev/null || true
  wait "$WRK_PID" "$PROBE_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 240; i++)); do # 60 s: a write retried through a fault
    alive "$WRITER_PID" || break
    sleep 0.25
  done
  kill "$WRITER_PID" 2>/dev/null || true
  wait "$WRITER_PID" 2>/dev/null || true
  [[ -s $L/wrk ]] || flunk "wrk wrote no report" "$(cat "$L/wrk.out")"
}

# writer DIR CUSTOMER: POST one order after another, each with an
# Idempotency-Key of its own, retried (same key, same body) every 0.25 s
# until it is acknowledged (201). One line per attempt in DIR/writes:
# "ms key status orderid attempt".
writer() {
  local d=$1 c=$2 key st id attempt n=0
  while [[ ! -e $d/stop ]]; do
    key=$(</proc/sys/kernel/random/uuid)
    n=$((n + 1))
    for ((attempt = 1; attempt <= 240; attempt++)); do
      st=$(curl -s -o "$d/wbody" -w '%{http_code}' --max-time 15 \
        -H 'Content-Type: application/json' -H "Idempotency-Key: $key" \
        --data-binary "{\"customerid\": $c, \"netamount\": $n.25, \"tax\": 0.5}" \
        "$BASE/orders") || true
      id=-
      [[ $st == 201 && $(<"$d/wbody") =~ \"orderid\":\ *([0-9]+) ]] && id=${BASH_REMATCH[1]}
      echo "$(now_ms) $key $st $id $attempt" >>"$d/writes"
      [[ $st == 201 ]] && break
      sleep 0.25
    done
  done
}

# probe DIR: one GET /orders/count at a time, by turns a popular count
# (cached, mostly) and one never asked before (a miss: Postgres), each
# answer logged to DIR/probe: "ms status xcache cache_ms db_ms total_ms".
probe() {
  local d=$1 line i=0 qs
  while [[ ! -e $d/stop ]]; do
    i=$((i + 1))
    qs=customerid=1
    ((i % 2)) && qs="customerid=$((100000 + RANDOM * 32768 + RANDOM))"
    line=$(curl -s -o /dev/null --max-time 20 \
      -w '%{http_code} %header{x-cache} %header{server-timing} %{time_total}' \
      "$BASE/orders/count?$qs") || true
    awk -v t="$(now_ms)" '{
      c = "-"; db = "-"
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^cache;dur=/) { c = $i; sub(/^cache;dur=/, "", c); sub(/,$/, "", c) }
        if ($i ~ /^db;dur=/) { db = $i; sub(/^db;dur=/, "", db); sub(/,$/, "", db) }
      }
      x = ($2 ~ /^[A-Z]+$/) ? $2 : "-"
      printf "%s %s %s %s %s %.1f\n", t, $1, x, c, db, $NF * 1000
    }' <<<"$line" >>"$d/probe"
    sleep 0.05
  done
}

# ---------------------------------------------------------------- checks

# wrk_field NAME: a number from wrk's report line ("200=N", "max_ms M").
wrk_field() {
  awk -v k="$1" '{
    for (i = 1; i <= NF; i++) {
      if ($i == k) { print $(i + 1); exit }
      if (index($i, k "=") == 1) { print substr($i, length(k) + 2); exit }
    }
    print 0
  }' "$L/wrk"
}

# reads_failed: reads answered other than 200; socket_errors: wrk's.
reads_failed() {
  awk '{ n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+=/ && $i !~ /^200=/) { split($i, a, "="); n += a[2] } print n }' "$L/wrk"
}
socket_errors() {
  awk '{ n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^(connect|read|write|timeout)=/) { split($i, a, "="); n += a[2] } print n }' "$L/wrk"
}

# check_statuses: wrk and the writer saw only the statuses a fault allows
# (reads 200 or 503: every order the reads ask for exists; writes 201 or
# 503), and no socket error.
check_statuses() {
  local bad
  bad=$(grep -o -E ' [0-9]{3}=' "$L/wrk" | tr -d ' =' | grep -v -E '^(200|503)$' | tr '\n' ' ')
  [[ -z $bad ]] || flunk "reads answered with unexpected statuses: $bad" "$(cat "$L/wrk")"
  bad=$(awk '$3 != 201 && $3 != 503 { print $3 }' "$L/writes" | sort | uniq -c | tr '\n' ' ')
  [[ -z $bad ]] || flunk "writes answered with unexpected statuses (count status): $bad"
  (($(socket_errors) == 0)) || flunk "wrk saw socket errors" "$(cat "$L/wrk")"
}

# check_writes: every acknowledged write is in the table, once, under its
# key; sets ACKED, LOST, UNACKED (committed, never acknowledged).
check_writes() {
  local dbf=$L/db
  psqlc "SELECT orderid || ' ' || coalesce(idempotency_key, '-') FROM orders WHERE customerid = $WRITER_C" >"$dbf" ||
    flunk "cannot read the writer's orders back"
  ACKED=$(awk '$3 == 201' "$L/writes" | wc -l)
  # acknowledged "orderid key" pairs that the table does not hold
  LOST=$(awk '$3 == 201 { print $4, $2 }' "$L/writes" | sort | comm -23 - <(sort "$dbf") | wc -l)
  UNACKED=$(($(wc -l <"$dbf") - ACKED))
  ((ACKED > 0)) || flunk "the writer had no write acknowledged at all"
  ((LOST == 0)) || flunk "$LOST acknowledged writes are not in the table (or under another key)"
  local dup
  dup=$(awk '$3 == 201 { print $2 }' "$L/writes" | sort | uniq -d | wc -l)
  ((dup == 0)) || flunk "$dup keys were acknowledged twice"
}

# write_failures: attempts answered other than 201.
write_failures() { awk '$3 != 201' "$L/writes" | wc -l; }

# report FAULT RECOVERY NOTE: one row of the table printed at the end.
report() {
  local reads failed
  reads=$(wrk_field requests)
  failed=$(reads_failed)
  printf '%s|%s|%s|%s|%s|%s|%s|%s\n' "$1" "$reads" "$failed" \
    "$ACKED" "$(write_failures)" "$LOST" "$2" "$3" >>"$FAULT_REPORT"
}

# first_ok_write_after MS: ms from MS to the first acknowledged write after it.
first_ok_write_after() {
  awk -v t="$1" '$3 == 201 && $1 >= t { print $1 - t; found = 1; exit } END { if (!found) print -1 }' "$L/writes"
}
