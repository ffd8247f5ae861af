-- wrk script of the soak (make soak): every kind of request the service
-- takes, good and bad, and a count of the answers.
--
--   SOAK_DONE=DIR SOAK_REPORT=FILE \
--     wrk -t T -c T -d 3600s -s mixed.lua URL -- N T
--
-- Each of the T threads sends its share of N requests on its own
-- connection (-c equal to -t: one request in flight per thread, so each
-- answer is known to belong to the request sent last), then stops
-- (wrk.thread:stop()) and creates DIR/done.ID. wrk itself only leaves at
-- the end of -d or on SIGINT, so the caller waits for the T files, then
-- sends SIGINT; wrk then calls done().
--
-- The mix, per 100 requests:
--   30  GET /orders/count, criteria customerid, from, to, min_total in any
--       combination: half from a small set asked again and again (HITs),
--       half new (MISSes)
--   17  GET /orders/{id}: a generated order (a few hot ones: HITs), one
--       this thread made, or none (404)
--   15  POST /orders, good: no Idempotency-Key, a new one, or one of a few
--       sent again and again (201, the same order replayed)
--    8  DELETE /orders/{id}: an order this thread made (204), or none (404)
--   16  POST /orders, bad: malformed JSON, a field twice, an unknown field,
--       a missing field, a negative amount, three decimals, a date that
--       does not exist, not an object, wrong or no Content-Type, no body,
--       a bad Idempotency-Key, a known key with another order, too big
--   14  bad paths, methods and criteria: 404, 405, 400, 414; GET /healthz
--
-- Every request has the statuses it may get; an answer with another one
-- counts as "unexpected" (the first few are kept, "kind:status").
--
-- At the end FILE gets one line: "requests N unexpected N 200=N ...
-- connect=N read=N write=N timeout=N hit=N miss=N bypass=N kinds=..."
-- (statuses sorted; X-Cache of the answers).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

-- ---------------------------------------------------------------- per thread

function init(args)
  local n, t = tonumber(args[1]), tonumber(args[2])
  if not n or not t then
    error("usage: wrk ... -s mixed.lua URL -- REQUESTS THREADS")
  end
  share = math.floor(n / t) + ((id <= n % t) and 1 or 0)
  answered = 0
  counts, cache, kinds = {}, {}, {}
  unexpected, bad_examples = 0, ""
  created = {}          -- orderids this thread made and has not deleted
  conflict_done = {}    -- conflict keys whose first order went in
  math.randomseed(os.time() * 1000 + id * 7919 + (tonumber(tostring({}):sub(8), 16) or 0) % 100000)
  nonce = string.format("%x%x", os.time(), math.random(0, 0xffffff))
  done_dir = os.getenv("SOAK_DONE")
  last = nil
  if share == 0 then finish() end
end

