/* Connection and introspection commands: what redis-cli, redis-benchmark
 * and client libraries send around the data commands (handshakes, AUTH,
 * CLIENT, COMMAND, CONFIG GET, INFO). */
#include <fnmatch.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "server/cluster.h"
#include "server/events.h"
#include "server/coordinator.h"
#include "server/replication.h"
#include "server/internal.h"
#include "util/log.h"

#define CLIENT_NAME_MAX 256

void cmdPing(client *c) {
    if (c->argc > 2) {
        replyWrongArity(c);
        return;
    }
    if (c->argc == 2)
        respAddBulk(c->out, c->argv[1].p, c->argv[1].len);
    else
        respAddSimple(c->out, "PONG");
}

void cmdEcho(client *c) {
    respAddBulk(c->out, c->argv[1].p, c->argv[1].len);
}

void cmdQuit(client *c) {
    serverReplyOk(c);
    netConnClose(c->conn);
}

void cmdSelect(client *c) {
    long long db;
    if (!argToLongLong(&c->argv[1], &db)) {
        respAddError(c->out, "ERR value is not an integer or out of range");
        return;
    }
    if (db != 0) {
        respAddError(c->out, "ERR DB index is out of range (dmkv has one database, 0)");
        return;
    }
    serverReplyOk(c);
}

/* Constant-time comparison, so the reply time says nothing about how much
 * of a guess was right. */
static bool passwordMatches(const server *s, const cmdArg *pass) {
    size_t want = strlen(s->cfg.requirepass);
    if (pass->len != want) return false;
    return sodium_memcmp(pass->p, s->cfg.requirepass, want) == 0;
}

static bool authCheck(client *c, const cmdArg *user, const cmdArg *pass) {
    server *s = c->srv;
    if (user && !argIs(user, "default")) {
        s->stats.auth_failures++;
        respAddError(c->out, "WRONGPASS invalid username-password pair or user is disabled.");
        return false;
    }
    if (!passwordMatches(s, pass)) {
        s->stats.auth_failures++;
        respAddError(c->out, "WRONGPASS invalid username-password pair or user is disabled.");
        return false;
    }
    c->authenticated = true;
    return true;
}

void cmdAuth(client *c) {
    if (c->argc > 3) {
        replySyntaxError(c);
        return;
    }
    if (!c->srv->cfg.requirepass[0]) {
        respAddError(c->out, "ERR AUTH <password> called without any password configured for "
                             "the default user. Are you sure your configuration is correct?");
        return;
    }
    const cmdArg *user = c->argc == 3 ? &c->argv[1] : NULL;
    if (authCheck(c, user, &c->argv[c->argc - 1])) serverReplyOk(c);
}

static void setClientName(client *c, const cmdArg *name, bool *ok) {
    *ok = false;
    if (name->len > CLIENT_NAME_MAX) {
        respAddError(c->out, "ERR Client names are limited to 256 bytes");
        return;
    }
    for (size_t i = 0; i < name->len; i++) {
        if (name->p[i] <= ' ' || name->p[i] > '~') {
            respAddError(c->out,
                         "ERR Client names cannot contain spaces, newlines or special characters.");
            return;
        }
    }
    free(c->name);
    c->name = name->len ? xstrndup(name->p, name->len) : NULL;
    *ok = true;
}

