-- A tiny network learns y = sin(3x) on [-1, 1] by gradient descent, printing its loss as it
-- falls. It uses only tensors and autograd (the fsvc.nn layers build on the same calls).
--   fsvc examples/train_tiny.lua [steps]
local steps = tonumber(arg and arg[1]) or 300
fsvc.manual_seed(0)

local x = fsvc.linspace(-1, 1, 256):view(256, 1)
local y = fsvc.sin(x * 3)

local hidden = 32
local w1 = (fsvc.randn(1, hidden) * 1.0):detach():requires_grad_()
local b1 = fsvc.zeros(hidden, { requires_grad = true })
local w2 = (fsvc.randn(hidden, 1) * (1 / math.sqrt(hidden))):detach():requires_grad_()
local b2 = fsvc.zeros(1, { requires_grad = true })
local params = { w1, b1, w2, b2 }

local lr = 0.1
local first, last
for step = 1, steps do
  local h = fsvc.tanh(x:matmul(w1) + b1)
  local pred = h:matmul(w2) + b2
  local loss = ((pred - y) ^ 2):mean()
  for _, p in ipairs(params) do p.grad = nil end
  loss:backward()
  fsvc.no_grad(function()
    for _, p in ipairs(params) do p:add_(p.grad, -lr) end
  end)
  local value = loss:item()
  first = first or value
  last = value
  if step == 1 or step % 50 == 0 then
    print(string.format("step %4d  loss %.6f", step, value))
  end
end
print(string.format("loss fell from %.6f to %.6f", first, last))
if not (last < first * 0.5) then error("the demo's loss did not fall") end
