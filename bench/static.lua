-- bench/static.lua: the same GET every time (the URL on wrk's command line):
-- the floors and the cache hits. No request() function, so wrk sends its
-- prebuilt request and spends no Lua per request.
dofile((os.getenv("BENCH_LUA") or "bench") .. "/report.lua")
