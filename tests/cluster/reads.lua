-- tests/cluster/reads.lua: wrk's read load through the edge: cached reads
-- of orders 1..ORDERS and counts of customers 1..CUSTOMERS, with every
-- answer's status and X-Cache counted. Run with -t1 (one thread: the counts
-- live in its state and done() reads them back).

local orders = tonumber(os.getenv("CLUSTER_ORDERS") or "2000")
local customers = tonumber(os.getenv("CLUSTER_CUSTOMERS") or "500")
local n = 0
statuses = {}
caches = {}

function request()
  n = n + 1
  if n % 4 == 0 then
    return wrk.format("GET", "/orders/count?customerid=" .. (n % customers + 1))
  end
  return wrk.format("GET", "/orders/" .. (n % orders + 1))
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local c = headers["X-Cache"] or "-"
  caches[c] = (caches[c] or 0) + 1
end

function done(summary, latency, requests)
  -- what the one thread counted; socket errors as status 0
  local s, c = {}, {}
  for _, th in ipairs(threads_seen) do
    for k, v in pairs(th:get("statuses")) do s[k] = (s[k] or 0) + v end
    for k, v in pairs(th:get("caches")) do c[k] = (c[k] or 0) + v end
  end
  local e = summary.errors
  s[0] = (s[0] or 0) + e.connect + e.read + e.write + e.timeout
  for k, v in pairs(s) do io.write(string.format("status %d %d\n", k, v)) end
  for k, v in pairs(c) do io.write(string.format("cache %s %d\n", k, v)) end
  io.write(string.format("requests %d\n", summary.requests))
  io.write(string.format("seconds %.3f\n", summary.duration / 1e6))
  io.write(string.format("p99_ms %.2f\n", latency:percentile(99) / 1000))
end

threads_seen = {}
function setup(thread)
  table.insert(threads_seen, thread)
end
