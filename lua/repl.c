/* The fsvc REPL: lua.c's interactive loop (expressions printed, statements run, "<eof>"
 * errors read continuation lines) on readline's callback interface. The callback interface is
 * used, not readline(), so that Ctrl-C at the prompt can abandon the current line, or the whole
 * unfinished statement, and come back to a fresh prompt without killing the program. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include <lauxlib.h>
#include <lua.h>

#include "host.h"

#define PROMPT "fsvc> "
#define PROMPT_MORE "   >> "
#define HISTORY_LINES 1000

/* ---- printing results ------------------------------------------------------------------------- */

/* One value per result, tab-separated. A string prints as itself, anything with __tostring by
 * it, and a plain table one level deep: {1, 2, name = "x", sub = {...}}, long ones cut short. */
static const char *const format_chunk =
    "local max_items, max_string = 24, 60\n"
    "local function has_tostring(v)\n"
    "  local mt = debug.getmetatable(v)\n"
    "  return type(mt) == 'table' and rawget(mt, '__tostring') ~= nil\n"
    "end\n"
    "local function quote(s)\n"
    "  if #s > max_string then s = s:sub(1, max_string - 3) .. '...' end\n"
    "  return (string.format('%q', s):gsub('\\\\\\n', '\\\\n'))\n"
    "end\n"
    "local function short(v)\n"
    "  local t = type(v)\n"
    "  if t == 'string' then return quote(v) end\n"
    "  if t == 'table' and not has_tostring(v) then return next(v) == nil and '{}' or '{...}' end\n"
    "  return tostring(v)\n"
    "end\n"
    "local rank = { number = 1, string = 2 }\n"
    "local function before(a, b)\n"
    "  local ta, tb = type(a), type(b)\n"
    "  if ta ~= tb then return (rank[ta] or 3) < (rank[tb] or 3) end\n"
    "  if ta == 'number' or ta == 'string' then return a < b end\n"
    "  return tostring(a) < tostring(b)\n"
    "end\n"
    "local function key(k)\n"
    "  if type(k) == 'string' and k:match('^[%a_][%w_]*$') then return k end\n"
    "  return '[' .. short(k) .. ']'\n"
    "end\n"
    "local function repr(v)\n"
    "  if type(v) ~= 'table' or has_tostring(v) then return tostring(v) end\n"
    "  local parts, n = {}, rawlen(v)\n"
    "  for i = 1, math.min(n, max_items) do parts[#parts + 1] = short(rawget(v, i)) end\n"
    "  local keys = {}\n"
    "  for k in next, v do\n"
    "    if not (math.type(k) == 'integer' and k >= 1 and k <= n) then keys[#keys + 1] = k end\n"
    "  end\n"
    "  table.sort(keys, before)\n"
    "  for i = 1, #keys do\n"
    "    if #parts >= max_items then break end\n"
    "    parts[#parts + 1] = key(keys[i]) .. ' = ' .. short(rawget(v, keys[i]))\n"
    "  end\n"
    "  local total = n + #keys\n"
    "  if total > #parts then parts[#parts + 1] = '... (' .. (total - #parts) .. ' more)' end\n"
    "  local mt = debug.getmetatable(v)\n"
    "  local name = type(mt) == 'table' and rawget(mt, '__name')\n"
    "  local prefix = type(name) == 'string' and name .. ' ' or ''\n"
    "  return prefix .. '{' .. table.concat(parts, ', ') .. '}'\n"
    "end\n"
    "return function(...)\n"
    "  local out = {}\n"
    "  for i = 1, select('#', ...) do out[i] = repr((select(i, ...))) end\n"
    "  return table.concat(out, '\\t')\n"
    "end\n";

/* ---- completion ------------------------------------------------------------------------------- */

/* Given the word under the cursor ("fsvc.nn.Con", "s:up", "pri"), returns the candidates as a
 * list of strings: fields of the object the dotted path names (following __index tables), or
 * globals and keywords. Functions get a "(" appended. When __index is a function (a tensor's),
 * the methods are looked up in the table that the metatable's __name names from _G: a userdata
 * with __name "fsvc.Tensor" completes from fsvc.Tensor. */
