-- wrk script for scripts/bench-load.sh. With BODY_FILE set, every request is a POST of that
-- file (a CDS Hooks order-sign request); without it, wrk's default GET (the no-op route).
-- With TOKENS_FILE set (one client JWT per line), every request carries its own token, each used
-- once (the service rejects a replayed jti): wrk thread i takes lines i, i+n, i+2n, ...; a thread
-- that runs out sends no token (answered 401, counted as non-2xx).
-- done() prints one machine-readable RESULT line; 2xx = completed minus non-2xx/3xx answers.
local body_file = os.getenv("BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end

local tokens_file = os.getenv("TOKENS_FILE")
if tokens_file and tokens_file ~= "" then
  -- Only defined with tokens: without request(), wrk sends one prepared request over and over.
  local counter = 0
  function setup(thread)
    thread:set("index", counter)
    counter = counter + 1
  end

  local tokens = {}
  local next_token = 1

  function init(args)
    local stride = tonumber(os.getenv("WRK_THREADS") or "1")
    local n = 0
    for line in io.lines(tokens_file) do
      if n % stride == index then
        table.insert(tokens, line)
      end
      n = n + 1
    end
  end

  function request()
    local headers = {}
    for k, v in pairs(wrk.headers) do headers[k] = v end
    local token = tokens[next_token]
    next_token = next_token + 1
    if token then
      headers["Authorization"] = "Bearer " .. token
    end
    return wrk.format(nil, nil, headers)
  end
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
