/* libuv implementation of outbound peer links; see peer.h. */
#include "net/peer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "util/buf.h"
#include "util/log.h"

#define PEER_DEFAULT_CONNECT_TIMEOUT_MS 2000
#define PEER_DEFAULT_CALL_TIMEOUT_MS 5000
#define PEER_DEFAULT_MAX_REPLY_BYTES (64u << 20)
#define PEER_DEFAULT_MAX_QUEUED_BYTES (64u << 20)
#define PEER_READ_CHUNK_BYTES (64 * 1024)

typedef struct peerCall {
    netPeerReplyFn fn;
    void *ctx;
    uint64_t deadline_ms;
    struct peerCall *next;
} peerCall;

typedef enum { PEER_IDLE, PEER_RESOLVING, PEER_CONNECTING, PEER_CONNECTED } peerState;

struct netPeer {
    uv_loop_t *loop;
    char host[256];
    int port;
    char addr[300];
    netPeerOptions opts;
    peerState state;
    uv_tcp_t *tcp; /* separately allocated: a closing handle outlives a reconnect */
    uv_connect_t connect_req;
    uv_getaddrinfo_t resolve_req;
    uv_write_t write_req;
    uv_timer_t timer;
    bool writing;
    bool closing;
    int handles_open;
    buf out;      /* requests not yet handed to libuv */
    buf inflight; /* requests being written */
    buf in;
    peerCall *head, *tail; /* sent or queued calls, oldest first */
    size_t ncalls;
    uint64_t generation; /* bumps on every disconnect, so stale callbacks are ignored */
    uint64_t resolve_generation;
    bool resolving; /* resolve_req is in use */
};

static void peerFailAll(netPeer *p, const char *why);
static void peerFlush(netPeer *p);
static void peerArmTimer(netPeer *p);
static void peerConnect(netPeer *p);

const char *netPeerAddress(const netPeer *p) {
    return p->addr;
}

size_t netPeerPendingCalls(const netPeer *p) {
    return p->ncalls;
}

size_t netPeerQueuedBytes(const netPeer *p) {
    return p->out.len + p->inflight.len;
}

static void peerMaybeFree(netPeer *p) {
    if (p->closing && p->handles_open == 0 && p->state == PEER_IDLE && !p->writing) {
        bufFree(&p->out);
        bufFree(&p->inflight);
        bufFree(&p->in);
        free(p);
    }
}

static void onTcpClosed(uv_handle_t *h) {
    netPeer *p = h->data;
    free(h);
    p->handles_open--;
    peerMaybeFree(p);
}

static void onTimerClosed(uv_handle_t *h) {
    netPeer *p = h->data;
    p->handles_open--;
    peerMaybeFree(p);
}

/* Drops the connection; outstanding calls fail with `why`. */
static void peerDisconnect(netPeer *p, const char *why) {
    p->generation++;
    if (p->tcp) {
        uv_read_stop((uv_stream_t *)p->tcp);
        uv_close((uv_handle_t *)p->tcp, onTcpClosed);
        p->tcp = NULL;
    }
    p->state = PEER_IDLE;
    bufClear(&p->in);
    bufClear(&p->out);
    /* inflight is owned by the pending uv_write until its callback. */
    peerFailAll(p, why);
}

static void peerFailAll(netPeer *p, const char *why) {
    peerCall *c = p->head;
    p->head = p->tail = NULL;
    p->ncalls = 0;
    while (c) {
        peerCall *next = c->next;
        char msg[400];
        snprintf(msg, sizeof msg, "%s: %s", p->addr, why);
        c->fn(c->ctx, NULL, msg);
        free(c);
        c = next;
    }
}

static void onAlloc(uv_handle_t *h, size_t suggested, uv_buf_t *out) {
    (void)suggested;
    netPeer *p = h->data;
    bufReserve(&p->in, PEER_READ_CHUNK_BYTES);
    out->base = p->in.data + p->in.len;
    out->len = p->in.cap - p->in.len;
}