static const char *const complete_chunk =
    "local keywords = { 'and', 'break', 'do', 'else', 'elseif', 'end', 'false', 'for',\n"
    "  'function', 'goto', 'if', 'in', 'local', 'nil', 'not', 'or', 'repeat', 'return', 'then',\n"
    "  'true', 'until', 'while' }\n"
    "return function(text)\n"
    "  local path, sep, partial = text:match('^([%w_.]-)([.:]?)([%w_]*)$')\n"
    "  local results, seen = {}, {}\n"
    "  if not path or (sep == '' and path ~= '') then return results end\n"
    "  local function add(name, value)\n"
    "    if type(name) == 'string' and not seen[name] and name:match('^[%a_][%w_]*$')\n"
    "        and name:sub(1, #partial) == partial\n"
    "        and (name:sub(1, 1) ~= '_' or partial:sub(1, 1) == '_') then -- _private on request\n"
    "      seen[name] = true\n"
    "      local tail = type(value) == 'function' and '(' or ''\n"
    "      results[#results + 1] = path .. sep .. name .. tail\n"
    "    end\n"
    "  end\n"
    "  local obj = _G\n"
    "  if sep ~= '' then\n"
    "    for name in path:gmatch('[^.]+') do\n"
    "      if type(obj) ~= 'table' and type(obj) ~= 'userdata' then return results end\n"
    "      obj = obj[name]\n"
    "    end\n"
    "  else\n"
    "    for _, k in ipairs(keywords) do add(k, true) end\n"
    "  end\n"
    "  for _ = 1, 10 do\n"
    "    if type(obj) == 'table' then for k, v in next, obj do add(k, v) end end\n"
    "    local mt = debug.getmetatable(obj)\n"
    "    if type(mt) ~= 'table' then break end\n"
    "    local index = rawget(mt, '__index')\n"
    "    if type(index) ~= 'table' then\n"
    "      index = nil\n"
    "      local name = rawget(mt, '__name')\n"
    "      if type(name) == 'string' then\n"
    "        local t = _G\n"
    "        for part in name:gmatch('[^.]+') do t = type(t) == 'table' and rawget(t, part) or nil end\n"
    "        if type(t) == 'table' and t ~= obj then index = t end\n"
    "      end\n"
    "    end\n"
    "    obj = index\n"
    "    if obj == nil then break end\n"
    "  end\n"
    "  return results\n"
    "end\n";

static lua_State *repl_L = NULL;
static int complete_ref = LUA_NOREF;

static char *completion_generator(const char *text, int state) {
  static int index, count;
  lua_State *L = repl_L;
  if (state == 0) {
    index = 0;
    count = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, complete_ref);
    lua_pushstring(L, text);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
      lua_pop(L, 1);
      return NULL;
    }
    count = (int)lua_rawlen(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "fsvc.repl.completions");
  }
  if (index >= count) return NULL;
  lua_getfield(L, LUA_REGISTRYINDEX, "fsvc.repl.completions");
  lua_rawgeti(L, -1, ++index);
  const char *s = lua_tostring(L, -1);
  char *match = s ? strdup(s) : NULL;
  lua_pop(L, 2);
  return match;
}

static char **completion(const char *text, int start, int end) {
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1; /* no fallback to file names */
  rl_completion_append_character = '\0';
  return rl_completion_matches(text, completion_generator);
}

/* ---- history ---------------------------------------------------------------------------------- */

static char history_path[PATH_MAX];

/* ~/.fsvc_history, with timestamps so that multi-line statements come back as one entry. A
 * missing or unwritable HOME only means no history file. */
static void history_open(void) {
  using_history();
  history_comment_char = '#'; /* timestamps are only written with a comment char */
  history_write_timestamps = 1;
  history_multiline_entries = 1;
  const char *home = getenv("HOME");
  if (home == NULL || home[0] == '\0') return;
  snprintf(history_path, sizeof history_path, "%s/.fsvc_history", home);
  if (read_history(history_path) != 0) {
    if (errno != ENOENT || write_history(history_path) != 0) { /* create it for append_history */
      history_path[0] = '\0';
      return;
    }
  }
  history_truncate_file(history_path, HISTORY_LINES);
  stifle_history(HISTORY_LINES);
}

