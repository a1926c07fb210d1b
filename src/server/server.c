/* Client sessions, command dispatch and the durable-reply batch.
 *
 * Each connection's input is parsed and executed as soon as it arrives;
 * replies go to the connection's output buffer. Writes join the store's
 * open batch. At the end of the loop iteration (the net layer's
 * before_flush hook) the batch is committed, with an fsync when
 * --fsync always, and only then are replies written to sockets; the
 * batch's writes go to the other members after that (after_flush). If the
 * commit fails, no client is told its write succeeded: the replies of
 * every write in the batch are replaced by an error.
 *
 * Also here: the agent's run loop (listener, signals, the everysec flush
 * timer) and the node clock persisted beside the data. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "crypt/crypt.h"
#include "server/cluster.h"
#include "server/events.h"
#include "server/coordinator.h"
#include "server/replication.h"
#include "server/internal.h"
#include "util/log.h"

#define OUTPUT_PAUSE_BYTES (16u << 20) /* stop executing a client's pipeline above this */
#define CLOCK_META_KEY     "clock"
#define SUMMARY_META_KEY   "summary"

/* ---------- command lookup ---------- */

#define CMD_HASH_SLOTS 256
static const command *cmd_hash[CMD_HASH_SLOTS];
static bool cmd_hash_ready;

static uint32_t cmdHashName(const char *p, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)(p[i] | 0x20)) * 16777619u;
    return h;
}

static void cmdHashBuild(void) {
    for (size_t i = 0; i < serverCommandCount; i++) {
        const command *cmd = &serverCommands[i];
        uint32_t slot = cmdHashName(cmd->name, strlen(cmd->name)) % CMD_HASH_SLOTS;
        while (cmd_hash[slot]) slot = (slot + 1) % CMD_HASH_SLOTS;
        cmd_hash[slot] = cmd;
    }
    cmd_hash_ready = true;
}

const command *serverLookupCommand(const char *name, size_t len) {
    if (!cmd_hash_ready) cmdHashBuild();
    if (len == 0 || len > 32) return NULL;
    uint32_t slot = cmdHashName(name, len) % CMD_HASH_SLOTS;
    while (cmd_hash[slot]) {
        const command *cmd = cmd_hash[slot];
        if (strlen(cmd->name) == len && strncasecmp(cmd->name, name, len) == 0) return cmd;
        slot = (slot + 1) % CMD_HASH_SLOTS;
    }
    return NULL;
}

const command *serverCommandTable(size_t *n) {
    *n = serverCommandCount;
    return serverCommands;
}

uint64_t serverUptimeMs(const server *s) {
    return timeMonoMs() - s->start_ms;
}

/* ---------- argument helpers ---------- */

bool argIs(const cmdArg *a, const char *lit) {
    size_t n = strlen(lit);
    return a->len == n && strncasecmp(a->p, lit, n) == 0;
}

bool argToLongLong(const cmdArg *a, long long *out) {
    const char *p = a->p;
    size_t len = a->len;
    if (len == 0 || len > 20) return false;
    bool neg = false;
    size_t i = 0;
    if (p[0] == '-') {
        neg = true;
        i = 1;
        if (len == 1) return false;
    }
    if (p[i] == '0' && len > i + 1) return false;
    if (p[i] == '0' && neg) return false;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) return false;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(long long)v;
    } else {
        if (v > (uint64_t)INT64_MAX) return false;
        *out = (long long)v;
    }
    return true;
}

void serverReplyOk(client *c) {
    bufAppend(c->out, "+OK\r\n", 5);
}

