#!/usr/bin/env bats
# The soak (make soak): one worker (WORKERS=1, so that every request goes
# through it) through a long run of mixed requests, good and bad
# (mixed.lua), in two passes:
#
#   1. the normal build: SOAK_REQUESTS (100000) requests in chunks of
#      SOAK_CHUNK (10000), the worker's VmRSS after each; it must grow by
#      less than 1 % from the first chunk's end (the 10,000th request) to
#      the last's (the 100,000th);
#   2. the same binary under valgrind's memcheck: SOAK_VALGRIND_REQUESTS
#      requests (40000: 4 to 6 minutes on the 2-core development
#      machine, at 120 to 150 requests/s; 100000 took 14 minutes there),
#      then ./deploy.sh stop: the worker leaves its loop and valgrind
#      writes its leak summary at exit. No byte may be definitely lost,
#      and no error (invalid read or write, uninitialised value, ...)
#      reported.
#
# In both, every answer must have one of the statuses its request may get
# (no 5xx at all), and wrk must see no socket error. Each test adds lines to
# the report that tests/run-integration.sh prints at the end (SOAK_REPORT).

load ../integration/helpers

SOAK_REPORT=${SOAK_REPORT:-$BATS_RUN_TMPDIR/soak-report}
SOAK_REQUESTS=${SOAK_REQUESTS:-100000}
SOAK_CHUNK=${SOAK_CHUNK:-10000}
SOAK_VALGRIND_REQUESTS=${SOAK_VALGRIND_REQUESTS:-40000}
SOAK_THREADS=${SOAK_THREADS:-2}
# What the last run left for a closer look: the valgrind log, the report,
# the workers' and the invalidator's logs.
SOAK_KEEP=$REPO/build/soak
S=$BATS_FILE_TMPDIR

setup_file() {
  mkdir -p "$SOAK_KEEP"
  rm -f "$SOAK_KEEP"/valgrind.log "$SOAK_KEEP"/report "$SOAK_KEEP"/workers.log "$SOAK_KEEP"/invalidator.log
}

teardown_file() {
  # A valgrind pass that did not get to its ./deploy.sh stop: stop the
  # pool while valgrind can still write its log, then drop its directory.
  if [[ -s $S/vgdir ]]; then
    local d
    d=$(<"$S/vgdir")
    if [[ ! -e $S/vg.stopped ]]; then deploy_sh stop || true; fi
    [[ $d == /tmp/orders-soak-vg.* ]] && rm -rf -- "$d"
  fi
  [[ -s $SOAK_REPORT ]] && cp -- "$SOAK_REPORT" "$SOAK_KEEP/report" || true
  local f
  for f in workers.log invalidator.log; do
    [[ -f $STATE_DIR/log/$f ]] && cp -- "$STATE_DIR/log/$f" "$SOAK_KEEP/$f" || true
  done
}

# report LINE...: lines of the report printed at the end.
report() { printf '%s\n' "$@" >>"$SOAK_REPORT"; }