static void history_save(const char *entry) {
  const char *p = entry;
  while (*p == ' ' || *p == '\t' || *p == '\n') p++;
  if (*p == '\0') return;
  HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
  if (last != NULL && strcmp(last->line, entry) == 0) return; /* no repeated entries */
  add_history(entry);
  if (history_path[0] != '\0') append_history(1, history_path);
}

/* ---- reading lines ---------------------------------------------------------------------------- */

enum { LINE_OK, LINE_EOF, LINE_INTERRUPTED };

static char *callback_line;
static int callback_done;
static volatile sig_atomic_t got_sigint, got_sigwinch;

static void on_line(char *line) {
  callback_line = line;
  callback_done = 1;
  rl_callback_handler_remove();
}

static void on_signal(int sig) {
  if (sig == SIGINT)
    got_sigint = 1;
  else
    got_sigwinch = 1;
}

/* One line from the terminal with readline. SIGINT and SIGWINCH are blocked except while
 * waiting in pselect, so a Ctrl-C is never lost between the check and the wait. */
static int read_line_tty(const char *prompt, char **out) {
  struct sigaction sa, old_int, old_winch;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGWINCH, &sa, &old_winch);
  sigset_t block, wait_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGWINCH);
  sigprocmask(SIG_BLOCK, &block, &wait_mask);
  sigdelset(&wait_mask, SIGINT);
  sigdelset(&wait_mask, SIGWINCH);

  got_sigint = got_sigwinch = 0;
  callback_done = 0;
  callback_line = NULL;
  int result = LINE_OK;
  int fd = fileno(rl_instream ? rl_instream : stdin);
  rl_callback_handler_install(prompt, on_line);
  while (!callback_done) {
    if (got_sigint) {
      result = LINE_INTERRUPTED;
      break;
    }
    if (got_sigwinch) {
      got_sigwinch = 0;
      rl_resize_terminal();
    }
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(fd, &fds);
    int r = pselect(fd + 1, &fds, NULL, NULL, NULL, &wait_mask);
    if (r < 0) {
      if (errno == EINTR) continue;
      result = LINE_EOF;
      break;
    }
    rl_callback_read_char();
  }
  if (!callback_done) { /* interrupted or a read error: leave the line and the terminal clean */
    FILE *out = rl_outstream ? rl_outstream : stdout;
    rl_point = rl_end;
    rl_redisplay();
    fputs(result == LINE_INTERRUPTED ? "^C\n" : "\n", out);
    fflush(out);
    rl_replace_line("", 0);
    rl_free_line_state();
    rl_callback_sigcleanup();
    rl_callback_handler_remove();
  } else if (callback_line == NULL) {
    result = LINE_EOF;
  }
  sigprocmask(SIG_UNBLOCK, &block, NULL);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGWINCH, &old_winch, NULL);
  *out = callback_line;
  return result;
}

/* One line from a pipe or file: no prompt, no editing. */
static int read_line_plain(char **out) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t n = getline(&line, &cap, stdin);
  if (n < 0) {
    free(line);
    *out = NULL;
    return LINE_EOF;
  }
  if (n > 0 && line[n - 1] == '\n') line[n - 1] = '\0';
  *out = line;
  return LINE_OK;
}

static int read_line(int tty, const char *prompt, char **out) {
  return tty ? read_line_tty(prompt, out) : read_line_plain(out);
}

/* ---- the loop --------------------------------------------------------------------------------- */

/* An error that only says the chunk ended too soon: read another line. */
static int incomplete(lua_State *L, int status) {
  if (status != LUA_ERRSYNTAX) return 0;
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  static const char mark[] = "<eof>";
  return msg != NULL && len >= sizeof mark - 1 && strcmp(msg + len - (sizeof mark - 1), mark) == 0;
}

/* Compiles "return <chunk>" (so that an expression prints its value), else the chunk itself.
 * When the expression is merely unfinished ("{1,") and the statement is wrong, the unfinished
 * expression wins, so that a table or call can span lines as a statement can. */
