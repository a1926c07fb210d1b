/* The lock coordinator: the lock table (src/lock/lock.h) replicated with
 * Raft (src/lock/raftnode.h) among the agents, and the client commands
 * built on it. Private to the server module. */
#ifndef DMKV_SERVER_COORDINATOR_H
#define DMKV_SERVER_COORDINATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef struct server server;
typedef struct client client;

/* Starts the Raft node. Returns 0, or -1 with a one-line reason. */
int coordStart(server *s, char *err, size_t errlen);
/* Hooks gossip's DEAD declarations (after the cluster started). */
void coordWatchMembers(server *s);
/* Stops it; done(ctx) runs once its handles are closed. */
void coordStop(server *s, void (*done)(void *ctx), void *ctx);
/* A client connection closed: its locks and waits go. */
void coordClientClosed(server *s, client *c);
/* INFO "coordinator" section body. */
void coordInfo(server *s, buf *out);
/* The leader's node id (0 when none is known) and client address. */
uint32_t coordLeader(server *s, char *addr, size_t addrlen);

/* The client id of the node itself, the owner of serialized writes'
 * holds (mutex.c); a connection's id is never 0. */
#define COORD_NODE_CLIENT 0u

/* For serialized writes (--use-mutex 1): takes a lock for a client and
 * calls cb once with the token, or 0 and an error. */
typedef void (*coordAcquireFn)(server *s, void *ctx, uint64_t token, const char *err);
void coordAcquire(server *s, uint64_t client_id, const char *name, size_t len, uint32_t ttl_ms,
                  coordAcquireFn cb, void *ctx);
void coordRelease(server *s, uint64_t client_id, const char *name, size_t len, uint64_t token);
/* How many wait in line for the lock in this node's copy of the table. */
size_t coordWaiters(server *s, const char *name, size_t len);

/* Commands. */
void cmdLock(client *c);
void cmdUnlock(client *c);
void cmdRenew(client *c);
void cmdLocks(client *c);
void cmdLeader(client *c);
void cmdRaft(client *c);
void cmdLockop(client *c);

#endif
