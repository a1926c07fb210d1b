/* Serialized writes (--use-mutex 1).
 *
 * A write command first takes the lock kv:<key> of every key it writes
 * from the lock coordinator (in key order, so two writes of the same keys
 * cannot deadlock), then runs with the largest fencing token stamped on
 * the versions it writes, is committed locally and pushed to every ALIVE
 * member, and only when each of them has acknowledged it are the locks
 * released and the reply sent. The next holder of a key's lock is
 * therefore granted only after the previous write is on every live
 * replica, so a read-modify-write (INCR) under the lock never loses an
 * update, and replicas refuse a write whose token is older than the one
 * they hold for the key (replication.c).
 *
 * The client is blocked meanwhile, and its pipeline waits. The command's
 * arguments are copied, since the input they pointed into moves on. */
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
#define MUTEX_NAME_KEY_MAX 500u /* longer keys are locked by their hash */

typedef struct mutexWrite {
    server *s;
    uint64_t client;
    const command *cmd;
    buf args;     /* the arguments' bytes */
    cmdArg *argv; /* pointing into args */
    size_t argc;
    buf names; /* lock names, each u16 length + bytes, sorted, unique */
    size_t nnames, acquired;
    uint64_t *tokens;
    size_t at; /* offset in names of the next lock to take */
    buf reply;
} mutexWrite;

static void mutexFree(mutexWrite *m) {
    bufFree(&m->args);
    bufFree(&m->names);
    bufFree(&m->reply);
    free(m->argv);
    free(m->tokens);
    free(m);
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

static void mutexReleaseAll(mutexWrite *m) {
    size_t at = 0;
    for (size_t i = 0; i < m->acquired; i++) {
        uint16_t n;
        memcpy(&n, m->names.data + at, sizeof n);
        coordRelease(m->s, m->client, m->names.data + at + sizeof n, n, m->tokens[i]);
        at += sizeof n + n;
    }
    if (m->acquired)
        eventsLocal(m->s, "MUTEX_REL", m->argc > 1 ? m->argv[1].p : NULL,
                    m->argc > 1 ? m->argv[1].len : 0, NULL, 0);
    m->acquired = 0;
}

/* Every live member has the write (or the batch failed): done. */
static void onWriteAcked(server *s, void *ctx, const char *err) {
    mutexWrite *m = ctx;
    mutexReleaseAll(m);
    client *c = serverFindClient(s, m->client);
    if (c && c->blocked) {
        if (err)
            respAddErrorFmt(c->out, "ERR write not acknowledged by the replicas: %s", err);
        else
            bufAppend(c->out, m->reply.data, m->reply.len);
        serverUnblock(c);
    }
    mutexFree(m);
}

static void mutexRun(mutexWrite *m) {
    server *s = m->s;
    client *c = serverFindClient(s, m->client);
    if (!c || !c->blocked) {
        mutexReleaseAll(m);
        mutexFree(m);
        return;
    }
    uint64_t token = 0;
    for (size_t i = 0; i < m->acquired; i++)
        if (m->tokens[i] > token) token = m->tokens[i];
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

static void mutexNext(mutexWrite *m);

static void onLockGranted(server *s, void *ctx, uint64_t token, const char *err) {
    mutexWrite *m = ctx;
    client *c = serverFindClient(s, m->client);
    if (err || !token) {
        mutexReleaseAll(m);
        if (c && c->blocked) {
            respAddErrorFmt(c->out, "ERR could not take the write lock: %s",
                            err ? err : "not granted");
            serverUnblock(c);
        }
        mutexFree(m);
        return;
    }
    m->tokens[m->acquired++] = token;
    if (!c || !c->blocked) { /* gone: give the locks back */
        mutexReleaseAll(m);
        mutexFree(m);
        return;
    }
    mutexNext(m);
}

static void mutexNext(mutexWrite *m) {
    if (m->acquired == m->nnames) {
        mutexRun(m);
        return;
    }
    uint16_t n;
    memcpy(&n, m->names.data + m->at, sizeof n);
    const char *name = m->names.data + m->at + sizeof n;
    m->at += sizeof n + n;
    coordAcquire(m->s, m->client, name, n, MUTEX_LEASE_MS, onLockGranted, m);
}

static void onBlockedWriteFree(client *c) {
    coordClientClosed(c->srv, c);
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
    m->tokens = xcalloc(m->nnames ? m->nnames : 1, sizeof *m->tokens);
    c->holds_locks = true;
    serverBlock(c, onBlockedWriteFree);
    eventsLocal(s, "MUTEX_REQ", m->argc > 1 ? m->argv[1].p : NULL, m->argc > 1 ? m->argv[1].len : 0,
                NULL, 0);
    mutexNext(m);
}
