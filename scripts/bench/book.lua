-- wrk script: every request books a distinct slot. Each wrk thread owns
-- providers bench-<thread>-<k>; slots are 5 minutes apart from BASE_EPOCH.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = id
  base = tonumber(os.getenv("BASE_EPOCH"))
  providers = tonumber(os.getenv("PROVIDERS_PER_THREAD") or "1")
end

request = function()
  counter = counter + 1
  local p = counter % providers
  local n = math.floor(counter / providers)
  local start = os.date("!%Y-%m-%dT%H:%M:%SZ", base + n * 300)
  local body = string.format(
    '{"providerId":"bench-%d-%d","patientId":"pt-%d-%d","start":"%s"}',
    thread_id, p, thread_id, counter, start)
  return wrk.format("POST", "/v1/appointments", { ["Content-Type"] = "application/json" }, body)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors_status=%d errors_connect=%d errors_timeout=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, summary.errors.status, summary.errors.connect, summary.errors.timeout,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
