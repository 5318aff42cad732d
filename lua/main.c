/* fsvc: the host executable. It is the standard `lua` interpreter (same options, same `arg`
 * table, same error reporting) with three additions made before any user code runs:
 *   - the C core is registered as the module "fsvc_core" (package.preload);
 *   - package.path starts with the fsvc Lua roots (lua/fsvc, modules, recipes), found from
 *     FSVC_HOME, an installed prefix next to the executable, or the source tree it was built from;
 *   - the library is loaded as the global `fsvc` (= require "fsvc").
 * The option handling follows lua.c of Lua 5.4 so that tools written for `lua` (busted's --lua,
 * #! scripts) run unchanged. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "host.h"

#ifndef FSVC_VERSION
#define FSVC_VERSION "0.0.0"
#endif
#ifndef FSVC_SOURCE_DIR
#define FSVC_SOURCE_DIR "."
#endif
#ifndef FSVC_INSTALL_LUADIR
#define FSVC_INSTALL_LUADIR "/usr/local/share/fsvc"
#endif

/* Until the bindings define the real one, the core is an empty table. */
__attribute__((weak)) int luaopen_fsvc_core(lua_State *L) {
  lua_newtable(L);
  return 1;
}

/* ---- messages and protected calls ------------------------------------------------------------ */

void fsvc_host_message(const char *msg) {
  fflush(stdout); /* what the chunk printed comes before its error when both go to one place */
  fprintf(stderr, "%s: %s\n", FSVC_PROGNAME, msg);
  fflush(stderr);
}

int fsvc_host_report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fsvc_host_message(msg ? msg : "(error object is not a string)");
    lua_pop(L, 1);
  }
  return status;
}

/* Turns any error object into a string and appends a traceback (as lua.c's msghandler). */
static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1; /* an object that knows how to print itself: no traceback */
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Ctrl-C: the handler only sets a hook; the hook raises the error at the next safe point in
 * the interpreter (a long C kernel finishes first). A second Ctrl-C before that kills. */
static lua_State *globalL = NULL;

