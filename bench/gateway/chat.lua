-- wrk script for bench/gateway.sh: non-streaming OpenAI chat completions.
--
-- Environment:
--   GW_MODEL  model in the body (default gpt-4o-mini)
--   GW_RATE   if set: total requests/s to send, paced (see below); else
--             closed loop (each connection sends as soon as it has its answer)
-- Headers (auth, routing) come from wrk's -H.
--
-- Pacing: wrk has no fixed-rate mode (wrk2 is not in Debian 12), so each
-- thread keeps its own schedule: its k-th request is due at t0 + k / rate
-- (rate = GW_RATE / threads), and delay() holds a ready connection until
-- its slot.  With enough idle connections this sends at exactly GW_RATE;
-- latency is wrk's own (from writing the request to the last byte of the
-- answer), so the wait for a slot is not counted.  If every connection is
-- busy the send is late and that lateness is not counted either (no
-- coordinated-omission correction) -- done() reports the achieved rate, and
-- the script warns when it fell more than 2 % short.
local ffi = require("ffi")
pcall(ffi.cdef, [[
  typedef struct { long tv_sec; long tv_nsec; } gw_timespec;
  int clock_gettime(int clk, gw_timespec *ts);
]])
local ts = ffi.new("gw_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local model = os.getenv("GW_MODEL") or "gpt-4o-mini"
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"system","content":"You are terse."},' ..
           '{"role":"user","content":"Summarise the benefits of connection pooling in two sentences."}]}'

local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("id", nthreads)
end

local rate = tonumber(os.getenv("GW_RATE") or "")
local interval, t0, k
function init(args)
  if rate then
    local threads = tonumber(os.getenv("GW_THREADS") or "2")
    interval = 1000 / (rate / threads)
    -- threads start half an interval apart so their slots interleave
    t0 = now_ms() + (id or 1) * interval / threads
    k = 0
  end
end

if rate then
  function delay()
    local due = t0 + k * interval
    k = k + 1
    local d = due - now_ms()
    if d < 0 then return 0 end
    return math.floor(d + 0.5)
  end
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "GWRESULT rps=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f requests=%d non2xx=%d sockerr=%d\n",
    summary.requests / secs, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout))
  if rate and summary.requests / secs < rate * 0.98 then
    io.write(string.format("GWWARN achieved %.0f req/s of %d asked\n", summary.requests / secs, rate))
  end
end
