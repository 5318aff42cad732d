-- Sums an Nsight Compute CSV (ncu --csv --print-units base --metrics gpu__time_duration.sum) by
-- kernel name: the kernels that take a profiled step's device time, largest first.
--
--   fsvc spec/gpu/ncu_summary.lua PROFILE.csv [TOP]
--
-- Prints "total: N kernels, T ms of kernel time", then one line per kernel name (count, ms, share).
local path, top = arg[1], tonumber(arg[2] or "30")
if not path then
  io.stderr:write("usage: fsvc spec/gpu/ncu_summary.lua PROFILE.csv [TOP]\n")
  os.exit(2)
end
local f, err = io.open(path)
if not f then
  io.stderr:write("ncu_summary: cannot open " .. tostring(err) .. "\n")
  os.exit(2)
end

-- one CSV line -> fields ("a","b,c",d)
local function fields(line)
  local out, i, n = {}, 1, #line
  while i <= n + 1 do
    if line:sub(i, i) == '"' then
      local j, buf = i + 1, {}
      while j <= n do
        local c = line:sub(j, j)
        if c == '"' and line:sub(j + 1, j + 1) == '"' then buf[#buf + 1] = '"'; j = j + 2
        elseif c == '"' then break
        else buf[#buf + 1] = c; j = j + 1 end
      end
      out[#out + 1] = table.concat(buf)
      i = j + 2 -- past the quote and the comma
    else
      local j = line:find(",", i, true) or (n + 1)
      out[#out + 1] = line:sub(i, j - 1)
      i = j + 1
    end
  end
  return out
end

local header, col = nil, {}
local by_name, total_ns, count = {}, 0, 0
for line in f:lines() do
  if not header then
    if line:find('"Kernel Name"', 1, true) then
      header = fields(line)
      for k, v in ipairs(header) do col[v] = k end
    end
  else
    local r = fields(line)
    local metric = r[col["Metric Name"]]
    if metric == "gpu__time_duration.sum" then
      local name = r[col["Kernel Name"]] or "?"
      local v = tonumber((r[col["Metric Value"]] or ""):gsub(",", "") .. "") or 0
      local unit = r[col["Metric Unit"]] or "ns"
      local scale = ({ nsecond = 1, ns = 1, usecond = 1e3, us = 1e3, msecond = 1e6, ms = 1e6 })[unit] or 1
      local ns = v * scale
      local e = by_name[name] or { n = 0, ns = 0 }
      e.n, e.ns = e.n + 1, e.ns + ns
      by_name[name] = e
      total_ns, count = total_ns + ns, count + 1
    end
  end
end
f:close()
if not header then
  print("ncu_summary: no kernel rows in " .. path .. " (nothing profiled?)")
  os.exit(1)
end
local list = {}
for name, e in pairs(by_name) do list[#list + 1] = { name = name, n = e.n, ns = e.ns } end
table.sort(list, function(a, b) return a.ns > b.ns end)
print(string.format("total: %d kernels, %.3f ms of kernel time", count, total_ns / 1e6))
for i = 1, math.min(top, #list) do
  local e = list[i]
  print(string.format("%6d  %9.3f ms  %5.1f%%  %s", e.n, e.ns / 1e6, 100 * e.ns / math.max(total_ns, 1), e.name:sub(1, 110)))
end
