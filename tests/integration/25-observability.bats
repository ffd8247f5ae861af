#!/usr/bin/env bats
# What the contract promises for watching the service: X-Request-Id and
# Server-Timing on every response, /metrics summed over all workers, /status.

load helpers

@test "X-Request-Id and Server-Timing on every response, errors included; request ids differ" {
  id=$(psqlc "SELECT min(orderid) FROM orders")
  seen=()
  for p in /orders/count "/orders/$id" /orders/999999999 "/orders/count?foo=1" /healthz; do
    req GET "$p"
    assert_header_match X-Request-Id '.'
    assert_header_match Server-Timing '.'
    seen+=("$(header X-Request-Id)")
  done
  req PUT /orders/1
  assert_header_match X-Request-Id '.'
  seen+=("$(header X-Request-Id)")
  dups=$(printf '%s\n' "${seen[@]}" | sort | uniq -d)
  assert_eq "repeated X-Request-Id values" "" "$dups"
}

# requests_total: the number of requests /metrics reports: the sum of every
# sample (all label sets) of the counters whose name mentions "request", or,
# when there is none, of the _count samples of such histograms/summaries.
requests_total() {
  awk '
    $1 == "#" && $2 == "TYPE" && $3 ~ /request/ {
      if ($4 == "counter") { c[$3] = 1; c[$3 "_total"] = 1 }
      if ($4 == "histogram" || $4 == "summary") h[$3 "_count"] = 1
      next
    }
    /^#/ || NF < 2 { next }
    {
      l = $0; sub(/\{[^}]*\}/, "", l); split(l, a, " ")  # name value [timestamp]
      n = a[1]; v = a[2]
      if (n in c) { cs += v; cf = 1 }
      if (n in h) { hs += v; hf = 1 }
    }
    END { if (cf) printf "%d\n", cs; else if (hf) printf "%d\n", hs; else exit 1 }' <<<"$body"
}

@test "/metrics: Prometheus text with requests, hits, misses, errors; counts summed over all workers" {
  req GET /metrics
  assert_status 200
  assert_header_match Content-Type '^text/plain'
  grep -q '^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* \(counter\|gauge\|histogram\|summary\|untyped\)$' <<<"$body" ||
    flunk "no '# TYPE' line in /metrics"
  for w in request hit miss error; do
    grep -Eiq "^[a-zA-Z_:][a-zA-Z0-9_:]*${w}[a-zA-Z0-9_:]*(\{[^}]*\})? " <<<"$body" ||
      grep -Eiq "^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*${w}[^}]*\})? " <<<"$body" ||
      flunk "no metric about '$w' in /metrics"
  done
  before=$(requests_total) || flunk "no counter whose name mentions 'request' in /metrics"

  # 20 requests spread over the workers; the sum must see all of them
  for i in $(seq 1 20); do
    req GET /orders/count
    assert_status 200
  done
  req GET /metrics
  assert_status 200
  after=$(requests_total)
  ((after - before >= 20)) ||
    flunk "requests counter grew by $((after - before)) over 20 requests (before $before, after $after): not summed over all workers?"
}

# metric NAME: the value of the sample NAME (with its labels, exactly as
# /metrics writes them, e.g. 'orders_http_requests_total{route="count",status="200"}')
# in the last /metrics body; 0 when there is no such sample.
metric() {
  awk -v n="$1" '$1 == n { v = $2; found = 1 } END { print found ? v : 0 }' <<<"$body"
}

# scrape VAR: GET /metrics, its body into VAR.
scrape() {
  req GET /metrics
  assert_status 200 || return 1
  printf -v "$1" '%s' "$body"
}

# delta NAME: the sample's value in the second scrape less the first.
delta() {
  local a b
  a=$(body=$m1 metric "$1")
  b=$(body=$m2 metric "$1")
  awk -v a="$a" -v b="$b" 'BEGIN { print b - a }'
}

