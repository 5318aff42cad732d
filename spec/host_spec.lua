-- The host binary `fsvc`: the lua(1) command line, the preloaded library, the paths, the REPL
-- fed from a pipe, and busted running under it. Runs the built binary in child processes.
-- FSVC_BIN names the binary (default build/fsvc, relative to the current directory).

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function capture(cmd)
  local p = assert(io.popen(cmd))
  local s = p:read("a")
  p:close()
  return (s:gsub("\n$", ""))
end

local BIN = os.getenv("FSVC_BIN") or "build/fsvc"
if BIN:sub(1, 1) ~= "/" then BIN = capture("pwd") .. "/" .. BIN end

-- Runs `fsvc <args>` under sh with the given stdin text (none: /dev/null) and environment
-- prefix; returns stdout, stderr and the exit code.
local function fsvc(args, opts)
  opts = opts or {}
  local out, err = os.tmpname(), os.tmpname()
  local input = "/dev/null"
  if opts.stdin then
    input = os.tmpname()
    write_file(input, opts.stdin)
  end
  local cmd = string.format("%s%s %s %s <%s >%s 2>%s", opts.cd and ("cd " .. shell_quote(opts.cd) .. " && ") or "",
    opts.env or "", shell_quote(opts.bin or BIN), args, input, out, err)
  local _, _, code = os.execute(cmd)
  local stdout, stderr = read_all(out), read_all(err)
  os.remove(out)
  os.remove(err)
  if opts.stdin then os.remove(input) end
  return stdout, stderr, code
end

local tmp -- a fresh directory per test file

setup(function()
  tmp = capture("mktemp -d")
end)

teardown(function()
  if tmp and tmp:match("^/tmp/") then os.execute("rm -rf " .. shell_quote(tmp)) end
end)

