/* Push replication; see replication.h and src/replicate/replicate.h.
 *
 * Each local write is encoded, at once, into a pending batch for every
 * member that is alive at that moment. When the loop iteration's store
 * batch has committed, each pending batch becomes one DMKV.REPL call on a
 * persistent, pipelined link to that member, stamped with the node's
 * clocks (a send event) and sealed with the cluster key when there is one.
 * A receiver applies the records by the replicate module's rule in its own
 * store batch and answers only after that batch is durable.
 *
 * Not yet here: anti-entropy. A member that is down, partitioned or whose
 * link fails misses those writes until a later write of the same key. */
#include "server/replication.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "crypt/crypt.h"
#include "net/peer.h"
#include "replicate/replicate.h"
#include "server/cluster.h"
#include "server/events.h"
#include "server/internal.h"
#include "util/log.h"

#define REPL_PEER_MAX_QUEUED_BYTES (64u << 20)
#define REPL_MAX_PEERS 1024

static const uint8_t AD_REPL[] = "dmkv-repl-v1";

typedef struct replPeer {
    uint32_t id;
    char host[64];
    int port;
    netPeer *link;
    buf pending; /* encoded records */
    uint32_t pending_count;
    uint64_t batches_sent, records_sent, failures, dropped;
} replPeer;

typedef struct replState {
    replPeer *peers;
    size_t npeers;
    uint64_t received_batches, applied, ignored, conflicts, rejected;
    buf scratch;
} replState;

static replState *replOf(server *s) {
    if (!s->repl) {
        replState *r = xcalloc(1, sizeof *r);
        bufInit(&r->scratch);
        s->repl = r;
    }
    return s->repl;
}

static replPeer *replPeerFor(replState *r, uint32_t id, const char *host, int port) {
    for (size_t i = 0; i < r->npeers; i++) {
        replPeer *p = &r->peers[i];
        if (p->id != id) continue;
        if (strcmp(p->host, host) != 0 || p->port != port) { /* the member moved */
            if (p->link) netPeerClose(p->link);
            p->link = NULL;
            snprintf(p->host, sizeof p->host, "%s", host);
            p->port = port;
        }
        return p;
    }
    if (r->npeers >= REPL_MAX_PEERS) return NULL;
    r->peers = xrealloc(r->peers, (r->npeers + 1) * sizeof *r->peers);
    replPeer *p = &r->peers[r->npeers++];
    memset(p, 0, sizeof *p);
    p->id = id;
    snprintf(p->host, sizeof p->host, "%s", host);
    p->port = port;
    bufInit(&p->pending);
    return p;
}

typedef struct queueCtx {
    server *s;
    replState *r;
    const void *key;
    size_t klen;
    const storeRecord *rec;
} queueCtx;

static void queueForMember(void *ctx, uint32_t id, const char *host, int tcp_port) {
    queueCtx *q = ctx;
    replPeer *p = replPeerFor(q->r, id, host, tcp_port);
    if (!p) return;
    if (p->pending.len + (p->link ? netPeerQueuedBytes(p->link) : 0) > REPL_PEER_MAX_QUEUED_BYTES) {
        p->dropped++;
        return;
    }
    replBatchAdd(&p->pending, q->key, q->klen, q->rec);
    p->pending_count++;
}

void replicationQueue(server *s, const void *key, size_t klen, const storeRecord *rec) {
    if (!s->cl) return;
    queueCtx q = {s, replOf(s), key, klen, rec};
    clusterForEachAlive(s->cl, queueForMember, &q);
}

void replicationDiscard(server *s) {
    replState *r = s->repl;
    if (!r) return;
    for (size_t i = 0; i < r->npeers; i++) {
        bufClear(&r->peers[i].pending);
        r->peers[i].pending_count = 0;
    }
}

typedef struct sendCtx {
    server *s;
    uint32_t peer_id;
    uint32_t records;
} sendCtx;

static void onReplReply(void *ctx, const respReply *reply, const char *err) {
    sendCtx *x = ctx;
    replState *r = x->s->repl;
    if (r) {
        for (size_t i = 0; i < r->npeers; i++) {
            replPeer *p = &r->peers[i];
            if (p->id != x->peer_id) continue;
            if (err || reply->type == RESP_ERROR) {
                p->failures++;
                if (p->failures == 1 || p->failures % 100 == 0)
                    logWarn("replication to node %" PRIu32 " failed: %s (%" PRIu32 " writes not delivered)",
                            p->id, err ? err : reply->str, x->records);
            } else {
                p->records_sent += x->records;
            }
            break;
        }
    }
    free(x);
}

