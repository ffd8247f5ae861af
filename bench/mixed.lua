-- bench/mixed.lua: 95 % reads, 5 % writes. Reads: half counts of one of
-- 100 customers, half one of the first BENCH_IDS (10,000) orders (a hot set: hits,
-- but every write drops every cached count, as the service does, so counts
-- miss after each write); writes: POST /orders as in post.lua.
dofile((os.getenv("BENCH_LUA") or "bench") .. "/post.lua")

function init(args)
  ids = tonumber(os.getenv("BENCH_IDS")) or 10000
  n = (tonumber(os.getenv("BENCH_BASE")) or 0) + (tid or 0) * (tonumber(os.getenv("BENCH_STRIDE")) or 1000000)
  math.randomseed(n + os.time())
end

function request()
  local r = math.random(100)
  if r <= 5 then
    return wrk.format("POST", "/orders", headers, post_body())
  elseif r <= 50 then
    return wrk.format("GET", "/orders/count?customerid=" .. math.random(1, 100))
  end
  return wrk.format("GET", "/orders/" .. math.random(1, ids))
end
