/* Types shared by the server module's files; not a public header. */
#ifndef DMKV_SERVER_INTERNAL_H
#define DMKV_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock/clock.h"
#include "net/net.h"
#include "resp/resp.h"
#include "server/server.h"
#include "store/store.h"
#include "util/buf.h"

typedef struct server server;
typedef struct client client;

typedef struct cmdArg {
    const char *p;
    size_t len;
} cmdArg;

/* Command flags. */
#define CMD_WRITE  0x01u /* changes data: joins the store batch */
#define CMD_READ   0x02u /* reads data */
#define CMD_NOAUTH 0x04u /* allowed before AUTH */
#define CMD_ADMIN  0x08u
#define CMD_FAST   0x10u
#define CMD_PEER   0x20u /* node-to-node: authenticated by the cluster key when one is set */

typedef struct command {
    const char *name;
    void (*proc)(client *c);
    int arity; /* exact argc when > 0; at least -arity when < 0 */
    unsigned flags;
    int first_key, last_key, key_step;
    const char *summary;
    uint64_t calls; /* mutable statistics */
} command;

struct client {
    server *srv;
    netConn *conn;
    uint64_t id;
    respParser parser;
    size_t qpos;
    bool authenticated;
    bool paused_for_output;
    /* Waiting for something outside the loop iteration (a lock grant, the
     * acknowledgements of a serialized write): its later commands wait,
     * and on_free runs if the connection closes meanwhile. */
    bool blocked;
    void (*on_free)(client *c);
    /* Unblocked: its waiting commands run on the next loop pass. */
    bool resume_pending;
    client *resume_next;
    bool holds_locks; /* took part in the lock table: tell it when closing */
    char *name;
    char lib_name[64];
    char lib_ver[32];
    uint64_t created_ms;
    uint64_t last_cmd_ms;
    const command *last_cmd;
    /* Writes of the open store batch: where this client's output stood
     * before its first write of the batch, and how many writes it made. */
    size_t batch_mark;
    size_t batch_tail; /* output length after its latest command in the batch */
    unsigned batch_writes;
    client *batch_next;
    /* The command being executed; args point into the input buffer. */
    size_t argc;
    cmdArg *argv;
    size_t argv_cap;
    buf *out;
    client *next, *prev;
};

#define SCAN_CURSORS 1024

typedef struct scanCursor {
    uint64_t id;
    buf last_key;
} scanCursor;

typedef struct serverStats {
    uint64_t connections_received;
    uint64_t connections_rejected;
    uint64_t commands_processed;
    uint64_t protocol_errors;
    uint64_t keyspace_hits;
    uint64_t keyspace_misses;
    uint64_t net_in_closed; /* bytes of connections already closed */
    uint64_t net_out_closed;
    uint64_t batches_failed;
    uint64_t output_limit_disconnects;
    uint64_t query_limit_disconnects;
    uint64_t auth_failures;
} serverStats;

struct cluster;
struct keyring;

struct server {
    serverConfig cfg;
    struct keyring *keys; /* cluster keyring, NULL without --cluster-key */
    struct cluster *cl;
    void *events;        /* the event sink (events.c), NULL without --logger-addr */
    void *repl;          /* replication state (replication.c) */
    struct coord *coord; /* the lock coordinator (coordinator.c) */
    void *mutex;         /* the node's lock holds for serialized writes (mutex.c) */
    uint64_t events_total;
    struct uv_loop_s *loop;
    netServer *net;
    store *st;
    nodeClock clock;
    bool clock_dirty;
    bool repl_flush_due; /* a commit made batches that go out after the replies */
    /* For each origin, the write sequence number up to which this node
     * has seen all of that origin's writes (see replicate.h); its own
     * entry numbers this node's writes. Saved with the batch it changes. */
    vclock summary;
    bool summary_dirty;
    uint64_t write_token; /* fencing token for the versions being written (--use-mutex 1) */
    buf scratch;
    client *clients;
    size_t nclients;
    client *batch_clients;
    client *resume_list;            /* unblocked clients whose commands wait for the next pass */
    void (*resume_soon)(server *s); /* arranges that pass (server.c) */
    uint64_t next_client_id;
    uint64_t start_ms;
    serverStats stats;
    scanCursor cursors[SCAN_CURSORS];
    size_t cursor_next;
    uint64_t cursor_seq;
    bool stopping;
    int exit_code;
    void (*request_stop)(server *s);
};

/* server.c */
void serverReplyOk(client *c);
/* Call before a write command touches the store. */
void serverWriteBegin(client *c);
/* A store write failed: every write of the open batch is lost. Replaces
 * their replies with an error and disconnects those clients (except the
 * current one when this was its only write), then appends this client's
 * error reply. */
void serverStoreFailed(client *c);
/* Fills a version for a new local write (ticks the node's clock, takes
 * the next write sequence number). */
void serverNewVersion(server *s, storeVersion *v);
/* Commits the open store batch now (it is otherwise committed before the
 * loop's replies are flushed), with the same failure handling. Returns
 * STORE_OK or STORE_ERR. */
int serverCommitNow(server *s);
/* Sends the batches of the last commit to the members, if not yet sent. */
void serverSendReplication(server *s);
const command *serverLookupCommand(const char *name, size_t len);
/* Blocks the client after its current command: no reply yet, and its
 * later commands wait. Unblock after appending the reply; the client's
 * waiting commands then run. */
void serverBlock(client *c, void (*on_free)(client *c));
void serverUnblock(client *c);
/* The client with this id, or NULL when it has gone. */
client *serverFindClient(server *s, uint64_t id);

/* mutex.c: serialized writes (--use-mutex 1). */
bool mutexWanted(server *s, const command *cmd);
void mutexExecute(client *c, const command *cmd);
/* Releases the holds that stayed idle through a loop pass. */
void mutexSettleIdle(server *s);
/* INFO coordinator lines about serialized writes. */
void mutexInfo(server *s, buf *out);
/* Frees what is left once the loop has stopped. */
void mutexFreeState(server *s);
const command *serverCommandTable(size_t *n);
uint64_t serverUptimeMs(const server *s);

/* commands_*.c */
extern command serverCommands[];
extern const size_t serverCommandCount;

/* Argument helpers. */
bool argIs(const cmdArg *a, const char *lit);
/* Strict integer parse like Redis: no spaces, no '+', no leading zeros. */
bool argToLongLong(const cmdArg *a, long long *out);
void replyWrongArity(client *c);
void replySyntaxError(client *c);

#endif
