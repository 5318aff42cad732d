-- Loads spec/data/nn/torch_reference.lua (numbers from PyTorch) and turns its {shape, dtype, data}
-- records into tensors.
local R = {}

R.data = dofile("spec/data/nn/torch_reference.lua")

function R.tensor(rec)
  if rec == nil then return nil end
  local t = fsvc.tensor(rec.data, { dtype = rec.dtype == "int64" and "int64" or "float32" })
  if #rec.shape == 0 then return t:reshape({}) end
  return t:view(rec.shape)
end

function R.state_dict(params)
  local sd = {}
  for k, v in pairs(params) do sd[k] = R.tensor(v) end
  return sd
end

-- max |a - b| / (1 + |b|) over the elements, with a shape check
function R.close(a, b, tol, what)
  tol = tol or 1e-5
  local sa, sb = a.shape, b.shape
  assert(#sa == #sb, (what or "") .. ": shapes differ [" .. table.concat(sa, ",") .. "] vs [" .. table.concat(sb, ",") .. "]")
  for i = 1, #sa do assert(sa[i] == sb[i], (what or "") .. ": shapes differ [" .. table.concat(sa, ",") .. "] vs [" .. table.concat(sb, ",") .. "]") end
  local worst = 0
  for i = 0, a:numel() - 1 do
    local x, y = a:_get_flat(i), b:_get_flat(i)
    local e = math.abs(x - y) / (1 + math.abs(y))
    if e > worst or e ~= e then worst = e end
  end
  assert(worst <= tol, string.format("%s: max relative error %.3g > %.3g", what or "tensor", worst, tol))
end

return R
