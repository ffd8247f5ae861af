-- wrk script of the fault suite: a read load, and a count of answers by
-- status. Reads are spread over a few hundred counts and orders, so that
-- some hit the cache and some miss.
--
--   WRK_REPORT=FILE wrk -s reads.lua ...
--
-- At the end FILE gets one line: "requests N max_ms M status:200=N ..."
-- (socket errors as connect=, read=, write=, timeout=).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0))
end

function request()
  local r = math.random(100)
  local path
  if r <= 45 then
    path = "/orders/count?customerid=" .. math.random(1, 300)
  elseif r <= 55 then
    path = "/orders/count"
  else
    path = "/orders/" .. math.random(1, 12000)
  end
  return wrk.format("GET", path)
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do
      total[status] = (total[status] or 0) + n
    end
  end
  local line = string.format("requests %d max_ms %.1f p99_ms %.1f",
    summary.requests, latency.max / 1000, latency:percentile(99) / 1000)
  local keys = {}
  for status in pairs(total) do table.insert(keys, status) end
  table.sort(keys)
  for _, status in ipairs(keys) do
    line = line .. string.format(" %d=%d", status, total[status])
  end
  local e = summary.errors
  line = line .. string.format(" connect=%d read=%d write=%d timeout=%d",
    e.connect, e.read, e.write, e.timeout)
  local f = io.open(os.getenv("WRK_REPORT") or "/dev/stdout", "w")
  f:write(line .. "\n")
  f:close()
end
