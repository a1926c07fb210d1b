/* Replication between members: push of local writes, the receiving side,
 * anti-entropy and tombstone collection. Private to the server module. */
#ifndef DMKV_SERVER_REPLICATION_H
#define DMKV_SERVER_REPLICATION_H

#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"
#include "util/buf.h"

typedef struct server server;
typedef struct client client;

/* Queues a local write for every live member; sent after its commit. */
void replicationQueue(server *s, const void *key, size_t klen, const storeRecord *rec);
/* Before the iteration's commit: batch what was queued per member and
 * tick the clock for each send, so the commit saves the ticks. */
void replicationStamp(server *s);
/* The iteration's batch committed: send what was stamped (a member's
 * batch may wait for its previous one's answer; see replication.c). */
void replicationFlush(server *s);
/* True when a batch is ready to stamp or to send: the iteration commits
 * even without writes of its own. */
bool replicationWaiting(server *s);
/* The iteration's batch failed: what was queued was never applied. */
void replicationDiscard(server *s);
/* Calls fn once every ALIVE member has acknowledged the writes of the
 * current store batch (err NULL), or when the batch failed (err says
 * why). With no member alive, right after the commit. */
typedef void (*replicationAckedFn)(server *s, void *ctx, const char *err);
void replicationOnAcked(server *s, replicationAckedFn fn, void *ctx);

/* Calls fn once this node has read the change feed of every member that
 * is ALIVE now, each read begun after this call (a read that fails, the
 * member not answering, counts as done; after 6 s it stops waiting). A
 * write made under a lock just granted and run after fn therefore sees
 * every write the lock's earlier holders made, which were committed
 * before they released it, even those whose pushes missed this node (it
 * was down, held DEAD by the writer, or its link broke). fn runs before
 * this returns when no member is alive, and when the node shuts down. */
typedef void (*replicationCaughtUpFn)(server *s, void *ctx);
void replicationCatchUp(server *s, replicationCaughtUpFn fn, void *ctx);

/* Whether a member has seen more of this node's own writes than it holds
 * (its data directory is new or older than the cluster's copy): local
 * writes are refused until anti-entropy has brought them back, so that no
 * write number is used twice. */
bool replicationBehindSelf(server *s);
/* Whether any other member (alive or not, not left) is known: without
 * one, a delete needs no tombstone. */
bool replicationHasMembers(server *s);
/* FORCE-LEAVE of a member gossip no longer lists (dead for longer than
 * --dead-retain-ms): tombstones stop waiting for it on this node. Returns
 * whether it was still waited for. */
bool replicationForget(server *s, uint32_t id);
/* Starts anti-entropy and tombstone collection (needs the cluster). */
void replicationStart(server *s);
void replicationStop(server *s);
void replicationInfo(server *s, buf *out);

/* DMKV.REPL <batch>: apply a peer's writes. */
void cmdRepl(client *c);
/* DMKV.SYNC <request>: a page of this node's change feed for a peer. */
void cmdSync(client *c);
/* DMKV.VERIFY <request>: which of a peer's writes this node collected. */
void cmdVerify(client *c);

#endif
