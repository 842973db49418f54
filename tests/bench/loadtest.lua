-- The wrk script of tests/bench/loadtest.py, which fills in the {PLACEHOLDERS}. Of the
-- requests of each thread, half are invite clicks, a quarter joins, a quarter purchases.
local codes = {CODES}
local buyers = {BUYERS}
local threads = {}
local token, cookie, key, slug = "{TOKEN}", "{COOKIE}", "{KEY}", "{SLUG}"

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  n = 0
  clicks, joins, events, other = 0, 0, 0, 0
  math.randomseed(id * 7919)
end

function request()
  n = n + 1
  local kind = n % 4
  if kind < 2 then
    return wrk.format("GET", "/r/" .. codes[math.random(#codes)] .. "?s=load", {["User-Agent"] = "Mozilla/5.0 (iPhone) load test"})
  elseif kind == 2 then
    local body = "csrfmiddlewaretoken=" .. token .. "&email=w" .. id .. "-" .. n .. "%40load.example&name=Load&consent=on&ref=" .. codes[math.random(#codes)]
    return wrk.format("POST", "/c/" .. slug .. "/join", {["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = "csrftoken=" .. cookie}, body)
  else
    local body = '{"type":"purchase","campaign":"' .. slug .. '","external_id":"' .. buyers[math.random(#buyers)] .. '","order_id":"t' .. id .. '-' .. n .. '","amount":"50.00","currency":"CNY"}'
    return wrk.format("POST", "/api/v1/events/", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}, body)
  end
end

function response(status, headers, body)
  if status == 302 then clicks = clicks + 1
  elseif status == 303 then joins = joins + 1
  elseif status == 201 then events = events + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local c, j, e, o = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    c = c + thread:get("clicks"); j = j + thread:get("joins")
    e = e + thread:get("events"); o = o + thread:get("other")
  end
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"clicks": %d, "joins": %d, "events": %d, "unexpected_status": %d, ' ..
    '"socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, c, j, e, o,
    errors.connect + errors.read + errors.write + errors.timeout))
end
