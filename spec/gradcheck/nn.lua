-- Gradient checks of the heavy ops (float64 central differences; run by spec/gradcheck_spec.lua).
local function r(shape) return fsvc.randn(shape, { dtype = "float64", requires_grad = true }) end

local cases = {
  { op = "matmul", fn = function(a, b) return fsvc.matmul(a, b) end, inputs = function() return { r({ 3, 4 }), r({ 4, 2 }) } end },
  { op = "matmul", fn = function(a, b) return a:matmul(b) end, inputs = function() return { r({ 2, 3, 4 }), r({ 4, 2 }) } end },
  { op = "matmul", fn = function(a, b) return a:matmul(b) end, inputs = function() return { r({ 2, 1, 3, 4 }), r({ 3, 4, 2 }) } end },
  { op = "matmul", fn = function(a, b) return a:matmul(b) end, inputs = function() return { r({ 4 }), r({ 2, 4, 3 }) } end },
  { op = "matmul", fn = function(a, b) return a:matmul(b) end, inputs = function() return { r({ 3, 4 }), r({ 4 }) } end },
  { op = "matmul", fn = function(a, b) return a:matmul(b) end, inputs = function() return { r({ 4 }), r({ 4 }) } end },
  { op = "matmul", fn = function(a, b) return a:transpose(0, 1):matmul(b) end, inputs = function() return { r({ 4, 3 }), r({ 4, 2 }) } end },
  { op = "bmm", fn = function(a, b) return fsvc.bmm(a, b) end, inputs = function() return { r({ 2, 3, 4 }), r({ 2, 4, 5 }) } end },
  { op = "linear", fn = function(x, w, b) return fsvc.linear(x, w, b) end, inputs = function() return { r({ 2, 3, 4 }), r({ 5, 4 }), r({ 5 }) } end },
  { op = "linear", fn = function(x, w) return fsvc.linear(x, w) end, inputs = function() return { r({ 4 }), r({ 3, 4 }) } end },
}

-- conv1d: every option, with and without bias, batched and unbatched
for _, o in ipairs({
  { stride = 1, padding = 0, dilation = 1, groups = 1 },
  { stride = 1, padding = 2, dilation = 3, groups = 1 },
  { stride = 2, padding = 1, dilation = 1, groups = 2 },
  { stride = 3, padding = 3, dilation = 2, groups = 1 },
  { stride = 1, padding = 1, dilation = 1, groups = 4 },
}) do
  cases[#cases + 1] = { op = "conv1d", fn = function(x, w, b) return x:conv1d(w, b, o) end,
    inputs = function() return { r({ 2, 4, 9 }), r({ 4, 4 // o.groups, 3 }), r({ 4 }) } end }
end
cases[#cases + 1] = { op = "conv1d", fn = function(x, w) return x:conv1d(w, { padding = 1 }) end,
  inputs = function() return { r({ 3, 7 }), r({ 2, 3, 3 }) } end }
cases[#cases + 1] = { op = "conv1d", fn = function(x, w) return x:conv1d(w) end, -- 1x1
  inputs = function() return { r({ 2, 3, 5 }), r({ 4, 3, 1 }) } end }

for _, o in ipairs({
  { stride = 1, padding = 0, output_padding = 0, dilation = 1, groups = 1 },
  { stride = 2, padding = 1, output_padding = 1, dilation = 1, groups = 1 },
  { stride = 3, padding = 2, output_padding = 2, dilation = 2, groups = 2 },
  { stride = 1, padding = 1, output_padding = 1, dilation = 2, groups = 1 },
}) do
  cases[#cases + 1] = { op = "conv_transpose1d", fn = function(x, w, b) return x:conv_transpose1d(w, b, o) end,
    inputs = function() return { r({ 2, 4, 5 }), r({ 4, 6 // o.groups, 3 }), r({ 6 }) } end }
end

for _, kp in ipairs({ { 2, {} }, { 3, { stride = 2, padding = 1 } }, { 4, { stride = 1, padding = 2 } } }) do
  local k, o = kp[1], kp[2]
  cases[#cases + 1] = { op = "avg_pool1d", fn = function(x) return x:avg_pool1d(k, o) end,
    inputs = function() return { r({ 2, 3, 11 }) } end }
  cases[#cases + 1] = { op = "max_pool1d", fn = function(x) return x:max_pool1d(k, o) end,
    inputs = function() return { r({ 2, 3, 11 }) } end }
end

for _, o in ipairs({
  { scale_factor = 2, mode = "linear" }, { scale_factor = 1.5, mode = "linear" },
  { scale_factor = 0.5, mode = "linear" }, { size = 13, mode = "linear", align_corners = true },
  { size = 4, mode = "linear", align_corners = true }, { size = 9, mode = "linear" },
  { scale_factor = 3, mode = "nearest" }, { size = 4, mode = "nearest" },
}) do
  cases[#cases + 1] = { op = "interpolate", fn = function(x) return x:interpolate(o) end,
    inputs = function() return { r({ 2, 2, 6 }) } end }
end

return cases