describe("fsvc command line", function()
  it("runs a script with arguments in arg and ...", function()
    local script = tmp .. "/args.lua"
    write_file(script, [[
local a, b = ...
print(#arg, arg[0], arg[1], arg[2], a, b, select('#', ...))
print(arg[-1] == nil, type(arg[-1]))
]])
    local out, err, code = fsvc(shell_quote(script) .. " one 'two words'")
    assert.are.equal(0, code, err)
    local first, second = out:match("^(.-)\n(.-)\n$")
    assert.are.equal(table.concat({ "2", script, "one", "two words", "one", "two words", "2" }, "\t"), first)
    assert.are.equal("false\tstring", second)
  end)

  it("puts the interpreter and its options at negative indices of arg", function()
    local script = tmp .. "/neg.lua"
    write_file(script, "print(arg[-1], arg[-2], arg[-3] == " .. string.format("%q", BIN) .. ", arg[-4])")
    local out, err, code = fsvc("-e 'x=1' " .. shell_quote(script))
    assert.are.equal(0, code, err)
    assert.are.equal("x=1\t-e\ttrue\tnil\n", out)
  end)

  it("executes -e statements in order", function()
    local out, err, code = fsvc([[-e 'x = 20' -e 'print(x + 1)']])
    assert.are.equal(0, code, err)
    assert.are.equal("21\n", out)
  end)

  it("loads -l mod into a global, and -l g=mod into g", function()
    write_file(tmp .. "/mymod.lua", "return { answer = 42 }")
    local env = "LUA_PATH=" .. shell_quote(tmp .. "/?.lua;;") .. " "
    local out, err, code = fsvc([[-l mymod -l m=mymod -e 'print(mymod.answer, m == mymod)']], { env = env })
    assert.are.equal(0, code, err)
    assert.are.equal("42\ttrue\n", out)
  end)

  it("prints its version with -v and --version", function()
    for _, flag in ipairs({ "-v", "--version" }) do
      local out, _, code = fsvc(flag)
      assert.are.equal(0, code)
      assert.matches("^fsvc %d+%.%d+%.%d+ %(Lua 5%.4%)\n$", out)
    end
  end)

  it("prints usage with --help and exits 0", function()
    local out, _, code = fsvc("--help")
    assert.are.equal(0, code)
    assert.matches("usage: fsvc %[options%] %[script %[args%]%]", out)
    assert.matches("%-e stat", out)
  end)

  it("rejects an unknown option with usage on stderr and exit 1", function()
    local out, err, code = fsvc("-z")
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("^fsvc: unrecognized option '%-z'", err)
    _, err, code = fsvc("-e")
    assert.are.equal(1, code)
    assert.matches("^fsvc: '%-e' needs argument", err)
  end)

  it("reads the script from stdin with -", function()
    local out, err, code = fsvc("- a b", { stdin = "print('stdin', arg[0], ...)" })
    assert.are.equal(0, code, err)
    assert.are.equal("stdin\t-\ta\tb\n", out)
  end)

  it("runs stdin as a script when it is not a terminal and nothing else is given", function()
    local out, err, code = fsvc("", { stdin = "local x = 2\nprint(x * 21)\n" })
    assert.are.equal(0, code, err)
    assert.are.equal("42\n", out)
  end)

  it("stops handling options at --", function()
    write_file(tmp .. "/-e", "print('a file named -e', ...)")
    local out, err, code = fsvc("-- -e x", { cd = tmp })
    assert.are.equal(0, code, err)
    assert.are.equal("a file named -e\tx\n", out)
  end)

  it("skips a #! first line", function()
    local script = tmp .. "/shebang.lua"
    write_file(script, "#!/usr/bin/env fsvc\nprint('after shebang')\n")
    local out, err, code = fsvc(shell_quote(script))
    assert.are.equal(0, code, err)
    assert.are.equal("after shebang\n", out)
  end)

  it("reports a script error as 'fsvc: message' with a traceback and exits 1", function()
    local script = tmp .. "/boom.lua"
    write_file(script, "local function f() error('boom') end\nf()\n")
    local out, err, code = fsvc(shell_quote(script))
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("fsvc: " .. script .. ":1: boom", err:match("^[^\n]*"))
    assert.matches("stack traceback:", err, 1, true)
  end)

  it("reports a syntax error and a missing script", function()
    local _, err, code = fsvc("-e 'x = = 1'")
    assert.are.equal(1, code)
    assert.matches("^fsvc: %(command line%):1:", err)
    _, err, code = fsvc(shell_quote(tmp .. "/nope.lua"))
    assert.are.equal(1, code)
    assert.matches("^fsvc: cannot open", err)
  end)

  it("describes non-string error objects", function()
    local _, err, code = fsvc([[-e 'error({})']])
    assert.are.equal(1, code)
    assert.matches("^fsvc: %(error object is a table value%)", err)
    _, err, code = fsvc([[-e 'error(setmetatable({}, {__tostring = function() return "custom" end}))']])
    assert.are.equal(1, code)
    assert.are.equal("fsvc: custom\n", err)
  end)

  it("honours os.exit", function()
    local out, _, code = fsvc([[-e 'io.write("x") os.exit(3)']])
    assert.are.equal(3, code)
    assert.are.equal("x", out)
    _, _, code = fsvc([[-e 'os.exit(false)']])
    assert.are.equal(1, code)
    _, _, code = fsvc([[-e 'os.exit(true, true)']])
    assert.are.equal(0, code)
  end)

  it("runs LUA_INIT first, and ignores it with -E", function()
    local out, err, code = fsvc([[-e 'print(init_ran)']], { env = "LUA_INIT='init_ran = 1' " })
    assert.are.equal(0, code, err)
    assert.are.equal("1\n", out)
    out = fsvc([[-E -e 'print(init_ran)']], { env = "LUA_INIT='init_ran = 1' " })
    assert.are.equal("nil\n", out)
  end)

  it("turns SIGINT during a computation into the error 'interrupted!'", function()
    local err_file = tmp .. "/sigint.err"
    local cmd = string.format(
      "%s -e 'while true do end' 2>%s & pid=$!; sleep 0.5; kill -INT $pid; wait $pid; echo $?",
      shell_quote(BIN), shell_quote(err_file))
    local code = capture(cmd)
    assert.are.equal("1", code)
    assert.matches("^fsvc: .*interrupted!", read_all(err_file))
  end)
end)

describe("fsvc environment", function()
  it("preloads the library as the global fsvc and publishes the host globals", function()
    local out, err, code = fsvc([[-e 'print(type(fsvc), type(fsvc_host_home), fsvc_host_version)']])
    assert.are.equal(0, code, err)
    local version = fsvc("-v"):match("^fsvc (%S+)")
    assert.are.equal("table\tstring\t" .. version .. "\n", out)
  end)

  it("registers the core as fsvc_core", function()
    local out, err, code = fsvc([[-e 'print(type(require "fsvc_core"), package.preload.fsvc_core ~= nil)']])
    assert.are.equal(0, code, err)
    assert.are.equal("table\ttrue\n", out)
  end)

  it("keeps the system Lua paths after the fsvc roots", function()
    local out, err, code = fsvc([[-e 'print(fsvc_host_home) print(package.path)']])
    assert.are.equal(0, code, err)
    local home, path = out:match("^(.-)\n(.-)\n$")
    assert.are.equal(home .. "/", path:sub(1, #home + 1))
    assert.truthy(path:find("/usr/share/lua/5.4/?.lua", 1, true))
    local _, _, found = fsvc([[-e 'require "busted.runner"; require "luassert"']])
    assert.are.equal(0, found)
  end)

  -- A small tree in either layout: the library requires the core, like lua/fsvc/init.lua does.
  local function make_tree(root, libdir)
    os.execute("mkdir -p " .. shell_quote(libdir .. "/fsvc/nn") .. " " .. shell_quote(root .. "/modules")
      .. " " .. shell_quote(root .. "/recipes"))
    write_file(libdir .. "/fsvc/init.lua",
      "local core = require 'fsvc_core'\nreturn { core = core, home = fsvc_host_home, layer = require('fsvc.nn').layer }\n")
    write_file(libdir .. "/fsvc/nn/init.lua", "return { layer = 'nn' }\n")
    write_file(root .. "/modules/decoder.lua", "return 'decoder'\n")
    write_file(root .. "/recipes/x.lua", "return 'recipe'\n")
  end
  local probe = [[-e 'print(type(fsvc.core), fsvc.home == fsvc_host_home, fsvc.layer, require "modules.decoder", (require "recipes.x"))' -e 'print(fsvc_host_home)']]

  it("finds a source tree through FSVC_HOME (lua/fsvc, modules, recipes)", function()
    local root = tmp .. "/src"
    make_tree(root, root .. "/lua")
    local out, err, code = fsvc(probe, { env = "FSVC_HOME=" .. shell_quote(root) .. " " })
    assert.are.equal(0, code, err)
    assert.are.equal("table\ttrue\tnn\tdecoder\trecipe\n" .. root .. "\n", out)
  end)

  it("finds an installed prefix next to the executable (<prefix>/bin, <prefix>/share/fsvc)", function()
    local prefix = tmp .. "/prefix"
    local share = prefix .. "/share/fsvc"
    make_tree(share, share)
    os.execute("mkdir -p " .. shell_quote(prefix .. "/bin") .. " && cp " .. shell_quote(BIN) .. " " .. shell_quote(prefix .. "/bin/fsvc"))
    local out, err, code = fsvc(probe, { bin = prefix .. "/bin/fsvc", cd = "/" })
    assert.are.equal(0, code, err)
    assert.are.equal("table\ttrue\tnn\tdecoder\trecipe\n" .. share .. "\n", out)
  end)

  it("falls back to the bare core when there is no Lua library", function()
    local empty = tmp .. "/empty"
    os.execute("mkdir -p " .. shell_quote(empty))
    local out, err, code = fsvc([[-e 'print(fsvc == require "fsvc_core")']], { env = "FSVC_HOME=" .. shell_quote(empty) .. " " })
    assert.are.equal(0, code, err)
    assert.are.equal("true\n", out)
    assert.are.equal("", err)
  end)

  it("warns, and still runs, when the library fails to load", function()
    local broken = tmp .. "/broken"
    os.execute("mkdir -p " .. shell_quote(broken .. "/fsvc"))
    write_file(broken .. "/fsvc/init.lua", "error('library is broken')\n")
    local out, err, code = fsvc([[-e 'print(type(fsvc))']], { env = "FSVC_HOME=" .. shell_quote(broken) .. " " })
    assert.are.equal(0, code)
    assert.are.equal("table\n", out)
    assert.matches("warning", err)
    assert.matches("library is broken", err)
  end)

  it("has a help() that lists what fsvc holds", function()
    local out, err, code = fsvc([[-e 'fsvc.example_key = 1; help()']])
    assert.are.equal(0, code, err)
    assert.matches("example_key", out)
    assert.matches("docs/", out)
  end)
end)

describe("fsvc REPL on a pipe (-i)", function()
  it("prints expressions, runs statements and continues after errors", function()
    local input = table.concat({
      "x = 1 + 1",
      "x",
      "return x, 'two', nil",
      "for i = 1, 2 do",
      "  print('loop', i)",
      "end",
      "error('oops')",
      "{1,",
      " 2}",
      "x * 10",
    }, "\n") .. "\n"
    local out, err, code = fsvc("-i", { stdin = input })
    assert.are.equal(0, code)
    assert.are.equal("2\n2\ttwo\tnil\nloop\t1\nloop\t2\n{1, 2}\n20\n", out)
    assert.matches("^fsvc: stdin:1: oops\nstack traceback:", err)
  end)

  it("shows tables one level deep and uses __tostring", function()
    local input = [[
{1, "a", k = true, sub = {1}, [2.5] = "x"}
setmetatable({}, {__tostring = function() return "T!" end})
{}
]]
    local out, err, code = fsvc("-i", { stdin = input })
    assert.are.equal(0, code, err)
    assert.are.equal('{1, "a", [2.5] = "x", k = true, sub = {...}}\nT!\n{}\n', out)
  end)

  it("runs the script before the REPL with -i script", function()
    local script = tmp .. "/pre.lua"
    write_file(script, "y = 7\n")
    local out, err, code = fsvc("-i " .. shell_quote(script), { stdin = "y * 2\n" })
    assert.are.equal(0, code, err)
    assert.are.equal("14\n", out)
  end)

  it("reports a statement left unfinished at the end of input", function()
    local _, err = fsvc("-i", { stdin = "for i = 1, 2 do\n" })
    assert.matches("'end' expected", err)
  end)
end)

describe("fsvc REPL on a terminal", function()
  -- script(1) gives the REPL a pseudo-terminal and forwards the shell's pipe to it, so this runs
  -- the readline loop: prompts, continuation lines, Ctrl-C (the byte 0x03) and the history file.
  local has_script = io.open("/usr/bin/script", "r")
  if has_script then has_script:close() end

  local function session(steps)
    local parts = {}
    for _, step in ipairs(steps) do
      if type(step) == "number" then
        parts[#parts + 1] = "sleep " .. step
      else
        parts[#parts + 1] = "printf '%s' " .. shell_quote(step)
      end
    end
    local home = tmp .. "/home"
    os.execute("mkdir -p " .. shell_quote(home))
    local cmd = string.format("(%s; sleep 0.3) | HOME=%s timeout 20 script -qfec %s /dev/null 2>&1",
      table.concat(parts, "; "), shell_quote(home), shell_quote(BIN))
    local out = capture(cmd)
    -- drop terminal control sequences and carriage returns
    out = out:gsub("\27%[[%d;?]*[%a]", ""):gsub("\r", "")
    return out, home
  end

  it("prompts, continues statements, prints results, completes and keeps history", function()
    if not has_script then pending("no script(1)") return end
    local out, home = session({ 0.3, "x = 1 + 1\n", "x * 21\n", "for i = 1, 2 do\n", "print('loop' .. i)\n",
      "end\n", "error('oops')\n", "tbl = {alpha = 5}\n", "tbl.al\t * 3\n", 0.3 })
    assert.matches("fsvc %S+ .* Lua 5%.4 .* type help%(%) or fsvc%.help%(%)", out)
    assert.matches("fsvc> x %* 21\n42\n", out)
    assert.matches("   >> end\nloop1\nloop2\n", out)
    assert.matches("fsvc: stdin:1: oops", out)
    assert.matches("fsvc> tbl%.alpha %* 3\n15\n", out) -- Tab completed the field
    local history = read_all(home .. "/.fsvc_history")
    assert.truthy(history:find("for i = 1, 2 do\nprint('loop' .. i)\nend\n", 1, true))
    assert.truthy(history:find("x * 21\n", 1, true))
  end)

  it("interrupts a running computation with Ctrl-C and goes on", function()
    if not has_script then pending("no script(1)") return end
    local out = session({ 0.3, "while true do end\n", 0.5, "\3", 0.3, "print('after')\n", 0.3 })
    assert.matches("interrupted!", out)
    assert.matches("\nafter\n", out)
  end)

  it("drops an unfinished statement on Ctrl-C at the prompt", function()
    if not has_script then pending("no script(1)") return end
    local out = session({ 0.3, "for i = 1, 3 do\n", 0.2, "\3", 0.2, "print('fresh')\n", 0.3 })
    assert.matches("\nfresh\n", out)
    assert.falsy(out:find("'end' expected", 1, true))
  end)
end)

describe("busted under fsvc", function()
  local busted = "/usr/bin/busted"
  local has_busted = io.open(busted, "r")
  if has_busted then has_busted:close() end

  local function nested_spec(dir, passing)
    os.execute("mkdir -p " .. shell_quote(dir))
    write_file(dir .. "/tiny_spec.lua", [[
describe("tiny", function()
  it("runs inside fsvc", function()
    assert.is_table(fsvc)
    assert.is_string(fsvc_host_home)
  end)
  it("checks arithmetic", function()
    assert.are.equal(]] .. (passing and "2" or "3") .. [[, 1 + 1)
  end)
end)
]])
  end

  it("runs busted as a script: fsvc /usr/bin/busted spec", function()
    if not has_busted then pending("no /usr/bin/busted") return end
    local dir = tmp .. "/nested_ok"
    nested_spec(dir, true)
    local out, err, code = fsvc(busted .. " -o TAP tiny_spec.lua", { cd = dir })
    assert.are.equal(0, code, out .. err)
    assert.matches("ok 1 %- tiny runs inside fsvc", out)
    assert.matches("ok 2 %- tiny checks arithmetic", out)
  end)

  it("is chosen by busted --lua=fsvc, and failures give a non-zero exit", function()
    if not has_busted then pending("no /usr/bin/busted") return end
    local dir = tmp .. "/nested_fail"
    nested_spec(dir, false)
    local cmd = string.format("cd %s && %s --lua=%s -o TAP tiny_spec.lua 2>&1; echo \"exit=$?\"",
      shell_quote(dir), busted, shell_quote(BIN))
    local out = capture(cmd)
    assert.matches("ok 1 %- tiny runs inside fsvc", out) -- so it ran under fsvc, not lua
    assert.matches("not ok 2 %- tiny checks arithmetic", out)
    assert.matches("exit=1$", out)
  end)
end)
