/* libuv binding of the connection layer; see net.h.
 *
 * Output path: replies accumulate in `out`. At flush, a connection with
 * no write in flight tries uv_try_write; what the kernel does not take is
 * moved to `inflight` and handed to uv_write, while new replies keep
 * accumulating in `out`. So at most one write request per connection is
 * in flight and no reply is copied more than once. */
#include "net/net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "util/log.h"

#define NET_BACKLOG          511
#define NET_READ_CHUNK_BYTES (64 * 1024)
/* An idle connection gives back input buffers that grew past this. */
#define NET_KEEP_BUFFER_BYTES (256 * 1024)

struct netConn {
    uv_tcp_t tcp;
    uv_write_t write_req;
    netServer *server;
    buf in;
    buf out;
    buf inflight;
    size_t reserve_hint;
    bool writing;
    bool closing;
    bool closed;
    bool paused;
    bool want_flush;
    bool drained_wanted;
    void *data;
    char peer[64];
    uint64_t bytes_in;
    uint64_t bytes_out;
    netConn *next, *prev; /* all connections */
    netConn *flush_next;  /* connections with output to flush */
};

struct netServer {
    uv_loop_t *loop;
    netHandlers h;
    uv_tcp_t listener;
    bool listening;
    uv_check_t check;
    uv_prepare_t prepare;
    netConn *conns;
    size_t nconns;
    netConn *flush_list;
    bool shutting_down;
    void (*shutdown_done)(void *ctx);
    uv_timer_t grace;
    bool grace_active;
    int handles_open;
};

/* How long a shutdown waits for slow readers to take their last replies. */
#define NET_SHUTDOWN_GRACE_MS 1000

static void connFlush(netConn *c);

static void connUnlink(netServer *s, netConn *c) {
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
}

static void onServerHandleClosed(uv_handle_t *h);

static void maybeShutdownDone(netServer *s) {
    if (s->shutting_down && s->nconns == 0 && s->grace_active) {
        s->grace_active = false;
        uv_timer_stop(&s->grace);
        uv_close((uv_handle_t *)&s->grace, onServerHandleClosed);
        return; /* continues when the timer handle is closed */
    }
    if (s->shutting_down && s->nconns == 0 && s->handles_open == 0 && s->shutdown_done) {
        void (*done)(void *) = s->shutdown_done;
        s->shutdown_done = NULL;
        done(s->h.ctx);
    }
}

static void onConnClosed(uv_handle_t *h) {
    netConn *c = h->data;
    netServer *s = c->server;
    connUnlink(s, c);
    if (c->want_flush) {
        for (netConn **pp = &s->flush_list; *pp; pp = &(*pp)->flush_next) {
            if (*pp == c) {
                *pp = c->flush_next;
                break;
            }
        }
    }
    if (s->h.on_close) s->h.on_close(s->h.ctx, c);
    bufFree(&c->in);
    bufFree(&c->out);
    bufFree(&c->inflight);
    free(c);
    maybeShutdownDone(s);
}

/* Closes the socket now, dropping unwritten output. */
static void connCloseNow(netConn *c) {
    if (c->closed) return;
    c->closed = true;
    c->closing = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, onConnClosed);
}

static void onAlloc(uv_handle_t *h, size_t suggested, uv_buf_t *out) {
    (void)suggested;
    netConn *c = h->data;
    size_t want = NET_READ_CHUNK_BYTES;
    if (c->reserve_hint > want) want = c->reserve_hint;
    bufReserve(&c->in, want);
    out->base = c->in.data + c->in.len;
    out->len = c->in.cap - c->in.len;
}

static void onRead(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b) {
    (void)b;
    netConn *c = stream->data;
    if (nread < 0) {
        connCloseNow(c);
        return;
    }
    if (nread == 0 || c->closing) return;
    c->in.len += (size_t)nread;
    c->bytes_in += (uint64_t)nread;
    c->reserve_hint = 0;
    c->server->h.on_data(c->server->h.ctx, c);
    if (!c->closing && c->in.len == 0) bufShrink(&c->in, NET_KEEP_BUFFER_BYTES);
}

