#!/usr/bin/env bats
# Bad requests: each one gets the contract's status and a JSON
# {"error": "..."} with Content-Type application/json, changes no data, and
# leaves every worker able to serve the next request.

load helpers

setup_file() {
  worker_pids >"$BATS_FILE_TMPDIR/workers.before" 2>&1 || true
}

# Every test starts with C, a customerid in the 900000+ range that has no
# orders, and ROWS_BEFORE, the number of rows in orders (one psql call: this
# file makes many requests, and psql's login is the slow part).
setup() {
  local r i
  for i in 1 2 3 4 5; do
    C=$((900000 + (RANDOM * 32768 + RANDOM) % 1000000))
    r=$(psqlc "SELECT count(*), count(*) FILTER (WHERE customerid = $C) FROM orders")
    [[ $r == *'|0' ]] && break
  done
  [[ $r == *'|0' ]] || flunk "no unused customerid found"
  ROWS_BEFORE=${r%|*}
}

# assert_no_new_rows: orders has as many rows as when the test began, and
# none of customer C.
assert_no_new_rows() {
  local r
  r=$(psqlc "SELECT count(*), count(*) FILTER (WHERE customerid = $C) FROM orders")
  assert_eq "rows in orders | rows of customer $C, after the rejected requests" "$ROWS_BEFORE|0" "$r"
}

