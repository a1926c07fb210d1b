/* dmkv repl: an interactive shell over the --nodes list.
 *
 * A line is either one of the shell's own commands (help, nodes, use,
 * cmd, getall, race, quit) or a command for the current node, whose reply
 * is printed the way redis-cli prints it. On a terminal, libedit gives
 * line editing and a history kept in ~/.dmkv_history (bounded to
 * REPL_HISTORY_LINES); when stdin is not a terminal the lines are read
 * plainly and no prompt is printed, so a script can be piped in. Every
 * line is bounded to REPL_MAX_LINE bytes. */
#include <ctype.h>
#include <editline/readline.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/cli.h"

#define REPL_MAX_LINE      (64 * 1024)
#define REPL_HISTORY_LINES 1000
#define REPL_MAX_RACE      64

typedef struct replState {
    cliVerbOpts *opts;
    int current; /* 0-based node index */
    cliConn conn;
    bool connected;
    bool interactive;
    char history_path[1024];
} replState;

static void replHelp(void) {
    printf("Commands:\n"
           "  help                 this list\n"
           "  nodes                the node list, the current node marked with *\n"
           "  use I                make node I (from 1) the current node\n"
           "  cmd RAW              send RAW to the current node\n"
           "  getall K             K's value and version on every node, and whether\n"
           "                       they agree (as dmkv getall K)\n"
           "  race C1 | C2 [| C3]  send Ci to node i, all at the same instant\n"
           "  quit, exit           leave (so does end of input)\n"
           "Any other line is sent to the current node as a command.\n");
}

static void replDisconnect(replState *s) {
    if (s->connected) cliClose(&s->conn);
    s->connected = false;
}

