#!/usr/bin/env bash
# tests/cluster/checker.sh BASE DIR CUSTOMER: a client that checks what the
# service promises, through the edge, until DIR/stop exists.
#
# Each round: POST /orders for CUSTOMER with an Idempotency-Key; an answer
# other than 201 is retried with the same key (a write whose answer was lost
# may have committed: the key makes the retry safe) until it is
# acknowledged; then GET /orders/count?customerid=CUSTOMER must say exactly
# how many were acknowledged (nobody else writes for CUSTOMER), and GET
# /orders/ID of the new order must find it. A read that says fewer is a
# stale read; one that says more, a write committed and never acknowledged.
#
# Writes to DIR: acked (one orderid per line), log (one line per finding),
# statuses ("STATUS COUNT" per line, every answer), rounds, stale.

set -u
BASE=$1 DIR=$2 CUSTOMER=$3
acked=0 rounds=0 stale=0
declare -A seen=()
: >"$DIR/acked"
: >"$DIR/log"

note() { printf '%s %s\n' "$(date +%T.%N | cut -c1-12)" "$*" >>"$DIR/log"; }

# call METHOD PATH [curl args]: sets code and body
call() {
  local m=$1 p=$2
  shift 2
  body=$(curl -s -X "$m" --max-time 15 -w '\n%{http_code}' "$@" "$BASE$p" 2>/dev/null)
  code=${body##*$'\n'}
  body=${body%$'\n'*}
  [[ $code =~ ^[0-9]{3}$ ]] || code=000
  seen[$code]=$((${seen[$code]:-0} + 1))
}

flush_statuses() {
  local k
  for k in "${!seen[@]}"; do printf '%s %s\n' "$k" "${seen[$k]}"; done >"$DIR/statuses"
  printf '%s\n' "$rounds" >"$DIR/rounds"
  printf '%s\n' "$stale" >"$DIR/stale"
}

while [[ ! -e $DIR/stop ]]; do
  key=chk-$CUSTOMER-$rounds-$RANDOM
  id=''
  for ((try = 0; try < 40; try++)); do
    call POST /orders -H 'Content-Type: application/json' -H "Idempotency-Key: $key" \
      --data-binary "{\"customerid\": $CUSTOMER, \"netamount\": 1, \"tax\": 0}"
    if [[ $code == 201 ]]; then
      [[ $body =~ \"orderid\":\ ?([0-9]+) ]] && id=${BASH_REMATCH[1]}
      break
    fi
    note "POST $key: $code (retrying with the same key)"
    sleep 0.25
  done
  if [[ -z $id ]]; then
    note "POST $key: never acknowledged"
    continue
  fi
  acked=$((acked + 1))
  echo "$id" >>"$DIR/acked"
  call GET "/orders/count?customerid=$CUSTOMER"
  if [[ $code == 200 && $body =~ \"count\":\ ?([0-9]+) ]]; then
    n=${BASH_REMATCH[1]}
    if ((n < acked)); then
      stale=$((stale + 1))
      note "STALE count: $n after $acked acknowledged writes"
    elif ((n > acked)); then
      note "count $n is more than the $acked acknowledged writes"
      stale=$((stale + 1))
    fi
  else
    note "GET count: $code"
  fi
  call GET "/orders/$id"
  if [[ $code == 404 ]]; then
    stale=$((stale + 1))
    note "STALE: order $id, acknowledged, answered 404"
  elif [[ $code != 200 ]]; then
    note "GET /orders/$id: $code"
  fi
  rounds=$((rounds + 1))
  ((rounds % 10 == 0)) && flush_statuses
done
flush_statuses
