-- wrk script: POSTs the documented Raaft example with a flowId unique to
-- each request (so the relay's deduplication does not turn the load into
-- duplicates) and random, like the customer ids that make real events'
-- idempotency keys differ (so keys land all over the store's index, as in
-- production, not in one growing corner of it), and a customer drawn from
-- a million (so each customer's history is short, as in production).
-- BENCH_BODY names the body file, in which __FLOW__ stands for the flowId
-- and __CUSTOMER__ for the customer id; BENCH_ONE_CUSTOMER=1 sends every
-- event for one customer (the history's worst case); BENCH_PATH and
-- BENCH_TOKEN set the path and the token.
local threads = 0
local body_template = io.open(os.getenv("BENCH_BODY")):read("*a")
local path = os.getenv("BENCH_PATH") or "/webhooks/raaft"
local token = os.getenv("BENCH_TOKEN") or "bench-token"
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local one_customer = os.getenv("BENCH_ONE_CUSTOMER") == "1"

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
  local customer = one_customer and "customer-id" or string.format("cus_%d", math.random(1, 1000000))
  local body = body_template:gsub("__FLOW__", flow):gsub("__CUSTOMER__", customer)
  return wrk.format("POST", path, headers, body)
end