now_s() { printf '%s' "$EPOCHREALTIME"; }
secs_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# the_worker: the one worker's PID (WORKERS=1), or a failure.
the_worker() {
  local pids
  pids=$(worker_pids)
  [[ -n $pids && $pids != *$'\n'* ]] || {
    flunk "expected exactly one worker, ./deploy.sh status says:" "$(stack_status)"
    return 1
  }
  printf '%s' "$pids"
}
pid_start() { awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# drive N NAME: N mixed requests through the stack (wrk, mixed.lua, one
# connection per thread); returns once every thread has had its share
# answered. $S/NAME.wrk gets wrk's report line; DRIVE_SECONDS the time taken.
drive() {
  local n=$1 name=$2 d=$S/$2.done pid t0 k
  rm -rf -- "$d"
  mkdir -p -- "$d"
  t0=$(now_s)
  SOAK_DONE=$d SOAK_REPORT=$S/$name.wrk wrk -t "$SOAK_THREADS" -c "$SOAK_THREADS" \
    -d 3600s --timeout 30s -s "$BATS_TEST_DIRNAME/mixed.lua" "$BASE" -- "$n" "$SOAK_THREADS" \
    >"$S/$name.out" 2>&1 </dev/null 3>&- &
  pid=$!
  # wrk's threads stop after their share, but wrk itself waits for the end
  # of -d: a SIGINT ends it, and it then writes its report.
  while alive "$pid"; do
    k=$(find "$d" -name 'done.*' | wc -l)
    ((k >= SOAK_THREADS)) && break
    sleep 0.05
  done
  DRIVE_SECONDS=$(secs_between "$t0" "$(now_s)")
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" || true
  [[ -s $S/$name.wrk ]] || flunk "wrk wrote no report" "$(cat "$S/$name.out")"
}

# merge FILE...: wrk report lines added up: "requests N unexpected N 200=N
# ... connect=N read=N write=N timeout=N hit=N miss=N bypass=N max_ms M
# kinds=KIND:N,..."; max_ms is the largest, the examples are dropped.
merge() {
  awk '
    {
      for (i = 1; i <= NF; i++) {
        if ($i == "requests" || $i == "unexpected") { sum[$i] += $(i + 1); key[$i] = 1 }
        else if ($i == "max_ms") { if ($(i + 1) > max) max = $(i + 1) }
        else if ($i ~ /^[a-z0-9]+=[0-9]+$/) { split($i, a, "="); sum[a[1]] += a[2]; key[a[1]] = 1 }
        else if ($i ~ /^kinds=/) {
          nk = split(substr($i, 7), kv, ",")
          for (j = 1; j <= nk; j++) { split(kv[j], a, ":"); if (!(a[1] in kind)) order[++nkinds] = a[1]; kind[a[1]] += a[2] }
        }
      }
    }
    END {
      line = sprintf("requests %d unexpected %d", sum["requests"], sum["unexpected"])
      n = 0
      for (k in key) if (k ~ /^[0-9]+$/) ks[++n] = k + 0
      for (j = 2; j <= n; j++) for (m = j; m > 1 && ks[m - 1] > ks[m]; m--) { t = ks[m]; ks[m] = ks[m - 1]; ks[m - 1] = t }
      for (j = 1; j <= n; j++) line = line " " ks[j] "=" sum[ks[j]]
      split("connect read write timeout hit miss bypass", o, " ")
      for (j = 1; j <= 7; j++) line = line " " o[j] "=" sum[o[j]] + 0
      line = line " max_ms " max + 0 " kinds="
      for (j = 1; j <= nkinds; j++) line = line (j > 1 ? "," : "") order[j] ":" kind[order[j]]
      print line
    }' "$@"
}

# field NAME LINE: a number from a report line ("requests N", "200=N").
field() {
  awk -v k="$1" '{
    for (i = 1; i <= NF; i++) {
      if ($i == k) { print $(i + 1); exit }
      if (index($i, k "=") == 1) { print substr($i, length(k) + 2); exit }
    }
    print 0
  }' <<<"$2"
}

# statuses LINE: "200=N 201=N ..." of a report line.
statuses() { grep -o -E '(^| )[0-9]{3}=[0-9]+' <<<"$1" | tr -d ' ' | tr '\n' ' ' | sed 's/ $//'; }

# check_answers N LINE [FILE...]: N requests answered, none unexpected, no
# 5xx, no socket error; FILE: wrk reports whose examples to show.
check_answers() {
  local n=$1 line=$2
  shift 2
  local got bad5 sock unexp
  got=$(field requests "$line")
  ((got == n)) || flunk "$got requests answered, not $n" "$line"
  bad5=$(grep -o -E '(^| )5[0-9]{2}=[0-9]+' <<<"$line" | tr -d ' ' | tr '\n' ' ')
  [[ -z $bad5 ]] || flunk "answers with a 5xx status: $bad5" "$line"
  sock=$(($(field connect "$line") + $(field read "$line") + $(field write "$line") + $(field timeout "$line")))
  ((sock == 0)) || flunk "wrk saw $sock socket errors" "$line"
  unexp=$(field unexpected "$line")
  ((unexp == 0)) || flunk "$unexp answers had a status their request may not get (kind:status):" \
    "$(grep -h -o 'examples=.*' "$@" | tr ',' ' ')" "$line"
}