@test "/metrics: after exactly 20 requests of known kinds, every counter moved by exactly its share, summed over the workers" {
  c=$(fresh_customer)
  fresh=()
  for i in 1 2 3 4 5; do fresh+=("$(fresh_customer)"); done
  req GET "/orders/count?customerid=$c"  # warm-up: the entry the HITs read
  assert_count_is 0
  scrape m1
  assert_eq "workers counting into the metrics file" "$WORKERS" "$(body=$m1 metric orders_workers)"
  for i in $(seq 1 10); do
    req GET "/orders/count?customerid=$c"
    assert_cache HIT
  done
  for f in "${fresh[@]}"; do
    req GET "/orders/count?customerid=$f"
    assert_cache MISS
  done
  for i in 1 2 3 4 5; do
    req GET /no/such/thing
    assert_status 404
  done
  scrape m2
  # the first scrape counts once it is answered: 20 + 1
  assert_eq "requests, count, 200" 15 "$(delta 'orders_http_requests_total{route="count",status="200"}')"
  assert_eq "requests, other, 404" 5 "$(delta 'orders_http_requests_total{route="other",status="404"}')"
  assert_eq "requests, metrics, 200" 1 "$(delta 'orders_http_requests_total{route="metrics",status="200"}')"
  assert_eq "hits" 10 "$(delta orders_cache_hits_total)"
  assert_eq "misses" 5 "$(delta orders_cache_misses_total)"
  assert_eq "bypasses" 0 "$(delta orders_cache_bypasses_total)"
  assert_eq "fills" 5 "$(delta orders_cache_fills_total)"
  assert_eq "fill waits" 0 "$(delta orders_cache_fill_waits_total)"
  assert_eq "invalidations" 0 "$(delta orders_cache_invalidations_total)"
  assert_eq "redis errors" 0 "$(delta orders_redis_errors_total)"
  assert_eq "postgres errors" 0 "$(delta orders_postgres_errors_total)"
  assert_eq "request latency _count" 21 "$(delta orders_http_request_duration_seconds_count)"
  assert_eq "postgres latency _count" 5 "$(delta orders_postgres_query_duration_seconds_count)"
  assert_eq "breakers closed" "$WORKERS" "$(body=$m2 metric 'orders_redis_breaker{state="closed"}')"
  body=$m2 requests_total >/dev/null || flunk "requests_total found no request counter"

  # a write: one invalidation, and a POST counted under its route
  post_json "{\"customerid\": $c, \"netamount\": 1, \"tax\": 0}"
  assert_status 201
  m1=$m2
  scrape m2
  assert_eq "invalidations after a POST" 1 "$(delta orders_cache_invalidations_total)"
  assert_eq "requests, order_create, 201" 1 "$(delta 'orders_http_requests_total{route="order_create",status="201"}')"
}

@test "/metrics: histograms are cumulative, end at +Inf = _count, and _count is the number of requests" {
  scrape m
  for h in orders_http_request_duration_seconds orders_postgres_query_duration_seconds; do
    grep -q "^# TYPE $h histogram$" <<<"$m" || flunk "no histogram $h"
    run awk -v h="$h" '
      index($1, h "_bucket{") == 1 { if ($2 < prev) bad = 1; prev = $2; last = $2; n++;
                                     if ($1 ~ /le="\+Inf"/) inf = $2 }
      $1 == h "_count" { count = $2 }
      END { if (bad || n < 2 || inf != count || last != inf) { print "bad: n=" n " inf=" inf " count=" count; exit 1 } }' <<<"$m"
    assert_eq "$h buckets" 0 "$status" || { echo "$output"; return 1; }
  done
  reqs=$(body=$m requests_total)
  cnt=$(body=$m metric orders_http_request_duration_seconds_count)
  assert_eq "request histogram _count = requests counted" "$reqs" "$cnt"
}

