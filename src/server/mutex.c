/* Serialized writes (--use-mutex 1).
 *
 * A write command first holds the lock kv:<key> of every key it writes
 * (in key order, so two writes of the same keys cannot deadlock), then
 * runs with the largest fencing token stamped on the versions it writes,
 * is committed locally and pushed to every ALIVE member, and only when
 * each of them has acknowledged it is the reply sent. A lock is released
 * only when every write that ran under it has been acknowledged, so the
 * next holder is granted only after those writes are on every live
 * replica: a read-modify-write (INCR) under the lock never loses an
 * update, and replicas refuse a write whose token is older than the one
 * they hold for the key (replication.c).
 *
 * The locks are held by the node (owner: this node's MUTEX_CLIENT), not
 * by each client: while the node holds kv:<key>, its other writes of that
 * key run at once, one after another on the event loop, under the same
 * token, each replied to when its own acknowledgements are in. Nothing on
 * another node can write the key meanwhile, and this node's own writes are
 * already serialized by its single event loop, so sharing the grant loses
 * nothing; it saves two Raft commits per write when many clients write
 * the same key on one node. A hold stops taking new writes (and is
 * released once its writes are acknowledged) as soon as another node is
 * seen waiting for the lock, or after MUTEX_HOLD_MAX_MS, well inside the
 * lease; writes that arrive then ask for the lock again, behind the
 * waiters already in line. A hold with no write left is released at once.
 *
 * A node that was down, cut off or held DEAD by the previous holder may
 * have missed that holder's writes (a push to a member that is not live is
 * not waited for). So before the writes of a fresh grant run, the node
 * reads the change feed of every live member (replicationCatchUp), each
 * read begun after the grant: whatever an earlier holder wrote and
 * released is then here.
 *
 * A client is blocked while its write waits, and its pipeline waits. The
 * command's arguments are copied, since the input they pointed into moves
 * on. */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/coordinator.h"
#include "server/events.h"
#include "server/internal.h"
#include "server/replication.h"
#include "util/log.h"

#define MUTEX_LEASE_MS     10000u
#define MUTEX_HOLD_MAX_MS  1000u             /* a hold takes new writes for at most this long */
#define MUTEX_NAME_KEY_MAX 500u              /* longer keys are locked by their hash */
#define MUTEX_CLIENT       COORD_NODE_CLIENT /* the node's holds belong to it */

typedef struct mutexWrite mutexWrite;

/* The node's hold on one lock: being acquired (token 0, acquiring), held
 * (token set), and the writes waiting for it. */
typedef struct mutexHold {
    struct mutexHold *next; /* hash chain */
    buf name;
    uint64_t hash;
    uint64_t token;         /* 0 while not held */
    uint64_t granted_token; /* granted, waiting for replicationCatchUp */
    uint64_t granted_ms;
    bool acquiring;
    bool closed;         /* takes no new writes; released when pinned drops to 0 */
    bool granting;       /* onHoldGranted is walking its waiters: not freed meanwhile */
    size_t pinned;       /* writes that entered it and are not done */
    bool settle_pending; /* idle: released on the next loop pass unless used again */
    struct mutexHold *settle_next;
    mutexWrite *wait_head, *wait_tail;
} mutexHold;

typedef struct mutexState {
    mutexHold *settle_list; /* idle holds, released on the next loop pass */
    mutexHold **buckets;
    size_t mask, count;
    uint8_t hash_key[crypto_shorthash_KEYBYTES];
    uint64_t writes, grants, shared, releases, holds_closed;
} mutexState;

struct mutexWrite {
    server *s;
    uint64_t client;
    const command *cmd;
    buf args;     /* the arguments' bytes */
    cmdArg *argv; /* pointing into args */
    size_t argc;
    buf names; /* lock names, each u16 length + bytes, sorted, unique */
    size_t nnames, entered;
    mutexHold **holds; /* the holds entered, in name order */
    size_t at;         /* offset in names of the next lock to enter */
    mutexWrite *next_wait;
    buf reply;
};

static mutexState *stateOf(server *s) {
    if (!s->mutex) {
        mutexState *m = xcalloc(1, sizeof *m);
        m->mask = 15;
        m->buckets = xcalloc(m->mask + 1, sizeof *m->buckets);
        randombytes_buf(m->hash_key, sizeof m->hash_key);
        s->mutex = m;
    }
    return s->mutex;
}

void mutexFreeState(server *s) {
    mutexState *m = s->mutex;
    if (!m) return;
    /* Every write has ended by now (replication and the coordinator fail
     * what is left when they stop), and with them every hold. */
    if (m->count) logWarn("mutex: %zu lock holds left at shutdown", m->count);
    for (size_t i = 0; i <= m->mask; i++) {
        for (mutexHold *h = m->buckets[i], *next; h; h = next) {
            next = h->next;
            bufFree(&h->name);
            free(h);
        }
    }
    free(m->buckets);
    free(m);
    s->mutex = NULL;
}

