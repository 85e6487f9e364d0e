-- Exactly TOTAL single-alert Alertmanager v4 webhooks, each with a label set of its own; driven by bench/ingest.py.
--
--   wrk -t THREADS -c CONNECTIONS -d LIMIT -s bench/wrk/alertmanager.lua URL -- TOTAL THREADS TOKEN [api]
--
-- With "api" the same alerts go to Alertmanager's own POST /api/v2/alerts (a list of one alert, as Prometheus
-- posts them) instead of incibot's webhook: bench/storm.py compares the two.
--
-- Every wrk thread runs in a Lua state of its own. setup() numbers the threads k = 0 .. THREADS-1; thread k sends
-- its quota (TOTAL / THREADS, the first TOTAL % THREADS threads one more) with the labels
--
--   {alertname="BenchIngest", severity="warning", job="bench", instance="wrk-<k>-<i>"}, i = 1 .. quota
--
-- (bench/ingest.py recomputes these fingerprints to check the database, so keep the two in step). A connection
-- that would go over the quota is parked by delay(). When a thread has every answer it prints
-- "bench-thread-done <k>" and stops; wrk's main thread still sleeps until -d, so bench/ingest.py sends wrk SIGINT
-- once every thread is done, and done() prints a single "bench-result {json}" line: the time from the first
-- request to the last answer (CLOCK_MONOTONIC via LuaJIT's ffi), the answers by status, and wrk's own counts.

local ffi = require("ffi")
ffi.cdef([[
  struct bench_timespec { long tv_sec; long tv_nsec; };
  int clock_gettime(int clock_id, struct bench_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local PARK_MS = 3600 * 1000

local function now()
  local ts = ffi.new("struct bench_timespec")
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- main state: one entry per thread, for done()
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- thread state; sent, received, statuses, t_first and t_last are globals so that done() can read them
local quota, reserved = 0, 0
local headers = {}
local api = false -- post to Alertmanager's API instead of incibot's webhook
sent, received, statuses, t_first, t_last = 0, 0, {}, 0, 0

function init(args)
  local total, nthreads, token = tonumber(args[1]), tonumber(args[2]), args[3]
  assert(total and nthreads and token, "usage: -- TOTAL THREADS TOKEN")
  quota = math.floor(total / nthreads) + ((id < total % nthreads) and 1 or 0)
  assert(quota > 0, "every thread needs at least one request: TOTAL must be >= THREADS")
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
  api = args[4] == "api"
end

local BODY = '{"version":"4","groupKey":"{}:{alertname=\\"BenchIngest\\", instance=\\"%s\\"}","truncatedAlerts":0,'
  .. '"status":"firing","receiver":"bench","groupLabels":{"alertname":"BenchIngest","instance":"%s"},'
  .. '"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am",'
  .. '"alerts":[{"status":"firing","labels":{"alertname":"BenchIngest","severity":"warning","job":"bench",'
  .. '"instance":"%s"},"annotations":{"summary":"bench alert %s"},"startsAt":"2026-03-10T09:00:00Z",'
  .. '"endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prom"}]}'

local API_BODY = '[{"labels":{"alertname":"BenchIngest","severity":"warning","job":"bench","instance":"%s"},'
  .. '"annotations":{"summary":"bench alert %s"},"startsAt":"2026-03-10T09:00:00Z","generatorURL":"http://prom"}]'

local function body_request(instance)
  if api then
    return wrk.format("POST", "/api/v2/alerts", headers, string.format(API_BODY, instance, instance))
  end
  local body = string.format(BODY, instance, instance, instance, instance)
  return wrk.format("POST", "/alerts/alertmanager", headers, body)
end

function delay()
  if reserved < quota then
    reserved = reserved + 1
    return 0
  end
  return PARK_MS
end

function request()
  -- A call without a reservation from delay() is not a send of the run: wrk calls request() once on thread 0
  -- before the start to check the script (and again after a reconnect, which the benchmark reports as an error).
  if sent >= reserved then
    return body_request(string.format("wrk-%d-unreserved", id))
  end
  if sent == 0 then
    t_first = now()
  end
  sent = sent + 1
  return body_request(string.format("wrk-%d-%d", id, sent))
end

local function finish()
  io.write(string.format("bench-thread-done %d\n", id))
  io.flush()
  wrk.thread:stop()
end

function response(status)
  received = received + 1
  statuses[status] = (statuses[status] or 0) + 1
  if received == quota then
    t_last = now()
    finish()
  end
end

local function json_counts(counts)
  local parts = {}
  for key, value in pairs(counts) do
    table.insert(parts, string.format('"%s":%d', tostring(key), value))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, _requests)
  local sent_all, received_all, first, last, statuses_all = 0, 0, math.huge, 0, {}
  for _, thread in ipairs(threads) do
    sent_all = sent_all + thread:get("sent")
    received_all = received_all + thread:get("received")
    if thread:get("sent") > 0 then
      first = math.min(first, thread:get("t_first"))
    end
    last = math.max(last, thread:get("t_last"))
    for status, count in pairs(thread:get("statuses")) do
      statuses_all[status] = (statuses_all[status] or 0) + count
    end
  end
  local e = summary.errors
  io.write(string.format(
    'bench-result {"threads":%d,"sent":%d,"received":%d,"seconds":%.6f,"statuses":%s,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
    #threads, sent_all, received_all, first < last and last - first or 0, json_counts(statuses_all),
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max
  ))
  io.flush()
end
