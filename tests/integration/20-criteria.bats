#!/usr/bin/env bats
# GET /orders/count criteria (each checked against the same SQL run with
# psql), canonical cache keys, and GET /orders/{id} with its cache entry.

load helpers

setup_file() {
  # Dates taken from the data, so the ranges below always contain orders.
  export D_MIN D_MID D_MAX C_BUSY T_MID
  D_MIN=$(psqlc "SELECT to_char(min(orderdate), 'YYYY-MM-DD') FROM orders WHERE customerid <= 20000")
  D_MAX=$(psqlc "SELECT to_char(max(orderdate), 'YYYY-MM-DD') FROM orders WHERE customerid <= 20000")
  D_MID=$(psqlc "SELECT to_char(min(orderdate) + (max(orderdate) - min(orderdate)) / 2, 'YYYY-MM-DD')
                 FROM orders WHERE customerid <= 20000")
  C_BUSY=$(psqlc "SELECT customerid FROM orders WHERE customerid <= 20000
                  GROUP BY customerid ORDER BY count(*) DESC, customerid LIMIT 1")
  T_MID=$(psqlc "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY totalamount) FROM orders
                 WHERE customerid <= 20000")
}

# check_count QUERY CANONICAL-KEY-SUFFIX SQL-WHERE
# The count through the service (a MISS, then a HIT) equals the SQL count,
# and the entry is stored under the canonical key.
check_count() {
  local q=$1 key
  key=$(ckey "count:$2")
  local expected
  expected=$(psqlc "SELECT count(*) FROM orders WHERE $3")
  rdel "$key"
  req GET "/orders/count$q"
  assert_count_is "$expected"
  assert_cache MISS
  assert_eq "value stored under $key" "$body" "$(rcli GET "$key")"
  req GET "/orders/count$q"
  assert_count_is "$expected"
  assert_cache HIT
}

@test "criteria: customerid" {
  check_count "?customerid=$C_BUSY" "customerid=$C_BUSY" "customerid = $C_BUSY"
  [[ $(rows_of "$C_BUSY") -gt 0 ]] || flunk "customer $C_BUSY should have orders"
}

@test "criteria: from (inclusive)" {
  check_count "?from=$D_MID" "from=$D_MID" "orderdate >= '$D_MID'"
}

@test "criteria: to (inclusive)" {
  check_count "?to=$D_MID" "to=$D_MID" "orderdate <= '$D_MID'"
}

@test "criteria: from=to=one day counts that day's orders (both ends inclusive)" {
  n=$(psqlc "SELECT count(*) FROM orders WHERE orderdate = '$D_MIN'")
  [[ $n -gt 0 ]] || flunk "expected orders on $D_MIN"
  check_count "?from=$D_MIN&to=$D_MIN" "from=$D_MIN&to=$D_MIN" "orderdate = '$D_MIN'"
}

@test "criteria: min_total (totalamount >=, inclusive)" {
  check_count "?min_total=$T_MID" "min_total=$T_MID" "totalamount >= $T_MID"
}

@test "criteria: all four together are ANDed" {
  check_count "?customerid=$C_BUSY&from=$D_MIN&to=$D_MAX&min_total=0" \
    "customerid=$C_BUSY&from=$D_MIN&min_total=0.00&to=$D_MAX" \
    "customerid = $C_BUSY AND orderdate BETWEEN '$D_MIN' AND '$D_MAX' AND totalamount >= 0"
  check_count "?min_total=$T_MID&to=$D_MID&from=$D_MIN" \
    "from=$D_MIN&min_total=$T_MID&to=$D_MID" \
    "orderdate BETWEEN '$D_MIN' AND '$D_MID' AND totalamount >= $T_MID"
}

@test "cache key: ?to=2004-06-30&from=2004-01-01&customerid=042 is customerid=42&from=2004-01-01&to=2004-06-30" {
  key=$(ckey "count:customerid=42&from=2004-01-01&to=2004-06-30")
  expected=$(psqlc "SELECT count(*) FROM orders WHERE customerid = 42
                    AND orderdate BETWEEN '2004-01-01' AND '2004-06-30'")
  rdel "$key"
  req GET "/orders/count?to=2004-06-30&from=2004-01-01&customerid=042"
  assert_count_is "$expected"
  assert_cache MISS
  assert_eq "value stored under $key" "$body" "$(rcli GET "$key")"
  ttl=$(rcli TTL "$key")
  ((ttl >= 1 && ttl <= CACHE_TTL)) || flunk "TTL of $key: expected 1..$CACHE_TTL, got '$ttl'"
  # the same criterion written another way is the same entry
  req GET "/orders/count?customerid=42&from=2004-01-01&to=2004-06-30"
  assert_count_is "$expected"
  assert_cache HIT
  req GET "/orders/count?from=2004-01-01&customerid=42&to=2004-06-30"
  assert_cache HIT
}

@test "cache key: min_total is stored with two decimals (12.5 -> 12.50, 3 -> 3.00)" {
  for pair in 12.5:12.50 3:3.00; do
    given=${pair%%:*} canon=${pair#*:}
    key=$(ckey "count:min_total=$canon")
    rdel "$key"
    req GET "/orders/count?min_total=$given"
    assert_count_is "$(psqlc "SELECT count(*) FROM orders WHERE totalamount >= $canon")"
    assert_cache MISS
    assert_eq "value stored under $key" "$body" "$(rcli GET "$key")"
    req GET "/orders/count?min_total=$canon"
    assert_cache HIT
  done
}

@test "cache key: no criteria is <prefix>count:all, and every key is under the prefix" {
  rdel "$(ckey count:all)"
  req GET /orders/count
  assert_count_is "$(rows_total)"
  assert_cache MISS
  run rcli EXISTS "$(ckey count:all)"
  assert_eq "EXISTS $(ckey count:all)" 1 "$output"
  foreign=$(rcli --scan | grep -v "^$CACHE_PREFIX" | head -5 || true)
  assert_eq "keys in Redis outside the prefix $CACHE_PREFIX" "" "$foreign"
}

@test "GET /orders/{id}: every column as in Postgres, MISS then HIT, stored as <prefix>id:<id> with TTL" {
  id=$(psqlc "SELECT orderid FROM orders WHERE customerid <= 20000 ORDER BY orderid OFFSET 77 LIMIT 1")
  row=$(psqlc "SELECT json_build_object('orderid', orderid, 'orderdate', to_char(orderdate, 'YYYY-MM-DD'),
               'customerid', customerid, 'netamount', netamount, 'tax', tax, 'totalamount', totalamount)
               FROM orders WHERE orderid = $id")
  key=$(ckey "id:$id")
  rdel "$key"
  req GET "/orders/$id"
  assert_status 200
  assert_json_type
  assert_cache MISS
  want=$(jq -cS . <<<"$row")
  got=$(jq -cS '{orderid, orderdate, customerid, netamount, tax, totalamount}' <<<"$body")
  assert_eq "order $id (sorted keys, jq-normalised numbers)" "$want" "$got"
  assert_json '(.orderdate | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}$")) and (.netamount | type == "number")
               and (.tax | type == "number") and (.totalamount | type == "number")
               and (.orderid | type == "number") and (.customerid | type == "number")'
  assert_eq "value stored under $key" "$body" "$(rcli GET "$key")"
  ttl=$(rcli TTL "$key")
  ((ttl >= 1 && ttl <= CACHE_TTL)) || flunk "TTL of $key: expected 1..$CACHE_TTL, got '$ttl'"
  first=$body
  req GET "/orders/$id"
  assert_status 200
  assert_cache HIT
  assert_eq "body of the cached order" "$first" "$body"
}

@test "GET /orders/{id}: money has at most two decimals in the raw JSON" {
  id=$(psqlc "SELECT orderid FROM orders WHERE customerid <= 20000 AND netamount <> trunc(netamount)
              ORDER BY orderid LIMIT 1")
  req GET "/orders/$id"
  assert_status 200
  for f in netamount tax totalamount; do
    [[ $body =~ \"$f\"[[:space:]]*:[[:space:]]*-?[0-9]+(\.[0-9]{1,2})?[[:space:]]*[,}] ]] ||
      flunk "$f is not a JSON number with at most two decimals"
  done
}

@test "GET /orders/{id} for a missing order is 404 and is not cached" {
  key=$(ckey "id:999999999")
  rdel "$key"
  req GET /orders/999999999
  assert_error_json 404
  run rcli EXISTS "$key"
  assert_eq "EXISTS $key after the 404" 0 "$output"
  req GET /orders/999999999
  assert_error_json 404
}

@test "ETag and Cache-Control on cached reads; If-None-Match with the current tag is 304" {
  c=$(fresh_customer)
  req GET "/orders/count?customerid=$c"
  assert_count_is 0
  assert_cache MISS
  assert_header_match Cache-Control '^max-age=[0-9]+$'
  assert_header_match ETag '^"[0-9a-f]{16}"$'
  etag=$(header ETag)
  req GET "/orders/count?customerid=$c"
  assert_cache HIT
  assert_header ETag "$etag"
  req GET "/orders/count?customerid=$c" -H "If-None-Match: $etag"
  assert_status 304
  assert_empty_body
  assert_cache HIT
  assert_header ETag "$etag"
  assert_header_match Cache-Control '^max-age=[0-9]+$'
  assert_header_match Server-Timing 'cache;dur='
  ! has_header Content-Type || flunk "a 304 with a Content-Type"
  # a write changes the answer, so the old tag no longer matches
  post_json "{\"customerid\": $c, \"netamount\": 1, \"tax\": 0}"
  assert_status 201
  ! has_header ETag || flunk "an ETag on a POST"
  req GET "/orders/count?customerid=$c" -H "If-None-Match: $etag"
  assert_count_is 1
  assert_cache MISS
  [[ $(header ETag) != "$etag" ]] || flunk "ETag did not change with the answer"
  etag2=$(header ETag)
  req GET "/orders/count?customerid=$c" -H "If-None-Match: $etag2"
  assert_status 304
  assert_cache HIT

  id=$(psqlc "SELECT min(orderid) FROM orders")
  req GET "/orders/$id"
  assert_status 200
  assert_header_match Cache-Control '^max-age=[0-9]+$'
  etag=$(header ETag)
  [[ -n $etag ]] || flunk "no ETag on GET /orders/$id"
  req GET "/orders/$id" -H "If-None-Match: $etag"
  assert_status 304
  assert_empty_body
}

@test "ETag: derived from the body alone (same body, same tag, whatever the key or the worker)" {
  c=$(fresh_customer)
  d=$(fresh_customer)
  tags=()
  for i in 1 2 3 4; do
    req GET "/orders/count?customerid=$c"
    assert_count_is 0
    tags+=("$(header ETag)")
  done
  req GET "/orders/count?customerid=$d"
  assert_count_is 0
  tags+=("$(header ETag)")
  n=$(printf '%s\n' "${tags[@]}" | sort -u | wc -l)
  assert_eq "distinct tags for the body {\"count\":0}" 1 "$n"
  req GET /orders/count
  assert_status 200
  [[ $(header ETag) != "${tags[0]}" ]] || flunk "another body, the same tag"
}

@test "If-None-Match: an old tag is 200 with the body; *, a weak W/ tag and a list with the tag are 304" {
  c=$(fresh_customer)
  req GET "/orders/count?customerid=$c"
  assert_count_is 0
  etag=$(header ETag)
  req GET "/orders/count?customerid=$c" -H 'If-None-Match: "0000000000000000"'
  assert_count_is 0
  assert_header ETag "$etag"
  req GET "/orders/count?customerid=$c" -H 'If-None-Match: *'
  assert_status 304
  assert_empty_body
  assert_header ETag "$etag"
  req GET "/orders/count?customerid=$c" -H "If-None-Match: W/$etag"
  assert_status 304
  assert_empty_body
  req GET "/orders/count?customerid=$c" -H "If-None-Match: \"a\", W/\"b\", $etag"
  assert_status 304
  # malformed: never a 304
  req GET "/orders/count?customerid=$c" -H "If-None-Match: ${etag//\"/}"
  assert_count_is 0
  # a 404 has no tag, and * does not make it a 304
  req GET /orders/999999999 -H 'If-None-Match: *'
  assert_error_json 404
  ! has_header ETag || flunk "an ETag on a 404"
}

@test "Cache-Control: max-age is the TTL on a fill, and never more than the entry's remaining TTL on a hit" {
  c=$(fresh_customer)
  key=$(ckey "count:customerid=$c")
  req GET "/orders/count?customerid=$c"
  assert_cache MISS
  assert_header Cache-Control "max-age=$CACHE_TTL"
  sleep 1.2
  p0=$(rcli PTTL "$key")
  req GET "/orders/count?customerid=$c"
  p1=$(rcli PTTL "$key")
  assert_cache HIT
  assert_header_match Cache-Control '^max-age=[0-9]+$'
  age=${REPLY#max-age=}
  ((p0 > 0 && p1 > 0)) || flunk "PTTL $key: $p0, then $p1"
  ((age * 1000 <= p0)) || flunk "max-age=$age is more than the ${p0} ms the entry had left before the request"
  ((age >= p1 / 1000)) || flunk "max-age=$age: the entry still had ${p1} ms after the request"
  ((age < CACHE_TTL)) || flunk "max-age=$age on a hit 1.2 s after the fill (CACHE_TTL=$CACHE_TTL)"
  # the 304 of a hit says the same
  req GET "/orders/count?customerid=$c" -H 'If-None-Match: *'
  assert_status 304
  assert_header_match Cache-Control '^max-age=[0-9]+$'
  ((${REPLY#max-age=} <= age)) || flunk "max-age grew on the 304: $REPLY after $age"
}

# pttl_calls: how many PTTL commands Redis has run (INFO commandstats).
pttl_calls() {
  local line
  line=$(rcli INFO commandstats | tr -d '\r' | grep '^cmdstat_pttl:') || { echo 0; return; }
  line=${line#*calls=}
  echo "${line%%,*}"
}

@test "a hit is one GET: each worker asks an entry's ttl once; max-age never outlives the entry, even another value's" {
  c=$(fresh_customer)
  key=$(ckey "count:customerid=$c")
  url="/orders/count?customerid=$c"
  req GET "$url"
  assert_cache MISS
  n0=$(pttl_calls)
  for i in $(seq 16); do
    p0=$(rcli PTTL "$key")
    req GET "$url"
    assert_cache HIT
    assert_header_match Cache-Control '^max-age=[0-9]+$'
    age=${REPLY#max-age=}
    ((age * 1000 <= p0)) || flunk "hit $i: max-age=$age, but the entry had ${p0} ms left"
  done
  n1=$(pttl_calls)
  # our own 16 PTTLs, and at most one per worker: the one that filled the
  # entry knows its ttl already, the others ask once
  asked=$((n1 - n0 - 16))
  ((asked <= WORKERS - 1)) || flunk "the workers sent $asked PTTLs for 16 hits on one entry ($WORKERS workers)"
  # Another value under the key, with less time to live (by hand, as no
  # fill would): no worker may count max-age from what it remembers.
  [[ $(rcli SET "$key" '{"count":424242}' PX 1500) == OK ]] || flunk "SET $key"
  for i in $(seq 4); do
    req GET "$url"
    [[ $body == '{"count":424242}' ]] || flunk "hit $i on the new value answered $body"
    assert_header_match Cache-Control '^max-age=[0-9]+$'
    ((${REPLY#max-age=} <= 1)) || flunk "hit $i on a value with 1.5 s to live: $REPLY"
  done
  rdel "$key"
}

@test "HEAD on cached reads: the GET's ETag, Cache-Control and X-Cache, no body; If-None-Match too" {
  c=$(fresh_customer)
  req GET "/orders/count?customerid=$c"
  etag=$(header ETag)
  req HEAD "/orders/count?customerid=$c"
  assert_status 200
  assert_cache HIT
  assert_header ETag "$etag"
  assert_header_match Cache-Control '^max-age=[0-9]+$'
  assert_json_type
  req HEAD "/orders/count?customerid=$c" -H "If-None-Match: $etag"
  assert_status 304
  id=$(psqlc "SELECT min(orderid) FROM orders")
  req GET "/orders/$id"
  etag=$(header ETag)
  req HEAD "/orders/$id"
  assert_status 200
  assert_header ETag "$etag"
}

@test "HEAD works where GET does: /orders/count, /orders/{id}, /healthz" {
  req HEAD /orders/count
  assert_status 200
  assert_json_type
  assert_header_match X-Cache '^(HIT|MISS)$'
  id=$(psqlc "SELECT min(orderid) FROM orders")
  req HEAD "/orders/$id"
  assert_status 200
  assert_header_match X-Cache '^(HIT|MISS)$'
  req HEAD /healthz
  assert_status 200
}

@test "HEAD /orders/count: 200 and not one byte of body on the wire" {
  host=127.0.0.1 port=${BASE##*:}
  raw=$(
    exec 3<>"/dev/tcp/$host/$port" || exit 1
    printf 'HEAD /orders/count HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$host" >&3
    timeout 5 cat <&3 | od -An -c | tr -s ' \n' ' '
  )
  # od renders CR LF CR LF as "\r \n \r \n": nothing may follow it
  assert_match "status line" '^ *H T T P / 1 \. 1 2 0 0 ' "$raw"
  assert_match "end of the answer" '\\r \\n \\r \\n *$' "$raw"
}

@test "answers carry Content-Length, never chunked: a miss, a hit, a 201, JSON errors, HEAD; a 204 and a 304 have no body" {
  # has_len: Content-Length is there and is the body's size, and no chunking
  has_len() {
    has_header Transfer-Encoding && flunk "$last_req ($status_code): Transfer-Encoding: $(header Transfer-Encoding)"
    assert_eq "$last_req ($status_code): Content-Length against the bytes received" "$body_size" "$(header Content-Length)"
  }
  c=$(fresh_customer)
  req GET "/orders/count?customerid=$c"
  assert_cache MISS
  has_len
  len=$body_size
  etag=$(header ETag)
  req GET "/orders/count?customerid=$c"
  assert_cache HIT
  has_len
  req HEAD "/orders/count?customerid=$c"
  assert_status 200
  assert_eq "HEAD's Content-Length: the GET's body size" "$len" "$(header Content-Length)"
  req GET "/orders/count?customerid=$c" -H "If-None-Match: $etag"
  assert_status 304
  has_header Transfer-Encoding && flunk "304 with Transfer-Encoding: $(header Transfer-Encoding)"
  assert_eq "304's body size" 0 "$body_size"
  post_json "{\"customerid\": $c, \"netamount\": 2, \"tax\": 0}"
  assert_status 201
  has_len
  id=$(jq -r .orderid <<<"$body")
  req GET /orders/2147483647
  assert_error_json 404
  has_len
  req GET "/orders/count?customerid=abc"
  assert_error_json 400
  has_len
  req DELETE "/orders/$id"
  assert_status 204
  has_header Transfer-Encoding && flunk "204 with Transfer-Encoding: $(header Transfer-Encoding)"
  assert_eq "204's body size" 0 "$body_size"
}
