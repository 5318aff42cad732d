-- Wrong arguments to creation and tensor basics; each must raise.
return {
  { name = "negative size", fn = function() return fsvc.zeros(2, -1) end },
  { name = "shape entry not an integer", fn = function() return fsvc.zeros({ 2, "x" }) end },
  { name = "unknown dtype", fn = function() return fsvc.zeros(2, { dtype = "float7" }) end },
  { name = "ragged list", fn = function() return fsvc.tensor({ { 1 }, { 1, 2 } }) end },
  { name = "string data", fn = function() return fsvc.tensor({ "a" }) end },
  { name = "randint empty range", fn = function() return fsvc.randint(3, 3, { 2 }) end },
  { name = "arange zero step", fn = function() return fsvc.arange(0, 1, 0) end },
  { name = "item of many", fn = function() return fsvc.zeros(2):item() end },
  { name = "size dim out of range", fn = function() return fsvc.zeros(2):size(3) end },
  { name = "use after free", fn = function() local t = fsvc.zeros(2); t:free(); return t:numel() end },
  { name = "requires_grad on int64", fn = function() return fsvc.zeros(2, { dtype = "int64", requires_grad = true }) end },
  { name = "backward without grad", fn = function() return fsvc.zeros(2):backward() end },
  { name = "set bad field", fn = function() local t = fsvc.zeros(2); t.shape = { 3 } end },
  { name = "method on a non-tensor", fn = function() return fsvc.Tensor.numel(42) end },
}
