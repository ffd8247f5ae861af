-- bench/post.lua: POST /orders, every body its own (customerid and amount
-- from a per-thread counter), no Idempotency-Key.
dofile((os.getenv("BENCH_LUA") or "bench") .. "/report.lua")

n = 0
headers = { ["Content-Type"] = "application/json" }

function init(args)
  n = (tonumber(os.getenv("BENCH_BASE")) or 0) + (tid or 0) * (tonumber(os.getenv("BENCH_STRIDE")) or 1000000)
end

function post_body()
  n = n + 1
  return string.format('{"customerid": %d, "netamount": %d.%02d, "tax": %d.%02d}',
    1 + n % 20000, 1 + n % 400, n % 100, n % 33, n % 100)
end

function request()
  return wrk.format("POST", "/orders", headers, post_body())
end