static void onAuthIgnored(void *ctx, const respReply *r, const char *err) {
    (void)ctx;
    (void)r;
    (void)err;
}

void replicationFlush(server *s) {
    replState *r = s->repl;
    if (!r) return;
    for (size_t i = 0; i < r->npeers; i++) {
        replPeer *p = &r->peers[i];
        if (!p->pending_count) continue;
        if (!p->link) {
            netPeerOptions o = {.connect_timeout_ms = 1000, .call_timeout_ms = 5000};
            p->link = netPeerCreate(s->loop, p->host, p->port, &o);
            if (s->cfg.requirepass[0]) {
                const char *av[2] = {"AUTH", s->cfg.requirepass};
                netPeerCall(p->link, 2, av, NULL, onAuthIgnored, NULL);
            }
        }
        /* The send is an event: tick, and carry the clocks. */
        char msg_id[REPL_MAX_MSG_ID];
        nodeClockTick(&s->clock);
        s->clock_dirty = true;
        snprintf(msg_id, sizeof msg_id, "%" PRIu32 ":%" PRIu64, s->cfg.id, vclockGet(&s->clock.vc, s->cfg.id));
        char detail[48];
        int dn = snprintf(detail, sizeof detail, "to %" PRIu32 ": %" PRIu32 " writes", p->id, p->pending_count);
        eventsAtCurrentClock(s, "REPL_SEND", NULL, 0, detail, (size_t)dn, msg_id);
        bufClear(&r->scratch);
        size_t at = replBatchBegin(&r->scratch, s->cfg.id, s->clock.lamport, &s->clock.vc, msg_id);
        bufAppend(&r->scratch, p->pending.data, p->pending.len);
        replBatchEnd(&r->scratch, at, p->pending_count);
        const char *blob = r->scratch.data;
        size_t blen = r->scratch.len;
        buf sealed;
        bufInit(&sealed);
        if (s->keys) {
            cryptSeal(s->keys, AD_REPL, sizeof AD_REPL - 1, (const uint8_t *)blob, blen, &sealed);
            blob = sealed.data;
            blen = sealed.len;
        }
        sendCtx *x = xcalloc(1, sizeof *x);
        x->s = s;
        x->peer_id = p->id;
        x->records = p->pending_count;
        const char *av[2] = {"DMKV.REPL", blob};
        size_t al[2] = {9, blen};
        p->batches_sent++;
        netPeerCall(p->link, 2, av, al, onReplReply, x);
        bufFree(&sealed);
        bufClear(&p->pending);
        p->pending_count = 0;
    }
}

void replicationStop(server *s) {
    replState *r = s->repl;
    if (!r) return;
    s->repl = NULL;
    for (size_t i = 0; i < r->npeers; i++) {
        if (r->peers[i].link) netPeerClose(r->peers[i].link);
        bufFree(&r->peers[i].pending);
    }
    free(r->peers);
    bufFree(&r->scratch);
    free(r);
}

void replicationInfo(server *s, buf *out) {
    replState *r = s->repl;
    bufPrintf(out, "mode:%s\r\n", s->cfg.use_mutex ? "mutex" : "eventual");
    if (!r) {
        bufPrintf(out, "peers:0\r\n");
        return;
    }
    bufPrintf(out,
              "peers:%zu\r\nbatches_received:%" PRIu64 "\r\nwrites_applied:%" PRIu64 "\r\nwrites_ignored:%" PRIu64
              "\r\nconflicts:%" PRIu64 "\r\nbatches_rejected:%" PRIu64 "\r\n",
              r->npeers, r->received_batches, r->applied, r->ignored, r->conflicts, r->rejected);
    for (size_t i = 0; i < r->npeers; i++) {
        replPeer *p = &r->peers[i];
        bufPrintf(out,
                  "peer%" PRIu32 ":addr=%s:%d,queued_bytes=%zu,batches_sent=%" PRIu64 ",writes_sent=%" PRIu64
                  ",failures=%" PRIu64 ",dropped=%" PRIu64 "\r\n",
                  p->id, p->host, p->port, p->pending.len + (p->link ? netPeerQueuedBytes(p->link) : 0),
                  p->batches_sent, p->records_sent, p->failures, p->dropped);
    }
}

