-- wrk script: POST …/memory:recall with a query of three random words of
-- the loaded vocabulary (bench/memory/run.sh sets PATH_RECALL and VOCAB).
local words = {}
local path = os.getenv("PATH_RECALL")
for line in io.lines(os.getenv("VOCAB")) do table.insert(words, line) end

request = function()
  local q = words[math.random(#words)] .. " " .. words[math.random(#words)] .. " " .. words[math.random(#words)]
  local headers = {}
  for k, v in pairs(wrk.headers) do headers[k] = v end
  headers["Content-Type"] = "application/json"
  return wrk.format("POST", path, headers, '{"query":"' .. q .. '","limit":10}')
end
