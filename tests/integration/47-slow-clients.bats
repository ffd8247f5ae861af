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