/* ---- receiving ---- */

void cmdRepl(client *c) {
    server *s = c->srv;
    replState *r = replOf(s);
    const uint8_t *data = (const uint8_t *)c->argv[1].p;
    size_t len = c->argv[1].len;
    buf opened;
    bufInit(&opened);
    if (s->keys) {
        if (cryptOpen(s->keys, AD_REPL, sizeof AD_REPL - 1, data, len, &opened, NULL) != 0) {
            r->rejected++;
            respAddError(c->out, "ERR replication batch not sealed with this cluster's key");
            bufFree(&opened);
            return;
        }
        data = (const uint8_t *)opened.data;
        len = opened.len;
    }
    replHeader h;
    vclockInit(&h.vc);
    replBatchReader rd;
    if (replBatchOpen(data, len, &h, &rd) != 0) {
        r->rejected++;
        respAddError(c->out, "ERR malformed replication batch");
        goto out;
    }
    /* Validate the whole batch before applying any of it. */
    {
        replBatchReader probe = rd;
        const uint8_t *k;
        size_t kl;
        storeRecord rec;
        int rc;
        while ((rc = replBatchNext(&probe, &k, &kl, &rec)) == 1) {
        }
        if (rc != 0) {
            r->rejected++;
            respAddError(c->out, "ERR malformed replication batch");
            goto out;
        }
    }
    r->received_batches++;
    nodeClockReceive(&s->clock, h.lamport, &h.vc);
    s->clock_dirty = true;
    eventsAtCurrentClock(s, "REPL_RECV", NULL, 0, NULL, 0, h.msg_id[0] ? h.msg_id : NULL);
    serverWriteBegin(c);
    const uint8_t *k;
    size_t kl;
    storeRecord in;
    buf old_vc, old_val, merged_vc;
    bufInit(&old_vc);
    bufInit(&old_val);
    bufInit(&merged_vc);
    bool failed = false;
    while (!failed && replBatchNext(&rd, &k, &kl, &in) == 1) {
        storeRecord cur;
        int rc = storeGet(s->st, k, kl, &cur);
        if (rc == STORE_ERR) {
            failed = true;
            break;
        }
        /* Copy what is stored: a put may move it. */
        storeRecord stored = cur;
        if (rc == STORE_OK) {
            bufClear(&old_vc);
            bufAppend(&old_vc, cur.ver.vclock, cur.ver.vclock_len);
            bufClear(&old_val);
            bufAppend(&old_val, cur.value, cur.value_len);
            stored.ver.vclock = (const uint8_t *)old_vc.data;
            stored.value = old_val.data;
        }
        replDecision d = replDecide(rc == STORE_OK ? &stored.ver : NULL, &in.ver);
        if (d == REPL_KEEP) {
            r->ignored++;
            continue;
        }
        storeRecord put = in;
        if (d == REPL_CONFLICT) {
            r->conflicts++;
            replResolve(&stored, &in, &put, &merged_vc);
            char detail[160];
            int dn = snprintf(detail, sizeof detail, "node%" PRIu32 "@L%" PRIu64 " || node%" PRIu32 "@L%" PRIu64
                              " -> node%" PRIu32, stored.ver.origin, stored.ver.lamport, in.ver.origin,
                              in.ver.lamport, put.ver.origin);
            eventsLocal(s, "CONFLICT", (const char *)k, kl, detail, (size_t)dn);
        }
        if (storePut(s->st, k, kl, &put) != STORE_OK) {
            failed = true;
            break;
        }
        r->applied++;
        if (eventsEnabled(s)) eventsLocal(s, "APPLY_LOCAL", (const char *)k, kl, put.value, put.value_len);
    }
    bufFree(&old_vc);
    bufFree(&old_val);
    bufFree(&merged_vc);
    if (failed) serverStoreFailed(c);
    else serverReplyOk(c);
out:
    vclockFree(&h.vc);
    bufFree(&opened);
}