static void onRead(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
    (void)b;
    netPeer *p = s->data;
    if (nread < 0) {
        peerDisconnect(p, nread == UV_EOF ? "connection closed by the peer" : uv_strerror((int)nread));
        return;
    }
    p->in.len += (size_t)nread;
    respReplyLimits lim = {p->opts.max_reply_bytes, 1u << 24, 16};
    size_t off = 0;
    uint64_t gen = p->generation;
    while (off < p->in.len && p->head) {
        respReply *r = NULL;
        size_t used = 0;
        const char *err = NULL;
        int rc = respReplyParse(p->in.data + off, p->in.len - off, &lim, &r, &used, &err);
        if (rc == RESP_PARSE_MORE) break;
        if (rc == RESP_PARSE_ERROR) {
            char why[200];
            snprintf(why, sizeof why, "malformed reply: %s", err ? err : "?");
            peerDisconnect(p, why);
            return;
        }
        off += used;
        peerCall *c = p->head;
        p->head = c->next;
        if (!p->head) p->tail = NULL;
        p->ncalls--;
        c->fn(c->ctx, r, NULL);
        respReplyFree(r);
        free(c);
        if (gen != p->generation || p->closing) return; /* the callback closed us */
    }
    if (off) bufConsume(&p->in, off);
    if (p->in.len > p->opts.max_reply_bytes + 1024) {
        peerDisconnect(p, "reply too large");
        return;
    }
    if (!p->head && p->in.len) peerDisconnect(p, "unexpected data from the peer");
    peerArmTimer(p);
}

static void onWriteDone(uv_write_t *req, int status) {
    netPeer *p = req->data;
    p->writing = false;
    bufClear(&p->inflight);
    if (p->closing) {
        peerMaybeFree(p);
        return;
    }
    if (status < 0) {
        if (status != UV_ECANCELED && p->state == PEER_CONNECTED) peerDisconnect(p, uv_strerror(status));
        return;
    }
    peerFlush(p);
}

static void peerFlush(netPeer *p) {
    if (p->state != PEER_CONNECTED || p->writing || p->out.len == 0) return;
    /* Straight to the kernel first: a uv_write that completes at once still
     * costs an epoll_ctl when libuv drains its queue. */
    size_t len = p->out.len > UINT32_MAX ? UINT32_MAX : p->out.len;
    uv_buf_t first = uv_buf_init(p->out.data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)p->tcp, &first, 1);
    /* On an error, uv_write below meets it again and reports it from the
     * loop: failing the calls here would run their callbacks inside
     * netPeerCall. */
    if (n > 0) bufConsume(&p->out, (size_t)n);
    if (p->out.len == 0) return;
    buf tmp = p->inflight;
    p->inflight = p->out;
    p->out = tmp;
    bufClear(&p->out);
    uv_buf_t ub = uv_buf_init(p->inflight.data, (unsigned)p->inflight.len);
    p->write_req.data = p;
    p->writing = true;
    int rc = uv_write(&p->write_req, (uv_stream_t *)p->tcp, &ub, 1, onWriteDone);
    if (rc != 0) {
        p->writing = false;
        bufClear(&p->inflight);
        peerDisconnect(p, uv_strerror(rc));
    }
}

static void onConnect(uv_connect_t *req, int status) {
    netPeer *p = req->data;
    if (p->closing) return;
    if (status < 0) {
        if (status != UV_ECANCELED) peerDisconnect(p, uv_strerror(status));
        return;
    }
    p->state = PEER_CONNECTED;
    uv_tcp_nodelay(p->tcp, 1);
    uv_read_start((uv_stream_t *)p->tcp, onAlloc, onRead);
    peerFlush(p);
    peerArmTimer(p);
}

static void onResolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    netPeer *p = req->data;
    p->handles_open--;
    p->resolving = false;
    if (p->closing || p->resolve_generation != p->generation) {
        /* Closed, or timed out and disconnected while resolving. */
        if (res) uv_freeaddrinfo(res);
        if (p->closing) peerMaybeFree(p);
        else if (p->state == PEER_RESOLVING) peerConnect(p);
        return;
    }
    if (status < 0 || !res) {
        if (res) uv_freeaddrinfo(res);
        peerDisconnect(p, status < 0 ? uv_strerror(status) : "no address");
        return;
    }
    p->tcp = xcalloc(1, sizeof *p->tcp);
    uv_tcp_init(p->loop, p->tcp);
    p->tcp->data = p;
    p->handles_open++;
    p->state = PEER_CONNECTING;
    p->connect_req.data = p;
    int rc = uv_tcp_connect(&p->connect_req, p->tcp, res->ai_addr, onConnect);
    uv_freeaddrinfo(res);
    if (rc != 0) peerDisconnect(p, uv_strerror(rc));
}

