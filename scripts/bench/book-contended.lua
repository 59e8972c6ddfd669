-- wrk script: 32 connections fight over 16 slots. Every wrk thread books
-- the same sequence of 5-minute slots of one provider (bench-hot), its k-th
-- request the k-th slot, so with 2 threads of 16 connections each about 16
-- slots are in flight at any moment, each wanted by two connections: one
-- 201 and one 409 slot_taken per slot. Statuses are counted per thread and
-- summed in done(): anything but 201 or 409 is reported as `other`.
local counter = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  base = tonumber(os.getenv("BASE_EPOCH"))
  created = 0
  conflicts = 0
  other = 0
end

request = function()
  counter = counter + 1
  local start = os.date("!%Y-%m-%dT%H:%M:%SZ", base + counter * 300)
  local body = string.format(
    '{"providerId":"bench-hot","patientId":"pt-%d-%d","start":"%s"}',
    math.random(1, 1000000000), counter, start)
  return wrk.format("POST", "/v1/appointments", { ["Content-Type"] = "application/json" }, body)
end

response = function(status, headers, body)
  if status == 201 then
    created = created + 1
  elseif status == 409 then
    conflicts = conflicts + 1
  else
    other = other + 1
  end
end

done = function(summary, latency, requests)
  local c, k, o = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created")
    k = k + t:get("conflicts")
    o = o + t:get("other")
  end
  io.write(string.format("RESULT requests=%d created=%d conflicts=%d other_status=%d errors_connect=%d errors_timeout=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, c, k, o, summary.errors.connect, summary.errors.timeout,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