@test "/status: an HTML page served by nginx itself, its script and style with their types, HEAD too" {
  req GET /status
  assert_status 200
  assert_header Content-Type 'text/html; charset=utf-8'
  assert_header_match X-Request-Id '.'
  assert_header_match Content-Security-Policy "^default-src 'self'"
  assert_header X-Content-Type-Options nosniff
  # the workers put Server-Timing on every answer: this one is nginx's own
  ! has_header Server-Timing || flunk "/status was answered by a worker (Server-Timing: $REPLY)"
  grep -qi '^<!doctype html>' <<<"$body" || flunk "no HTML document in /status"
  grep -q '<script src="status.js"' <<<"$body" || flunk "/status does not load status.js"
  grep -q 'id="hits"' <<<"$body" || flunk "/status has no element with id=hits"
  [[ $body == "$(<"$REPO/nginx/status.html")" ]] || flunk "/status is not nginx/status.html"

  req HEAD /status
  assert_status 200
  assert_header Content-Type 'text/html; charset=utf-8'
  assert_header_match X-Request-Id '.'

  req GET /status.js
  assert_status 200
  assert_header Content-Type 'text/javascript; charset=utf-8'
  assert_header_match Content-Security-Policy "^default-src 'self'"
  [[ $body == "$(<"$REPO/nginx/status.js")" ]] || flunk "/status.js is not nginx/status.js"

  req GET /status.css
  assert_status 200
  assert_header Content-Type 'text/css; charset=utf-8'

  # GET and HEAD only; only those three: the rest of the name space is
  # the service's
  req POST /status -H 'Content-Type: application/json' --data-binary '{}'
  assert_error_json 405
  assert_header Allow 'GET, HEAD'
  assert_header_match X-Request-Id '.'
  req GET /status.html
  assert_error_json 404
}

@test "/status: ./deploy.sh puts a changed page file in place again, and nginx serves it without a reload" {
  local www nginx_before workers_before
  www=$(head -n 1 "$STATE_DIR/run.path")/www
  [[ -f $www/status.css ]] || flunk "no $www/status.css" || return 1
  echo '/* changed by hand */' >>"$www/status.css"
  req GET /status.css
  [[ $body != "$(<"$REPO/nginx/status.css")" ]] || flunk "nginx did not serve the changed file" || return 1
  nginx_before=$(pid_of nginx) workers_before=$(ps -o pid= --ppid "$nginx_before" | sort | xargs)
  deploy_sh || { show_deploy_log; flunk "./deploy.sh again failed"; }
  req GET /status.css
  assert_status 200
  [[ $body == "$(<"$REPO/nginx/status.css")" ]] || flunk "/status.css is not nginx/status.css after ./deploy.sh"
  assert_eq "nginx's workers (no reload)" "$workers_before" "$(ps -o pid= --ppid "$nginx_before" | sort | xargs)"
}

# The status page in a headless Chromium, driven through the DevTools
# protocol on a pipe (--remote-debugging-pipe: Chromium reads commands on
# its fd 3 and writes answers on its fd 4, JSON texts ended by a NUL).
# --dump-dom cannot show a page live: it dumps at the load event (its
# --timeout only cuts a load short), before the page's first poll.