static void peerConnect(netPeer *p) {
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char port[16];
    snprintf(port, sizeof port, "%d", p->port);
    p->state = PEER_RESOLVING;
    if (p->resolving) return; /* a stale resolution still runs; it restarts when it ends */
    p->resolving = true;
    p->resolve_generation = p->generation;
    p->resolve_req.data = p;
    p->handles_open++;
    int rc = uv_getaddrinfo(p->loop, &p->resolve_req, onResolved, p->host, port, &hints);
    if (rc != 0) {
        p->handles_open--;
        p->resolving = false;
        peerDisconnect(p, uv_strerror(rc));
    }
}

static void onTimer(uv_timer_t *t) {
    netPeer *p = t->data;
    if (!p->head) return;
    uint64_t now = uv_now(p->loop);
    if (now >= p->head->deadline_ms) {
        peerDisconnect(p, p->state == PEER_CONNECTED ? "timed out waiting for a reply" : "timed out connecting");
        return;
    }
    peerArmTimer(p);
}

static void peerArmTimer(netPeer *p) {
    if (p->closing) return;
    if (!p->head) {
        uv_timer_stop(&p->timer);
        return;
    }
    uint64_t now = uv_now(p->loop);
    uint64_t due = p->head->deadline_ms > now ? p->head->deadline_ms - now : 0;
    uv_timer_start(&p->timer, onTimer, due, 0);
}

netPeer *netPeerCreate(uv_loop_t *loop, const char *host, int port, const netPeerOptions *opts) {
    netPeer *p = xcalloc(1, sizeof *p);
    p->loop = loop;
    snprintf(p->host, sizeof p->host, "%s", host);
    p->port = port;
    snprintf(p->addr, sizeof p->addr, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    if (opts) p->opts = *opts;
    if (!p->opts.connect_timeout_ms) p->opts.connect_timeout_ms = PEER_DEFAULT_CONNECT_TIMEOUT_MS;
    if (!p->opts.call_timeout_ms) p->opts.call_timeout_ms = PEER_DEFAULT_CALL_TIMEOUT_MS;
    if (!p->opts.max_reply_bytes) p->opts.max_reply_bytes = PEER_DEFAULT_MAX_REPLY_BYTES;
    if (!p->opts.max_queued_bytes) p->opts.max_queued_bytes = PEER_DEFAULT_MAX_QUEUED_BYTES;
    bufInit(&p->out);
    bufInit(&p->inflight);
    bufInit(&p->in);
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    p->handles_open = 1;
    return p;
}

static void peerIgnoreReply(void *ctx, const respReply *reply, const char *err) {
    (void)ctx;
    (void)reply;
    (void)err;
}

void netPeerCall(netPeer *p, size_t argc, const char *const *argv, const size_t *lens,
                 netPeerReplyFn fn, void *ctx) {
    if (!fn) fn = peerIgnoreReply; /* a call whose answer nobody reads */
    if (p->closing) {
        fn(ctx, NULL, "peer closed");
        return;
    }
    if (netPeerQueuedBytes(p) > p->opts.max_queued_bytes) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s: too many queued requests", p->addr);
        fn(ctx, NULL, msg);
        return;
    }
    peerCall *c = xcalloc(1, sizeof *c);
    c->fn = fn;
    c->ctx = ctx;
    uint64_t now = uv_now(p->loop);
    c->deadline_ms = now + (p->state == PEER_CONNECTED ? p->opts.call_timeout_ms
                                                       : p->opts.connect_timeout_ms + p->opts.call_timeout_ms);
    if (p->tail) p->tail->next = c;
    else p->head = c;
    p->tail = c;
    p->ncalls++;
    respAddCommand(&p->out, argc, argv, lens);
    if (p->state == PEER_IDLE) peerConnect(p);
    else peerFlush(p);
    if (p->head == c) peerArmTimer(p);
}

void netPeerClose(netPeer *p) {
    if (p->closing) return;
    peerDisconnect(p, "peer closed");
    p->closing = true;
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, onTimerClosed);
    if (p->resolving) uv_cancel((uv_req_t *)&p->resolve_req);
}
