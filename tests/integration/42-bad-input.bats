#!/usr/bin/env bats
# The bad-input suite: every request of bad-input.cases (its format is
# described at its top) gets the status API.md wants, as a JSON error; no
# answer carries a header the request tried to inject; Postgres is
# unchanged after it (or has exactly the one order a 201 took); and the
# next good request succeeds. All cases run in one test, failures are
# collected and reported together, and the table of what happened
# (case | expected | got | db unchanged | next ok) is printed as TAP
# comments, so it shows in `make test`'s output.

load helpers

CASES_FILE=$BATS_TEST_DIRNAME/bad-input.cases

# ---------------------------------------------------------------- the cases

# bi_load: the cases into the arrays CN (name), CE (expected), CM (method),
# CP (path), CH (headers), CB (body); a malformed line fails the test.
bi_load() {
  local line rest n=0 i
  local -a f
  local -A seen=()
  CN=() CE=() CM=() CP=() CH=() CB=()
  [[ -r $CASES_FILE ]] || flunk "cannot read $CASES_FILE" || return 1
  while IFS= read -r line || [[ -n $line ]]; do
    n=$((n + 1))
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    f=() rest=$line
    while [[ $rest == *' | '* ]]; do
      f+=("${rest%% | *}")
      rest=${rest#* | }
    done
    f+=("$rest")
    for i in "${!f[@]}"; do # trim
      f[i]=${f[i]#"${f[i]%%[![:space:]]*}"}
      f[i]=${f[i]%"${f[i]##*[![:space:]]}"}
    done
    ((${#f[@]} == 6)) ||
      flunk "$CASES_FILE:$n: ${#f[@]} fields, not 6 (name | expect | method | path | headers | body)" || return 1
    [[ ${f[0]} =~ ^[A-Za-z0-9_.-]+$ && -z ${seen[${f[0]}]-} ]] ||
      flunk "$CASES_FILE:$n: the name '${f[0]}' is not one word, or not unique" || return 1
    seen[${f[0]}]=1
    [[ ${f[1]} =~ ^([1-5][0-9][0-9]|none)$ ]] ||
      flunk "$CASES_FILE:$n: expect '${f[1]}' is neither a status nor none" || return 1
    [[ ${f[2]} =~ ^[A-Z]+$ ]] || flunk "$CASES_FILE:$n: method '${f[2]}'" || return 1
    if [[ ${f[2]} == RAW ]]; then
      [[ ${f[3]} == - && ${f[4]} == - && ${f[5]} != - ]] ||
        flunk "$CASES_FILE:$n: a RAW case has path and headers '-' and the request as body" || return 1
    else
      [[ ${f[3]} == /* ]] || flunk "$CASES_FILE:$n: path '${f[3]}' does not start with /" || return 1
    fi
    CN+=("${f[0]}") CE+=("${f[1]}") CM+=("${f[2]}") CP+=("${f[3]}") CH+=("${f[4]}") CB+=("${f[5]}")
  done <"$CASES_FILE"
  ((${#CN[@]} > 0)) || flunk "no case in $CASES_FILE"
}

# bi_expand TEXT: REPLY = TEXT with @C@ (the case's customer, $C) and
# @REPEAT:N:T@ replaced; printf escapes are left for the caller.
bi_expand() {
  local s=$1 re='@REPEAT:([0-9]+):([^@]*)@' pad
  s=${s//@C@/$C}
  while [[ $s =~ $re ]]; do
    printf -v pad '%*s' "${BASH_REMATCH[1]}" ''
    pad=${pad// /"${BASH_REMATCH[2]}"}
    s=${s/"${BASH_REMATCH[0]}"/"$pad"}
  done
  REPLY=$s
}

# ---------------------------------------------------------------- Postgres

# One psql session for the whole suite (a psql login per query costs more
# than the rest of a case). Its descriptors are not bats's: fd 3 closed.
bi_sql_start() {
  coproc BI_PSQL { exec 3>&- psql "$DATABASE_URL" -XAtq 2>&1; }
}

bi_sql_stop() {
  if [[ -n ${BI_PSQL_PID-} ]]; then
    kill "$BI_PSQL_PID" 2>/dev/null || true
    wait "$BI_PSQL_PID" 2>/dev/null || true
  fi
}

teardown() { bi_sql_stop; }

# bi_sql SQL: REPLY = its one line of output (empty if psql failed).
bi_sql() {
  local line out=''
  REPLY=''
  [[ -n ${BI_PSQL[1]-} ]] || return 0
  printf '%s;\n\\echo __bi_end__\n' "$1" 1>&"${BI_PSQL[1]}" 2>/dev/null || return 0
  while IFS= read -r -t 20 -u "${BI_PSQL[0]}" line; do
    [[ $line == __bi_end__ ]] && break
    out+=$line
  done
  REPLY=$out
}

# bi_fingerprint CUSTOMERID: REPLY = "orders of that customer|orders of
# the others|their max orderid|sum of a hash of each of their rows (every
# column)|relations in schema public".
bi_fingerprint() {
  bi_sql "SELECT count(*) FILTER (WHERE customerid = $1) || '|' ||
                count(*) FILTER (WHERE customerid <> $1) || '|' ||
                coalesce(max(orderid) FILTER (WHERE customerid <> $1), 0) || '|' ||
                coalesce(sum(hashtext(o::text)::bigint) FILTER (WHERE customerid <> $1), 0) || '|' ||
                (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = 'public')
           FROM orders o"
}

# ---------------------------------------------------------------- sending
#
# Written to fork little: on a loaded 2-core machine each fork costs tens
# of milliseconds, and there are over a hundred cases.

# bi_read FILE: REPLY = its text, CR and anything from a NUL on left out.
bi_read() {
  REPLY=''
  IFS= read -r -d '' REPLY <"$1" || true
  REPLY=${REPLY//$'\r'/}
}

# bi_curl METHOD PATH HEADERS BODY-FILE|"": the case with curl and, on the
# same curl (the same connection when nginx kept it open), the next good
# request: GET /orders/count?customerid=C. Sets got (the status, or none),
# rhead (every header line, status lines included), rbody, and next_code,
# next_body for the good request.
bi_curl() {
  local method=$1 path=$2 hdrs=$3 bodyf=$4 h has_ct='' codes
  local -a args=(-s -o "$T/resp.body" -D "$T/resp.head" -w '%{http_code}\n' --max-time 5
    --path-as-is -H 'Expect:')
  if [[ $method == HEAD ]]; then args+=(-I); else args+=(-X "$method"); fi
  if [[ $hdrs != - ]]; then
    while IFS= read -r h; do
      args+=(-H "$h")
      [[ ${h,,} == content-type:* ]] && has_ct=1
    done <<<"$hdrs"
  fi
  if [[ -n $bodyf ]]; then
    args+=(--data-binary "@$bodyf")
    [[ -n $has_ct ]] || args+=(-H 'Content-Type: application/json')
  fi
  : >"$T/resp.body"
  : >"$T/resp.head"
  : >"$T/next.body"
  codes=$(curl "${args[@]}" "$BASE$path" \
    --next -s -o "$T/next.body" -w '%{http_code}\n' --max-time 5 "$BASE/orders/count?customerid=$C") || true
  got=${codes%%$'\n'*} next_code=${codes#*$'\n'}
  [[ $got =~ ^[1-5][0-9][0-9]$ ]] || got=none
  bi_read "$T/resp.head"
  rhead=$REPLY
  rbody=''
  if [[ $method != HEAD ]]; then
    bi_read "$T/resp.body"
    rbody=$REPLY
  fi
  bi_read "$T/next.body"
  next_body=$REPLY
}

# bi_next: the next good request after a RAW case (next_code, next_body).
bi_next() {
  : >"$T/next.body"
  next_code=$(curl -s -o "$T/next.body" -w '%{http_code}' --max-time 5 \
    "$BASE/orders/count?customerid=$C") || true
  bi_read "$T/next.body"
  next_body=$REPLY
}

# bi_raw REQUEST-FILE WAIT: the file's bytes over a new connection to nginx,
# then one HTTP/1.1 answer read from it (Content-Length, chunked, or up to
# the close), each read waiting WAIT s at most. Sets got, rhead, rbody;
# extra is "yes" when more bytes followed the answer (a second response).
bi_raw() {
  local LC_ALL=C fd line len chunk wait=$2 nl=$'\n'
  local re_len="${nl}content-length: *([0-9]+)" re_chunked="${nl}transfer-encoding: *chunked"
  got=none rhead='' rbody='' extra=''
  exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || { got=no-connection; return 0; }
  cat "$1" 1>&"$fd" 2>/dev/null || true
  line=''
  if IFS= read -r -t "$wait" -u "$fd" line && [[ ${line%$'\r'} =~ ^HTTP/1\.[01]\ ([0-9]{3}) ]]; then
    got=${BASH_REMATCH[1]}
    rhead=${line%$'\r'}
    while IFS= read -r -t 5 -u "$fd" line; do
      line=${line%$'\r'}
      [[ -z $line ]] && break
      rhead+=$'\n'$line
    done
    if [[ ${rhead,,} =~ $re_len ]]; then
      len=${BASH_REMATCH[1]}
      ((len == 0)) || IFS= read -r -d '' -N "$len" -t 5 -u "$fd" rbody || true
    elif [[ ${rhead,,} =~ $re_chunked ]]; then
      while IFS= read -r -t 5 -u "$fd" line; do
        len=$((16#${line%$'\r'}))
        ((len == 0)) && { IFS= read -r -t 5 -u "$fd" line || true; break; }
        IFS= read -r -d '' -N "$len" -t 5 -u "$fd" chunk || break
        rbody+=$chunk
        IFS= read -r -t 5 -u "$fd" line || break # the chunk's CRLF
      done
    else
      rbody=$(timeout 5 cat <&"$fd") || true
    fi
    # A second answer (response splitting, or nginx taking the rest of
    # the bytes for another request) would be here by now.
    if IFS= read -r -d '' -N 1 -t 0.2 -u "$fd" line && [[ -n $line ]]; then extra=yes; fi
  elif [[ -n $line ]]; then
    got=garbage rhead=$line
  fi
  exec {fd}>&-
  return 0
}

# ---------------------------------------------------------------- checks

# bi_check I: PROBLEMS = what is wrong with the answer to case I (got,
# rhead, rbody, extra), apart from Postgres and the body's JSON, which jq
# checks for all cases at the end: JQ_KIND[I] says what the body must be
# (error: {"error": "..."}; order:C: an order of customer C; object).
bi_check() {
  local i=$1 expect=${CE[$1]} method=${CM[$1]} line lh statuses=0 ct='' allow='' loc=''
  PROBLEMS=()
  JQ_KIND[i]='' JQ_BODY[i]=$rbody
  [[ $got == "$expect" ]] || PROBLEMS+=("status $got, expected $expect")
  [[ $got == none ]] && return 0
  while IFS= read -r line; do
    lh=${line,,}
    [[ $lh =~ ^http/[0-9.]+\ [0-9]{3} ]] && statuses=$((statuses + 1))
    [[ $lh == set-cookie:* || $lh == *injected* ]] && PROBLEMS+=("an injected header came back: $line")
    [[ $lh == content-type:* ]] && ct=${lh#content-type:}
    [[ $lh == allow:* ]] && allow=${line#*:}
    [[ $lh == location:* ]] && loc=${line#*:}
  done <<<"$rhead"
  ct=${ct# } allow=${allow# } loc=${loc# }
  ((statuses == 1)) || PROBLEMS+=("$statuses status lines in the answer's headers, not 1")
  [[ -n $extra ]] && PROBLEMS+=("more bytes after the answer (a second response?)")
  if [[ $got == [45]?? ]]; then
    [[ $ct =~ ^application/json\ *(\;|$) ]] || PROBLEMS+=("error with Content-Type '$ct', not application/json")
    [[ $method == HEAD ]] || JQ_KIND[i]=error
    [[ $got != 405 || $allow =~ ^[A-Z]+(,\ *[A-Z]+)*$ ]] || PROBLEMS+=("405 without an Allow header listing methods")
  elif [[ $got == 201 ]]; then
    JQ_KIND[i]=order:$C
    [[ $loc =~ ^/orders/[0-9]+$ ]] || PROBLEMS+=("201 with Location '$loc', not /orders/N")
  elif [[ $got == 200 && $method != HEAD ]]; then
    JQ_KIND[i]=object
  fi
  return 0
}

# bi_jq_all: one jq for every body that JQ_KIND names; appends to
# failures the cases whose body is not what it must be.
bi_jq_all() {
  local i k=0 line
  local -a args=() idx=()
  for i in "${!JQ_KIND[@]}"; do
    [[ -n ${JQ_KIND[i]} ]] || continue
    args+=("${JQ_KIND[i]}" "${JQ_BODY[i]}")
    idx+=("$i")
  done
  ((${#idx[@]} > 0)) || return 0
  while IFS= read -r line; do
    i=${idx[k]}
    k=$((k + 1))
    [[ $line == ok ]] && continue
    failures+=("${CN[i]}: the body is not the JSON it must be (${JQ_KIND[i]}): ${JQ_BODY[i]:0:150}")
    BAD_BODY[i]=1
  done < <(jq -n -r '
    def fits($kind; $v):
      if $kind == "error" then
        ($v | type == "object") and ($v.error | type == "string" and length > 0)
      elif ($kind | startswith("order:")) then
        ($v | type == "object") and $v.customerid == ($kind[6:] | tonumber)
          and ($v.orderid | type == "number")
      else $v | type == "object" end;
    $ARGS.positional as $a
    | range(0; $a | length; 2) as $k
    | ($a[$k + 1] | try fromjson catch null) as $v
    | if $v != null and fits($a[$k]; $v) then "ok" else "bad" end' --args "${args[@]}")
  ((k == ${#idx[@]})) || failures+=("jq checked $k bodies, not ${#idx[@]}")
}

# bi_good_post: a good POST for a fresh customer (201, and that one order
# in Postgres), then its DELETE (204). NEXTP = what went wrong, or empty.
bi_good_post() {
  local g id
  NEXTP=''
  g=$((2000000 + (RANDOM * 32768 + RANDOM) % 1000000))
  bi_sql "SELECT count(*) FROM orders WHERE customerid = $g"
  [[ $REPLY == 0 ]] || { NEXTP="customer $g for the good POST: '$REPLY' orders, not 0"; return 0; }
  post_json "{\"customerid\": $g, \"netamount\": 3.50, \"tax\": 0.35}"
  id=''
  [[ $body =~ \"orderid\":([0-9]+) ]] && id=${BASH_REMATCH[1]}
  [[ $status_code == 201 && -n $id ]] || { NEXTP="good POST: $status_code ${body:0:100}"; return 0; }
  bi_sql "SELECT count(*) FROM orders WHERE customerid = $g"
  [[ $REPLY == 1 ]] || { NEXTP="good POST: customer $g has '$REPLY' orders in Postgres, not 1"; return 0; }
  req DELETE "/orders/$id"
  [[ $status_code == 204 ]] || NEXTP="DELETE of the good POST's order $id: $status_code"
  return 0
}

# ---------------------------------------------------------------- the suite

@test "bad input: each case of bad-input.cases gets its status as a JSON error, injects no header, changes nothing, and the next request succeeds" {
  T=$BATS_TEST_TMPDIR
  bi_load
  local workers_before workers_after n=${#CN[@]} i k bodyf wait before after
  local fp_rest af_c af_rest db next c_rows started=$SECONDS
  local -a rows=() failures=() GOT=() DB=() NEXT=()
  JQ_KIND=() JQ_BODY=() BAD_BODY=()
  workers_before=$(worker_pids)
  bi_sql_start
  # bats's DEBUG trap records a stack trace at each command of a test
  # file's own code, which would double the time of these cases: not
  # while they run (the failures are collected and reported below anyway).
  local src_dir=${BATS_TEST_SOURCE%/*}
  bats_add_debug_exclude_path "$src_dir" 2>/dev/null || src_dir=''

  for ((i = 0; i < n; i++)); do
    # a customer of this case's own, with no orders
    for _ in 1 2 3 4 5; do
      C=$((1000000 + (RANDOM * 32768 + RANDOM) % 1000000))
      bi_fingerprint "$C"
      before=$REPLY
      [[ $before == 0\|* ]] && break
    done
    [[ $before == 0\|* ]] || { failures+=("${CN[i]}: no fresh customer, or psql failed: '$before'"); continue; }

    bodyf=''
    if [[ ${CB[i]} != - ]]; then
      bodyf=$T/req.$i
      bi_expand "${CB[i]}"
      if [[ ${CM[i]} == RAW && $REPLY == *@BODYLEN@* ]]; then
        printf '%b' "${REPLY#*'\r\n\r\n'}" >"$bodyf"
        k=$(wc -c <"$bodyf")
        REPLY=${REPLY//@BODYLEN@/$k}
      fi
      printf '%b' "$REPLY" >"$bodyf"
    fi

    # the case, then at once the next good request
    extra=''
    if [[ ${CM[i]} == RAW ]]; then
      wait=5
      [[ ${CE[i]} == none ]] && wait=2
      bi_raw "$bodyf" "$wait"
      bi_next
    else
      bi_expand "${CP[i]}"
      printf -v path '%b' "$REPLY"
      hdrs=-
      if [[ ${CH[i]} != - ]]; then
        bi_expand "${CH[i]}"
        printf -v hdrs '%b' "$REPLY"
      fi
      bi_curl "${CM[i]}" "$path" "$hdrs" "$bodyf"
    fi
    bi_check "$i"

    # Postgres: unchanged, or (a 201) exactly one more order, of C
    bi_fingerprint "$C"
    after=${REPLY:-psql failed}
    fp_rest=${before#*|} af_c=${after%%|*} af_rest=${after#*|}
    if [[ $after == "$before" ]]; then
      db=yes
      [[ $got == 201 ]] && PROBLEMS+=("answered 201, but no order of customer $C is in Postgres")
    elif [[ $af_rest == "$fp_rest" && $af_c == 1 ]]; then
      db="+1 (201)"
      [[ $got == 201 ]] || PROBLEMS+=("an order of customer $C went in, and the answer was $got")
      [[ ${CE[i]} == 201 ]] || { db="NO: +1"; PROBLEMS+=("an order of customer $C went in, for a request to refuse"); }
    else
      db=NO
      PROBLEMS+=("Postgres changed: before $before, after $after")
    fi

    # the next good request: a count (a miss: C is new) that agrees with
    # Postgres; and every 10th case a good POST (and its DELETE) too
    c_rows=${af_c:-0}
    next=yes
    if [[ $next_code != 200 || $next_body != "{\"count\":$c_rows}" ]]; then
      next="NO ($next_code)"
      PROBLEMS+=("the next GET /orders/count?customerid=$C: $next_code ${next_body:0:100}, expected 200 {\"count\":$c_rows}")
    fi
    if ((i % 10 == 9)); then
      bi_good_post
      if [[ -z $NEXTP ]]; then
        [[ $next == yes ]] && next="yes +POST"
      else
        next="NO (POST)"
        PROBLEMS+=("$NEXTP")
      fi
    fi

    GOT[i]=$got DB[i]=$db NEXT[i]=$next
    for k in "${PROBLEMS[@]}"; do failures+=("${CN[i]}: $k"); done
  done
  bi_sql_stop
  if [[ -n $src_dir && ${BATS_DEBUG_EXCLUDE_PATHS[-1]-} == "$src_dir" ]]; then
    unset 'BATS_DEBUG_EXCLUDE_PATHS[-1]'
  fi
  bi_jq_all

  workers_after=$(worker_pids)
  [[ $workers_before =~ ^[0-9] && $workers_after == "$workers_before" ]] ||
    failures+=("worker PIDs (./deploy.sh status) before the cases: ${workers_before//$'\n'/ }, after: ${workers_after//$'\n'/ }")

  # the table, as TAP comments (a case whose body jq refused: "got" says so)
  for ((i = 0; i < n; i++)); do
    rows+=("${CN[i]}|${CE[i]}|${GOT[i]-?}${BAD_BODY[i]:+ (body!)}|${DB[i]-?}|${NEXT[i]-?}")
  done
  {
    echo "case|expected|got|db unchanged|next ok"
    printf '%s\n' "${rows[@]}"
  } | awk -F'|' '
      { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NR; nf = NF }
      END {
        for (r = 1; r <= n; r++) {
          line = ""
          for (i = 1; i <= nf; i++) line = line sprintf("%-" w[i] "s" (i < nf ? " | " : ""), cell[r, i])
          sub(/ +$/, "", line); print "# " line
        }
      }' >&3
  printf '# %d cases in %d s, %d problems; worker PIDs before and after: %s / %s\n' "$n" \
    $((SECONDS - started)) "${#failures[@]}" "${workers_before//$'\n'/ }" "${workers_after//$'\n'/ }" >&3

  last_req='' # for flunk: the problems above name their requests
  ((${#failures[@]} == 0)) || flunk "${#failures[@]} problems:" "${failures[@]}"
}
