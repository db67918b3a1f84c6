-- wrk script: POST /api/v1/users with a new email each request, so every
-- request writes a user row and its audit entry.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
end

request = function()
  counter = counter + 1
  local body = string.format('{"email":"u%d-%d-%d@bench.example","role":"viewer"}', tid, counter, math.random(1, 1000000000))
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end -- keeps -H Authorization
  headers["Content-Type"] = "application/json"
  return wrk.format("POST", "/api/v1/users", headers, body)
end