# ---------------------------------------------------------------- RSS pass

@test "RSS pass: $SOAK_REQUESTS mixed requests through one worker: only the statuses each may get, no 5xx, no socket error" {
  command -v wrk >/dev/null || flunk "wrk is not installed (./deploy.sh deps --test)"
  ((SOAK_REQUESTS % SOAK_CHUNK == 0 && SOAK_REQUESTS >= 2 * SOAK_CHUNK)) ||
    flunk "SOAK_REQUESTS ($SOAK_REQUESTS) must be a multiple of SOAK_CHUNK ($SOAK_CHUNK), at least two"
  local pid start sent=0 total=0 i rss
  pid=$(the_worker)
  start=$(pid_start "$pid")
  : >"$S/rss"
  echo "0 $(rss_kb "$pid")" >>"$S/rss"
  for ((i = 1; sent < SOAK_REQUESTS; i++)); do
    drive "$SOAK_CHUNK" "rss.$i"
    sent=$((sent + SOAK_CHUNK))
    total=$(awk -v a="$total" -v b="$DRIVE_SECONDS" 'BEGIN { print a + b }')
    [[ $(pid_start "$pid") == "$start" ]] ||
      flunk "the worker (pid $pid) is gone after $sent requests: it died and another took its place" "$(stack_status)"
    rss=$(rss_kb "$pid")
    echo "$sent $rss" >>"$S/rss"
  done
  merge "$S"/rss.*.wrk >"$S/rss.total"
  local line
  line=$(<"$S/rss.total")
  report "RSS pass (build/orders-worker, 1 worker, pid $pid):" \
    "  requests        $(field requests "$line") in $(printf '%.0f' "$total") s ($(awk -v n="$(field requests "$line")" -v t="$total" 'BEGIN { printf "%.0f", n / t }') requests/s)" \
    "  statuses        $(statuses "$line")" \
    "  X-Cache         HIT $(field hit "$line"), MISS $(field miss "$line"), BYPASS $(field bypass "$line")" \
    "  unexpected      $(field unexpected "$line"); socket errors $(($(field connect "$line") + $(field read "$line") + $(field write "$line") + $(field timeout "$line")))" \
    "  VmRSS (kB)      $(awk '{ printf "%s%s@%d", (NR > 1 ? " " : ""), $2, $1 }' "$S/rss")" \
    "  mix             $(grep -o 'kinds=[^ ]*' <<<"$line" | sed 's/^kinds=//; s/,/ /g' | fold -s -w 96 | sed 's/ *$//; 2,$s/^/                  /')"
  check_answers "$SOAK_REQUESTS" "$line" "$S"/rss.*.wrk
}

@test "RSS pass: the worker's VmRSS grows by less than 1 % from the ${SOAK_CHUNK}th to the ${SOAK_REQUESTS}th request" {
  [[ -s $S/rss ]] || flunk "no RSS figures: the previous test did not run"
  local first last pct
  first=$(awk -v n="$SOAK_CHUNK" '$1 == n { print $2 }' "$S/rss")
  last=$(awk -v n="$SOAK_REQUESTS" '$1 == n { print $2 }' "$S/rss")
  [[ -n $first && -n $last ]] || flunk "no RSS at $SOAK_CHUNK or $SOAK_REQUESTS requests" "$(cat "$S/rss")"
  pct=$(awk -v a="$first" -v b="$last" 'BEGIN { printf "%+.2f", (b - a) * 100 / a }')
  report "  RSS growth      $first kB at $SOAK_CHUNK -> $last kB at $SOAK_REQUESTS: $pct % (ratio $(awk -v a="$first" -v b="$last" 'BEGIN { printf "%.4f", b / a }'); limit +1 %)"
  awk -v a="$first" -v b="$last" 'BEGIN { exit !((b - a) * 100 < a) }' ||
    flunk "VmRSS grew by $pct % (limit 1 %): $first kB -> $last kB" "$(cat "$S/rss")"
}

