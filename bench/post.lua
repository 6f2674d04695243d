-- wrk script: POSTs the documented Raaft example with a flowId unique to
-- each request (so the relay's deduplication does not turn the load into
-- duplicates) and random, like the customer ids that make real events'
-- idempotency keys differ (so keys land all over the store's index, as in
-- production, not in one growing corner of it). BENCH_BODY names the body
-- file, in which __FLOW__ stands for the flowId; BENCH_PATH and
-- BENCH_TOKEN set the path and the token.
local threads = 0
local body_template = io.open(os.getenv("BENCH_BODY")):read("*a")
local path = os.getenv("BENCH_PATH") or "/webhooks/raaft"
local token = os.getenv("BENCH_TOKEN") or "bench-token"
local run = os.getenv("BENCH_RUN") or tostring(os.time())

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  math.randomseed(os.time() * 1000 + tid)
  counter = 0
  headers = { ["content-type"] = "application/json", ["x-raaft-token"] = token }
end

function request()
  counter = counter + 1
  local flow = string.format("%08x%08x-%s-%d-%d", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff), run, tid, counter)
  local body = body_template:gsub("__FLOW__", flow)
  return wrk.format("POST", path, headers, body)
end
