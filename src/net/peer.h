/* Outbound RESP connections from one agent to another, on the loop.
 *
 * A netPeer is a lazily connected, pipelined request/reply channel to one
 * address. Calls are queued and written in order; replies are matched to
 * calls in order (RESP has no ids, a TCP stream keeps order). A failed
 * connection, a malformed reply or a call that outlives its timeout fails
 * every outstanding call with an error and drops the connection; the next
 * call reconnects. Retrying is the caller's decision, since only the
 * caller knows whether a request is safe to repeat. A process using peers
 * ignores SIGPIPE (the agent does): a write to a reset connection must
 * fail, not end the process. */
#ifndef DMKV_NET_PEER_H
#define DMKV_NET_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "resp/resp.h"

typedef struct netPeer netPeer;
typedef struct uv_loop_s uv_loop_t;

/* r is NULL when the call failed; err then says why. r is freed after
 * the callback returns. */
typedef void (*netPeerReplyFn)(void *ctx, const respReply *r, const char *err);

typedef struct netPeerOptions {
    uint32_t connect_timeout_ms; /* default 2000 */
    uint32_t call_timeout_ms;    /* default 5000 */
    size_t max_reply_bytes;      /* default 64 MiB */
    size_t max_queued_bytes;     /* unsent requests; beyond it calls fail at once (default 64 MiB) */
} netPeerOptions;

netPeer *netPeerCreate(uv_loop_t *loop, const char *host, int port, const netPeerOptions *opts);
/* Queues one command. fn is always called exactly once, possibly before
 * netPeerCall returns (when the queue is full or the peer is closed);
 * fn NULL: the reply is read and dropped. */
void netPeerCall(netPeer *p, size_t argc, const char *const *argv, const size_t *lens,
                 netPeerReplyFn fn, void *ctx);
/* Fails outstanding calls ("peer closed") and frees the peer once libuv
 * has released its handles. */
void netPeerClose(netPeer *p);
const char *netPeerAddress(const netPeer *p);
size_t netPeerPendingCalls(const netPeer *p);
size_t netPeerQueuedBytes(const netPeer *p);

#endif
