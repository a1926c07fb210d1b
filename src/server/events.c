/* Event emission and the push to the logger; see events.h.
 *
 * Events are encoded to JSON lines at once (so the queue holds bytes, and
 * its bound is a byte count) and sent as `LOG.EVENTS <lines>` over one
 * persistent connection, one batch in flight at a time. The logger answers
 * after storing a batch; a batch that failed is sent again after a backoff,
 * and the logger drops the duplicates by (node, seq). */
#include "server/events.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "net/peer.h"
#include "server/internal.h"
#include "trace/trace.h"
#include "util/log.h"

#define EVENTS_QUEUE_MAX_BYTES (8u << 20)
#define EVENTS_BATCH_MAX_BYTES (1u << 20)
#define EVENTS_FLUSH_MS 50
#define EVENTS_BACKOFF_MIN_MS 100
#define EVENTS_BACKOFF_MAX_MS 5000
#define EVENTS_MAX_KEY_BYTES 512
#define EVENTS_MAX_DETAIL_BYTES 256

typedef struct eventSink {
    uv_loop_t *loop;
    netPeer *peer;
    uv_timer_t timer;
    buf queue;        /* JSON lines not yet acknowledged, oldest first */
    size_t queued;    /* events in queue */
    size_t inflight_bytes, inflight_events; /* the head of queue being sent */
    bool sending;
    uint32_t backoff_ms;
    uint64_t next_try_ms;
    uint64_t sent, dropped, failures;
    bool stopping;
} eventSink;

static eventSink *sinkOf(const server *s) {
    return (eventSink *)s->events;
}

bool eventsEnabled(const server *s) {
    return s->events != NULL;
}

/* Keys and values are binary; events carry text. Backslashes, control
 * bytes and NUL are written as \\ and \xHH, so two different keys never
 * look the same in the trace. Cut at cap - 1 bytes. */
static void eventsPrintable(const char *src, size_t len, char *dst, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch == '\\' || ch < 0x20 || ch == 0x7f) {
            if (o + 4 >= cap) break;
            dst[o++] = '\\';
            if (ch == '\\') {
                dst[o++] = '\\';
            } else {
                dst[o++] = 'x';
                dst[o++] = hex[ch >> 4];
                dst[o++] = hex[ch & 15];
            }
        } else {
            if (o + 1 >= cap) break;
            dst[o++] = (char)ch;
        }
    }
    dst[o] = '\0';
}

static void eventsRecord(server *s, const char *kind, const char *key, size_t key_len, const char *detail,
                         size_t detail_len, const char *msg) {
    eventSink *k = sinkOf(s);
    s->events_total++;
    if (!k) return;
    traceEvent e;
    memset(&e, 0, sizeof e);
    e.node = s->cfg.id;
    e.seq = vclockGet(&s->clock.vc, s->cfg.id);
    e.wall_us = timeNowUs();
    e.lamport = s->clock.lamport;
    e.vc = s->clock.vc; /* borrowed: only read by the encoder */
    snprintf(e.kind, sizeof e.kind, "%s", kind);
    char keybuf[EVENTS_MAX_KEY_BYTES + 1], detailbuf[EVENTS_MAX_DETAIL_BYTES + 1];
    if (key) {
        eventsPrintable(key, key_len, keybuf, sizeof keybuf);
        e.key = keybuf;
    }
    if (detail) {
        eventsPrintable(detail, detail_len, detailbuf, sizeof detailbuf);
        e.detail = detailbuf;
    }
    e.msg = (char *)msg;
    if (k->queue.len >= EVENTS_QUEUE_MAX_BYTES) {
        k->dropped++;
        return;
    }
    traceEventToJson(&e, &k->queue);
    k->queued++;
    /* The event's tick must survive a restart, or the next life of this
     * node would reuse its sequence numbers. */
    s->clock_dirty = true;
}

void eventsLocal(server *s, const char *kind, const char *key, size_t key_len, const char *detail,
                 size_t detail_len) {
    if (!s->events) {
        s->events_total++;
        return;
    }
    nodeClockTick(&s->clock);
    eventsRecord(s, kind, key, key_len, detail, detail_len, NULL);
}

void eventsAtCurrentClock(server *s, const char *kind, const char *key, size_t key_len,
                          const char *detail, size_t detail_len, const char *msg) {
    eventsRecord(s, kind, key, key_len, detail, detail_len, msg);
}

