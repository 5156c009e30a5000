-- Case (4): a different valid token on every request, so none is in the cache.
-- BENCH_TOKENS names a file with one token per line; each thread starts at a different place.
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("offset", threads * 4999)
end
local i = 0
function init(args)
  i = (offset or 0) % #tokens
end
function request()
  i = i + 1
  if i > #tokens then i = 1 end
  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
