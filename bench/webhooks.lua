-- wrk script: replay pre-signed webhooks, each exactly once, then stop.
-- Usage: wrk -t1 -c32 -d600s --latency -s webhooks.lua URL -- FILE MARKER
-- FILE has one "token<TAB>body" line per request.
local requests = {}
local count = 0
local next_index = 0
local probed = false
local answered = 0
local non_2xx = 0
local health = nil
local marker = nil

function init(args)
  for line in io.lines(args[1]) do
    local tab = line:find("\t", 1, true)
    count = count + 1
    requests[count] = wrk.format("POST", "/webhooks/status", {
      ["Authorization"] = "Bearer " .. line:sub(1, tab - 1),
      ["Content-Type"] = "application/json",
    }, line:sub(tab + 1))
  end
  -- Once every webhook is out, idle connections ask for something harmless until the last answer.
  health = wrk.format("GET", "/healthz")
  -- wrk sleeps for the whole -d duration: when every webhook is answered we touch the marker
  -- file, and the harness sends wrk a SIGINT, which ends the run and prints `done`.
  marker = args[2]
end

function request()
  if not probed then
    -- wrk calls request() once while setting up and never sends that one: give it a throwaway.
    probed = true
    return health
  end
  next_index = next_index + 1
  if next_index > count then
    return health
  end
  return requests[next_index]
end

function response(status, headers, body)
  if body:sub(1, 1) == "{" then
    return  -- a /healthz answer (JSON); webhook answers have a plain-text or empty body
  end
  answered = answered + 1
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  end
  if answered >= count and marker then
    io.open(marker, "w"):close()
    marker = nil
  end
end

function done(summary, latency, requests_stats)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout))
end