static void set_signal(int sig, void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

static void lstop(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

static void laction(int sig) {
  int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  set_signal(sig, SIG_DFL);
  lua_sethook(globalL, lstop, flag, 1);
}

int fsvc_host_docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  globalL = L;
  set_signal(SIGINT, laction);
  int status = lua_pcall(L, narg, nres, base);
  set_signal(SIGINT, SIG_DFL);
  /* A Ctrl-C that came as the call returned must not interrupt the next one; other hooks
   * (a debugger's, a coverage tool's) stay. */
  if (lua_gethook(L) == lstop) lua_sethook(L, NULL, 0, 0);
  lua_remove(L, base);
  return status;
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = fsvc_host_docall(L, 0, 0);
  return fsvc_host_report(L, status);
}

static int dofile(lua_State *L, const char *name) {
  return dochunk(L, luaL_loadfile(L, name));
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* ---- usage and version ------------------------------------------------------------------------ */

static void print_version(void) {
  printf("%s %s (%s)\n", FSVC_PROGNAME, FSVC_VERSION, LUA_VERSION);
  fflush(stdout);
}

static void print_usage(FILE *out) {
  fprintf(out,
          "usage: %s [options] [script [args]]\n"
          "Available options are:\n"
          "  -e stat   execute string 'stat'\n"
          "  -i        enter interactive mode after executing 'script'\n"
          "  -l mod    require library 'mod' into global 'mod'\n"
          "  -l g=mod  require library 'mod' into global 'g'\n"
          "  -v        show version information\n"
          "  -E        ignore environment variables (LUA_INIT, LUA_PATH, LUA_CPATH)\n"
          "  -W        turn warnings on\n"
          "  --version show version information\n"
          "  --help    show this help\n"
          "  --        stop handling options\n"
          "  -         stop handling options and execute stdin\n"
          "With no script and no -e/-v, starts the REPL on a terminal, or runs stdin as a script.\n"
          "The library is preloaded as the global 'fsvc'; FSVC_HOME overrides where its Lua files\n"
          "are found. See docs/host.md.\n",
          FSVC_PROGNAME);
  fflush(out);
}

/* ---- where the Lua files live ----------------------------------------------------------------- */

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Pushes the resolved root: FSVC_HOME; else <exe dir>/../share/fsvc when installed; else the
 * source tree the binary was built from (or the configured install dir if that tree is gone). */
static void push_home(lua_State *L) {
  const char *env = getenv("FSVC_HOME");
  if (env != NULL && env[0] != '\0') {
    lua_pushstring(L, env);
    return;
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash != NULL) {
      *slash = '\0';
      char candidate[PATH_MAX + 32], resolved[PATH_MAX];
      snprintf(candidate, sizeof candidate, "%s/../share/fsvc", exe);
      if (is_dir(candidate) && realpath(candidate, resolved) != NULL) {
        lua_pushstring(L, resolved);
        return;
      }
    }
  }
  if (!is_dir(FSVC_SOURCE_DIR "/lua") && is_dir(FSVC_INSTALL_LUADIR))
    lua_pushstring(L, FSVC_INSTALL_LUADIR);
  else
    lua_pushstring(L, FSVC_SOURCE_DIR);
}

/* package.path = <fsvc roots> .. ";" .. <what package already had from LUA_PATH or defaults> */
static void setup_paths(lua_State *L, const char *home) {
  char lua_dir[PATH_MAX + 8];
  snprintf(lua_dir, sizeof lua_dir, "%s/lua", home);
  luaL_Buffer b;
  lua_getglobal(L, "package");
  luaL_buffinit(L, &b);
  if (is_dir(lua_dir)) /* a source tree: the library is under lua/ */
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;", home, home), luaL_addvalue(&b);
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", home, home);
  luaL_addvalue(&b);
  lua_getfield(L, -2, "path");
  luaL_addvalue(&b);
  luaL_pushresult(&b);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
}

/* Orientation for the REPL; help(x) is passed on to fsvc.help when the library has one. */
static const char *const help_chunk =
    "local home = ...\n"
    "return function(...)\n"
    "  local lib = rawget(_G, 'fsvc')\n"
    "  if select('#', ...) > 0 and type(lib) == 'table' and type(lib.help) == 'function' then\n"
    "    return lib.help(...)\n"
    "  end\n"
    "  local out = {}\n"
    "  out[#out + 1] = 'fsvc ' .. fsvc_host_version .. ': voice conversion in Lua on a C core.'\n"
    "  if type(lib) == 'table' then\n"
    "    local keys = {}\n"
    "    for k, v in pairs(lib) do\n"
    "      if not tostring(k):match('^_') then keys[#keys + 1] = tostring(k) .. (type(v) == 'function' and '()' or '') end\n"
    "    end\n"
    "    table.sort(keys)\n"
    "    out[#out + 1] = 'The global `fsvc` holds: ' .. (#keys > 0 and table.concat(keys, ', ') or '(nothing yet)')\n"
    "  end\n"
    "  out[#out + 1] = 'Networks: require \"modules.<name>\"   Workflows: fsvc ' .. home .. '/recipes/<name>.lua --help'\n"
    "  out[#out + 1] = 'Lua files are read from ' .. home\n"
    "  out[#out + 1] = 'Docs: docs/ in the source tree (docs/host.md: this REPL and the command line).'\n"
    "  if type(lib) == 'table' and type(lib.help) == 'function' then\n"
    "    out[#out + 1] = 'fsvc.help(x) or help(x) describes x.'\n"
    "  end\n"
    "  out[#out + 1] = 'Keys: Ctrl-C interrupts a computation or clears the line, Ctrl-D leaves, Tab completes.'\n"
    "  print(table.concat(out, '\\n'))\n"
    "end\n";

/* Sets fsvc_host_home, fsvc_host_version, help, the preload of fsvc_core and the paths, then
 * loads the library into the global `fsvc`. A missing library falls back to the bare core; a
 * broken one is reported and also falls back, so that the REPL still starts. */
static void setup_fsvc(lua_State *L) {
  push_home(L);
  const char *home = lua_tostring(L, -1);
  lua_pushvalue(L, -1);
  lua_setglobal(L, "fsvc_host_home");
  lua_pushliteral(L, FSVC_VERSION);
  lua_setglobal(L, "fsvc_host_version");
  setup_paths(L, home);

  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_fsvc_core);
  lua_setfield(L, -2, "fsvc_core");
  lua_pop(L, 1);

  if (luaL_loadbuffer(L, help_chunk, strlen(help_chunk), "=help") == LUA_OK) {
    lua_pushvalue(L, -2);
    lua_call(L, 1, 1);
    lua_setglobal(L, "help");
  } else {
    lua_pop(L, 1);
  }
  lua_pop(L, 1); /* home */

  /* Is there a Lua library at all? Searching first tells "absent" from "broken". */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_pushliteral(L, "fsvc");
  lua_getfield(L, -3, "path");
  lua_call(L, 2, 1);
  int have_library = !lua_isnil(L, -1);
  lua_pop(L, 2);

  lua_getglobal(L, "require");
  lua_pushstring(L, have_library ? "fsvc" : "fsvc_core");
  int status = fsvc_host_docall(L, 1, 1);
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "%s: warning: the library 'fsvc' did not load; `fsvc` is the bare core.\n%s\n",
            FSVC_PROGNAME, msg ? msg : "");
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "fsvc_core");
    if (fsvc_host_docall(L, 1, 1) != LUA_OK) {
      lua_pop(L, 1);
      lua_newtable(L);
    }
  }
  lua_setglobal(L, "fsvc");
}