/* HELLO [protover [AUTH user pass] [SETNAME name]] */
void cmdHello(client *c) {
    size_t i = 1;
    if (c->argc >= 2) {
        long long ver;
        if (!argToLongLong(&c->argv[1], &ver)) {
            respAddError(c->out, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (ver != 2) {
            respAddError(
                c->out,
                "NOPROTO sorry, this protocol version is not supported (dmkv speaks RESP2)");
            return;
        }
        i = 2;
    }
    const cmdArg *setname = NULL;
    for (; i < c->argc; i++) {
        if (argIs(&c->argv[i], "auth") && i + 2 < c->argc) {
            if (!c->srv->cfg.requirepass[0]) {
                respAddError(c->out, "ERR AUTH called without any password configured");
                return;
            }
            if (!authCheck(c, &c->argv[i + 1], &c->argv[i + 2])) return;
            i += 2;
        } else if (argIs(&c->argv[i], "setname") && i + 1 < c->argc) {
            setname = &c->argv[++i];
        } else {
            respAddErrorFmt(c->out, "ERR Syntax error in HELLO option '%.*s'",
                            (int)(c->argv[i].len > 64 ? 64 : c->argv[i].len), c->argv[i].p);
            return;
        }
    }
    if (!c->authenticated) {
        respAddError(c->out,
                     "NOAUTH HELLO must be called with the client already authenticated, "
                     "otherwise the HELLO AUTH <user> <pass> option can be used to authenticate "
                     "the client and select the RESP protocol version at the same time");
        return;
    }
    if (setname) {
        bool ok;
        setClientName(c, setname, &ok);
        if (!ok) return;
    }
    respAddArrayLen(c->out, 14);
    respAddBulkStr(c->out, "server");
    respAddBulkStr(c->out, "dmkv");
    respAddBulkStr(c->out, "version");
    respAddBulkStr(c->out, DMKV_VERSION);
    respAddBulkStr(c->out, "proto");
    respAddInt(c->out, 2);
    respAddBulkStr(c->out, "id");
    respAddInt(c->out, (long long)c->id);
    respAddBulkStr(c->out, "mode");
    respAddBulkStr(c->out, "standalone");
    respAddBulkStr(c->out, "role");
    respAddBulkStr(c->out, "master");
    respAddBulkStr(c->out, "modules");
    respAddArrayLen(c->out, 0);
}

static void clientDescribe(const client *cl, buf *b) {
    uint64_t now = timeMonoMs();
    bufPrintf(b,
              "id=%" PRIu64 " addr=%s name=%s age=%" PRIu64 " idle=%" PRIu64
              " db=0 cmd=%s lib-name=%s lib-ver=%s\n",
              cl->id, netConnPeer(cl->conn), cl->name ? cl->name : "",
              (now - cl->created_ms) / 1000, (now - cl->last_cmd_ms) / 1000,
              cl->last_cmd ? cl->last_cmd->name : "NULL", cl->lib_name, cl->lib_ver);
}

void cmdClient(client *c) {
    const cmdArg *sub = &c->argv[1];
    if (argIs(sub, "id") && c->argc == 2) {
        respAddInt(c->out, (long long)c->id);
    } else if (argIs(sub, "setname") && c->argc == 3) {
        bool ok;
        setClientName(c, &c->argv[2], &ok);
        if (ok) serverReplyOk(c);
    } else if (argIs(sub, "getname") && c->argc == 2) {
        if (c->name)
            respAddBulkStr(c->out, c->name);
        else
            respAddNil(c->out);
    } else if (argIs(sub, "setinfo") && c->argc == 4) {
        const cmdArg *v = &c->argv[3];
        char *dst;
        size_t cap;
        if (argIs(&c->argv[2], "lib-name")) {
            dst = c->lib_name;
            cap = sizeof c->lib_name;
        } else if (argIs(&c->argv[2], "lib-ver")) {
            dst = c->lib_ver;
            cap = sizeof c->lib_ver;
        } else {
            respAddErrorFmt(c->out, "ERR Unrecognized option '%.*s'",
                            (int)(c->argv[2].len > 64 ? 64 : c->argv[2].len), c->argv[2].p);
            return;
        }
        if (v->len >= cap) {
            respAddErrorFmt(c->out, "ERR %.*s is limited to %zu bytes", (int)c->argv[2].len,
                            c->argv[2].p, cap - 1);
            return;
        }
        for (size_t i = 0; i < v->len; i++) {
            if (v->p[i] < '!' || v->p[i] > '~') {
                respAddError(c->out, "ERR lib-name and lib-ver cannot contain spaces, newlines or "
                                     "special characters.");
                return;
            }
        }
        memcpy(dst, v->p, v->len);
        dst[v->len] = '\0';
        serverReplyOk(c);
    } else if (argIs(sub, "list") && c->argc == 2) {
        buf b;
        bufInit(&b);
        for (const client *cl = c->srv->clients; cl; cl = cl->next) clientDescribe(cl, &b);
        respAddBulk(c->out, b.data, b.len);
        bufFree(&b);
    } else if (argIs(sub, "info") && c->argc == 2) {
        buf b;
        bufInit(&b);
        clientDescribe(c, &b);
        respAddBulk(c->out, b.data, b.len);
        bufFree(&b);
    } else {
        respAddErrorFmt(c->out,
                        "ERR unknown subcommand or wrong number of arguments for '%.*s'. Try ID, "
                        "SETNAME, GETNAME, SETINFO, LIST, INFO.",
                        (int)(sub->len > 64 ? 64 : sub->len), sub->p);
    }
}

static void commandReplyInfo(client *c, const command *cmd) {
    respAddArrayLen(c->out, 6);
    respAddBulkStr(c->out, cmd->name);
    respAddInt(c->out, cmd->arity);
    int nflags = !!(cmd->flags & CMD_WRITE) + !!(cmd->flags & CMD_READ) +
                 !!(cmd->flags & CMD_FAST) + !!(cmd->flags & CMD_NOAUTH) +
                 !!(cmd->flags & CMD_ADMIN);
    respAddArrayLen(c->out, nflags);
    if (cmd->flags & CMD_WRITE) respAddSimple(c->out, "write");
    if (cmd->flags & CMD_READ) respAddSimple(c->out, "readonly");
    if (cmd->flags & CMD_FAST) respAddSimple(c->out, "fast");
    if (cmd->flags & CMD_NOAUTH) respAddSimple(c->out, "no_auth");
    if (cmd->flags & CMD_ADMIN) respAddSimple(c->out, "admin");
    respAddInt(c->out, cmd->first_key);
    respAddInt(c->out, cmd->last_key);
    respAddInt(c->out, cmd->key_step);
}

void cmdCommand(client *c) {
    size_t n;
    const command *table = serverCommandTable(&n);
    if (c->argc == 1) {
        respAddArrayLen(c->out, (long long)n);
        for (size_t i = 0; i < n; i++) commandReplyInfo(c, &table[i]);
        return;
    }
    const cmdArg *sub = &c->argv[1];
    if (argIs(sub, "count") && c->argc == 2) {
        respAddInt(c->out, (long long)n);
    } else if (argIs(sub, "list") && c->argc == 2) {
        respAddArrayLen(c->out, (long long)n);
        for (size_t i = 0; i < n; i++) respAddBulkStr(c->out, table[i].name);
    } else if (argIs(sub, "info")) {
        respAddArrayLen(c->out, (long long)(c->argc - 2));
        for (size_t i = 2; i < c->argc; i++) {
            const command *cmd = serverLookupCommand(c->argv[i].p, c->argv[i].len);
            if (cmd)
                commandReplyInfo(c, cmd);
            else
                respAddNilArray(c->out);
        }
    } else if (argIs(sub, "docs")) {
        /* name -> [summary, since, group]; clients that want more fall
         * back to their built-in help. */
        size_t want = c->argc > 2 ? c->argc - 2 : n;
        buf body;
        bufInit(&body);
        long long entries = 0;
        for (size_t i = 0; i < want; i++) {
            const command *cmd =
                c->argc > 2 ? serverLookupCommand(c->argv[i + 2].p, c->argv[i + 2].len) : &table[i];
            if (!cmd) continue;
            entries++;
            respAddBulkStr(&body, cmd->name);
            respAddArrayLen(&body, 6);
            respAddBulkStr(&body, "summary");
            respAddBulkStr(&body, cmd->summary);
            respAddBulkStr(&body, "since");
            respAddBulkStr(&body, "0.1.0");
            respAddBulkStr(&body, "group");
            respAddBulkStr(&body, (cmd->flags & (CMD_READ | CMD_WRITE)) ? "string" : "server");
        }
        respAddArrayLen(c->out, entries * 2);
        bufAppend(c->out, body.data, body.len);
        bufFree(&body);
    } else {
        respAddErrorFmt(c->out, "ERR unknown subcommand '%.*s'. Try COUNT, LIST, INFO, DOCS.",
                        (int)(sub->len > 64 ? 64 : sub->len), sub->p);
    }
}

static const char *fsyncName(storeFsync f) {
    return f == STORE_FSYNC_ALWAYS ? "always" : f == STORE_FSYNC_EVERYSEC ? "everysec" : "no";
}

void cmdConfig(client *c) {
    server *s = c->srv;
    const cmdArg *sub = &c->argv[1];
    if (argIs(sub, "get") && c->argc >= 3) {
        char v_port[16], v_maxclients[16], v_bulk[24], v_id[16], v_maxdb[24];
        snprintf(v_port, sizeof v_port, "%d", s->cfg.tcp_port);
        snprintf(v_maxclients, sizeof v_maxclients, "%d", s->cfg.maxclients);
        snprintf(v_bulk, sizeof v_bulk, "%" PRIu64, s->cfg.max_bulk_bytes);
        snprintf(v_id, sizeof v_id, "%" PRIu32, s->cfg.id);
        snprintf(v_maxdb, sizeof v_maxdb, "%" PRIu64, s->cfg.max_db_bytes);
        const char *params[][2] = {
            {"bind", s->cfg.host},
            {"port", v_port},
            {"dir", s->cfg.data_dir},
            {"appendonly", "no"},
            {"appendfsync", fsyncName(s->cfg.fsync)},
            {"save", ""},
            {"databases", "1"},
            {"maxclients", v_maxclients},
            {"maxmemory", "0"},
            {"proto-max-bulk-len", v_bulk},
            {"requirepass", s->cfg.requirepass},
            {"node-id", v_id},
            {"max-db-size", v_maxdb},
        };
        size_t np = sizeof params / sizeof params[0];
        bool hit[sizeof params / sizeof params[0]] = {false};
        long long found = 0;
        for (size_t a = 2; a < c->argc; a++) {
            char pat[128];
            size_t pl = c->argv[a].len < sizeof pat - 1 ? c->argv[a].len : sizeof pat - 1;
            memcpy(pat, c->argv[a].p, pl);
            pat[pl] = '\0';
            for (size_t i = 0; i < np; i++)
                if (!hit[i] && fnmatch(pat, params[i][0], FNM_CASEFOLD) == 0) {
                    hit[i] = true;
                    found++;
                }
        }
        respAddArrayLen(c->out, found * 2);
        for (size_t i = 0; i < np; i++) {
            if (!hit[i]) continue;
            respAddBulkStr(c->out, params[i][0]);
            respAddBulkStr(c->out, params[i][1]);
        }
    } else if (argIs(sub, "set")) {
        respAddError(c->out, "ERR CONFIG SET is not supported by dmkv: restart the agent with the "
                             "flag instead (dmkv agent --help)");
    } else if (argIs(sub, "resetstat") && c->argc == 2) {
        memset(&s->stats, 0, sizeof s->stats);
        serverReplyOk(c);
    } else {
        respAddErrorFmt(c->out, "ERR unknown subcommand '%.*s'. Try GET, RESETSTAT.",
                        (int)(sub->len > 64 ? 64 : sub->len), sub->p);
    }
}

static bool infoWants(const char *section, const cmdArg *args, size_t nargs) {
    if (nargs == 0) return true;
    for (size_t i = 0; i < nargs; i++)
        if (argIs(&args[i], section) || argIs(&args[i], "all") || argIs(&args[i], "everything") ||
            argIs(&args[i], "default"))
            return true;
    return false;
}

void cmdInfo(client *c) {
    server *s = c->srv;
    const cmdArg *args = c->argv + 1;
    size_t nargs = c->argc - 1;
    buf b;
    bufInit(&b);
    if (infoWants("server", args, nargs)) {
        struct utsname u;
        uname(&u);
        bufPrintf(&b,
                  "# Server\r\ndmkv_version:%s\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\n"
                  "os:%s %s %s\r\narch_bits:%d\r\nprocess_id:%d\r\nnode_id:%" PRIu32
                  "\r\ntcp_port:%d\r\nbind:%s\r\nuptime_in_seconds:%" PRIu64 "\r\n\r\n",
                  DMKV_VERSION, u.sysname, u.release, u.machine, (int)(sizeof(void *) * 8),
                  (int)getpid(), s->cfg.id, s->cfg.tcp_port, s->cfg.host, serverUptimeMs(s) / 1000);
    }
    if (infoWants("clients", args, nargs)) {
        bufPrintf(
            &b, "# Clients\r\nconnected_clients:%zu\r\nmaxclients:%d\r\nblocked_clients:0\r\n\r\n",
            s->nclients, s->cfg.maxclients);
    }
    if (infoWants("memory", args, nargs)) {
        /* Resident set size from /proc: dmkv's data lives in LMDB's map,
         * so this counts the pages of it that are in memory too. */
        unsigned long long pages_total = 0, pages_rss = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f) {
            if (fscanf(f, "%llu %llu", &pages_total, &pages_rss) != 2) pages_rss = 0;
            fclose(f);
        }
        unsigned long long rss = pages_rss * (unsigned long long)sysconf(_SC_PAGESIZE);
        bufPrintf(&b, "# Memory\r\nused_memory:%llu\r\nused_memory_rss:%llu\r\nmaxmemory:0\r\n\r\n",
                  rss, rss);
    }
    if (infoWants("persistence", args, nargs)) {
        storeStats st;
        storeGetStats(s->st, &st);
        bufPrintf(&b,
                  "# Persistence\r\nloading:0\r\ndata_dir:%s\r\nfsync:%s\r\ndb_file_bytes:%" PRIu64
                  "\r\ndb_max_bytes:%" PRIu64 "\r\ncommits:%" PRIu64 "\r\nwrites_committed:%" PRIu64
                  "\r\nbatches_failed:%" PRIu64 "\r\nfsyncs:%" PRIu64
                  "\r\ncommits_not_yet_synced:%" PRIu64 "\r\nlamport_clock:%" PRIu64 "\r\n\r\n",
                  s->cfg.data_dir, fsyncName(s->cfg.fsync), st.file_bytes, st.map_bytes, st.commits,
                  st.writes, st.aborted, st.syncs, st.pending_sync, s->clock.lamport);
    }
    if (infoWants("stats", args, nargs)) {
        uint64_t in = s->stats.net_in_closed, out = s->stats.net_out_closed;
        for (const client *cl = s->clients; cl; cl = cl->next) {
            in += netConnBytesIn(cl->conn);
            out += netConnBytesOut(cl->conn);
        }
        bufPrintf(&b,
                  "# Stats\r\ntotal_connections_received:%" PRIu64
                  "\r\ntotal_commands_processed:%" PRIu64 "\r\nrejected_connections:%" PRIu64
                  "\r\ntotal_net_input_bytes:%" PRIu64 "\r\ntotal_net_output_bytes:%" PRIu64
                  "\r\nprotocol_errors:%" PRIu64 "\r\nkeyspace_hits:%" PRIu64
                  "\r\nkeyspace_misses:%" PRIu64 "\r\nauth_failures:%" PRIu64
                  "\r\nclient_output_limit_disconnections:%" PRIu64
                  "\r\nclient_query_limit_disconnections:%" PRIu64 "\r\n\r\n",
                  s->stats.connections_received, s->stats.commands_processed,
                  s->stats.connections_rejected, in, out, s->stats.protocol_errors,
                  s->stats.keyspace_hits, s->stats.keyspace_misses, s->stats.auth_failures,
                  s->stats.output_limit_disconnects, s->stats.query_limit_disconnects);
    }
    if (infoWants("cluster", args, nargs) && s->cl) {
        bufPrintf(&b, "# Cluster\r\nnode_id:%" PRIu32 "\r\n", s->cfg.id);
        clusterInfo(s->cl, &b);
        bufPrintf(&b, "\r\n");
    }
    if (infoWants("coordinator", args, nargs)) {
        bufPrintf(&b, "# Coordinator\r\n");
        coordInfo(s, &b);
        if (s->cfg.use_mutex) mutexInfo(s, &b);
        bufPrintf(&b, "\r\n");
    }
    if (infoWants("replication", args, nargs)) {
        bufPrintf(&b, "# Replication\r\n");
        replicationInfo(s, &b);
        bufPrintf(&b, "\r\n");
    }
    if (infoWants("events", args, nargs)) {
        bufPrintf(&b, "# Events\r\n");
        eventsInfo(s, &b);
        bufPrintf(&b, "\r\n");
    }
    if (infoWants("keyspace", args, nargs)) {
        storeStats st;
        storeGetStats(s->st, &st);
        bufPrintf(&b, "# Keyspace\r\n");
        if (st.live_keys)
            bufPrintf(&b, "db0:keys=%" PRIu64 ",expires=0,avg_ttl=0\r\n", st.live_keys);
        bufPrintf(&b, "\r\n");
    }
    if (b.len >= 2) b.len -= 2; /* no blank line after the last section */
    respAddBulk(c->out, b.data, b.len);
    bufFree(&b);
}

void cmdTime(client *c) {
    uint64_t us = timeNowUs();
    respAddArrayLen(c->out, 2);
    respAddBulkInt(c->out, (long long)(us / 1000000));
    respAddBulkInt(c->out, (long long)(us % 1000000));
}

void cmdShutdown(client *c) {
    for (size_t i = 1; i < c->argc; i++) {
        if (!argIs(&c->argv[i], "nosave") && !argIs(&c->argv[i], "save") &&
            !argIs(&c->argv[i], "now") && !argIs(&c->argv[i], "force")) {
            replySyntaxError(c);
            return;
        }
    }
    logInfo("SHUTDOWN requested by client %s", netConnPeer(c->conn));
    /* Like Redis, no reply: the connection closes when the agent stops. */
    c->srv->request_stop(c->srv);
}

void cmdMembers(client *c) {
    clusterReplyMembers(c->srv->cl, c->out);
}

/* FORCE-LEAVE id: a dead member is taken to have left (Consul's
 * force-leave), so nobody waits for it any longer. Gossip spreads it; a
 * member gossip has already forgotten (dead for longer than
 * --dead-retain-ms) is only forgotten here, and each node is told. */
void cmdForceLeave(client *c) {
    long long id;
    if (!argToLongLong(&c->argv[1], &id) || id <= 0 || id > UINT32_MAX) {
        respAddError(c->out, "ERR node id must be 1..4294967295");
        return;
    }
    char err[200];
    int rc;
    if (!c->srv->cl) {
        respAddError(c->out, "ERR this node has no cluster membership");
    } else if ((rc = clusterForceLeave(c->srv->cl, (uint32_t)id, err, sizeof err)) != 0 &&
               !(rc == -2 && replicationForget(c->srv, (uint32_t)id))) {
        respAddErrorFmt(c->out, "ERR %s", err);
    } else {
        respAddSimple(c->out, "OK");
    }
}

/* DMKV.PUSHPULL state: node-to-node membership exchange. */
void cmdPushPull(client *c) {
    buf reply;
    bufInit(&reply);
    char err[200];
    if (clusterPushPull(c->srv->cl, c->argv[1].p, c->argv[1].len, &reply, err, sizeof err) != 0)
        respAddErrorFmt(c->out, "ERR %s", err);
    else
        respAddBulk(c->out, reply.data, reply.len);
    bufFree(&reply);
}
