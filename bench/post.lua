-- wrk script: POSTs the documented Raaft example with a flowId unique to
-- each request (so the relay's deduplication does not turn the load into
-- duplicates). BENCH_BODY names the body file, in which __FLOW__ stands for
-- the flowId; BENCH_PATH and BENCH_TOKEN set the path and the token.
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
  counter = 0
  headers = { ["content-type"] = "application/json", ["x-raaft-token"] = token }
end

function request()
  counter = counter + 1
  local body = body_template:gsub("__FLOW__", run .. "-" .. tid .. "-" .. counter)
  return wrk.format("POST", path, headers, body)
end
