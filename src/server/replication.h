/* Push replication of local writes to every live member (--use-mutex 0),
 * and the receiving side. Private to the server module. */
#ifndef DMKV_SERVER_REPLICATION_H
#define DMKV_SERVER_REPLICATION_H

#include <stddef.h>

#include "store/store.h"
#include "util/buf.h"

typedef struct server server;
typedef struct client client;

/* Queues a local write for every live member; sent after its commit. */
void replicationQueue(server *s, const void *key, size_t klen, const storeRecord *rec);
/* The iteration's batch committed: send what was queued. */
void replicationFlush(server *s);
/* The iteration's batch failed: what was queued was never applied. */
void replicationDiscard(server *s);
void replicationStop(server *s);
void replicationInfo(server *s, buf *out);

/* DMKV.REPL <batch>: apply a peer's writes. */
void cmdRepl(client *c);

#endif