# rejected_post STATUS[,STATUS...] [curl args...]
# POST /orders with the given curl args; expect one of the statuses as a
# JSON error, then good requests. (The test ends with assert_no_new_rows.)
rejected_post() {
  local want=$1
  shift
  req POST /orders "$@"
  assert_error_json ${want//,/ }
  good_requests_follow
}

# rejected_json STATUS JSON-BODY: a rejected POST of a JSON body.
rejected_json() {
  rejected_post "$1" -H 'Content-Type: application/json' --data-binary "$2"
}

# ------------------------------------------------------------ GET criteria

@test "400: unknown criterion ?foo=1" {
  req GET "/orders/count?foo=1"
  assert_error_json 400
  good_requests_follow
}

@test "400: repeated criterion ?customerid=1&customerid=2" {
  req GET "/orders/count?customerid=1&customerid=2"
  assert_error_json 400
  good_requests_follow
}

@test "400: malformed values: customerid=abc, from=2004-13-01, from=2004-02-30, min_total=1.234, to=yesterday, customerid=" {
  for q in customerid=abc from=2004-13-01 from=2004-02-30 min_total=1.234 to=yesterday customerid= \
    min_total=-1x customerid=12abc; do
    req GET "/orders/count?$q"
    assert_error_json 400
  done
  run rcli --scan --pattern "$(ckey 'count:*abc*')"
  assert_eq "cache keys made by the malformed requests" "" "$output"
  good_requests_follow
}

# ------------------------------------------------------------ paths and methods

@test "404: GET /orders/abc, /orders/999999999, /orders/1/x, /nope (JSON errors)" {
  for p in /orders/abc /orders/999999999 /orders/1/x /nope; do
    req GET "$p"
    assert_error_json 404
  done
  good_requests_follow
}

@test "404 (or 400): an order id that overflows an integer, /orders/99999999999999999999" {
  req GET /orders/99999999999999999999
  assert_error_json 404 400
  good_requests_follow
}

@test "405: PUT /orders/1 with Allow containing GET" {
  req PUT /orders/1 -H 'Content-Type: application/json' --data-binary '{}'
  assert_error_json 405
  assert_header_match Allow '(^|[ ,])GET([ ,]|$)'
  good_requests_follow
}

@test "405: POST /orders/count with Allow containing GET, and it counts nothing as a write" {
  req POST /orders/count -H 'Content-Type: application/json' --data-binary "{\"customerid\": $C, \"netamount\": 1, \"tax\": 0}"
  assert_error_json 405
  assert_header_match Allow '(^|[ ,])GET([ ,]|$)'
  good_requests_follow
  assert_no_new_rows
}

@test "405: GET /orders with Allow: POST" {
  req GET /orders
  assert_error_json 405
  assert_header_match Allow '(^|[ ,])POST([ ,]|$)'
  good_requests_follow
}

# ------------------------------------------------------------ bodies

@test "411: POST /orders without a body and without Content-Length" {
  # curl -X POST with no data sends no body; -H 'Content-Length:' makes sure
  # no Content-Length header goes out either.
  rejected_post 411 -H 'Content-Type: application/json' -H 'Content-Length:'
  assert_no_new_rows
}

@test "400 or 422: POST /orders with an empty body (Content-Length: 0)" {
  # An empty body is not a JSON document (400), or not an order (422); the
  # contract does not pick one, so either is accepted. 411 is not: the
  # length is given.
  rejected_post 400,422 -H 'Content-Type: application/json' --data-binary ''
  assert_no_new_rows
}

@test "413: POST body of 16 KiB + 1 byte (JSON error either from nginx or the worker)" {
  body=$(printf '{"customerid": %d, "netamount": 1, "tax": 0}' "$C")
  pad=$((16384 + 1 - ${#body}))
  big="${body%\}}$(printf '%*s' "$pad" '')}"
  [[ ${#big} == 16385 ]] || flunk "test bug: body is ${#big} bytes"
  rejected_post 413 -H 'Content-Type: application/json' --data-binary "$big"
  assert_no_new_rows
}

@test "413: a 200 KiB POST body" {
  f=$BATS_TEST_TMPDIR/big.json
  { printf '{"customerid": %d, "netamount": 1, "tax": 0, "x": "' "$C"; head -c 204800 /dev/zero | tr '\0' a; printf '"}'; } >"$f"
  rejected_post 413 -H 'Content-Type: application/json' --data-binary "@$f"
  assert_no_new_rows
}

@test "exactly 16 KiB of valid JSON (padded with spaces) is accepted: 201" {
  body=$(printf '{"customerid": %d, "netamount": 1, "tax": 0}' "$C")
  pad=$((16384 - ${#body}))
  big="${body%\}}$(printf '%*s' "$pad" '')}"
  [[ ${#big} == 16384 ]] || flunk "test bug: body is ${#big} bytes"
  post_json "$big"
  assert_status 201
  assert_eq "rows for customer $C" 1 "$(rows_of "$C")"
}

@test "415: Content-Type text/plain" {
  rejected_post 415 -H 'Content-Type: text/plain' \
    --data-binary "{\"customerid\": $C, \"netamount\": 1, \"tax\": 0}"
  assert_no_new_rows
}

@test "415: no Content-Type of our own (curl's application/x-www-form-urlencoded)" {
  rejected_post 415 --data-binary "{\"customerid\": $C, \"netamount\": 1, \"tax\": 0}"
  assert_no_new_rows
}

@test "400: malformed JSON {\"customerid\": 4" {
  rejected_json 400 "{\"customerid\": $C"
  assert_no_new_rows
}

@test "400: JSON followed by garbage" {
  rejected_json 400 "{\"customerid\": $C, \"netamount\": 1, \"tax\": 0} x"
  assert_no_new_rows
}

@test "400: a field named twice" {
  rejected_json 400 "{\"customerid\": $C, \"customerid\": $C, \"netamount\": 1, \"tax\": 0}"
  assert_no_new_rows
}

@test "422: unknown field" {
  rejected_json 422 "{\"customerid\": $C, \"netamount\": 1, \"tax\": 0, \"colour\": \"red\"}"
  assert_no_new_rows
}

@test "422: missing field (tax, netamount, customerid)" {
  rejected_json 422 "{\"customerid\": $C, \"netamount\": 1}"
  rejected_json 422 "{\"customerid\": $C, \"tax\": 1}"
  rejected_json 422 '{"netamount": 1, "tax": 0}'
  assert_no_new_rows
}

@test "422: negative netamount, negative tax" {
  rejected_json 422 "{\"customerid\": $C, \"netamount\": -1, \"tax\": 0}"
  rejected_json 422 "{\"customerid\": $C, \"netamount\": 1, \"tax\": -0.01}"
  assert_no_new_rows
}

@test "422: netamount 12.345 (three decimals are never rounded)" {
  rejected_json 422 "{\"customerid\": $C, \"netamount\": 12.345, \"tax\": 0}"
  assert_no_new_rows
}

@test "422: wrong types: customerid \"42\", customerid 4.5, netamount \"12.5\", tax null" {
  rejected_json 422 "{\"customerid\": \"$C\", \"netamount\": 1, \"tax\": 0}"
  rejected_json 422 "{\"customerid\": $C.5, \"netamount\": 1, \"tax\": 0}"
  rejected_json 422 "{\"customerid\": $C, \"netamount\": \"12.5\", \"tax\": 0}"
  rejected_json 422 "{\"customerid\": $C, \"netamount\": 1, \"tax\": null}"
  assert_no_new_rows
}

@test "422: orderdate 2004-02-30 and other impossible dates" {
  for d in 2004-02-30 2003-02-29 2004-13-01 yesterday; do
    rejected_json 422 "{\"customerid\": $C, \"netamount\": 1, \"tax\": 0, \"orderdate\": \"$d\"}"
  done
  assert_no_new_rows
}

@test "after all those rejected writes, a good POST succeeds" {
  post_json "{\"customerid\": $C, \"netamount\": 1, \"tax\": 0}"
  assert_status 201
  assert_eq "rows for customer $C" 1 "$(rows_of "$C")"
}

@test "DELETE of a missing or malformed id: 404 JSON, nothing deleted" {
  for p in /orders/999999999 /orders/abc; do
    req DELETE "$p"
    assert_error_json 404
  done
  good_requests_follow
  assert_no_new_rows
}

@test "no worker crashed or was replaced during the bad requests" {
  before=$(cat "$BATS_FILE_TMPDIR/workers.before")
  now=$(worker_pids)
  [[ $(wc -l <<<"$before") == "$WORKERS" && $before =~ ^[0-9] ]] ||
    flunk "could not read $WORKERS worker PIDs from ./deploy.sh status before this file's tests: '$before'"
  assert_eq "worker PIDs (./deploy.sh status) before and after the bad requests" "$before" "$now"
}
