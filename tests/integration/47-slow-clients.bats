#!/usr/bin/env bats
# Slow or hostile clients cannot tie up the worker pool: nginx reads whole
# requests (headers and body) before a worker sees them, and gives up on a
# client that stalls (client_header_timeout, client_body_timeout: 10 s).

load helpers

# open_raw VAR: a raw connection to nginx, its descriptor in VAR.
open_raw() {
  local -n _fd=$1
  exec {_fd}<>"/dev/tcp/127.0.0.1/$PORT"
}

@test "slowloris: 64 connections sending headers a byte at a time do not hold up the pool" {
  local -a fds=()
  local fd i
  for ((i = 0; i < 64; i++)); do
    open_raw fd
    printf 'GET /orders/count HTTP/1.1\r\nHost: x\r\nX-Slow: ' >&"$fd"
    fds+=("$fd")
  done
  # Every worker would be stuck on one of them if nginx passed requests
  # on before they were whole: these are answered at once instead.
  for ((i = 0; i < WORKERS * 4; i++)); do
    for fd in "${fds[@]}"; do printf 'a' >&"$fd"; done
    req GET /orders/count --max-time 3
    assert_status 200
  done
  for fd in "${fds[@]}"; do exec {fd}>&-; done
}

@test "a body cut short (Content-Length 200, 60 bytes, then the client goes): nothing inserted" {
  c=$(fresh_customer)
  open_raw fd
  body="{\"customerid\": $c, \"netamount\": 1.5, \"tax\": 0.5}"
  printf 'POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n%s' "$body" >&"$fd"
  sleep 0.5
  exec {fd}>&-
  sleep 0.5
  assert_eq "orders of customer $c" 0 "$(rows_of "$c")"
  post_json "$body"
  assert_status 201
  assert_eq "orders of customer $c after a whole POST" 1 "$(rows_of "$c")"
}

@test "a body that stalls half-way: nginx drops the client after client_body_timeout, nothing inserted, the pool free meanwhile" {
  c=$(fresh_customer)
  open_raw fd
  printf 'POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"customerid": %d, ' "$c" >&"$fd"
  for ((i = 0; i < WORKERS * 2; i++)); do
    req GET /healthz --max-time 3
    assert_status 200
  done
  # nginx ends a request whose client timed out without an answer (a 408
  # in its access log): the connection just closes.
  start=$SECONDS rc=0
  answer=$(timeout 20 cat <&"$fd") || rc=$?
  exec {fd}>&-
  ((rc == 0)) || flunk "nginx still held the stalled connection after 20 s (client_body_timeout is 10 s)"
  [[ -z $answer || $answer == "HTTP/1.1 408 "* ]] || flunk "expected no answer (or a 408), got: $answer"
  ((SECONDS - start >= 5)) || flunk "the connection closed after $((SECONDS - start)) s, before client_body_timeout"
  assert_eq "orders of customer $c" 0 "$(rows_of "$c")"
  grep -q '"POST /orders HTTP/1.1" 408 ' "$STATE_DIR/log/access.log" ||
    flunk "no 408 for the stalled POST in nginx's access log"
}

# The limits of nginx/orders.conf.in apply per client address, except to
# this machine's own 127.0.0.1 (every other test comes from there); these
# two come from 127.0.0.2, which is loopback too.

@test "limit_conn: 70 requests at a time from one address: the ones over 64 are 429 at once" {
  d=$BATS_TEST_TMPDIR/conn
  mkdir -p "$d"
  c=$(fresh_customer)
  # 70 cold counts, each held 200 ms in a worker (test hook): with two
  # workers most wait in nginx, each one counted, for seconds.
  for i in $(seq 1 70); do
    printf 'url = "%s"\noutput = "%s"\n' "$BASE/orders/count?customerid=$((c + i))" "$d/b.$i"
  done >"$d/urls"
  curl -s --parallel --parallel-immediate --parallel-max 70 --max-time 60 --interface 127.0.0.2 \
    -H 'X-Test-Fill-Delay-Ms: 200' \
    -w '%{http_code} %{filename_effective}\n' -K "$d/urls" >"$d/out"
  ok=$(awk '$1 == 200' "$d/out" | wc -l)
  limited=$(awk '$1 == 429' "$d/out" | wc -l)
  ((ok + limited == 70)) || flunk "answers other than 200 and 429:" "$(awk '$1 != 200 && $1 != 429' "$d/out" | head)"
  ((limited >= 1 && ok >= 64)) || flunk "of 70 requests at once, $ok answered and $limited refused (limit: 64 at a time)"
  read -r _ file < <(awk '$1 == 429' "$d/out" | head -1)
  jq -e '.error | test("too many")' "$file" >/dev/null || flunk "the 429 is not the JSON error: $(cat "$file")"
}

@test "limit_req: 400 requests at once from one address: the excess over 100/s (bursts of 200) is 429 JSON with Retry-After; 127.0.0.1 is not limited" {
  d=$BATS_TEST_TMPDIR/rate
  mkdir -p "$d"
  for i in $(seq 1 400); do
    printf 'url = "%s"\noutput = "%s"\n' "$BASE/healthz" "$d/b.$i"
  done >"$d/urls"
  curl -s --parallel --parallel-max 40 --max-time 20 --interface 127.0.0.2 \
    -w '%{http_code} %header{retry-after} %{filename_effective}\n' -K "$d/urls" >"$d/out"
  ok=$(awk '$1 == 200' "$d/out" | wc -l)
  limited=$(awk '$1 == 429' "$d/out" | wc -l)
  ((ok + limited == 400)) || flunk "answers other than 200 and 429:" "$(awk '$1 != 200 && $1 != 429' "$d/out" | head)"
  ((limited >= 50 && ok >= 200)) || flunk "from 127.0.0.2: $ok answered, $limited refused of 400 (expected at least 200 and 50)"
  read -r _ retry file < <(awk '$1 == 429' "$d/out" | head -1)
  assert_eq "Retry-After of a 429" 1 "$retry"
  jq -e '.error | test("too many")' "$file" >/dev/null || flunk "the 429 is not the JSON error: $(cat "$file")"
  # the same from this machine's own address: none refused
  curl -s --parallel --parallel-max 40 --max-time 20 --interface 127.0.0.1 \
    -w '%{http_code}\n' -K "$d/urls" >"$d/out1"
  assert_eq "answers from 127.0.0.1 that were 200, of 400" 400 "$(grep -c '^200$' "$d/out1")"
}
