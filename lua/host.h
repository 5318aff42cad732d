/* The fsvc host: the `fsvc` executable that embeds Lua 5.4 (main.c) and its interactive
 * loop (repl.c). Nothing here is part of the library API; the bindings live in fsvc_lua.h. */
#ifndef FSVC_HOST_H
#define FSVC_HOST_H

#include <lua.h>

#define FSVC_PROGNAME "fsvc"

/* Prints "fsvc: <msg>" to stderr (the message may hold a traceback). */
void fsvc_host_message(const char *msg);

/* If status is not LUA_OK, prints the error on top of the stack and pops it. Returns status. */
int fsvc_host_report(lua_State *L, int status);

/* Calls the function below narg arguments on the stack like lua_pcall, but with a message
 * handler that appends a traceback, and with Ctrl-C turned into the Lua error "interrupted!"
 * while the call runs. */
int fsvc_host_docall(lua_State *L, int narg, int nres);

/* The read-eval-print loop. Reads from a terminal with readline (line editing, history in
 * ~/.fsvc_history, completion of globals and fields); when stdin is not a terminal, reads
 * plain lines with no prompt and still prints every result. Returns when input ends. */
void fsvc_repl(lua_State *L, int show_banner);

#endif