/* ---- the command line (as lua.c) --------------------------------------------------------------- */

enum { has_error = 1, has_i = 2, has_v = 4, has_e = 8, has_E = 16, has_help = 32 };

/* Returns the option flags and sets *first to the index of the script (argc if none). */
static int collect_args(char **argv, int *first) {
  int args = 0, i;
  for (i = 1; argv[i] != NULL; i++) {
    *first = i;
    if (argv[i][0] != '-') return args; /* the script */
    if (strcmp(argv[i], "--version") == 0) {
      args |= has_v;
      continue;
    }
    if (strcmp(argv[i], "--help") == 0) {
      args |= has_help;
      continue;
    }
    switch (argv[i][1]) {
      case '-': /* -- */
        if (argv[i][2] != '\0') return args | has_error;
        *first = i + 1;
        return args;
      case '\0': /* - : the script is stdin */
        return args;
      case 'E':
        if (argv[i][2] != '\0') return args | has_error;
        args |= has_E;
        break;
      case 'W':
        if (argv[i][2] != '\0') return args | has_error;
        break;
      case 'i':
        if (argv[i][2] != '\0') return args | has_error;
        args |= has_i;
        break;
      case 'v':
        if (argv[i][2] != '\0') return args | has_error;
        args |= has_v;
        break;
      case 'e':
        args |= has_e; /* fallthrough */
      case 'l':
        if (argv[i][2] == '\0') {
          i++;
          if (argv[i] == NULL || argv[i][0] == '-') return args | has_error;
        }
        break;
      default:
        return args | has_error;
    }
  }
  *first = i;
  return args;
}

