/* The client side of dmkv: a small blocking RESP client, the --nodes list,
 * reply printing, and the client verbs of the dmkv binary.
 *
 * Exit codes of every verb: 0 success, 1 the server answered with an
 * error, 2 bad usage, 3 a node could not be reached or broke the
 * connection; dmkv getall, whose question is whether the nodes agree,
 * answers 1 for "they do not" (a node differs or cannot be reached).
 * Errors are one line on stderr. */
#ifndef DMKV_CLI_CLI_H
#define DMKV_CLI_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "resp/resp.h"
#include "util/buf.h"

enum cliExit {
    CLI_OK = 0,
    CLI_SERVER_ERROR = 1,
    CLI_DIFFER = 1, /* dmkv getall: the nodes do not all hold the same thing */
    CLI_USAGE = 2,
    CLI_UNREACHABLE = 3,
};

#define CLI_DEFAULT_NODES  "127.0.0.1:5001"
#define CLI_MAX_NODES      256
#define CLI_DEFAULT_LOGGER "127.0.0.1:5000"
/* The server's key bound (STORE_MAX_KEY_BYTES), checked before sending. */
#define CLI_MAX_KEY_BYTES 511

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
/* Prints the common options' help and the common exit codes (the tail of
 * every verb's --help); cliVerbUsageOptions prints the options only, for a
 * verb whose exit codes differ. */
void cliVerbUsageCommon(void);
void cliVerbUsageOptions(void);
/* 0 when key is 1..CLI_MAX_KEY_BYTES bytes, else -1 after one line on
 * stderr naming the verb. */
int cliCheckKey(const char *verb, const char *key);

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

/* What one node answered for a key (cliGetAll). */
typedef struct cliNodeRead {
    int status;         /* CLI_OK, CLI_UNREACHABLE, or CLI_SERVER_ERROR (AUTH refused,
                           an error reply, or a reply of the wrong shape) */
    respReply *value;   /* GET's reply; NULL when the node was not reached */
    respReply *version; /* VERSION's reply (array or nil); NULL when not asked */
    char err[512];      /* why status is not CLI_OK */
} cliNodeRead;

/* GET key (and, with with_version, VERSION key) on every node of o, one
 * connection per node with both commands pipelined. Fills
 * reads[0..o->nnodes); free with cliNodeReadsFree. */
void cliGetAll(const cliVerbOpts *o, const char *key, size_t keylen, bool with_version,
               cliNodeRead *reads);
void cliNodeReadsFree(cliNodeRead *reads, int n);
/* Every node answered, all with the same value (and version, when read). */
bool cliReadsAgree(const cliNodeRead *reads, int n);
/* dmkv getall's report for key, text or JSON, appended to out: one line
 * per node, then the verdict. Returns CLI_OK when every node holds the
 * same value and version, CLI_DIFFER otherwise. */
int cliGetAllReport(const cliVerbOpts *o, const char *key, size_t keylen, bool json, buf *out);
/* The same reply (type and bytes) from two nodes. */
bool cliReplyEqual(const respReply *a, const respReply *b);

/* Verbs: argc/argv start at the verb name. */
int cliMainCmd(int argc, char **argv);
int cliMainGet(int argc, char **argv);
int cliMainPut(int argc, char **argv);
int cliMainDel(int argc, char **argv);
int cliMainIncr(int argc, char **argv);
int cliMainGetall(int argc, char **argv);
int cliMainMembers(int argc, char **argv);
int cliMainForceLeave(int argc, char **argv);
int cliMainLeader(int argc, char **argv);
int cliMainLock(int argc, char **argv);
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