void replyWrongArity(client *c) {
    char name[40];
    size_t n = c->argv[0].len < sizeof name - 1 ? c->argv[0].len : sizeof name - 1;
    for (size_t i = 0; i < n; i++) {
        char ch = c->argv[0].p[i];
        name[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : (ch < 32 || ch > 126 ? '?' : ch);
    }
    name[n] = '\0';
    respAddErrorFmt(c->out, "ERR wrong number of arguments for '%s' command", name);
}

void replySyntaxError(client *c) {
    respAddError(c->out, "ERR syntax error");
}

/* ---------- versions and the node clock ---------- */

void serverNewVersion(server *s, storeVersion *v) {
    nodeClockTick(&s->clock);
    bufClear(&s->scratch);
    vclockEncode(&s->clock.vc, &s->scratch);
    v->lamport = s->clock.lamport;
    v->token = s->write_token;
    v->origin = s->cfg.id;
    v->seq = vclockIncrement(&s->summary, s->cfg.id);
    v->change_seq = 0;
    v->flags = 0;
    s->summary_dirty = true;
    v->vclock = (const uint8_t *)s->scratch.data;
    v->vclock_len = s->scratch.len;
    s->clock_dirty = true;
}

/* The clock is stored as u64 little-endian Lamport time + encoded vclock,
 * written in the same batch as the writes it stamped, so after a restart
 * the node never reuses a version. */
static int serverSaveClock(server *s) {
    buf b;
    bufInit(&b);
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(s->clock.lamport >> (8 * i));
    bufAppend(&b, le, 8);
    vclockEncode(&s->clock.vc, &b);
    int rc = storeMetaPut(s->st, CLOCK_META_KEY, b.data, b.len);
    s->clock_dirty = false;
    if (rc == STORE_OK && s->summary_dirty) {
        bufClear(&b);
        vclockEncode(&s->summary, &b);
        rc = storeMetaPut(s->st, SUMMARY_META_KEY, b.data, b.len);
        s->summary_dirty = false;
    }
    bufFree(&b);
    return rc;
}

/* The summary as last committed; after a failed batch this undoes the
 * advances made for writes that were never applied. */
static int serverLoadSummary(server *s) {
    buf b;
    bufInit(&b);
    vclockClear(&s->summary);
    s->summary_dirty = false;
    int rc = storeMetaGet(s->st, SUMMARY_META_KEY, &b);
    size_t used = 0;
    if (rc == STORE_OK &&
        (vclockDecode((const uint8_t *)b.data, b.len, &s->summary, &used) != 0 || used != b.len))
        rc = STORE_ERR;
    bufFree(&b);
    return rc == STORE_ERR ? -1 : 0;
}

static int serverLoadClock(server *s, char *err, size_t errlen) {
    buf b;
    bufInit(&b);
    int rc = storeMetaGet(s->st, CLOCK_META_KEY, &b);
    if (rc == STORE_NOTFOUND) {
        bufFree(&b);
        return 0;
    }
    if (rc != STORE_OK || b.len < 8) goto corrupt;
    uint64_t lamport = 0;
    for (int i = 0; i < 8; i++) lamport |= (uint64_t)(uint8_t)b.data[i] << (8 * i);
    vclock vc;
    vclockInit(&vc);
    size_t used = 0;
    if (vclockDecode((const uint8_t *)b.data + 8, b.len - 8, &vc, &used) != 0 ||
        used != b.len - 8) {
        vclockFree(&vc);
        goto corrupt;
    }
    nodeClockRestore(&s->clock, lamport, &vc);
    vclockFree(&vc);
    bufFree(&b);
    if (serverLoadSummary(s) != 0) {
        snprintf(err, errlen, "data directory %s: the stored replication summary is unreadable",
                 s->cfg.data_dir);
        return -1;
    }
    storeCommit(s->st);
    return 0;
corrupt:
    bufFree(&b);
    snprintf(err, errlen, "data directory %s: the stored node clock is unreadable",
             s->cfg.data_dir);
    return -1;
}

/* ---------- the batch ---------- */

void serverWriteBegin(client *c) {
    if (c->batch_writes++ == 0) {
        c->batch_mark = c->out->len;
        c->batch_next = c->srv->batch_clients;
        c->srv->batch_clients = c;
    }
}

static void serverBatchFail(server *s, client *current, const char *why) {
    s->stats.batches_failed++;
    logWarn("a batch of writes was not applied: %s", why);
    replicationDiscard(s);
    if (serverLoadSummary(s) != 0)
        logWarn("cannot reload the replication summary: %s", storeError(s->st));
    for (client *c = s->batch_clients, *next; c; c = next) {
        next = c->batch_next;
        c->batch_next = NULL;
        /* One write whose reply is the last thing the client was sent can
         * simply become an error. Otherwise replies after the first write
         * of this pipeline described a state that was never committed, and
         * the only honest thing left is to close the connection. */
        bool lone = c->batch_writes == 1 && c->out->len == c->batch_tail;
        c->out->len = c->batch_mark;
        c->batch_writes = 0;
        if (c == current) continue; /* the caller appends its error */
        if (lone) {
            respAddErrorFmt(c->out, "ERR write not applied: %s", why);
        } else {
            respAddErrorFmt(c->out, "ERR write not applied: %s (connection closed)", why);
            netConnClose(c->conn);
        }
        netConnWantFlush(c->conn);
    }
    s->batch_clients = NULL;
}

void serverStoreFailed(client *c) {
    server *s = c->srv;
    const char *why = storeError(s->st);
    bool only_write = (c->batch_writes == 1);
    char msg[300];
    snprintf(msg, sizeof msg, "%s", why && *why ? why : "storage error");
    serverBatchFail(s, c, msg);
    respAddErrorFmt(c->out, "ERR write not applied: %s", msg);
    if (!only_write) netConnClose(c->conn);
}

/* Members get a commit's batches after the clients got their replies, as
 * a Redis master feeds its replicas after answering: a reply then does
 * not wait behind the sends and the wake-ups of the members they cause.
 * The next commit sends what is still due first, so a batch and the
 * serialized writes waiting on its acknowledgements stay together. */
void serverSendReplication(server *s) {
    if (!s->repl_flush_due) return;
    s->repl_flush_due = false;
    replicationFlush(s);
}

int serverCommitNow(server *s) {
    serverSendReplication(s);
    /* A dirty clock without a data write comes from traced reads and
     * membership events: it is saved too, so a restarted node never
     * reuses an event's sequence number. */
    if (!storeInBatch(s->st) && !s->clock_dirty && !s->summary_dirty && !replicationWaiting(s)) {
        storeCommit(s->st); /* releases the read snapshot */
        return STORE_OK;
    }
    int rc = STORE_OK;
    replicationStamp(s);
    if (s->clock_dirty || s->summary_dirty) rc = serverSaveClock(s);
    if (rc == STORE_OK) rc = storeCommit(s->st);
    if (rc != STORE_OK) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", storeError(s->st));
        serverBatchFail(s, NULL, msg);
    } else {
        s->repl_flush_due = true;
    }
    for (client *c = s->batch_clients, *next; c; c = next) {
        next = c->batch_next;
        c->batch_next = NULL;
        c->batch_writes = 0;
    }
    s->batch_clients = NULL;
    return rc;
}

