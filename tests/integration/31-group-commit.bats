#!/usr/bin/env bats
# Group commit (cgi-src/group.c): POSTs that arrive together share one
# insert and one transaction, and each client still gets its own order.

load helpers

# Each test starts with no connection kept from the one before: its
# POSTs must reach the workers that are free (helpers.bash).
setup() { no_kept_conns; }

# posts_at_once DIR N PAR BODY_CMD: N POSTs from one curl, PAR at a time
# (each process a test forks would space them out), the i-th with the body
# that `BODY_CMD i` prints; DIR/i.code and DIR/i.json.
posts_at_once() {
  local dir=$1 n=$2 par=$3 cmd=$4 i b
  mkdir -p "$dir"
  for i in $(seq 1 "$n"); do
    b=$("$cmd" "$i")
    printf 'url = "%s/orders"\nheader = "Content-Type: application/json"\n' "$BASE"
    printf 'data-binary = "%s"\noutput = "%s/%d.json"\n' "${b//\"/\\\"}" "$dir" "$i"
    printf 'write-out = "%d %%{http_code}\\n"\n' "$i"
    if ((i < n)); then printf 'next\n'; fi
  done >"$dir.curlrc"
  curl -s -Z --parallel-max "$par" --parallel-immediate --max-time 15 -K "$dir.curlrc" >"$dir.codes" || true
  while read -r i b; do printf '%s' "$b" >"$dir/$i.code"; done <"$dir.codes"
}

# post_bg NAME JSON [curl args...]: POST /orders in the background (its pid
# in bg_pid); its status into $BATS_TEST_TMPDIR/NAME.code, its body into
# NAME.json.
post_bg() {
  local name=$1 json=$2
  shift 2
  curl -s --max-time 10 -o "$BATS_TEST_TMPDIR/$name.json" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary "$json" "$@" \
    "$BASE/orders" >"$BATS_TEST_TMPDIR/$name.code" &
  bg_pid=$!
}

@test "a POST that arrives while another's insert is on its way shares its transaction, and each gets its own order" {
  c=$(fresh_customer)
  # The pool is idle, so this POST leads its batch; it waits 400 ms before
  # taking what queued, so the next POST (the other worker) queues.
  post_bg first "{\"customerid\": $c, \"netamount\": 1, \"tax\": 0.1}" -H 'X-Test-Lead-Delay: 400'
  sleep 0.15
  post_json "{\"customerid\": $c, \"netamount\": 2, \"tax\": 0.2}"
  wait "$bg_pid" || true
  assert_status 201
  assert_json ".customerid == $c and .netamount == 2 and .tax == 0.2"
  second=$(jq -r .orderid <<<"$body")
  assert_eq "the first POST's status" 201 "$(cat "$BATS_TEST_TMPDIR/first.code")"
  body=$(cat "$BATS_TEST_TMPDIR/first.json")
  assert_json ".customerid == $c and .netamount == 1 and .tax == 0.1"
  first=$(jq -r .orderid <<<"$body")

  # xmin: the id of the transaction that inserted the row
  assert_eq "transactions that inserted orders $first and $second" 1 \
    "$(psqlc "SELECT count(DISTINCT xmin::text) FROM orders WHERE orderid IN ($first, $second)")"
  assert_eq "order $second in Postgres" "2.00|0.20" \
    "$(psqlc "SELECT netamount || '|' || tax FROM orders WHERE orderid = $second")"
  req GET "/orders/count?customerid=$c"
  assert_count_is 2
}

