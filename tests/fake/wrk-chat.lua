-- wrk script: non-streaming OpenAI chat completions against the fake upstream.
--   wrk -t2 -c64 -d10s -s tests/fake/wrk-chat.lua http://127.0.0.1:PORT
-- Extra x-fake-* headers can be given with wrk's -H.
wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},' ..
           '{"role":"user","content":"Summarise the benefits of connection pooling in two sentences."}]}'

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("non-2xx: %d, socket errors: connect %d read %d write %d timeout %d\n",
    non2xx, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
