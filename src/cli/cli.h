/* The client side of dmkv: a small blocking RESP client, the --nodes list,
 * reply printing, and the client verbs of the dmkv binary.
 *
 * Exit codes of every verb: 0 success, 1 the server answered with an
 * error, 2 bad usage, 3 a node could not be reached or broke the
 * connection. Errors are one line on stderr. */
#ifndef DMKV_CLI_CLI_H
#define DMKV_CLI_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "resp/resp.h"
#include "util/buf.h"

enum cliExit { CLI_OK = 0, CLI_SERVER_ERROR = 1, CLI_USAGE = 2, CLI_UNREACHABLE = 3 };

#define CLI_DEFAULT_NODES "127.0.0.1:5001"
#define CLI_MAX_NODES 256
#define CLI_DEFAULT_LOGGER "127.0.0.1:5000"

typedef struct cliNode {
    char host[256];
    int port;
} cliNode;

/* Parses "host:port,host:port" (a "=id" suffix, as in --peers, is
 * accepted and ignored). Returns the count, or -1 with a reason in err. */
int cliParseNodes(const char *list, cliNode *out, int max, char *err, size_t errlen);

typedef struct cliConn {
    int fd;
    buf in;
    char addr[300];
    int timeout_ms;
} cliConn;

int cliConnect(cliConn *c, const char *host, int port, int timeout_ms, char *err, size_t errlen);
/* Sends one command and reads its reply. Returns 0, or -1 with err set
 * when the connection failed (the connection is then closed). */
int cliCall(cliConn *c, size_t argc, const char *const *argv, const size_t *lens, respReply **out,
            char *err, size_t errlen);
void cliClose(cliConn *c);
/* The two halves of cliCall, for pipelining: send bytes already encoded
 * with respAddCommand, then read replies one at a time. Same error
 * contract as cliCall. */
int cliSendRaw(cliConn *c, const char *data, size_t len, char *err, size_t errlen);
int cliReadReply(cliConn *c, respReply **out, char *err, size_t errlen);

/* Prints a reply the way redis-cli does on a terminal, but with bulk
 * strings unquoted when they are plain text. */
void cliFormatReply(const respReply *r, buf *out);

/* The options every client verb shares, parsed by cliVerbParse. */
typedef struct cliVerbOpts {
    cliNode nodes[CLI_MAX_NODES];
    int nnodes;
    int node; /* 0-based index */
    int timeout_ms;
    const char *password;
} cliVerbOpts;

/* Called for each verb-specific option (its struct option .val and
 * optarg); returns -1 to continue, or an exit code to stop with. */
typedef int (*cliExtraOptFn)(void *ctx, int code, const char *arg);

/* Parses the common options plus `extra` (may be NULL; .val codes must be
 * >= 256). usage, when not NULL, prints the verb's --help. Positional
 * arguments are left at argv[optind..]. Returns -1 to continue, or an
 * exit code. */
int cliVerbParse(const char *verb, int argc, char **argv, cliVerbOpts *o,
                 const struct option *extra, cliExtraOptFn onExtra, void *ctx, void (*usage)(void));
/* Prints the common options' help (the tail of every verb's --help). */
void cliVerbUsageCommon(void);

/* One command split into arguments; argv points into storage. */
typedef struct cliArgs {
    size_t argc;
    const char **argv;
    size_t *lens;
    char *storage;
} cliArgs;

/* Splits one line the way redis-cli does (quotes, \x escapes). Returns 0,
 * or -1 with a reason in err (unbalanced quotes, empty line). */
int cliSplitCommand(const char *raw, cliArgs *out, char *err, size_t errlen);
void cliArgsFree(cliArgs *a);

/* Connects to node n and sends AUTH when password is set. Returns CLI_OK,
 * CLI_UNREACHABLE or CLI_SERVER_ERROR (AUTH refused), with err set. */
int cliConnectNode(cliConn *c, const cliNode *n, int timeout_ms, const char *password, char *err,
                   size_t errlen);

/* dmkv race: sends cmds[i] to node i, all released at the same instant,
 * prints each reply and latency, then each key's value on every node.
 * raw[i] is the text printed for command i. Returns an exit code. */
int cliRaceRun(const cliVerbOpts *o, size_t ncmds, const cliArgs *cmds, const char *const *raw,
               FILE *out);

/* GET key on every node of o. values[i] is NULL when node i did not
 * answer. Returns true when every node answered, all the same. */
bool cliGetAll(const cliVerbOpts *o, const char *key, size_t keylen, respReply **values);
/* The same reply (type and bytes) from two nodes. */
bool cliReplyEqual(const respReply *a, const respReply *b);

/* Verbs: argc/argv start at the verb name. */
int cliMainCmd(int argc, char **argv);
int cliMainGet(int argc, char **argv);
int cliMainPut(int argc, char **argv);
int cliMainDel(int argc, char **argv);
int cliMainMembers(int argc, char **argv);
int cliMainTrace(int argc, char **argv);
int cliMainDev(int argc, char **argv);
int cliMainRace(int argc, char **argv);
int cliMainBench(int argc, char **argv);
int cliMainRepl(int argc, char **argv);
/* Where `dmkv dev` writes its node list for the client verbs. */
void cliDevStatePath(char *out, size_t cap);
/* A value ("nodes" or "logger") of the running dmkv dev cluster. */
bool cliDevDefault(const char *field, char *out, size_t cap);

#endif