@test "POSTs at once: every answer is the order its client sent, as stored" {
  c=$(fresh_customer)
  C=$c
  body_i() { printf '{"customerid": %d, "netamount": %d.25, "tax": %d.5}' "$C" "$1" "$1"; }
  n=48
  posts_at_once "$BATS_TEST_TMPDIR/p" "$n" 16 body_i

  want='' ids=()
  for i in $(seq 1 "$n"); do
    assert_eq "POST $i's status" 201 "$(cat "$BATS_TEST_TMPDIR/p/$i.code")"
    body=$(cat "$BATS_TEST_TMPDIR/p/$i.json")
    assert_json ".customerid == $c and .netamount == $i.25 and .tax == $i.5"
    ids+=("$(jq -r .orderid <<<"$body")")
    want+="$(jq -r '[.orderid, .netamount, .tax] | map(tostring) | join("|")' <<<"$body")"$'\n'
  done
  # what Postgres holds under each answered id is what that answer said
  got=$(psqlc "SELECT orderid || '|' || netamount::float8 || '|' || tax::float8
               FROM orders WHERE customerid = $c ORDER BY orderid")
  assert_eq "the rows, against the answers" "$(sort -t'|' -k1,1n <<<"${want%$'\n'}")" "$got"
  assert_eq "distinct orderids answered" "$n" "$(printf '%s\n' "${ids[@]}" | sort -u | wc -l)"
  xacts=$(psqlc "SELECT count(DISTINCT xmin::text) FROM orders WHERE customerid = $c")
  echo "# $n orders in $xacts transactions" >&3

  req GET "/orders/count?customerid=$c"
  assert_count_is "$n"
}

@test "POSTs at once with the same customer and amounts, with and without orderdate: each gets its own date" {
  c=$(fresh_customer)
  today=$(psqlc "SELECT to_char(current_date, 'YYYY-MM-DD')")
  C=$c
  body_d() {
    if (($1 % 2)); then
      printf '{"customerid": %d, "netamount": 7, "tax": 1, "orderdate": "2004-02-29"}' "$C"
    else
      printf '{"customerid": %d, "netamount": 7, "tax": 1}' "$C"
    fi
  }
  n=32
  posts_at_once "$BATS_TEST_TMPDIR/d" "$n" 16 body_d
  for i in $(seq 1 "$n"); do
    assert_eq "POST $i's status" 201 "$(cat "$BATS_TEST_TMPDIR/d/$i.code")"
    body=$(cat "$BATS_TEST_TMPDIR/d/$i.json")
    if ((i % 2)); then
      assert_json_eq .orderdate '"2004-02-29"'
    else
      assert_json_eq .orderdate "\"$today\""
    fi
  done
  assert_eq "orders of 2004-02-29" $((n / 2)) \
    "$(psqlc "SELECT count(*) FROM orders WHERE customerid = $c AND orderdate = '2004-02-29'")"
  assert_eq "orders of today" $((n / 2)) \
    "$(psqlc "SELECT count(*) FROM orders WHERE customerid = $c AND orderdate = current_date")"
}

@test "a batch's leader dies after its commit: the POST that waited on it gets 503 at once, and no count is stale" {
  c=$(fresh_customer)
  one_order_counted "$c" 4000
  # The pool is idle, so this POST leads its batch: it waits 400 ms for
  # others to queue, inserts them with its own, and dies.
  post_bg leader "{\"customerid\": $c, \"netamount\": 1, \"tax\": 0}" \
    -H 'X-Test-Lead-Delay: 400' -H 'X-Test-Die-Leading: 1'
  sleep 0.15
  t0=$(date +%s%N)
  post_json "{\"customerid\": $c, \"netamount\": 2, \"tax\": 0}"
  ms=$((($(date +%s%N) - t0) / 1000000))
  wait "$bg_pid" || true
  assert_error_json 503
  echo "# the waiting POST answered in $ms ms" >&3
  ((ms < 3000)) || flunk "the waiting POST took $ms ms: it should see its leader dead within 50 ms of the death"
  assert_eq "the leader's own answer" 503 "$(cat "$BATS_TEST_TMPDIR/leader.code")"
  # both committed: a 503 here says "may have been written"
  assert_eq "rows of customer $c" 3 "$(rows_of "$c")"
  req GET "/orders/count?customerid=$c"
  assert_status 200
  assert_count_is 3
}
