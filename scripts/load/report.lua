-- wrk script for scripts/bench-load.sh. With BODY_FILE set, every request is a POST of that
-- file (a CDS Hooks order-sign request); without it, wrk's default GET (the no-op route).
-- done() prints one machine-readable RESULT line; 2xx = completed minus non-2xx/3xx answers.
local body_file = os.getenv("BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT completed=%d ok=%d non2xx=%d socket_errors=%d timeouts=%d duration_us=%d " ..
    "p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    summary.requests, summary.requests - e.status, e.status, e.connect + e.read + e.write,
    e.timeout, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