static int compile(lua_State *L, const char *chunk) {
  lua_pushfstring(L, "return %s", chunk);
  size_t len;
  const char *ret = lua_tolstring(L, -1, &len);
  int status = luaL_loadbuffer(L, ret, len, "=stdin");
  lua_remove(L, -2);
  if (status == LUA_OK) return status;
  int expression_unfinished = incomplete(L, status);
  int statement = luaL_loadbuffer(L, chunk, strlen(chunk), "=stdin");
  if (statement != LUA_OK && expression_unfinished && !incomplete(L, statement)) {
    lua_pop(L, 1);
    return status; /* the "<eof>" message of the expression */
  }
  lua_remove(L, -2);
  return statement;
}

static char *append_line(char *chunk, const char *line) {
  size_t a = strlen(chunk), b = strlen(line);
  char *grown = realloc(chunk, a + b + 2);
  if (grown == NULL) return chunk;
  grown[a] = '\n';
  memcpy(grown + a + 1, line, b + 1);
  return grown;
}

static void print_results(lua_State *L, int format_ref, int base) {
  int n = lua_gettop(L) - base;
  if (n <= 0) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, format_ref);
  lua_insert(L, base + 1);
  if (fsvc_host_docall(L, n, 1) == LUA_OK) {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (s != NULL) {
      fwrite(s, 1, len, stdout);
      fputc('\n', stdout);
      fflush(stdout);
    }
  } else {
    fsvc_host_message(lua_pushfstring(L, "error printing the result (%s)", lua_tostring(L, -1)));
  }
  lua_settop(L, base);
}

static int load_helper(lua_State *L, const char *code, const char *name) {
  if (luaL_loadbuffer(L, code, strlen(code), name) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    fsvc_host_message(lua_tostring(L, -1));
    lua_pop(L, 1);
    return LUA_NOREF;
  }
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

void fsvc_repl(lua_State *L, int show_banner) {
  int tty = isatty(STDIN_FILENO);
  int base = lua_gettop(L);
  int format_ref = load_helper(L, format_chunk, "=repl.format");
  if (tty) {
    repl_L = L;
    complete_ref = load_helper(L, complete_chunk, "=repl.complete");
    rl_readline_name = "fsvc";
    rl_catch_signals = 0; /* this loop handles SIGINT and SIGWINCH itself */
    rl_catch_sigwinch = 0;
    rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(+-*/%^~#,[]";
    rl_attempted_completion_function = completion;
    history_open();
  }
  if (show_banner) {
    printf("%s %s \xe2\x80\x94 %s \xe2\x80\x94 type help() or fsvc.help()\n", FSVC_PROGNAME,
           FSVC_VERSION, LUA_VERSION);
    fflush(stdout);
  }
  for (;;) {
    lua_settop(L, base);
    char *chunk;
    int got = read_line(tty, PROMPT, &chunk);
    if (got == LINE_EOF) break;
    if (got == LINE_INTERRUPTED) continue;
    int status = compile(L, chunk);
    int abandoned = 0;
    while (incomplete(L, status)) {
      char *more;
      got = read_line(tty, PROMPT_MORE, &more);
      if (got != LINE_OK) { /* Ctrl-C drops the statement; end of input reports the error */
        abandoned = got == LINE_INTERRUPTED;
        break;
      }
      lua_pop(L, 1);
      chunk = append_line(chunk, more);
      free(more);
      status = compile(L, chunk);
    }
    if (tty && !abandoned) history_save(chunk);
    free(chunk);
    if (abandoned) continue;
    if (status == LUA_OK) status = fsvc_host_docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK)
      print_results(L, format_ref, base);
    else
      fsvc_host_report(L, status);
    if (got == LINE_EOF) break;
  }
  lua_settop(L, base);
  if (tty) {
    fputc('\n', stdout);
    fflush(stdout);
  }
  luaL_unref(L, LUA_REGISTRYINDEX, format_ref);
  if (complete_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, complete_ref);
  complete_ref = LUA_NOREF;
}