local function pick(t) return t[math.random(#t)] end

local function money()
  local r = math.random(4)
  if r == 1 then return tostring(math.random(1, 400)) end
  if r == 2 then return string.format("%d.%d", math.random(0, 400), math.random(0, 9)) end
  return string.format("%d.%02d", math.random(0, 400), math.random(0, 99))
end

local function day()
  return string.format("2004-%02d-%02d", math.random(1, 12), math.random(1, 28))
end

-- ---------------------------------------------------------------- requests

local json_h = { ["Content-Type"] = "application/json" }

local function with_key(key)
  return { ["Content-Type"] = "application/json", ["Idempotency-Key"] = key }
end

-- criteria: any combination of the four, in any order
local function criteria()
  local parts = {}
  if math.random(2) == 1 then
    local c = math.random(1, 20000)
    if math.random(10) == 1 then c = string.format("%05d", c) end -- 042 → 42
    table.insert(parts, "customerid=" .. c)
  end
  if math.random(2) == 1 then table.insert(parts, "from=" .. day()) end
  if math.random(2) == 1 then table.insert(parts, "to=" .. day()) end
  if math.random(3) == 1 then table.insert(parts, "min_total=" .. money()) end
  for i = #parts, 2, -1 do
    local j = math.random(i)
    parts[i], parts[j] = parts[j], parts[i]
  end
  return table.concat(parts, "&")
end

-- a small set of counts asked again and again: HITs, until a write
-- invalidates them
local popular = {
  "", "customerid=1", "customerid=42", "from=2004-03-01&to=2004-03-31",
  "min_total=100", "customerid=7&min_total=1.5", "to=2004-06-30&from=2004-01-01",
  "from=2004-12-01", "min_total=250.25&from=2004-02-01", "customerid=%34%32",
}

local function good_order(c, net, tax, date)
  local s = string.format('{"customerid": %d, "netamount": %s, "tax": %s', c, net, tax)
  if date then s = s .. string.format(', "orderdate": "%s"', date) end
  return s .. "}"
end

-- a repeated key's order is fixed by the key, so every retry matches it
local function repeated_order(k)
  return good_order(980000 + id * 100 + k, (k * 3) .. ".25", k .. ".05", nil)
end

local big = '{"customerid": 1, "netamount": 1, "tax": 1, "pad": "' .. string.rep("x", 17000) .. '"}'
local long_path = "/orders/" .. string.rep("9", 9000)

-- each: { weight, function() return kind, expected, method, path, headers, body end }
local mix = {
  { 15, function() -- a popular count
    local q = pick(popular)
    return "count-popular", "200", "GET", "/orders/count" .. (q ~= "" and "?" .. q or "")
  end },
  { 15, function() -- a new count, mostly
    local q = criteria()
    return "count-new", "200", "GET", "/orders/count" .. (q ~= "" and "?" .. q or "")
  end },
  { 17, function()
    local r = math.random(10)
    if r <= 2 and #created > 0 then
      return "get-mine", "200", "GET", "/orders/" .. pick(created)
    elseif r <= 8 then
      -- a few hot ones (HITs: an order's entry stays until its TTL, or
      -- until that order is written), else any
      local top = math.random(3) == 1 and 40 or 12000
      return "get-generated", "200,404", "GET", "/orders/" .. math.random(1, top)
    end
    return "get-missing", "404", "GET", "/orders/" .. math.random(50000000, 99999999)
  end },
  { 15, function()
    local r = math.random(3)
    if r == 1 then
      local date = math.random(2) == 1 and day() or nil
      return "post", "201", "POST", "/orders", json_h,
        good_order(math.random(1, 20000), money(), money(), date)
    elseif r == 2 then
      return "post-key", "201", "POST", "/orders",
        with_key(string.format("soak-%s-%d-%d", nonce, id, math.random(1, 1e9))),
        good_order(math.random(1, 20000), money(), money(), nil)
    end
    local k = math.random(1, 8)
    return "post-key-again", "201", "POST", "/orders",
      with_key(string.format("soak-%s-%d-again-%d", nonce, id, k)), repeated_order(k)
  end },
  { 8, function()
    if math.random(4) > 1 and #created > 0 then
      local i = math.random(#created)
      local oid = created[i]
      created[i] = created[#created]
      created[#created] = nil
      return "delete-mine", "204", "DELETE", "/orders/" .. oid
    end
    return "delete-missing", "404", "DELETE", "/orders/" .. math.random(50000000, 99999999)
  end },
  { 16, function()
    local r = math.random(16)
    if r == 1 then return "bad-json", "400", "POST", "/orders", json_h, '{"customerid": 1, "netamount": 1.00,' end
    if r == 2 then return "bad-twice", "400", "POST", "/orders", json_h, '{"customerid": 1, "customerid": 2, "netamount": 1, "tax": 1}' end
    if r == 3 then return "bad-unknown", "422", "POST", "/orders", json_h, '{"customerid": 1, "netamount": 1, "tax": 1, "discount": 2}' end
    if r == 4 then return "bad-missing", "422", "POST", "/orders", json_h, '{"customerid": 1, "netamount": 1}' end
    if r == 5 then return "bad-negative", "422", "POST", "/orders", json_h, '{"customerid": 1, "netamount": -' .. money() .. ', "tax": 1}' end
    if r == 6 then return "bad-decimals", "422", "POST", "/orders", json_h, '{"customerid": 1, "netamount": 1.234, "tax": 0.5}' end
    if r == 7 then return "bad-date", "422", "POST", "/orders", json_h, '{"customerid": 1, "netamount": 1, "tax": 1, "orderdate": "2004-02-30"}' end
    if r == 8 then return "bad-array", "422", "POST", "/orders", json_h, '[1, 2, 3]' end
    if r == 9 then return "bad-type", "415", "POST", "/orders", { ["Content-Type"] = "text/plain" }, good_order(1, "1", "1") end
    if r == 10 then return "bad-no-type", "415", "POST", "/orders", nil, good_order(1, "1", "1") end
    if r == 11 then return "bad-no-body", "400,411", "POST", "/orders", json_h end
    if r == 12 then return "bad-key", "400", "POST", "/orders", with_key("has space"), good_order(1, "1", "1") end
    if r == 13 then return "bad-nan", "400", "POST", "/orders", json_h, '{"customerid": 1, "netamount": NaN, "tax": 1}' end
    if r == 14 then
      -- a key whose first order went in, sent with another order: 422
      local k = math.random(1, 4)
      local key = string.format("soak-%s-%d-conflict-%d", nonce, id, k)
      if conflict_done[k] then
        return "bad-key-conflict", "422", "POST", "/orders", with_key(key), good_order(1, "2", "2")
      end
      return "post-conflict-first:" .. k, "201", "POST", "/orders", with_key(key), good_order(1, "1", "1")
    end
    if r == 15 and math.random(8) == 1 then return "bad-too-big", "413", "POST", "/orders", json_h, big end
    return "bad-zero-customer", "422", "POST", "/orders", json_h, '{"customerid": 0, "netamount": 1, "tax": 1}'
  end },
  { 14, function()
    local r = math.random(14)
    if r == 1 then return "path-unknown", "404", "GET", "/nope" end
    if r == 2 then return "path-id-abc", "404", "GET", "/orders/abc" end
    if r == 3 then return "path-extra", "404", "GET", "/orders/1/x" end
    if r == 4 then return "method-put", "405", "PUT", "/orders/" .. math.random(1, 12000), json_h, "{}" end
    if r == 5 then return "method-post-count", "405", "POST", "/orders/count", json_h, "{}" end
    if r == 6 then return "method-delete-all", "405", "DELETE", "/orders" end
    if r == 7 then return "crit-unknown", "400", "GET", "/orders/count?foo=1" end
    if r == 8 then return "crit-repeated", "400", "GET", "/orders/count?customerid=1&customerid=2" end
    if r == 9 then return "crit-abc", "400", "GET", "/orders/count?customerid=" .. pick({ "abc", "", "12abc", "-1", "0" }) end
    if r == 10 then return "crit-date", "400", "GET", "/orders/count?from=" .. pick({ "2004-02-30", "2004-13-01", "yesterday" }) end
    if r == 11 then return "crit-money", "400", "GET", "/orders/count?min_total=" .. pick({ "1.234", "-1x", "1e3" }) end
    if r == 12 then return "crit-encoding", "400", "GET", "/orders/count?customerid=%ZZ" end
    if r == 13 and math.random(4) == 1 then return "path-too-long", "414", "GET", long_path end
    return "healthz", "200", "GET", "/healthz"
  end },
}

local total_weight = 0
for _, m in ipairs(mix) do total_weight = total_weight + m[1] end

function request()
  local r = math.random(total_weight)
  for _, m in ipairs(mix) do
    if r <= m[1] then
      local kind, expected, method, path, headers, body = m[2]()
      last = { kind = kind, expected = expected }
      return wrk.format(method, path, headers, body)
    end
    r = r - m[1]
  end
end

-- ---------------------------------------------------------------- answers

function finish()
  if done_dir then
    local f = io.open(done_dir .. "/done." .. id, "w")
    if f then f:close() end
  end
  wrk.thread:stop()
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  local x = headers["X-Cache"]
  if x then cache[x] = (cache[x] or 0) + 1 end
  if last then
    local kind = last.kind
    local k = kind:match("^post%-conflict%-first:(%d+)$")
    if k then
      kind = "post-conflict-first"
      if status == 201 then conflict_done[tonumber(k)] = true end
    elseif status == 201 and kind:match("^post") and not headers["Idempotent-Replayed"] then
      -- a replay's order is in the list already (or was deleted: then
      -- it is not a replay)
      local oid = body and body:match('"orderid"%s*:%s*(%d+)')
      if oid and #created < 1000 then table.insert(created, oid) end
    end
    kinds[kind] = (kinds[kind] or 0) + 1
    if not ("," .. last.expected .. ","):find("," .. status .. ",", 1, true) then
      unexpected = unexpected + 1
      if unexpected <= 5 then bad_examples = bad_examples .. " " .. kind .. ":" .. status end
    end
    last = nil
  end
  answered = answered + 1
  if answered >= share then finish() end
end

-- ---------------------------------------------------------------- report

function done(summary, latency, requests)
  local total, xc, kd = {}, {}, {}
  local nunexp, examples = 0, ""
  for _, t in ipairs(threads) do
    for s, n in pairs(t:get("counts")) do total[s] = (total[s] or 0) + n end
    for s, n in pairs(t:get("cache")) do xc[s] = (xc[s] or 0) + n end
    for s, n in pairs(t:get("kinds")) do kd[s] = (kd[s] or 0) + n end
    nunexp = nunexp + t:get("unexpected")
    examples = examples .. t:get("bad_examples")
  end
  local function sorted(t)
    local keys = {}
    for k in pairs(t) do table.insert(keys, k) end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    return keys
  end
  local line = string.format("requests %d unexpected %d", summary.requests, nunexp)
  for _, s in ipairs(sorted(total)) do line = line .. string.format(" %d=%d", s, total[s]) end
  local e = summary.errors
  line = line .. string.format(" connect=%d read=%d write=%d timeout=%d",
    e.connect, e.read, e.write, e.timeout)
  line = line .. string.format(" hit=%d miss=%d bypass=%d", xc.HIT or 0, xc.MISS or 0, xc.BYPASS or 0)
  line = line .. string.format(" max_ms %.1f p99_ms %.1f", latency.max / 1000, latency:percentile(99) / 1000)
  local ks = {}
  for _, k in ipairs(sorted(kd)) do table.insert(ks, k .. ":" .. kd[k]) end
  line = line .. " kinds=" .. table.concat(ks, ",")
  if examples ~= "" then line = line .. " examples=" .. examples:gsub("^ ", ""):gsub(" ", ",") end
  local f = io.open(os.getenv("SOAK_REPORT") or "/dev/stdout", "w")
  f:write(line .. "\n")
  f:close()
end
