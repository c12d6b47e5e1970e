-- wrk script for bench/serve.sh: prints the exact totals of a run on one
-- machine-readable line, because wrk's own "Transfer/sec" and "... read"
-- figures are rounded to two decimals of a unit.
--
--   BENCH requests=N bytes=N duration_us=N connect=N read=N write=N status=N timeout=N

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