static void serverBeforeFlush(void *ctx) {
    serverCommitNow(ctx);
}

static void serverAfterFlush(void *ctx) {
    serverSendReplication(ctx);
}

/* ---------- clients ---------- */

static void clientFree(client *c) {
    server *s = c->srv;
    if (c->on_free)
        c->on_free(c);
    else if (c->holds_locks)
        coordClientClosed(s, c);
    if (c->batch_writes) {
        /* Unlink from the open batch; its writes stay in the batch. */
        for (client **pp = &s->batch_clients; *pp; pp = &(*pp)->batch_next) {
            if (*pp == c) {
                *pp = c->batch_next;
                break;
            }
        }
    }
    if (c->resume_pending) {
        for (client **pp = &s->resume_list; *pp; pp = &(*pp)->resume_next) {
            if (*pp == c) {
                *pp = c->resume_next;
                break;
            }
        }
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nclients--;
    s->stats.net_in_closed += netConnBytesIn(c->conn);
    s->stats.net_out_closed += netConnBytesOut(c->conn);
    respParserFree(&c->parser);
    free(c->argv);
    free(c->name);
    free(c);
}

static void onOpen(void *ctx, netConn *conn) {
    server *s = ctx;
    s->stats.connections_received++;
    client *c = xcalloc(1, sizeof *c);
    c->srv = s;
    c->conn = conn;
    c->id = ++s->next_client_id;
    c->out = netConnOutput(conn);
    c->created_ms = c->last_cmd_ms = timeMonoMs();
    c->authenticated = s->cfg.requirepass[0] == '\0';
    respLimits lim = {RESP_DEFAULT_MAX_INLINE, (size_t)s->cfg.max_bulk_bytes,
                      RESP_DEFAULT_MAX_ARGS};
    respParserInit(&c->parser, &lim);
    c->next = s->clients;
    if (s->clients) s->clients->prev = c;
    s->clients = c;
    s->nclients++;
    netConnSetData(conn, c);
    if (s->nclients > (size_t)s->cfg.maxclients) {
        s->stats.connections_rejected++;
        respAddError(c->out, "ERR max number of clients reached");
        netConnClose(conn);
        netConnWantFlush(conn);
    }
}

static void onClose(void *ctx, netConn *conn) {
    (void)ctx;
    client *c = netConnGetData(conn);
    if (c) clientFree(c);
}

static void clientExecute(client *c) {
    const command *cmd = serverLookupCommand(c->argv[0].p, c->argv[0].len);
    if (!cmd) {
        buf msg;
        bufInit(&msg);
        bufAppendStr(&msg, "ERR unknown command '");
        size_t n = c->argv[0].len > 128 ? 128 : c->argv[0].len;
        bufAppend(&msg, c->argv[0].p, n);
        bufAppendStr(&msg, "', with args beginning with: ");
        for (size_t i = 1; i < c->argc && msg.len < 512; i++) {
            bufAppendChar(&msg, '\'');
            bufAppend(&msg, c->argv[i].p, c->argv[i].len > 128 ? 128 : c->argv[i].len);
            bufAppendStr(&msg, "' ");
        }
        bufAppendChar(&msg, '\0');
        respAddErrorFmt(c->out, "%s", msg.data);
        bufFree(&msg);
        return;
    }
    bool peer_ok = (cmd->flags & CMD_PEER) && c->srv->keys; /* sealed with the cluster key */
    if (!c->authenticated && !(cmd->flags & CMD_NOAUTH) && !peer_ok) {
        respAddError(c->out, "NOAUTH Authentication required.");
        return;
    }
    if ((cmd->arity > 0 && c->argc != (size_t)cmd->arity) ||
        (cmd->arity < 0 && c->argc < (size_t)-cmd->arity)) {
        replyWrongArity(c);
        return;
    }
    c->last_cmd = cmd;
    ((command *)cmd)->calls++;
    if ((cmd->flags & CMD_WRITE) && !(cmd->flags & CMD_PEER) && replicationBehindSelf(c->srv)) {
        respAddError(c->out, "TRYAGAIN this node is reading back its earlier writes (its data "
                             "directory is new or older than the cluster's copy)");
        return;
    }
    if (mutexWanted(c->srv, cmd)) {
        mutexExecute(c, cmd);
        return;
    }
    cmd->proc(c);
    if (c->batch_writes) c->batch_tail = c->out->len;
}

/* Parses and runs every complete command in the client's input. */
static void clientProcessInput(client *c) {
    server *s = c->srv;
    buf *in = netConnInput(c->conn);
    while (!c->blocked && !netConnClosing(c->conn) && c->qpos < in->len) {
        if (netConnPendingBytes(c->conn) > OUTPUT_PAUSE_BYTES) {
            /* The client is not reading its replies: stop executing its
             * pipeline until they drain. */
            c->paused_for_output = true;
            netConnPauseReading(c->conn);
            break;
        }
        char *data = in->data + c->qpos;
        int r = respParseCommand(&c->parser, data, in->len - c->qpos);
        if (r == RESP_PARSE_MORE) {
            size_t have = in->len - c->qpos;
            if (c->parser.need > have) netConnReserveInput(c->conn, c->parser.need - have);
            break;
        }
        if (r == RESP_PARSE_ERROR) {
            s->stats.protocol_errors++;
            respAddErrorFmt(c->out, "ERR Protocol error: %s", c->parser.error);
            logInfo("closing client %s: protocol error: %s", netConnPeer(c->conn), c->parser.error);
            netConnClose(c->conn);
            c->qpos = in->len;
            break;
        }
        if (c->parser.argc > 0) {
            if (c->parser.argc > c->argv_cap) {
                c->argv_cap = c->parser.argc < 16 ? 16 : c->parser.argc;
                c->argv = xrealloc(c->argv, c->argv_cap * sizeof *c->argv);
            }
            for (size_t i = 0; i < c->parser.argc; i++) {
                c->argv[i].p = data + c->parser.argv[i].off;
                c->argv[i].len = c->parser.argv[i].len;
            }
            c->argc = c->parser.argc;
            s->stats.commands_processed++;
            clientExecute(c);
            c->argc = 0;
            if (netConnPendingBytes(c->conn) > s->cfg.max_output_bytes) {
                s->stats.output_limit_disconnects++;
                logWarn("closing client %s: output buffer over %" PRIu64 " bytes",
                        netConnPeer(c->conn), s->cfg.max_output_bytes);
                bufClear(c->out);
                netConnClose(c->conn);
            }
        }
        c->qpos += c->parser.consumed;
        respParserReset(&c->parser);
    }
    if (c->qpos) {
        if (c->qpos >= in->len)
            in->len = 0;
        else
            bufConsume(in, c->qpos);
        c->qpos = 0;
    }
    if (in->len > s->cfg.max_query_bytes) {
        s->stats.query_limit_disconnects++;
        respAddError(c->out, "ERR Protocol error: client query buffer exceeds --max-query-buffer");
        logWarn("closing client %s: query buffer over %" PRIu64 " bytes", netConnPeer(c->conn),
                s->cfg.max_query_bytes);
        netConnClose(c->conn);
    }
    c->last_cmd_ms = timeMonoMs();
    if (c->out->len) netConnWantFlush(c->conn);
}

void serverBlock(client *c, void (*on_free)(client *c)) {
    c->blocked = true;
    c->on_free = on_free;
}

/* The commands a client sent while it was blocked run on the next pass of
 * the loop, never inside the callback that unblocked it: that may be a
 * Raft apply or a replication acknowledgement, which a command could
 * otherwise re-enter (a pipelined DMKV.LOCKOP proposing from inside
 * libraft's apply callback, say). */
void serverUnblock(client *c) {
    if (!c->blocked) return;
    server *s = c->srv;
    c->blocked = false;
    c->on_free = NULL;
    netConnWantFlush(c->conn);
    if (c->resume_pending) return;
    c->resume_pending = true;
    c->resume_next = s->resume_list;
    s->resume_list = c;
    if (s->resume_soon) s->resume_soon(s);
}

static void serverResumeClients(server *s) {
    while (s->resume_list) {
        client *c = s->resume_list;
        s->resume_list = c->resume_next;
        c->resume_pending = false;
        if (!c->blocked && !c->paused_for_output) clientProcessInput(c);
    }
    mutexSettleIdle(s);
}

client *serverFindClient(server *s, uint64_t id) {
    for (client *c = s->clients; c; c = c->next)
        if (c->id == id) return c;
    return NULL;
}

static void onData(void *ctx, netConn *conn) {
    (void)ctx;
    client *c = netConnGetData(conn);
    clientProcessInput(c);
}

static void onDrained(void *ctx, netConn *conn) {
    (void)ctx;
    client *c = netConnGetData(conn);
    if (!c->paused_for_output) return;
    c->paused_for_output = false;
    netConnResumeReading(conn);
    clientProcessInput(c);
}

/* ---------- the run loop ---------- */

typedef struct agentLoop {
    server srv;
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    uv_timer_t sync_timer;
    uv_timer_t resume_timer; /* runs unblocked clients' commands (serverUnblock) */
    uv_work_t sync_work;
    bool sync_running;
    int sync_rc;
    bool shutdown_started;
} agentLoop;

static void onResumeTimer(uv_timer_t *t) {
    agentLoop *a = t->data;
    serverResumeClients(&a->srv);
}

static void agentResumeSoon(server *s) {
    agentLoop *a = (agentLoop *)s;
    uv_timer_start(&a->resume_timer, onResumeTimer, 0, 0);
}

static void onSyncWork(uv_work_t *w) {
    agentLoop *a = w->data;
    a->sync_rc = storeSync(a->srv.st);
}

static void onSyncDone(uv_work_t *w, int status) {
    agentLoop *a = w->data;
    a->sync_running = false;
    if (status == 0 && a->sync_rc != STORE_OK)
        logWarn("flush to disk failed: %s", storeError(a->srv.st));
}

/* --fsync everysec: flush on the thread pool so the loop never waits. */
static void onSyncTimer(uv_timer_t *t) {
    agentLoop *a = t->data;
    storeStats st;
    storeGetStats(a->srv.st, &st);
    if (a->sync_running || st.pending_sync == 0) return;
    a->sync_running = true;
    a->sync_work.data = a;
    if (uv_queue_work(&a->loop, &a->sync_work, onSyncWork, onSyncDone) != 0)
        a->sync_running = false;
}

static void onNetClosed(void *ctx) {
    server *s = ctx;
    agentLoop *a = (agentLoop *)s;
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sync_timer, NULL);
    uv_close((uv_handle_t *)&a->resume_timer, NULL);
}