/* Everything queued reached the kernel: finish a close, or let a paused
 * owner continue. */
static void connAllWritten(netConn *c) {
    if (c->closing) {
        connCloseNow(c);
        return;
    }
    if (c->drained_wanted) {
        c->drained_wanted = false;
        if (c->server->h.on_drained) c->server->h.on_drained(c->server->h.ctx, c);
    }
}

static void onWriteDone(uv_write_t *req, int status) {
    netConn *c = req->data;
    c->writing = false;
    if (status < 0) {
        connCloseNow(c);
        return;
    }
    c->bytes_out += c->inflight.len;
    bufClear(&c->inflight);
    bufShrink(&c->inflight, NET_KEEP_BUFFER_BYTES);
    if (c->out.len)
        connFlush(c);
    else
        connAllWritten(c);
}

static void connFlush(netConn *c) {
    if (c->closed || c->writing) return;
    if (c->out.len == 0) {
        if (c->closing) connCloseNow(c);
        return;
    }
    uv_buf_t ub =
        uv_buf_init(c->out.data, (unsigned)(c->out.len > UINT32_MAX ? UINT32_MAX : c->out.len));
    int n = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
    if (n < 0 && n != UV_EAGAIN) {
        connCloseNow(c);
        return;
    }
    if (n > 0) {
        c->bytes_out += (uint64_t)n;
        bufConsume(&c->out, (size_t)n);
    }
    if (c->out.len == 0) {
        bufShrink(&c->out, NET_KEEP_BUFFER_BYTES);
        connAllWritten(c);
        return;
    }
    /* The kernel is full: hand the rest to libuv and keep collecting. */
    buf tmp = c->inflight;
    c->inflight = c->out;
    c->out = tmp;
    bufClear(&c->out);
    ub = uv_buf_init(c->inflight.data, (unsigned)c->inflight.len);
    c->write_req.data = c;
    c->writing = true;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &ub, 1, onWriteDone) != 0) {
        c->writing = false;
        connCloseNow(c);
    }
}

void netServerFlush(netServer *s) {
    if (s->h.before_flush) s->h.before_flush(s->h.ctx);
    /* Flushing may run on_drained, and after_flush may complete requests
     * (writes waiting on the members): both may queue more output, so loop
     * until the list stays empty. */
    for (;;) {
        while (s->flush_list) {
            netConn *list = s->flush_list;
            s->flush_list = NULL;
            while (list) {
                netConn *c = list;
                list = c->flush_next;
                c->flush_next = NULL;
                c->want_flush = false;
                connFlush(c);
            }
            if (s->flush_list && s->h.before_flush) s->h.before_flush(s->h.ctx);
        }
        if (s->h.after_flush) s->h.after_flush(s->h.ctx);
        if (!s->flush_list) break;
        if (s->h.before_flush) s->h.before_flush(s->h.ctx);
    }
}

static void onCheck(uv_check_t *h) {
    netServerFlush(h->data);
}

static void onPrepare(uv_prepare_t *h) {
    netServerFlush(h->data);
}

static void onConnection(uv_stream_t *listener, int status) {
    netServer *s = listener->data;
    if (status < 0) {
        logWarn("accept failed: %s", uv_strerror(status));
        return;
    }
    netConn *c = xcalloc(1, sizeof *c);
    c->server = s;
    bufInit(&c->in);
    bufInit(&c->out);
    bufInit(&c->inflight);
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(c->peer, sizeof c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[48] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof ip);
            port = ntohs(a->sin_port);
            snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof ip);
            port = ntohs(a->sin6_port);
            snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip, port);
        }
    }
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (s->h.on_open) s->h.on_open(s->h.ctx, c);
    if (!c->closing) uv_read_start((uv_stream_t *)&c->tcp, onAlloc, onRead);
}

