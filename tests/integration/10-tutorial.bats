#!/usr/bin/env bats
# The tutorial's story ("Add caching to your PostgreSQL app using Redis"),
# replayed against the running service: count with SQL and through the app,
# cache in Redis and look at it with redis-cli, see the cache go stale after a
# psql INSERT, see the TTL repair it, see POST invalidate it.

load helpers

@test "tutorial: the stack is up and /healthz says postgres ok, redis ok" {
  req GET /healthz
  assert_status 200
  assert_json_type
  assert_json '.postgres == "ok" and .redis == "ok"'
}

@test "tutorial: the orders table has dellstore2's columns" {
  cols=$(psqlc "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY column_name)
                FROM information_schema.columns WHERE table_name = 'orders'")
  assert_eq "orders columns" \
    "customerid:integer,netamount:numeric,orderdate:date,orderid:integer,tax:numeric,totalamount:numeric" "$cols"
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

  # Several requests, so both workers answer: the cache lives in Redis, not
  # in a worker, which is the tutorial's reason for using Redis at all.
  for i in 1 2 3 4 5 6; do
    req GET "/orders/count?customerid=$c"
    assert_count_is "$expected"
    assert_cache HIT
    assert_eq "body of the cached answer" "$first" "$body"
  done
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

@test "tutorial: a row INSERTed with psql leaves the cached count stale (HIT) until the TTL expires (MISS, new count)" {
  c=$(fresh_customer)
  req GET "/orders/count?customerid=$c"
  assert_count_is 0
  assert_cache MISS

  psqlc "INSERT INTO orders (customerid, netamount, tax, totalamount) VALUES ($c, 10.00, 0.80, 10.80)"
  assert_eq "rows for customer $c in Postgres after the psql INSERT" 1 "$(rows_of "$c")"

  req GET "/orders/count?customerid=$c"
  assert_count_is 0 # stale: "Show that the application continues to return the same value"
  assert_cache HIT

  sleep $((CACHE_TTL + 1))
  req GET "/orders/count?customerid=$c"
  assert_count_is 1
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