static void onCoordStopped(void *ctx) {
    server *s = ctx;
    netServerShutdown(s->net, onNetClosed);
}

static void onClusterStopped(void *ctx) {
    server *s = ctx;
    serverSendReplication(s);
    replicationStop(s);
    eventsStop(s);
    coordStop(s, onCoordStopped, s);
}

static void agentStop(server *s) {
    agentLoop *a = (agentLoop *)s;
    if (a->shutdown_started) return;
    a->shutdown_started = true;
    s->stopping = true;
    logInfo("shutting down");
    uv_timer_stop(&a->sync_timer);
    /* Leave the cluster first (LEFT, not DEAD), still serving clients. */
    if (s->cl) {
        clusterStop(s->cl, onClusterStopped, s);
    } else {
        eventsStop(s);
        coordStop(s, onCoordStopped, s);
    }
}

static void onSignal(uv_signal_t *h, int signum) {
    agentLoop *a = h->data;
    logInfo("received %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
    agentStop(&a->srv);
}

/* Start-up failed after the loop was set up: release its handles. */
static void agentAbortLoop(agentLoop *a) {
    netServerShutdown(a->srv.net, NULL);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    netServerFree(a->srv.net);
    uv_loop_close(&a->loop);
}

int serverRun(const serverConfig *cfg) {
    agentLoop *a = xcalloc(1, sizeof *a);
    server *s = &a->srv;
    s->cfg = *cfg;
    s->start_ms = timeMonoMs();
    s->request_stop = agentStop;
    bufInit(&s->scratch);
    nodeClockInit(&s->clock, cfg->id);
    vclockInit(&s->summary);
    for (size_t i = 0; i < SCAN_CURSORS; i++) bufInit(&s->cursors[i].last_key);
    int code = 1;
    char err[512];

    if (cryptInit() != 0) {
        fprintf(stderr, "dmkv agent: cannot initialise libsodium\n");
        goto out;
    }
    if (cfg->cluster_key[0] || cfg->cluster_key_file[0]) {
        int krc = cfg->cluster_key[0]
                      ? keyringParse(&s->keys, cfg->cluster_key, err, sizeof err)
                      : keyringLoadFile(&s->keys, cfg->cluster_key_file, err, sizeof err);
        if (krc != 0) {
            fprintf(stderr, "dmkv agent: %s\n", err);
            goto out;
        }
    }
    storeOptions so = {
        .dir = cfg->data_dir, .fsync = cfg->fsync, .map_size_bytes = cfg->max_db_bytes};
    if (storeOpen(&s->st, &so, err, sizeof err) != STORE_OK) {
        fprintf(stderr, "dmkv agent: %s\n", err);
        goto out;
    }
    if (serverLoadClock(s, err, sizeof err) != 0) {
        fprintf(stderr, "dmkv agent: %s\n", err);
        goto out_store;
    }
    uv_loop_init(&a->loop);
    s->loop = &a->loop;
    netHandlers h = {
        .ctx = s,
        .on_open = onOpen,
        .on_data = onData,
        .on_drained = onDrained,
        .on_close = onClose,
        .before_flush = serverBeforeFlush,
        .after_flush = serverAfterFlush,
    };
    s->net = netServerCreate(&a->loop, &h);
    if (netServerListen(s->net, cfg->host, cfg->tcp_port, err, sizeof err) != 0) {
        fprintf(stderr, "dmkv agent: %s\n", err);
        agentAbortLoop(a);
        goto out_store;
    }
    if (coordStart(s, err, sizeof err) != 0) {
        fprintf(stderr, "dmkv agent: %s\n", err);
        agentAbortLoop(a);
        goto out_store;
    }
    if (eventsStart(s, &a->loop, err, sizeof err) != 0) {
        fprintf(stderr, "dmkv agent: %s\n", err);
        coordStop(s, NULL, NULL);
        agentAbortLoop(a);
        goto out_store;
    }
    s->cl = clusterStart(s, &a->loop, err, sizeof err);
    if (!s->cl) {
        fprintf(stderr, "dmkv agent: %s\n", err);
        eventsStop(s);
        coordStop(s, NULL, NULL);
        agentAbortLoop(a);
        goto out_store;
    }
    replicationStart(s);
    coordWatchMembers(s);
    uv_signal_init(&a->loop, &a->sigint);
    uv_signal_init(&a->loop, &a->sigterm);
    a->sigint.data = a->sigterm.data = a;
    uv_signal_start(&a->sigint, onSignal, SIGINT);
    uv_signal_start(&a->sigterm, onSignal, SIGTERM);
    uv_timer_init(&a->loop, &a->sync_timer);
    uv_timer_init(&a->loop, &a->resume_timer);
    a->resume_timer.data = a;
    s->resume_soon = agentResumeSoon;
    a->sync_timer.data = a;
    if (cfg->fsync == STORE_FSYNC_EVERYSEC) uv_timer_start(&a->sync_timer, onSyncTimer, 1000, 1000);

    storeStats st;
    storeGetStats(s->st, &st);
    logInfo("dmkv %s node %" PRIu32 " ready: clients on %s:%d, data in %s (%" PRIu64
            " keys, fsync %s)",
            DMKV_VERSION, cfg->id, cfg->host, cfg->tcp_port, cfg->data_dir, st.live_keys,
            cfg->fsync == STORE_FSYNC_ALWAYS     ? "always"
            : cfg->fsync == STORE_FSYNC_EVERYSEC ? "everysec"
                                                 : "no");
    uv_run(&a->loop, UV_RUN_DEFAULT);
    code = s->exit_code;
    clusterFree(s->cl);
    netServerFree(s->net);
    if (uv_loop_close(&a->loop) != 0) logWarn("event loop closed with handles open");
out_store:
    storeClose(s->st);
    if (code == 0) logInfo("stopped; data is on disk");
out:
    mutexFreeState(s);
    if (s->keys) keyringFree(s->keys);
    nodeClockFree(&s->clock);
    vclockFree(&s->summary);
    bufFree(&s->scratch);
    for (size_t i = 0; i < SCAN_CURSORS; i++) bufFree(&s->cursors[i].last_key);
    free(a);
    return code;
}

int agentMain(int argc, char **argv) {
    serverConfig cfg;
    int rc = serverParseArgs(&cfg, argc, argv);
    if (rc == 1) return 0;
    if (rc < 0) return 2;
    logSetup("agent", cfg.id, (enum logLevel)cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    return serverRun(&cfg);
}
