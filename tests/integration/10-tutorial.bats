#!/usr/bin/env bats
# The tutorial's story ("Add caching to your PostgreSQL app using Redis"),
# replayed against the running service: count with SQL and through the app,
# cache in Redis and look at it with redis-cli, see entries expire after their
# TTL, see POST invalidate them. Where the tutorial shows a psql INSERT
# leaving the cache stale until the TTL, this service's invalidator (fed by
# the triggers of sql/triggers.sql) drops the stale entries within a second.

load helpers

@test "tutorial: the stack is up and /healthz says postgres ok, redis ok" {
  req GET /healthz
  assert_status 200
  assert_json_type
  assert_json '.postgres == "ok" and .redis == "ok"'
}

@test "tutorial: the orders table has dellstore2's columns, and the service's idempotency_key" {
  cols=$(psqlc "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY column_name)
                FROM information_schema.columns WHERE table_name = 'orders'")
  assert_eq "orders columns" \
    "customerid:integer,idempotency_key:text,netamount:numeric,orderdate:date,orderid:integer,tax:numeric,totalamount:numeric" "$cols"
}

@test "tutorial: the generated data set is 12000 orders of customers 1..20000, totals consistent" {
  n=$(psqlc "SELECT count(*) FROM orders WHERE customerid BETWEEN 1 AND 20000")
  assert_eq "generated orders (customerid 1..20000)" 12000 "$n"
  odd=$(psqlc "SELECT count(*) FROM orders
               WHERE customerid < 1 OR (customerid > 20000 AND customerid < 900000)")
  assert_eq "orders with a customerid outside 1..20000 (and outside the tests' 900000+)" 0 "$odd"
  bad=$(psqlc "SELECT count(*) FROM orders WHERE customerid <= 20000
               AND (totalamount <> netamount + tax OR netamount < 0 OR tax < 0)")
  assert_eq "generated orders whose totalamount is not netamount + tax, or negative" 0 "$bad"
}

@test "tutorial: count for one customer equals the SQL count; MISS first, then HIT on every worker" {
  c=$(psqlc "SELECT customerid FROM orders WHERE customerid <= 20000
             GROUP BY customerid ORDER BY count(*) DESC, customerid LIMIT 1")
  expected=$(rows_of "$c")
  rdel "$(ckey "count:customerid=$c")"

  req GET "/orders/count?customerid=$c"
  assert_count_is "$expected"
  assert_cache MISS
  first=$body

  for i in 1 2 3; do
    req GET "/orders/count?customerid=$c"
    assert_count_is "$expected"
    assert_cache HIT
    assert_eq "body of the cached answer" "$first" "$body"
  done
  # And at once, so that other workers answer too (one after another, the
  # requests go down the one connection nginx keeps, to one worker): the
  # cache lives in Redis, not in a worker, which is the tutorial's reason
  # for using Redis at all.
  par_get "/orders/count?customerid=$c" 6
  assert_eq "6 reads at once (status/X-Cache)" \
    "200/HIT 200/HIT 200/HIT 200/HIT 200/HIT 200/HIT " "$par_seen"
}

@test "tutorial: redis-cli shows the cached count: the documented key, the exact JSON body, TTL 1..CACHE_TTL" {
  c=$(psqlc "SELECT min(customerid) FROM orders")
  key=$(ckey "count:customerid=$c")
  rdel "$key"
  run rcli EXISTS "$key"
  assert_eq "EXISTS $key before the read" 0 "$output"

  req GET "/orders/count?customerid=$c"
  assert_count_is "$(rows_of "$c")"
  assert_cache MISS

  stored=$(rcli GET "$key")
  assert_eq "value stored under $key" "$body" "$stored"
  ttl=$(rcli TTL "$key")
  ((ttl >= 1 && ttl <= CACHE_TTL)) || flunk "TTL of $key: expected 1..$CACHE_TTL, got '$ttl'"
}

@test "tutorial: count of all orders equals SELECT count(*), cached as <prefix>count:all" {
  key=$(ckey count:all)
  rdel "$key"
  expected=$(rows_total)
  req GET /orders/count
  assert_count_is "$expected"
  assert_cache MISS
  assert_eq "value stored under $key" "$body" "$(rcli GET "$key")"
  req GET /orders/count
  assert_count_is "$expected"
  assert_cache HIT
}

# fill_fresh PATH KEY: GET PATH afresh (KEY deleted first): a MISS that
# stores KEY. Then KEY must outlive the 3 s a test waits for the invalidator,
# or the TTL could pass for it.
fill_fresh() {
  rdel "$2"
  req GET "$1"
  assert_status 200 || return 1
  assert_cache MISS || return 1
  local ttl
  ttl=$(rcli TTL "$2")
  [[ $ttl =~ ^[0-9]+$ ]] && ((ttl > 3)) ||
    flunk "TTL of $2 right after the fill: expected more than 3 s (CACHE_TTL=$CACHE_TTL), got '$ttl'"
}

# refreshed_within SECONDS PATH EXPECTED-JQ: after a write made with psql,
# GET PATH until it answers EXPECTED-JQ (a jq test on the body), at most
# SECONDS. The first fresh answer must be a MISS: its value came from
# Postgres because the invalidator had dropped the stale entry.
refreshed_within() {
  local secs=$1 path=$2 want=$3 start
  start=$EPOCHREALTIME
  while :; do
    req GET "$path"
    assert_status 200 || return 1
    if jq -e "$want" >/dev/null 2>&1 <<<"$body"; then
      assert_cache MISS || return 1
      return 0
    fi
    [[ $(header X-Cache) == HIT ]] || flunk "GET $path while stale: expected HIT, got $(header X-Cache)" || return 1
    awk -v e="$(elapsed_since "$start")" -v s="$secs" 'BEGIN { exit !(e >= s) }' &&
      { flunk "GET $path still answers the old value $(elapsed_since "$start") s after the psql write (want $want)"; return 1; }
    sleep 0.1
  done
}

@test "tutorial: a row INSERTed with psql is seen within a second: the invalidator drops the cached count (MISS, new count)" {
  c=$(fresh_customer)
  key=$(ckey "count:customerid=$c")
  fill_fresh "/orders/count?customerid=$c" "$key"
  assert_count_is 0
  req GET "/orders/count?customerid=$c"
  assert_count_is 0
  assert_cache HIT

  # The tutorial's point was that this leaves the cache stale until the TTL.
  psqlc "INSERT INTO orders (customerid, netamount, tax, totalamount) VALUES ($c, 10.00, 0.80, 10.80)"
  assert_eq "rows for customer $c in Postgres after the psql INSERT" 1 "$(rows_of "$c")"

  refreshed_within 3 "/orders/count?customerid=$c" '.count == 1'
  assert_count_is "$(rows_of "$c")"
  req GET "/orders/count?customerid=$c"
  assert_count_is 1
  assert_cache HIT
}

@test "tutorial: a row DELETEd with psql: its cached order and the cached count are refreshed within a second" {
  c=$(fresh_customer)
  key=$(ckey "count:customerid=$c")
  fill_fresh "/orders/count?customerid=$c" "$key"
  ids=$(psqlc "INSERT INTO orders (customerid, netamount, tax, totalamount)
               VALUES ($c, 1, 0, 1), ($c, 2, 0, 2) RETURNING orderid")
  id=$(head -1 <<<"$ids")
  # the INSERT's own invalidation has come once the count it made stale is gone
  keys_gone_within 3 "$key" || flunk "the psql INSERT's invalidation: $key still there after $gone_after s"

  fill_fresh "/orders/count?customerid=$c" "$key"
  assert_count_is 2
  fill_fresh "/orders/$id" "$(ckey "id:$id")"
  assert_json ".orderid == $id and .customerid == $c"

  psqlc "DELETE FROM orders WHERE orderid = $id"
  refreshed_within 3 "/orders/count?customerid=$c" '.count == 1'
  assert_count_is "$(rows_of "$c")"
  req GET "/orders/$id"
  assert_error_json 404
}

@test "tutorial: an UPDATE with psql moves an order to another customer: both counts and the order are refreshed within a second" {
  a=$(fresh_customer)
  b=$(fresh_customer)
  ka=$(ckey "count:customerid=$a")
  kb=$(ckey "count:customerid=$b")
  fill_fresh "/orders/count?customerid=$a" "$ka"
  id=$(psqlc "INSERT INTO orders (customerid, netamount, tax, totalamount)
              VALUES ($a, 5, 0.5, 5.5) RETURNING orderid")
  keys_gone_within 3 "$ka" || flunk "the psql INSERT's invalidation: $ka still there after $gone_after s"

  fill_fresh "/orders/count?customerid=$a" "$ka"
  assert_count_is 1
  fill_fresh "/orders/count?customerid=$b" "$kb"
  assert_count_is 0
  fill_fresh "/orders/$id" "$(ckey "id:$id")"
  assert_json ".customerid == $a"

  # orders_app may not UPDATE: as the table's owner, like any other program.
  psql_super "UPDATE orders SET customerid = $b WHERE orderid = $id"
  refreshed_within 3 "/orders/$id" ".customerid == $b"
  refreshed_within 3 "/orders/count?customerid=$a" '.count == 0'
  refreshed_within 3 "/orders/count?customerid=$b" '.count == 1'
}

@test "tutorial: entries still expire after CACHE_TTL: redis-cli TTL counts down, then the key is gone" {
  ((CACHE_TTL >= 3)) || skip "needs CACHE_TTL >= 3 (it is $CACHE_TTL)"
  c=$(fresh_customer)
  key=$(ckey "count:customerid=$c")
  req GET "/orders/count?customerid=$c"
  assert_count_is 0
  assert_cache MISS
  ttl=$(rcli TTL "$key")
  ((ttl >= 1 && ttl <= CACHE_TTL)) || flunk "TTL of $key: expected 1..$CACHE_TTL, got '$ttl'"

  # No write in between: nothing but the TTL can remove it.
  sleep $((CACHE_TTL - 2))
  assert_eq "EXISTS $key $((CACHE_TTL - 2)) s after the fill" 1 "$(rcli EXISTS "$key")"
  ttl=$(rcli TTL "$key")
  ((ttl >= 0 && ttl <= 2)) || flunk "TTL of $key after $((CACHE_TTL - 2)) s: expected 0..2, got '$ttl'"
  sleep 3
  assert_eq "EXISTS $key after CACHE_TTL + 1 s" 0 "$(rcli EXISTS "$key")"
  req GET "/orders/count?customerid=$c"
  assert_count_is 0
  assert_cache MISS
}

@test "tutorial: POST, GET, POST, GET: a write through the service is seen by the very next read" {
  c=$(fresh_customer)
  req GET "/orders/count?customerid=$c"
  assert_count_is 0
  assert_cache MISS
  req GET "/orders/count?customerid=$c"
  assert_cache HIT

  post_json "{\"customerid\": $c, \"netamount\": 12.5, \"tax\": 1.03}"
  assert_status 201
  assert_eq "rows for customer $c in Postgres after the POST" 1 "$(rows_of "$c")"
  req GET "/orders/count?customerid=$c"
  assert_count_is 1
  assert_cache MISS
  req GET "/orders/count?customerid=$c"
  assert_count_is 1
  assert_cache HIT

  post_json "{\"customerid\": $c, \"netamount\": 20, \"tax\": 0}"
  assert_status 201
  req GET "/orders/count?customerid=$c"
  assert_count_is 2
  assert_cache MISS
}

@test "tutorial: a POST deletes every cached count, not only its own customer's" {
  c=$(fresh_customer)
  other=$(psqlc "SELECT min(customerid) FROM orders")
  d0=$(psqlc "SELECT to_char(min(orderdate), 'YYYY-MM-DD') FROM orders")
  d1=$(psqlc "SELECT to_char(min(orderdate) + 60, 'YYYY-MM-DD') FROM orders")
  queries=("" "?customerid=$other" "?from=$d0&to=$d1" "?min_total=100" "?customerid=$c")
  for q in "${queries[@]}"; do
    req GET "/orders/count$q"
    assert_status 200
  done
  cached=$(rcli --scan --pattern "$(ckey 'count:*')" | sort)
  [[ $(wc -l <<<"$cached") -ge ${#queries[@]} ]] || flunk "expected >= ${#queries[@]} cached counts before the POST, got:" "$cached"

  post_json "{\"customerid\": $c, \"netamount\": 1, \"tax\": 0}"
  assert_status 201
  left=$(rcli --scan --pattern "$(ckey 'count:*')")
  assert_eq "count keys left in Redis right after the POST" "" "$left"

  for q in "${queries[@]}"; do
    req GET "/orders/count$q"
    assert_status 200
    assert_cache MISS
  done
  req GET "/orders/count?customerid=$c"
  assert_count_is 1
  req GET /orders/count
  assert_count_is "$(rows_total)"
}
