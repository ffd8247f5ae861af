-- bench/miss.lua: cold misses. Every request asks for a count no request
-- of the run asked before: customerid (1..20000, an existing customer, ~50
-- orders each at a million rows) and an end date (to=, a day of 2004)
-- come from a number n unique to the request, so each is a lease, one
-- index scan in Postgres and a fill.
--   BENCH_BASE: where n starts (distinct per run: a key from an earlier run
--   could still be cached); each thread takes BENCH_STRIDE (1,000,000) numbers of its own.
dofile((os.getenv("BENCH_LUA") or "bench") .. "/report.lua")

local days = {}
n = 0

function init(args)
  local t = os.time({ year = 2004, month = 1, day = 1, hour = 12 })
  for d = 0, 365 do
    days[d] = os.date("!%Y-%m-%d", t + d * 86400)
  end
  n = (tonumber(os.getenv("BENCH_BASE")) or 0) + (tid or 0) * (tonumber(os.getenv("BENCH_STRIDE")) or 1000000)
end

function request()
  n = n + 1
  local c = 1 + n % 20000
  local d = math.floor(n / 20000) % 366
  return wrk.format("GET", "/orders/count?customerid=" .. c .. "&to=" .. days[d])
end