void mutexInfo(server *s, buf *out) {
    mutexState *m = s->mutex;
    bufPrintf(out,
              "mutex_writes:%" PRIu64 "\r\nmutex_grants:%" PRIu64 "\r\nmutex_shared_writes:%" PRIu64
              "\r\nmutex_releases:%" PRIu64 "\r\nmutex_holds_closed:%" PRIu64
              "\r\nmutex_holds:%zu\r\n",
              m ? m->writes : 0, m ? m->grants : 0, m ? m->shared : 0, m ? m->releases : 0,
              m ? m->holds_closed : 0, m ? m->count : 0);
}

/* Lock name of a key: kv:<key>, or kv#<hash> for keys too long for a name. */
static void mutexName(const cmdArg *k, buf *out) {
    bufClear(out);
    if (k->len <= MUTEX_NAME_KEY_MAX) {
        bufAppendStr(out, "kv:");
        bufAppend(out, k->p, k->len);
        return;
    }
    uint8_t h[16];
    crypto_generichash(h, sizeof h, (const uint8_t *)k->p, k->len, NULL, 0);
    bufAppendStr(out, "kv#");
    for (size_t i = 0; i < sizeof h; i++) bufPrintf(out, "%02x", h[i]);
}

static int nameCompare(const void *a, const void *b) {
    const buf *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->data, y->data, n) : 0;
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* ---- The holds -------------------------------------------------------- */

static uint64_t nameHash(const mutexState *m, const char *name, size_t len) {
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const uint8_t *)name, len, m->hash_key);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return v;
}

