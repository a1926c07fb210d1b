/* The client side of dmkv: a small blocking RESP client, the --nodes list,
 * reply printing, and the client verbs of the dmkv binary.
 *
 * Exit codes of every verb: 0 success, 1 the server answered with an
 * error, 2 bad usage, 3 a node could not be reached or broke the
 * connection. Errors are one line on stderr. */
#ifndef DMKV_CLI_CLI_H
#define DMKV_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>

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

/* Prints a reply the way redis-cli does on a terminal, but with bulk
 * strings unquoted when they are plain text. */
void cliFormatReply(const respReply *r, buf *out);

/* Verbs: argc/argv start at the verb name. */
int cliMainCmd(int argc, char **argv);
int cliMainGet(int argc, char **argv);
int cliMainPut(int argc, char **argv);
int cliMainDel(int argc, char **argv);
int cliMainMembers(int argc, char **argv);
int cliMainTrace(int argc, char **argv);
int cliMainDev(int argc, char **argv);
/* Where `dmkv dev` writes its node list for the client verbs. */
void cliDevStatePath(char *out, size_t cap);
/* A value ("nodes" or "logger") of the running dmkv dev cluster. */
bool cliDevDefault(const char *field, char *out, size_t cap);

#endif