static void onBatchReply(void *ctx, const respReply *r, const char *err) {
    server *s = ctx;
    eventSink *k = sinkOf(s);
    if (!k) return; /* stopped: the batch is abandoned */
    k->sending = false;
    uint64_t now = uv_now(k->loop);
    if (!err && r->type != RESP_ERROR) {
        bufConsume(&k->queue, k->inflight_bytes);
        k->queued -= k->inflight_events;
        k->sent += k->inflight_events;
        k->backoff_ms = 0;
        k->next_try_ms = now;
    } else {
        k->failures++;
        if (k->failures == 1 || k->failures % 100 == 0)
            logWarn("logger %s: %s (events are queued, then dropped if it stays away)",
                    s->cfg.logger_addr, err ? err : r->str);
        k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : EVENTS_BACKOFF_MIN_MS;
        if (k->backoff_ms > EVENTS_BACKOFF_MAX_MS) k->backoff_ms = EVENTS_BACKOFF_MAX_MS;
        k->next_try_ms = now + k->backoff_ms;
    }
    k->inflight_bytes = k->inflight_events = 0;
}

static void eventsSendBatch(server *s) {
    eventSink *k = sinkOf(s);
    if (k->sending || k->queue.len == 0 || uv_now(k->loop) < k->next_try_ms) return;
    /* Whole lines, up to the batch limit. */
    size_t bytes = 0, events = 0;
    while (bytes < k->queue.len && bytes < EVENTS_BATCH_MAX_BYTES) {
        const char *nl = memchr(k->queue.data + bytes, '\n', k->queue.len - bytes);
        if (!nl) break;
        bytes = (size_t)(nl - k->queue.data) + 1;
        events++;
    }
    if (!events) return;
    k->inflight_bytes = bytes;
    k->inflight_events = events;
    k->sending = true;
    const char *av[2] = {"LOG.EVENTS", k->queue.data};
    size_t al[2] = {10, bytes};
    netPeerCall(k->peer, 2, av, al, onBatchReply, s);
}

static void onFlushTimer(uv_timer_t *t) {
    eventsSendBatch(t->data);
}

int eventsStart(server *s, uv_loop_t *loop, char *err, size_t errlen) {
    if (!s->cfg.logger_addr[0]) return 0;
    char host[300];
    snprintf(host, sizeof host, "%s", s->cfg.logger_addr);
    char *colon = strrchr(host, ':');
    int port = colon ? atoi(colon + 1) : 0;
    if (!colon || port < 1 || port > 65535) {
        snprintf(err, errlen, "--logger-addr must be HOST:PORT, got '%s'", s->cfg.logger_addr);
        return -1;
    }
    *colon = '\0';
    char *h = host;
    if (h[0] == '[') {
        h++;
        char *close = strchr(h, ']');
        if (close) *close = '\0';
    }
    eventSink *k = xcalloc(1, sizeof *k);
    k->loop = loop;
    bufInit(&k->queue);
    netPeerOptions o = {.connect_timeout_ms = 1000, .call_timeout_ms = 3000};
    k->peer = netPeerCreate(loop, h, port, &o);
    uv_timer_init(loop, &k->timer);
    k->timer.data = s;
    uv_timer_start(&k->timer, onFlushTimer, EVENTS_FLUSH_MS, EVENTS_FLUSH_MS);
    s->events = k;
    logInfo("streaming events to the logger at %s", s->cfg.logger_addr);
    return 0;
}

static void onTimerClosed(uv_handle_t *h) {
    eventSink *k = h->data;
    bufFree(&k->queue);
    free(k);
}

void eventsStop(server *s) {
    eventSink *k = sinkOf(s);
    if (!k) return;
    s->events = NULL;
    if (k->queued) logInfo("%zu events not delivered to the logger at shutdown", k->queued);
    netPeerClose(k->peer); /* fails the batch in flight, whose callback sees events == NULL */
    uv_timer_stop(&k->timer);
    k->timer.data = k;
    uv_close((uv_handle_t *)&k->timer, onTimerClosed);
}

void eventsInfo(const server *s, buf *out) {
    eventSink *k = sinkOf(s);
    bufPrintf(out, "events_total:%" PRIu64 "\r\nlogger:%s\r\n", s->events_total,
              k ? s->cfg.logger_addr : "none");
    if (k)
        bufPrintf(out,
                  "events_queued:%zu\r\nevents_queued_bytes:%zu\r\nevents_sent:%" PRIu64
                  "\r\nevents_dropped:%" PRIu64 "\r\nlogger_failures:%" PRIu64 "\r\n",
                  k->queued, k->queue.len, k->sent, k->dropped, k->failures);
}
