-- UpdateCase load for wrk against the bulkupdate emulator's demo domain: PUT the "priority" field,
-- every case in turn, the next option value on each pass over the cases.
--
--   wrk -t1 -c64 -d10s -s benchmarks/update_case.lua http://127.0.0.1:PORT -- CASES
--
-- Ends with one line "wrk-summary {json}" that benchmarks/emulator_capacity.py reads.
-- The emulator checks only that a SigV4 Authorization header scoped to "cases" is present
-- (unless it runs with --verify-signatures), so a fixed header will do.

local VALUES = { "low", "medium", "high", "urgent" }
local AUTHORIZATION = "AWS4-HMAC-SHA256 Credential=AKIDEMULATOR/20260101/us-east-1/cases/"
  .. "aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"

local prepared = {}
local next_index = 1

function init(args)
  local cases = tonumber(args[1]) or 1000
  -- Format every request once, up front: the generator must stay far cheaper than the server.
  for pass = 1, #VALUES do
    local body = string.format(
      '{"fields":[{"id":"priority","value":{"stringValue":"%s"}}]}', VALUES[pass])
    for index = 1, cases do
      local headers = {
        ["Content-Type"] = "application/json",
        ["X-Amz-Date"] = "20260101T000000Z",
        ["Authorization"] = AUTHORIZATION,
      }
      local path = string.format("/domains/demo/cases/case-%07d", index)
      prepared[#prepared + 1] = wrk.format("PUT", path, headers, body)
    end
  end
end

function request()
  local text = prepared[next_index]
  next_index = next_index % #prepared + 1
  return text
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'wrk-summary {"duration_us": %d, "requests": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "status_errors": %d, "timeouts": %d, '
      .. '"latency_p50_us": %d, "latency_p99_us": %d}\n',
    summary.duration, summary.requests, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, latency:percentile(50), latency:percentile(99)))
end