# chromium_start URL: Chromium on URL, in a process group of its own that
# timeout kills after 60 s whatever happens (chromium_stop, in teardown,
# kills it at once); CHROMIUM_DIR holds its fresh profile, the pipes, its
# log and its TMPDIR.
chromium_start() {
  CHROMIUM_DIR=$(mktemp -d /tmp/orders-chromium.XXXXXX)
  mkfifo "$CHROMIUM_DIR/to" "$CHROMIUM_DIR/from"
  (
    for fd in "/proc/$BASHPID/fd/"*; do
      fd=${fd##*/}
      ((fd > 2)) && eval "exec $fd>&-"
    done
    # timeout leads a process group of its own: kill -- -PID reaches
    # Chromium's children (zygote, renderer) too
    # its scratch directories (org.chromium.Chromium.*) go with CHROMIUM_DIR
    mkdir "$CHROMIUM_DIR/tmp"
    TMPDIR=$CHROMIUM_DIR/tmp exec timeout -k 5 60 chromium --headless --no-sandbox --disable-gpu \
      --disable-background-networking --disable-component-update --disable-sync \
      --no-first-run --user-data-dir="$CHROMIUM_DIR/profile" \
      --remote-debugging-pipe "$1" 3<"$CHROMIUM_DIR/to" 4>"$CHROMIUM_DIR/from"
  ) </dev/null >"$CHROMIUM_DIR/log" 2>&1 &
  CHROMIUM_PID=$!
  # read-write opens of a fifo never block, whether Chromium came up or not
  exec {CDP_TO}<>"$CHROMIUM_DIR/to" {CDP_FROM}<>"$CHROMIUM_DIR/from"
  CDP_ID=0 CDP_SESSION=''
}

# chromium_live: some process of Chromium's group is still running (its
# dead children wait for init to reap them: they do not count).
chromium_live() {
  ps -eo pgid=,stat= | awk -v g="$CHROMIUM_PID" '$1 == g && $2 !~ /^Z/ { n++ } END { exit !n }'
}

# chromium_stop: TERM to Chromium's process group (it leaves within a
# second; Browser.close takes longer), then KILL to what is left; its
# profile goes.
chromium_stop() {
  [[ -n ${CHROMIUM_PID-} ]] || return 0
  local i sig
  [[ -n ${CDP_TO-} ]] && exec {CDP_TO}>&- {CDP_FROM}>&-
  for sig in TERM KILL; do
    kill "-$sig" -- "-$CHROMIUM_PID" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
      chromium_live || break 2
      sleep 0.1
    done
  done
  wait "$CHROMIUM_PID" 2>/dev/null || true
  rm -rf -- "$CHROMIUM_DIR"
  CHROMIUM_PID='' CDP_TO='' CDP_FROM=''
}

teardown() { chromium_stop; }

# cdp METHOD PARAMS: one DevTools command (in the attached page's session
# once there is one); REPLY is its answer's "result"; fails on an error
# answer, or no answer within 10 s.
cdp() {
  local msg id=$((++CDP_ID)) deadline=$((SECONDS + 10))
  msg=$(jq -cn --argjson id "$id" --arg m "$1" --argjson p "$2" --arg s "$CDP_SESSION" \
    '{id: $id, method: $m, params: $p} + (if $s == "" then {} else {sessionId: $s} end)')
  printf '%s\0' "$msg" >&"$CDP_TO"
  while ((SECONDS < deadline)); do
    IFS= read -r -d '' -t 10 msg <&"$CDP_FROM" || break
    [[ $(jq -r '.id // empty' <<<"$msg") == "$id" ]] || continue # an event
    REPLY=$(jq -c '.result' <<<"$msg")
    [[ $REPLY != null ]] && return 0
    echo "chromium: $1: $msg" >&2
    return 1
  done
  echo "chromium: no answer to $1 within 10 s; its log:" >&2
  tail -n 20 "$CHROMIUM_DIR/log" >&2
  return 1
}

# page_figures: every element with an id on the page, as {"id": text},
# with "first" (data-first of #hits) and "polls" (data-polls of <body>).
page_figures() {
  local js='(() => { const o = {}; for (const e of document.querySelectorAll("[id]")) o[e.id] = e.textContent;'
  js+=' o.first = document.getElementById("hits").dataset.first; o.polls = document.body.dataset.polls || "0"; return o; })()'
  cdp Runtime.evaluate "$(jq -cn --arg e "$js" '{expression: $e, returnByValue: true}')" || return 1
  figures=$(jq -c '.result.value' <<<"$REPLY")
}

# fig ID: that figure in the last page_figures.
fig() { jq -r --arg k "$1" '.[$k] // "(no such element)"' <<<"$figures"; }

@test "/status in headless Chromium: figures, not placeholders, and the hit count rises live after requests" {
  if ! command -v chromium >/dev/null; then
    [[ ${CI-} != true ]] || flunk "chromium is not installed, and CI=true: ./deploy.sh deps --test installs it" || return 1
    skip "chromium is not installed (./deploy.sh deps --test installs it)"
  fi
  local start=$EPOCHREALTIME c i t x deadline
  c=$(fresh_customer)
  req GET "/orders/count?customerid=$c" # a read, so that there is a hit ratio
  assert_count_is 0

  chromium_start "$BASE/status"
  # the page's target, once Chromium is up
  deadline=$((SECONDS + 10))
  while :; do
    cdp Target.getTargets '{}' || return 1
    t=$(jq -r --arg u "$BASE/status" '.targetInfos[] | select(.type == "page" and .url == $u) | .targetId' <<<"$REPLY" | head -n 1)
    [[ -z $t && $SECONDS -lt $deadline ]] || break
    sleep 0.2
  done
  [[ -n $t ]] || flunk "Chromium opened no page on $BASE/status: $REPLY" || return 1
  cdp Target.attachToTarget "{\"targetId\": \"$t\", \"flatten\": true}" || return 1
  CDP_SESSION=$(jq -r .sessionId <<<"$REPLY")

  # two polls: every figure known, rates and latencies included
  deadline=$((SECONDS + 10))
  while :; do
    page_figures || return 1
    (($(fig polls) < 2 && SECONDS < deadline)) || break
    sleep 0.2
  done
  (($(fig polls) >= 2)) || flunk "the page polled $(fig polls) times in 10 s: $figures" || return 1
  for id in hits misses bypasses fills invalidations req-total workers errors-5xx redis-errors postgres-errors; do
    assert_match "#$id" '^[0-9]+$' "$(fig "$id")" || return 1
  done
  assert_match "#hit-ratio" '^[0-9]+\.[0-9] %$' "$(fig hit-ratio)"
  # no cache read in the last seconds is a fair answer too
  assert_match "#hit-ratio-now" '^[0-9]+\.[0-9] %$|^no reads$' "$(fig hit-ratio-now)"
  assert_match "#req-rate" '^[0-9]+\.[0-9]$' "$(fig req-rate)"
  assert_match "#req-rate-all" '^[0-9]+\.[0-9]$' "$(fig req-rate-all)"
  # the page's own polls are requests: there is always a latency
  for id in latency-mean latency-p50 latency-p99; do
    assert_match "#$id" '^>?[0-9]+(\.[0-9]+)? ms$' "$(fig "$id")" || return 1
  done
  assert_eq "#workers" "$WORKERS" "$(fig workers)"
  assert_eq "#postgres" ok "$(fig postgres)"
  assert_eq "#redis" ok "$(fig redis)"
  assert_eq "#breaker" "$WORKERS closed" "$(fig breaker)"
  assert_eq "#state" ok "$(fig state)"
  local first=$(fig first) before=$(fig hits)
  assert_match "#hits data-first" '^[0-9]+$' "$first"

  # 10 cache hits, then the figure on the same page rises by 10 (nothing
  # else reads the cache meanwhile)
  # a fresh entry, with all of its (short) ttl ahead: an older one may
  # expire in the middle of the 10 reads
  rdel "$(ckey "count:customerid=$c")"
  req GET "/orders/count?customerid=$c"
  assert_cache MISS
  local -a hits=()
  for i in $(seq 1 10); do hits+=(-o /dev/null "$BASE/orders/count?customerid=$c"); done
  x=$(curl -s --max-time 10 -w '%header{x-cache}\n' "${hits[@]}" | sort | uniq -c | xargs)
  assert_eq "X-Cache of 10 reads of a cached count" "10 HIT" "$x"
  deadline=$((SECONDS + 5))
  while :; do
    page_figures || return 1
    (($(fig hits) < before + 10 && SECONDS < deadline)) || break
    sleep 0.2
  done
  (($(fig hits) >= before + 10)) ||
    flunk "#hits went from $before to $(fig hits) in 5 s after 10 hits (page: $figures)" || return 1
  assert_eq "#hits data-first, the first figure the page showed" "$first" "$(fig first)"
  (($(fig hits) - $(fig first) >= 10)) || flunk "#hits $(fig hits), first shown $(fig first)"
  echo "# Chromium test took $(elapsed_since "$start") s, $(fig polls) polls" >&3
}

@test "/metrics across ./deploy.sh scale: one file for every pool, so no counter goes down and the new workers count" {
  scrape m1
  before=$(body=$m1 requests_total)
  deploy_sh scale 3 || { show_deploy_log; flunk "./deploy.sh scale 3 failed"; }
  for i in $(seq 1 12); do
    req GET /orders/count
    assert_status 200
  done
  scrape m2
  after=$(body=$m2 requests_total)
  assert_eq "workers counting after scale 3" 3 "$(body=$m2 metric orders_workers)"
  # the first scrape and the 12 reads, at least (scale itself asks nothing of the workers)
  ((after - before >= 13)) || flunk "requests went from $before to $after across scale 3"
  for name in orders_cache_hits_total orders_cache_misses_total orders_http_request_duration_seconds_count; do
    d=$(delta "$name")
    ((d >= 0)) || flunk "$name went down across scale 3 ($d)"
  done
  deploy_sh scale "$WORKERS" || { show_deploy_log; flunk "./deploy.sh scale $WORKERS failed"; }
  scrape m3
  assert_eq "workers counting after scale back" "$WORKERS" "$(body=$m3 metric orders_workers)"
  last=$(body=$m3 requests_total)
  ((last >= after)) || flunk "requests went from $after down to $last across scale back"
}