# ---------------------------------------------------------------- leak pass

# valgrind_setup: a directory www-data can write (as root the workers run
# as www-data), holding a copy of the worker, the suppressions and a
# wrapper that execs valgrind on the worker: deploy.sh's WORKER_BIN. The
# copy: the checkout may be out of www-data's reach. Sets VG_DIR.
valgrind_setup() {
  VG_DIR=$(mktemp -d /tmp/orders-soak-vg.XXXXXX) || flunk "cannot make a directory for valgrind"
  echo "$VG_DIR" >"$S/vgdir"
  chmod 0755 "$VG_DIR"
  cp -- "$REPO/build/orders-worker" "$VG_DIR/orders-worker"
  cp -- "$BATS_TEST_DIRNAME/valgrind.supp" "$VG_DIR/valgrind.supp"
  cat >"$VG_DIR/worker-valgrind" <<EOF
#!/bin/sh
# The worker under memcheck, for tests/soak/10-soak.bats.
exec /usr/bin/valgrind --tool=memcheck --leak-check=full \\
	--show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite \\
	--num-callers=30 --suppressions=$VG_DIR/valgrind.supp \\
	--log-file=$VG_DIR/valgrind.%p.log $VG_DIR/orders-worker "\$@"
EOF
  chmod 0755 "$VG_DIR/worker-valgrind"
  if (($(id -u) == 0)); then
    chown -R www-data:www-data "$VG_DIR" &&
      setpriv --reuid=www-data --regid=www-data --init-groups -- test -w "$VG_DIR" ||
      flunk "www-data cannot write into $VG_DIR"
  fi
}

@test "leak pass: $SOAK_VALGRIND_REQUESTS mixed requests through one worker under valgrind: only the statuses each may get, no 5xx, no socket error" {
  command -v valgrind >/dev/null || flunk "valgrind is not installed (apt-get install valgrind)"
  valgrind_setup
  WORKER_BIN=$VG_DIR/worker-valgrind deploy_sh restart || flunk "./deploy.sh restart onto valgrind failed" "$(cat "$deploy_log")"
  local pid
  pid=$(the_worker)
  grep -q valgrind "/proc/$pid/cmdline" 2>/dev/null || [[ $(readlink "/proc/$pid/exe") == *valgrind* || $(readlink "/proc/$pid/exe") == *memcheck* ]] ||
    flunk "the worker (pid $pid) does not run under valgrind: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
  echo "$pid" >"$S/vg.pid"
  # valgrind takes a few seconds to start the worker
  wait_for 60 bash -c "[[ \$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 '$BASE/healthz') == 200 ]]" ||
    flunk "the worker under valgrind does not answer /healthz"
  drive "$SOAK_VALGRIND_REQUESTS" vg
  local line
  line=$(<"$S/vg.wrk")
  echo "$DRIVE_SECONDS" >"$S/vg.seconds"
  report "" "leak pass (the same binary under valgrind memcheck, 1 worker, pid $pid):" \
    "  requests        $(field requests "$line") in $(printf '%.0f' "$DRIVE_SECONDS") s ($(awk -v n="$(field requests "$line")" -v t="$DRIVE_SECONDS" 'BEGIN { printf "%.0f", n / t }') requests/s under valgrind)" \
    "  statuses        $(statuses "$line")" \
    "  X-Cache         HIT $(field hit "$line"), MISS $(field miss "$line"), BYPASS $(field bypass "$line")" \
    "  unexpected      $(field unexpected "$line"); socket errors $(($(field connect "$line") + $(field read "$line") + $(field write "$line") + $(field timeout "$line")))"
  check_answers "$SOAK_VALGRIND_REQUESTS" "$line" "$S/vg.wrk"
  # Both ways through the cache ran under valgrind, not only misses.
  (($(field hit "$line") > 0 && $(field miss "$line") > 0)) ||
    flunk "under valgrind no X-Cache: HIT or no MISS at all: the cache's paths were not all exercised (build/soak/workers.log)" "$line"
}