/* arg[0] = script, arg[1..] its arguments, arg[-1..] the interpreter and options. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script) {
  if (script == argc) script = 0; /* no script: arg[0] is the interpreter */
  lua_createtable(L, argc - script - 1 > 0 ? argc - script - 1 : 0, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* -l mod, -l g=mod, -l mod-suffix (the global drops the suffix), as lua.c. */
static int do_library(lua_State *L, const char *spec) {
  size_t len = strlen(spec);
  char *globname = malloc(len + 1);
  if (globname == NULL) return fsvc_host_report(L, (lua_pushliteral(L, "out of memory"), LUA_ERRMEM));
  memcpy(globname, spec, len + 1);
  char *modname = strchr(globname, '=');
  if (modname == NULL) {
    modname = globname;
    char *suffix = strchr(modname, '-');
    lua_pushstring(L, modname); /* the module keeps its full name */
    if (suffix != NULL) *suffix = '\0';
  } else {
    *modname = '\0';
    lua_pushstring(L, modname + 1);
  }
  lua_getglobal(L, "require");
  lua_insert(L, -2);
  int status = fsvc_host_docall(L, 1, 1);
  if (status == LUA_OK) lua_setglobal(L, globname);
  free(globname);
  return fsvc_host_report(L, status);
}

/* Runs -e, -l and -W in order; returns 0 on the first error. */
static int run_args(lua_State *L, char **argv, int n) {
  for (int i = 1; i < n; i++) {
    if (argv[i][0] != '-' || argv[i][1] == '-') continue; /* --version, --help */
    int option = argv[i][1];
    switch (option) {
      case 'e':
      case 'l': {
        const char *extra = argv[i] + 2;
        if (*extra == '\0') extra = argv[++i];
        int status = option == 'e' ? dostring(L, extra, "=(command line)") : do_library(L, extra);
        if (status != LUA_OK) return 0;
        break;
      }
      case 'W':
        lua_warning(L, "@on", 0);
        break;
      default:
        break;
    }
  }
  return 1;
}

/* LUA_INIT_5_4, else LUA_INIT: "@file" runs the file, anything else is Lua code. */
#define LUA_INIT_VAR "LUA_INIT"
#define LUA_INITVARVERSION LUA_INIT_VAR "_" LUA_VERSION_MAJOR "_" LUA_VERSION_MINOR
static int handle_luainit(lua_State *L) {
  const char *name = "=" LUA_INITVARVERSION;
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=" LUA_INIT_VAR;
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return dofile(L, init + 1);
  return dostring(L, init, name);
}

/* The script and its arguments: argv[0] is the script name ("-" means stdin unless it came
 * after "--"); the arguments are also passed as `...`. */
static int handle_script(lua_State *L, char **argv) {
  const char *fname = argv[0];
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0) fname = NULL;
  int status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    lua_getglobal(L, "arg");
    int n = lua_istable(L, -1) ? (int)luaL_len(L, -1) : 0;
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
    lua_remove(L, -n - 1); /* the arg table */
    status = fsvc_host_docall(L, n, LUA_MULTRET);
  }
  return fsvc_host_report(L, status);
}

static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int script = argc;
  int args = argc > 0 ? collect_args(argv, &script) : 0;
  luaL_checkversion(L);
  if (args & has_error) {
    const char *bad = argv[script];
    if ((bad[1] == 'e' || bad[1] == 'l') && bad[2] == '\0')
      fprintf(stderr, "%s: '%s' needs argument\n", FSVC_PROGNAME, bad);
    else
      fprintf(stderr, "%s: unrecognized option '%s'\n", FSVC_PROGNAME, bad);
    print_usage(stderr);
    return 0;
  }
  if (args & has_help) {
    print_usage(stdout);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (args & has_v) print_version();
  if (args & has_E) { /* package reads LUA_PATH/LUA_CPATH unless this is set */
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  /* Incremental collection (not lua.c's generational mode): tensors hold memory the collector
   * only learns about through the bindings' accounting, and full incremental cycles return it
   * steadily instead of waiting for a major collection. */
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCINC, 0, 0, 0);
  setup_fsvc(L);
  create_arg_table(L, argv, argc, script);
  if (!(args & has_E) && handle_luainit(L) != LUA_OK) return 0;
  if (!run_args(L, argv, script)) return 0;
  if (script < argc && handle_script(L, argv + script) != LUA_OK) return 0;
  if (args & has_i) {
    fsvc_repl(L, isatty(STDIN_FILENO));
  } else if (script == argc && !(args & (has_e | has_v))) {
    if (isatty(STDIN_FILENO))
      fsvc_repl(L, 1);
    else if (dofile(L, NULL) != LUA_OK)
      return 0;
  }
  lua_pushboolean(L, 1);
  return 1;
}

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fsvc_host_message("cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  lua_gc(L, LUA_GCSTOP);
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 0);
  int result = lua_toboolean(L, -1);
  fsvc_host_report(L, status);
  lua_close(L);
  return (result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