static void holdsGrow(mutexState *m) {
    size_t n = (m->mask + 1) * 2;
    mutexHold **b = xcalloc(n, sizeof *b);
    for (size_t i = 0; i <= m->mask; i++) {
        for (mutexHold *h = m->buckets[i], *next; h; h = next) {
            next = h->next;
            h->next = b[h->hash & (n - 1)];
            b[h->hash & (n - 1)] = h;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->mask = n - 1;
}

static mutexHold *holdGet(mutexState *m, const char *name, size_t len) {
    uint64_t hv = nameHash(m, name, len);
    for (mutexHold *h = m->buckets[hv & m->mask]; h; h = h->next)
        if (h->hash == hv && h->name.len == len && memcmp(h->name.data, name, len) == 0) return h;
    if (m->count >= m->mask + 1) holdsGrow(m);
    mutexHold *h = xcalloc(1, sizeof *h);
    bufInit(&h->name);
    bufAppend(&h->name, name, len);
    h->hash = hv;
    h->next = m->buckets[hv & m->mask];
    m->buckets[hv & m->mask] = h;
    m->count++;
    return h;
}

static void holdDelete(mutexState *m, mutexHold *h) {
    if (h->settle_pending) {
        for (mutexHold **pp = &m->settle_list; *pp; pp = &(*pp)->settle_next) {
            if (*pp == h) {
                *pp = h->settle_next;
                break;
            }
        }
    }
    for (mutexHold **pp = &m->buckets[h->hash & m->mask]; *pp; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    }
    m->count--;
    bufFree(&h->name);
    free(h);
}

static void holdAcquire(server *s, mutexHold *h);

/* A hold nobody uses any more is given back; if writes wait for it (they
 * came while it was closed), it is asked for again. An open hold that
 * just fell idle is kept to the next loop pass: a client whose write was
 * just answered sends its next one then (serverUnblock), and a pipelined
 * client's next command is already waiting to run under it. */
static void holdSettle(server *s, mutexHold *h) {
    mutexState *m = stateOf(s);
    if (h->granting || h->pinned || h->acquiring) return;
    if (h->token && !h->closed && !s->stopping) {
        if (!h->settle_pending) {
            h->settle_pending = true;
            h->settle_next = m->settle_list;
            m->settle_list = h;
            if (s->resume_soon) s->resume_soon(s);
        }
        return;
    }
    if (h->token) {
        coordRelease(s, MUTEX_CLIENT, h->name.data, h->name.len, h->token);
        h->token = 0;
        h->closed = false;
        m->releases++;
    }
    if (h->wait_head)
        holdAcquire(s, h);
    else
        holdDelete(m, h);
}

static void holdUnpin(server *s, mutexHold *h) {
    h->pinned--;
    holdSettle(s, h);
}

void mutexSettleIdle(server *s) {
    mutexState *m = s->mutex;
    if (!m) return;
    while (m->settle_list) {
        mutexHold *h = m->settle_list;
        m->settle_list = h->settle_next;
        h->settle_pending = false;
        if (h->pinned || h->granting || h->acquiring) continue; /* in use again */
        h->closed = true; /* idle for a whole pass: give it back */
        holdSettle(s, h);
    }
}

/* Whether a new write may still run under the hold. */
static bool holdOpen(server *s, mutexHold *h) {
    if (!h->token || h->closed) return false;
    if (timeMonoMs() - h->granted_ms >= MUTEX_HOLD_MAX_MS ||
        coordWaiters(s, h->name.data, h->name.len) > 0) {
        h->closed = true;
        stateOf(s)->holds_closed++;
        return false;
    }
    return true;
}

/* ---- The writes ------------------------------------------------------- */

static void mutexFree(mutexWrite *m) {
    bufFree(&m->args);
    bufFree(&m->names);
    bufFree(&m->reply);
    free(m->argv);
    free(m->holds);
    free(m);
}

/* The write is over: its holds may be given back. */
static void writeEnd(mutexWrite *m) {
    server *s = m->s;
    size_t n = m->entered;
    m->entered = 0;
    for (size_t i = 0; i < n; i++) holdUnpin(s, m->holds[i]);
    if (n)
        eventsLocal(s, "MUTEX_REL", m->argc > 1 ? m->argv[1].p : NULL,
                    m->argc > 1 ? m->argv[1].len : 0, NULL, 0);
    mutexFree(m);
}

static void writeFail(mutexWrite *m, const char *fmt, const char *why) {
    client *c = serverFindClient(m->s, m->client);
    if (c && c->blocked) {
        respAddErrorFmt(c->out, fmt, why);
        serverUnblock(c);
    }
    writeEnd(m);
}

/* Every live member has the write (or the batch failed): done. */
static void onWriteAcked(server *s, void *ctx, const char *err) {
    mutexWrite *m = ctx;
    client *c = serverFindClient(s, m->client);
    if (c && c->blocked) {
        if (err)
            respAddErrorFmt(c->out, "ERR write not acknowledged by the replicas: %s", err);
        else
            bufAppend(c->out, m->reply.data, m->reply.len);
        serverUnblock(c);
    }
    writeEnd(m);
}

static void mutexRun(mutexWrite *m) {
    server *s = m->s;
    client *c = serverFindClient(s, m->client);
    if (!c || !c->blocked) {
        writeEnd(m);
        return;
    }
    uint64_t token = 0;
    for (size_t i = 0; i < m->entered; i++)
        if (m->holds[i]->token > token) token = m->holds[i]->token;
    eventsLocal(s, "MUTEX_GOT", m->argc > 1 ? m->argv[1].p : NULL, m->argc > 1 ? m->argv[1].len : 0,
                NULL, 0);
    /* Run the command as if it had just arrived, with the token on its
     * versions; hold its reply until the replicas have the write. */
    cmdArg *saved_argv = c->argv;
    size_t saved_argc = c->argc;
    c->argv = m->argv;
    c->argc = m->argc;
    size_t mark = c->out->len;
    s->write_token = token;
    m->cmd->proc(c);
    s->write_token = 0;
    if (c->batch_writes) c->batch_tail = c->out->len;
    bufAppend(&m->reply, c->out->data + mark, c->out->len - mark);
    c->out->len = mark;
    c->argv = saved_argv;
    c->argc = saved_argc;
    replicationOnAcked(s, onWriteAcked, m);
}

/* Enters the holds of the write's locks in name order, each as soon as
 * it is held; runs the write once it is in all of them. */
static void mutexNext(mutexWrite *m) {
    mutexState *st = stateOf(m->s);
    while (m->entered < m->nnames) {
        uint16_t n;
        memcpy(&n, m->names.data + m->at, sizeof n);
        mutexHold *h = holdGet(st, m->names.data + m->at + sizeof n, n);
        if (!holdOpen(m->s, h)) {
            m->next_wait = NULL;
            if (h->wait_tail)
                h->wait_tail->next_wait = m;
            else
                h->wait_head = m;
            h->wait_tail = m;
            /* Not held: ask for it. Closed: it is asked for again once its
             * writes are done (holdSettle). */
            if (!h->token && !h->acquiring) holdAcquire(m->s, h);
            return;
        }
        st->shared++; /* an open hold: its grant was taken for another write */
        h->pinned++;
        m->holds[m->entered++] = h;
        m->at += sizeof n + n;
    }
    mutexRun(m);
}

static void holdGranted(server *s, mutexHold *h, uint64_t token, const char *err) {
    mutexState *st = stateOf(s);
    h->acquiring = false;
    mutexWrite *w = h->wait_head;
    h->wait_head = h->wait_tail = NULL;
    h->granting = true;
    if (err || !token) {
        while (w) {
            mutexWrite *next = w->next_wait;
            writeFail(w, "ERR could not take the write lock: %s", err ? err : "not granted");
            w = next;
        }
    } else {
        st->grants++;
        h->token = token;
        h->closed = false;
        while (w) {
            mutexWrite *next = w->next_wait;
            client *c = serverFindClient(s, w->client);
            if (!c || !c->blocked) {
                writeEnd(w); /* gone: its other holds go too */
            } else {
                uint16_t n;
                memcpy(&n, w->names.data + w->at, sizeof n);
                w->at += sizeof n + n;
                if (h->pinned) st->shared++;
                h->pinned++;
                w->holds[w->entered++] = h;
                mutexNext(w);
            }
            w = next;
        }
    }
    h->granting = false;
    holdSettle(s, h);
}

static void onHoldCaughtUp(server *s, void *ctx) {
    mutexHold *h = ctx;
    if (s->stopping) { /* no write runs on what may be stale now */
        coordRelease(s, MUTEX_CLIENT, h->name.data, h->name.len, h->granted_token);
        holdGranted(s, h, 0, "the node is shutting down");
        return;
    }
    holdGranted(s, h, h->granted_token, NULL);
}

/* Granted: the writes run once this node holds every write the lock's
 * earlier holders made (replicationCatchUp); until then the hold stays
 * acquiring, so nothing settles or reuses it. */
static void onHoldGranted(server *s, void *ctx, uint64_t token, const char *err) {
    mutexHold *h = ctx;
    if (err || !token) {
        holdGranted(s, h, token, err);
        return;
    }
    h->granted_token = token;
    h->granted_ms = timeMonoMs(); /* the lease began before this */
    replicationCatchUp(s, onHoldCaughtUp, h);
}

static void holdAcquire(server *s, mutexHold *h) {
    h->acquiring = true;
    coordAcquire(s, MUTEX_CLIENT, h->name.data, h->name.len, MUTEX_LEASE_MS, onHoldGranted, h);
}

bool mutexWanted(server *s, const command *cmd) {
    return s->cfg.use_mutex && s->coord && (cmd->flags & CMD_WRITE) && !(cmd->flags & CMD_PEER) &&
           cmd->first_key > 0;
}

void mutexExecute(client *c, const command *cmd) {
    server *s = c->srv;
    mutexWrite *m = xcalloc(1, sizeof *m);
    m->s = s;
    m->client = c->id;
    m->cmd = cmd;
    bufInit(&m->args);
    bufInit(&m->names);
    bufInit(&m->reply);
    for (size_t i = 0; i < c->argc; i++) bufAppend(&m->args, c->argv[i].p, c->argv[i].len);
    m->argc = c->argc;
    m->argv = xmalloc(c->argc * sizeof *m->argv);
    for (size_t i = 0, at = 0; i < c->argc; i++) {
        m->argv[i].p = m->args.data + at;
        m->argv[i].len = c->argv[i].len;
        at += c->argv[i].len;
    }
    /* The keys it writes, as sorted unique lock names. */
    size_t last =
        cmd->last_key < 0 ? c->argc + (size_t)(cmd->last_key + 1) - 1 : (size_t)cmd->last_key;
    if (last >= c->argc) last = c->argc - 1;
    size_t nkeys = 0;
    buf *names = xcalloc(c->argc, sizeof *names);
    for (size_t i = (size_t)cmd->first_key; i <= last; i += (size_t)cmd->key_step) {
        bufInit(&names[nkeys]);
        mutexName(&m->argv[i], &names[nkeys]);
        nkeys++;
    }
    qsort(names, nkeys, sizeof *names, nameCompare);
    for (size_t i = 0; i < nkeys; i++) {
        if (i == 0 || nameCompare(&names[i], &names[i - 1]) != 0) {
            uint16_t n = (uint16_t)names[i].len;
            bufAppend(&m->names, &n, sizeof n);
            bufAppend(&m->names, names[i].data, names[i].len);
            m->nnames++;
        }
        bufFree(&names[i]);
    }
    free(names);
    m->holds = xcalloc(m->nnames ? m->nnames : 1, sizeof *m->holds);
    stateOf(s)->writes++;
    serverBlock(c, NULL); /* a write whose client goes ends when its turn comes */
    eventsLocal(s, "MUTEX_REQ", m->argc > 1 ? m->argv[1].p : NULL, m->argc > 1 ? m->argv[1].len : 0,
                NULL, 0);
    mutexNext(m);
}
