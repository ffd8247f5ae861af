-- bench/report.lua: what every wrk script of the benchmark shares (each
-- loads it with dofile). Numbers its threads (thread id 0, 1, ... in the
-- global `tid` of each thread's state), and at the end writes one line to
-- $BENCH_REPORT (else stdout):
--   requests=N seconds=S rps=R p50_ms=A p99_ms=B non2xx=N connect=N read=N write=N timeout=N

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  local line = string.format(
    "requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f non2xx=%d connect=%d read=%d write=%d timeout=%d",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect, e.read, e.write, e.timeout)
  local f = io.open(os.getenv("BENCH_REPORT") or "/dev/stdout", "w")
  f:write(line .. "\n")
  f:close()
end
