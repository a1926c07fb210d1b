/* The agent's membership binding: the gossip state machine on a UDP
 * socket and timers, encryption with the cluster key, joining through the
 * --peers list, push-pull over the peers' client ports, and the MEMBERS
 * view. Private to the server module. */
#ifndef DMKV_SERVER_CLUSTER_H
#define DMKV_SERVER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef struct server server;
typedef struct cluster cluster;
typedef struct uv_loop_s uv_loop_t;

/* Binds the gossip port and starts joining. Returns NULL with a one-line
 * reason in err. */
cluster *clusterStart(server *s, uv_loop_t *loop, char *err, size_t errlen);
/* Graceful leave: broadcasts LEFT, waits (bounded) for it to spread,
 * closes the socket and timers, then calls done(ctx). */
void clusterStop(cluster *c, void (*done)(void *ctx), void *ctx);
void clusterFree(cluster *c);

/* MEMBERS reply. */
void clusterReplyMembers(cluster *c, buf *out);
/* INFO "cluster" section body. */
void clusterInfo(cluster *c, buf *out);
/* DMKV.PUSHPULL: merges a peer's (sealed) state and appends our own
 * (sealed) state to reply. Returns 0, or -1 with err set. */
int clusterPushPull(cluster *c, const char *blob, size_t len, buf *reply, char *err, size_t errlen);

#endif

/* Calls fn for each ALIVE member other than this node. */
typedef void (*clusterMemberFn)(void *ctx, uint32_t id, const char *host, int tcp_port);
void clusterForEachAlive(cluster *c, clusterMemberFn fn, void *ctx);
/* The gossip state of a member (GOSSIP_ALIVE ...), or -1 when unknown;
 * host/port are filled when not NULL. */
int clusterMemberState(cluster *c, uint32_t id, char *host, size_t hostlen, int *tcp_port);
/* FORCE-LEAVE: marks a DEAD member LEFT and spreads it. Returns 0, -2
 * when gossip knows no such member, or -1 otherwise; err says why. */
int clusterForceLeave(cluster *c, uint32_t id, char *err, size_t errlen);
/* Called with each member that gossip declares DEAD (set by the server). */
void clusterOnMemberDead(cluster *c, void (*fn)(void *ctx, uint32_t id), void *ctx);
/* Calls fn for each member other than this node that has not left the
 * cluster: alive, suspect or dead (a dead member may come back). */
void clusterForEachMember(cluster *c, clusterMemberFn fn, void *ctx);