# vg_figure LOG WHAT: the bytes of "WHAT: N bytes in M blocks" (commas
# dropped), 0 when valgrind found no leak at all.
vg_figure() {
  local v
  v=$(grep -E "== +$2: " "$1" | tail -1 | sed -E "s/.*$2: ([0-9,]+) bytes in ([0-9,]+) blocks.*/\1 \2/; s/,//g")
  printf '%s' "${v:-0 0}"
}

@test "leak pass: at the worker's exit (./deploy.sh stop) valgrind finds 0 bytes definitely lost and 0 errors" {
  [[ -s $S/vgdir && -s $S/vg.pid ]] || flunk "the valgrind pass did not run"
  local d pid log t0 stop_s
  d=$(<"$S/vgdir")
  pid=$(<"$S/vg.pid")
  t0=$(now_s)
  deploy_sh stop || flunk "./deploy.sh stop failed" "$(cat "$deploy_log")"
  touch "$S/vg.stopped"
  stop_s=$(secs_between "$t0" "$(now_s)")
  log=$d/valgrind.$pid.log
  [[ -s $log ]] || flunk "no valgrind log $log" "$(ls -l "$d")"
  cp -- "$log" "$SOAK_KEEP/valgrind.log"
  local others
  others=$(find "$d" -name 'valgrind.*.log' ! -name "valgrind.$pid.log" | wc -l)
  grep -q 'ERROR SUMMARY' "$log" || flunk "valgrind wrote no summary: the worker did not leave cleanly" "$(tail -n 30 "$log")"
  local def ind pos reach errors kinds
  read -r -a def <<<"$(vg_figure "$log" 'definitely lost')"
  read -r -a ind <<<"$(vg_figure "$log" 'indirectly lost')"
  read -r -a pos <<<"$(vg_figure "$log" 'possibly lost')"
  read -r -a reach <<<"$(vg_figure "$log" 'still reachable')"
  errors=$(grep -E '== ERROR SUMMARY: ' "$log" | tail -1 | sed -E 's/.*ERROR SUMMARY: ([0-9,]+) errors? from ([0-9,]+) contexts?.*suppressed: ([0-9,]+) from ([0-9,]+).*/\1 \2 \3 \4/; s/,//g')
  read -r -a errors <<<"$errors"
  kinds=$(grep -o -E '== (Invalid (read|write|free)[^=]*|Conditional jump[^=]*|Use of uninitialised[^=]*|Syscall param[^=]*|Mismatched free[^=]*|Source and destination overlap[^=]*)' "$log" |
    sed 's/^== //; s/ of size [0-9]*//' | sort | uniq -c | sed 's/^ *//' | tr '\n' ';' | sed 's/;$//; s/;/; /g')
  report "  valgrind        definitely lost ${def[0]} bytes in ${def[1]} blocks; indirectly lost ${ind[0]} bytes in ${ind[1]} blocks" \
    "                  possibly lost ${pos[0]} bytes in ${pos[1]} blocks; still reachable ${reach[0]} bytes in ${reach[1]} blocks" \
    "                  ERROR SUMMARY: ${errors[0]:-?} errors from ${errors[1]:-?} contexts (suppressed: ${errors[2]:-?} from ${errors[3]:-?})${kinds:+: $kinds}" \
    "  stop            ./deploy.sh stop took $stop_s s; log kept as build/soak/valgrind.log"
  ((others == 0)) || flunk "$others more valgrind logs: the worker under valgrind died and was started again" "$(ls -l "$d")"
  [[ ${def[0]} == 0 ]] || flunk "valgrind: ${def[0]} bytes definitely lost in ${def[1]} blocks" "$(grep -A 30 -E 'definitely lost in loss record' "$log" | head -n 120)"
  [[ ${errors[0]:-x} == 0 ]] || flunk "valgrind: ${errors[0]:-?} errors" "$(grep -B 2 -A 25 -m 3 -E '== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and)' "$log" | head -n 120)"
}