/* Sends one command to the current node, reconnecting if need be. */
static void replSend(replState *s, const char *raw) {
    cliArgs a;
    char err[512];
    if (cliSplitCommand(raw, &a, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    const cliNode *n = &s->opts->nodes[s->current];
    if (!s->connected) {
        if (cliConnectNode(&s->conn, n, s->opts->timeout_ms, s->opts->password, err, sizeof err) !=
            CLI_OK) {
            fprintf(stderr, "node %d: %s\n", s->current + 1, err);
            cliArgsFree(&a);
            return;
        }
        s->connected = true;
    }
    respReply *r = NULL;
    if (cliCall(&s->conn, a.argc, a.argv, a.lens, &r, err, sizeof err) != 0) {
        s->connected = false; /* cliCall closed it */
        fprintf(stderr, "node %d: %s\n", s->current + 1, err);
        cliArgsFree(&a);
        return;
    }
    buf out;
    bufInit(&out);
    cliFormatReply(r, &out);
    bufAppendChar(&out, '\n');
    fwrite(out.data, 1, out.len, stdout);
    bufFree(&out);
    respReplyFree(r);
    cliArgsFree(&a);
}

static void replNodes(const replState *s) {
    for (int i = 0; i < s->opts->nnodes; i++)
        printf("%c %d %s:%d\n", i == s->current ? '*' : ' ', i + 1, s->opts->nodes[i].host,
               s->opts->nodes[i].port);
}

static void replUse(replState *s, const char *arg) {
    char *end;
    long i = strtol(arg, &end, 10);
    while (isspace((unsigned char)*end)) end++;
    if (!*arg || *end || i < 1 || i > s->opts->nnodes) {
        fprintf(stderr, "use: expected a node number from 1 to %d, got '%s'\n", s->opts->nnodes,
                arg);
        return;
    }
    if (i - 1 != s->current) replDisconnect(s);
    s->current = (int)i - 1;
}

/* The report of dmkv getall, so the shell and the verb cannot drift apart. */
static void replGetAll(const replState *s, const char *arg) {
    cliArgs a;
    char err[512];
    if (cliSplitCommand(arg, &a, err, sizeof err) != 0 || a.argc != 1) {
        if (a.argc) cliArgsFree(&a);
        fprintf(stderr, "getall: expected one key\n");
        return;
    }
    if (a.lens[0] < 1 || a.lens[0] > CLI_MAX_KEY_BYTES) {
        fprintf(stderr, "getall: KEY must be 1 to %d bytes, got %zu\n", CLI_MAX_KEY_BYTES,
                a.lens[0]);
        cliArgsFree(&a);
        return;
    }
    buf out;
    bufInit(&out);
    cliGetAllReport(s->opts, a.argv[0], a.lens[0], false, &out);
    fwrite(out.data, 1, out.len, stdout);
    bufFree(&out);
    cliArgsFree(&a);
}

static void replRace(const replState *s, const char *arg) {
    char *copy = xmalloc(strlen(arg) + 1);
    strcpy(copy, arg);
    const char *raw[REPL_MAX_RACE];
    cliArgs cmds[REPL_MAX_RACE];
    size_t n = 0;
    bool ok = true;
    for (char *save = NULL, *piece = strtok_r(copy, "|", &save); piece;
         piece = strtok_r(NULL, "|", &save)) {
        while (isspace((unsigned char)*piece)) piece++;
        size_t len = strlen(piece);
        while (len && isspace((unsigned char)piece[len - 1])) piece[--len] = '\0';
        if (n == REPL_MAX_RACE) {
            fprintf(stderr, "race: at most %d commands\n", REPL_MAX_RACE);
            ok = false;
            break;
        }
        char err[512];
        if (cliSplitCommand(piece, &cmds[n], err, sizeof err) != 0) {
            fprintf(stderr, "race: %s\n", err);
            ok = false;
            break;
        }
        raw[n++] = piece;
    }
    if (ok) cliRaceRun(s->opts, n, cmds, raw, stdout);
    for (size_t i = 0; i < n; i++) cliArgsFree(&cmds[i]);
    free(copy);
}

/* Runs one line; returns false when the shell should end. */
static bool replLine(replState *s, char *line) {
    while (isspace((unsigned char)*line)) line++;
    size_t len = strlen(line);
    while (len && isspace((unsigned char)line[len - 1])) line[--len] = '\0';
    if (!len) return true;
    size_t wlen = strcspn(line, " \t");
    const char *rest = line + wlen;
    while (isspace((unsigned char)*rest)) rest++;
#define IS(word) (wlen == strlen(word) && !strncasecmp(line, word, wlen))
    if (IS("quit") || IS("exit")) return false;
    if (IS("help"))
        replHelp();
    else if (IS("nodes"))
        replNodes(s);
    else if (IS("use"))
        replUse(s, rest);
    else if (IS("getall"))
        replGetAll(s, rest);
    else if (IS("race"))
        replRace(s, rest);
    else if (IS("cmd")) {
        if (*rest)
            replSend(s, rest);
        else
            fprintf(stderr, "cmd: expected a command, e.g. cmd GET color\n");
    } else
        replSend(s, line);
#undef IS
    fflush(stdout);
    return true;
}

/* Reads one line from a pipe or file, bounded. Returns NULL at the end of
 * input; *too_long is set (and the line skipped) when it exceeds the bound. */
static char *replReadPlain(char *line, size_t cap, bool *too_long) {
    *too_long = false;
    if (!fgets(line, (int)cap, stdin)) return NULL;
    size_t len = strlen(line);
    if (len == cap - 1 && line[len - 1] != '\n') {
        int c;
        while ((c = getchar()) != EOF && c != '\n') {
        }
        *too_long = true;
    }
    return line;
}

static void replUsage(void) {
    printf("Usage: dmkv repl [--nodes LIST] [--node I]\n\n"
           "An interactive shell. Type help for its commands; any other line is\n"
           "sent to the current node. History is kept in ~/.dmkv_history.\n");
    cliVerbUsageCommon();
}

int cliMainRepl(int argc, char **argv) {
    replState s;
    memset(&s, 0, sizeof s);
    s.opts = xcalloc(1, sizeof *s.opts);
    int rc = cliVerbParse("repl", argc, argv, s.opts, NULL, NULL, NULL, replUsage);
    if (rc < 0 && optind < argc) {
        fprintf(stderr, "dmkv repl: unexpected argument '%s' (see dmkv repl --help)\n",
                argv[optind]);
        rc = CLI_USAGE;
    }
    if (rc >= 0) {
        free(s.opts);
        return rc;
    }
    s.current = s.opts->node;
    s.interactive = isatty(STDIN_FILENO);
    const char *home = getenv("HOME");
    if (s.interactive) {
        if (home && *home)
            snprintf(s.history_path, sizeof s.history_path, "%s/.dmkv_history", home);
        using_history();
        stifle_history(REPL_HISTORY_LINES);
        if (s.history_path[0]) read_history(s.history_path);
    }
    char *plain = s.interactive ? NULL : xmalloc(REPL_MAX_LINE + 2);
    for (;;) {
        char *line;
        bool too_long = false;
        char *edited = NULL;
        if (s.interactive) {
            char prompt[64];
            snprintf(prompt, sizeof prompt, "dmkv[node %d]> ", s.current + 1);
            line = edited = readline(prompt);
            if (line && strlen(line) > REPL_MAX_LINE)
                too_long = true;
            else if (line && *line)
                add_history(line);
        } else {
            line = replReadPlain(plain, REPL_MAX_LINE + 2, &too_long);
        }
        if (!line) break;
        bool go_on = true;
        if (too_long)
            fprintf(stderr, "line refused: longer than %d bytes\n", REPL_MAX_LINE);
        else
            go_on = replLine(&s, line);
        free(edited);
        if (!go_on) break;
    }
    if (s.interactive && s.history_path[0]) {
        write_history(s.history_path);
        history_truncate_file(s.history_path, REPL_HISTORY_LINES);
    }
    replDisconnect(&s);
    free(plain);
    free(s.opts);
    return CLI_OK;
}
