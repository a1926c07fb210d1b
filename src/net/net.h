/* TCP connections on the libuv loop, with the reply batching the server
 * relies on.
 *
 * A connection owns an input buffer (bytes read, not yet consumed by the
 * protocol above) and an output buffer (replies not yet written). Nothing
 * is written to a socket while commands run: at the end of each loop
 * iteration the net layer first calls the owner's before_flush hook (where
 * the server commits the iteration's writes to disk) and then writes every
 * connection's pending output, one syscall each when the socket accepts
 * it. That ordering is what makes "reply only after the write is durable"
 * cheap: one commit and one fsync cover every client of the iteration.
 * Then the after_flush hook runs (where the server feeds the other
 * members), and whatever it queued is written too.
 *
 * The layer knows nothing of RESP or commands. */
#ifndef DMKV_NET_NET_H
#define DMKV_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef struct netServer netServer;
typedef struct netConn netConn;
typedef struct uv_loop_s uv_loop_t;

typedef struct netHandlers {
    void *ctx;
    void (*on_open)(void *ctx, netConn *c);
    /* New bytes were appended to netConnInput(c). */
    void (*on_data)(void *ctx, netConn *c);
    /* All output was written after the owner paused on a full buffer. */
    void (*on_drained)(void *ctx, netConn *c);
    /* The connection is gone; its user data may be freed now. */
    void (*on_close)(void *ctx, netConn *c);
    /* End of a loop iteration, before pending output is written. */
    void (*before_flush)(void *ctx);
    /* End of a loop iteration, after pending output was written. */
    void (*after_flush)(void *ctx);
} netHandlers;

netServer *netServerCreate(uv_loop_t *loop, const netHandlers *h);
/* Binds and listens; host is an IPv4 or IPv6 literal or a name. Returns 0
 * or -1 with a one-line reason in err. */
int netServerListen(netServer *s, const char *host, int port, char *err, size_t errlen);
/* Stops accepting and closes every connection after its output is
 * written; calls done(ctx) once everything is closed. */
void netServerShutdown(netServer *s, void (*done)(void *ctx));
void netServerFree(netServer *s);
size_t netServerConnCount(const netServer *s);
/* The port actually bound (useful after listening on port 0). */
int netServerBoundPort(netServer *s);
/* Runs before_flush and writes pending output now (also done
 * automatically at the end of every loop iteration). */
void netServerFlush(netServer *s);

buf *netConnInput(netConn *c);
buf *netConnOutput(netConn *c);
/* Marks the connection as having output to write at iteration end. */
void netConnWantFlush(netConn *c);
/* Bytes queued for this connection, written or not yet handed to the kernel. */
size_t netConnPendingBytes(const netConn *c);
/* Asks the next read to have room for `bytes` more input at once. */
void netConnReserveInput(netConn *c, size_t bytes);
void netConnPauseReading(netConn *c);
void netConnResumeReading(netConn *c);
/* Writes what is pending, then closes. No more on_data after this. */
void netConnClose(netConn *c);
bool netConnClosing(const netConn *c);
void netConnSetData(netConn *c, void *data);
void *netConnGetData(const netConn *c);
/* "ip:port" of the peer. */
const char *netConnPeer(const netConn *c);
uint64_t netConnBytesIn(const netConn *c);
uint64_t netConnBytesOut(const netConn *c);

#endif
