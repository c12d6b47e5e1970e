-- wrk script for bench/serve.sh: requests the paths listed in a file, one per
-- line, in turn, so a run covers many files instead of one hot path. Prints
-- the same BENCH totals line as report.lua (loaded from this directory).
--
--   wrk ... -s bench/rotate.lua URL -- PATHS_FILE
--
-- Every thread starts at a different place in the list.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local threads = 0

function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

local paths = {}
local next_path = 1

function init(args)
  local file = args[1]
  if not file then
    error("rotate.lua: give the paths file after --")
  end
  for line in io.lines(file) do
    if line ~= "" then
      paths[#paths + 1] = line
    end
  end
  if #paths == 0 then
    error("rotate.lua: no paths in " .. file)
  end
  next_path = ((thread_index or 0) * 7919) % #paths + 1
end

function request()
  local p = paths[next_path]
  next_path = next_path % #paths + 1
  return wrk.format(nil, p)
end