netServer *netServerCreate(uv_loop_t *loop, const netHandlers *h) {
    netServer *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->h = *h;
    uv_check_init(loop, &s->check);
    s->check.data = s;
    uv_check_start(&s->check, onCheck);
    uv_prepare_init(loop, &s->prepare);
    s->prepare.data = s;
    uv_prepare_start(&s->prepare, onPrepare);
    s->handles_open = 2;
    return s;
}

int netServerListen(netServer *s, const char *host, int port, char *err, size_t errlen) {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve bind address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    s->handles_open++;
    rc = uv_tcp_bind(&s->listener, res->ai_addr, 0);
    freeaddrinfo(res);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, NET_BACKLOG, onConnection);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, uv_strerror(rc));
        return -1;
    }
    s->listening = true;
    return 0;
}

static void onServerHandleClosed(uv_handle_t *h) {
    netServer *s = h->data;
    s->handles_open--;
    maybeShutdownDone(s);
}

static void onGraceOver(uv_timer_t *t) {
    netServer *s = t->data;
    for (netConn *c = s->conns; c; c = c->next) connCloseNow(c);
}

void netServerShutdown(netServer *s, void (*done)(void *ctx)) {
    if (s->shutting_down) return;
    s->shutting_down = true;
    s->shutdown_done = done;
    netServerFlush(s);
    if (s->listener.data == s && !uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, onServerHandleClosed);
    for (netConn *c = s->conns; c; c = c->next) netConnClose(c);
    netServerFlush(s);
    uv_check_stop(&s->check);
    uv_prepare_stop(&s->prepare);
    uv_close((uv_handle_t *)&s->check, onServerHandleClosed);
    uv_close((uv_handle_t *)&s->prepare, onServerHandleClosed);
    for (netConn *c = s->conns; c; c = c->next)
        if (!c->writing) connCloseNow(c);
    /* Connections still writing get a grace period, then are cut. */
    uv_timer_init(s->loop, &s->grace);
    s->grace.data = s;
    s->handles_open++;
    s->grace_active = true;
    uv_timer_start(&s->grace, onGraceOver, NET_SHUTDOWN_GRACE_MS, 0);
    maybeShutdownDone(s);
}

void netServerFree(netServer *s) {
    free(s);
}

int netServerBoundPort(netServer *s) {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (!s->listening || uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

size_t netServerConnCount(const netServer *s) {
    return s->nconns;
}

buf *netConnInput(netConn *c) {
    return &c->in;
}

buf *netConnOutput(netConn *c) {
    return &c->out;
}

void netConnWantFlush(netConn *c) {
    if (c->want_flush || c->closed) return;
    c->want_flush = true;
    c->flush_next = c->server->flush_list;
    c->server->flush_list = c;
}

size_t netConnPendingBytes(const netConn *c) {
    return c->out.len + c->inflight.len;
}

void netConnReserveInput(netConn *c, size_t bytes) {
    c->reserve_hint = bytes;
}

void netConnPauseReading(netConn *c) {
    if (c->paused || c->closed) return;
    c->paused = true;
    c->drained_wanted = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
}

void netConnResumeReading(netConn *c) {
    if (!c->paused || c->closing) return;
    c->paused = false;
    c->drained_wanted = false;
    uv_read_start((uv_stream_t *)&c->tcp, onAlloc, onRead);
}

void netConnClose(netConn *c) {
    if (c->closing) return;
    c->closing = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (!c->writing && c->out.len == 0) {
        connCloseNow(c);
        return;
    }
    netConnWantFlush(c);
}

bool netConnClosing(const netConn *c) {
    return c->closing;
}

void netConnSetData(netConn *c, void *data) {
    c->data = data;
}

void *netConnGetData(const netConn *c) {
    return c->data;
}

const char *netConnPeer(const netConn *c) {
    return c->peer;
}

uint64_t netConnBytesIn(const netConn *c) {
    return c->bytes_in;
}

uint64_t netConnBytesOut(const netConn *c) {
    return c->bytes_out;
}
