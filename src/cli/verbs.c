/* Client verbs: dmkv cmd, get, put, del, incr, members, force-leave, leader,
 * trace.
 *
 * Each verb picks a node from --nodes (or $DMKV_NODES, or the default
 * single local node), sends one command and prints the reply readably. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define CLI_TIMEOUT_MS 5000

typedef cliVerbOpts verbOpts;

static void verbUsage(const char *verb) {
    if (!strcmp(verb, "cmd"))
        printf("Usage: dmkv cmd [--node I] [--nodes LIST] \"COMMAND ARGS...\"\n"
               "       dmkv cmd [--node I] [--nodes LIST] COMMAND ARG...\n\n"
               "Sends one command to node I and prints the reply. A single quoted\n"
               "argument is split like redis-cli does (quotes and \\x escapes work).\n");
    else if (!strcmp(verb, "get"))
        printf("Usage: dmkv get [--node I] [--nodes LIST] KEY\n\nPrints the value of KEY, or "
               "(nil).\n");
    else if (!strcmp(verb, "put"))
        printf("Usage: dmkv put [--node I] [--nodes LIST] KEY VALUE\n\nSets KEY to VALUE; prints "
               "OK.\n");
    else if (!strcmp(verb, "members"))
        printf("Usage: dmkv members [--node I] [--nodes LIST]\n\nPrints the cluster membership as "
               "node I sees it: id, client address,\ngossip port, state, incarnation and time "
               "since the last change,\nthen the node that leads the lock coordinator (Raft): "
               "`leader: node N (host:port)`,\nor `leader: none` while there is none.\n");
    else if (!strcmp(verb, "force-leave"))
        printf("Usage: dmkv force-leave [--nodes LIST] ID\n\n"
               "Tells the cluster that the dead member ID has left for good (like\n"
               "consul force-leave): the others stop waiting for it, so deletes made\n"
               "since it died can be collected. Every node of --nodes is told (those\n"
               "that cannot be reached are skipped), and prints its answer. Only a\n"
               "member that is dead is accepted; one that is in fact running (only\n"
               "cut off) refutes it when it hears of it and is alive again.\n"
               "A node that was a lock coordinator voter also needs RAFT REMOVE ID on\n"
               "the leader (see docs/LOCKS.md).\n\n"
               "Exit code 0 when every node reached said OK, 1 when one refused, 3\n"
               "when none could be reached.\n");
    else if (!strcmp(verb, "leader"))
        printf("Usage: dmkv leader [--node I] [--nodes LIST]\n\nPrints which node leads the lock "
               "coordinator (the Raft leader) as node I\nsees it: `node N at host:port (term T)`. "
               "Exit code 1 when node I knows of no\nleader (an election is under way, or too few "
               "nodes are up to elect one).\n");
    else if (!strcmp(verb, "incr"))
        printf("Usage: dmkv incr [--node I] [--nodes LIST] KEY [BY]\n\n"
               "Adds 1 (or BY, a signed 64-bit integer) to the integer value of KEY on\n"
               "node I (a missing key counts as 0) and prints the new value. A value\n"
               "that is not an integer, a BY that is not one, or an overflow is\n"
               "refused by the node: its error is printed and the exit code is 1.\n");
    else if (!strcmp(verb, "del"))
        printf("Usage: dmkv del [--node I] [--nodes LIST] KEY...\n\nDeletes keys; prints how many "
               "existed.\n");
    cliVerbUsageCommon();
}

void cliVerbUsageOptions(void) {
    printf("\nOptions:\n"
           "  --nodes LIST     host:port,host:port,... [$DMKV_NODES or %s]\n"
           "  --node I         which node of the list, from 1 [1]\n"
           "  --timeout MS     connect and reply timeout [%d]\n"
           "  --password PASS  AUTH first [$DMKV_PASSWORD]\n"
           "  -h, --help       this help\n",
           CLI_DEFAULT_NODES, CLI_TIMEOUT_MS);
}

void cliVerbUsageCommon(void) {
    cliVerbUsageOptions();
    printf("\nExit codes: 0 ok, 1 the node answered with an error, 2 bad usage,\n"
           "3 the node could not be reached.\n");
}

int cliCheckKey(const char *verb, const char *key) {
    size_t len = strlen(key);
    if (len >= 1 && len <= CLI_MAX_KEY_BYTES) return 0;
    fprintf(stderr, "dmkv %s: KEY must be 1 to %d bytes, got %zu\n", verb, CLI_MAX_KEY_BYTES, len);
    return -1;
}

#define VERB_MAX_OPTS 32

static int verbParse(const char *verb, int argc, char **argv, verbOpts *o) {
    return cliVerbParse(verb, argc, argv, o, NULL, NULL, NULL, NULL);
}

int cliVerbParse(const char *verb, int argc, char **argv, cliVerbOpts *o,
                 const struct option *extra, cliExtraOptFn onExtra, void *ctx,
                 void (*usage)(void)) {
    static const struct option common[] = {
        {"nodes", required_argument, 0, 'n'},   {"node", required_argument, 0, 'i'},
        {"timeout", required_argument, 0, 't'}, {"password", required_argument, 0, 'a'},
        {"help", no_argument, 0, 'h'},
    };
    struct option opts[VERB_MAX_OPTS];
    size_t nopts = 0;
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) opts[nopts++] = common[i];
    for (size_t i = 0; extra && extra[i].name && nopts < VERB_MAX_OPTS - 1; i++)
        opts[nopts++] = extra[i];
    memset(&opts[nopts], 0, sizeof opts[nopts]);
    memset(o, 0, sizeof *o);
    o->timeout_ms = CLI_TIMEOUT_MS;
    o->password = getenv("DMKV_PASSWORD");
    const char *nodes = getenv("DMKV_NODES");
    static char dev_nodes[2048];
    if ((!nodes || !*nodes) && cliDevDefault("nodes", dev_nodes, sizeof dev_nodes))
        nodes = dev_nodes;
    if (!nodes || !*nodes) nodes = CLI_DEFAULT_NODES;
    long node = 1;
    optind = 1;
    opterr = 0;
    int c;
    /* "+" stops at the first positional, so in `dmkv cmd INCRBY k -1` the
     * "-1" is not taken for an option. A key that itself starts with '-'
     * needs "--" first: dmkv get -- -1. */
    while ((c = getopt_long(argc, argv, "+:ha:", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'n':
            nodes = optarg;
            break;
        case 'i':
            node = strtol(optarg, &end, 10);
            if (*end || node < 1) {
                fprintf(stderr, "dmkv %s: --node must be a number from 1, got '%s'\n", verb,
                        optarg);
                return CLI_USAGE;
            }
            break;
        case 't':
            o->timeout_ms = (int)strtol(optarg, &end, 10);
            if (*end || o->timeout_ms < 1) {
                fprintf(stderr, "dmkv %s: --timeout must be milliseconds, got '%s'\n", verb,
                        optarg);
                return CLI_USAGE;
            }
            break;
        case 'a':
            o->password = optarg;
            break;
        case 'h':
            if (usage)
                usage();
            else
                verbUsage(verb);
            return CLI_OK;
        case ':':
            fprintf(stderr, "dmkv %s: %s needs a value (see dmkv %s --help)\n", verb,
                    argv[optind - 1], verb);
            return CLI_USAGE;
        default:
            if (c >= 256 && onExtra) {
                int rc = onExtra(ctx, c, optarg);
                if (rc >= 0) return rc;
                break;
            }
            fprintf(stderr, "dmkv %s: unknown option %s (see dmkv %s --help)\n", verb,
                    argv[optind - 1], verb);
            return CLI_USAGE;
        }
    }
    char err[512];
    o->nnodes = cliParseNodes(nodes, o->nodes, CLI_MAX_NODES, err, sizeof err);
    if (o->nnodes < 0) {
        fprintf(stderr, "dmkv %s: --nodes: %s\n", verb, err);
        return CLI_USAGE;
    }
    if (node > o->nnodes) {
        fprintf(stderr, "dmkv %s: --node %ld but only %d node%s listed\n", verb, node, o->nnodes,
                o->nnodes == 1 ? "" : "s");
        return CLI_USAGE;
    }
    o->node = (int)node - 1;
    return -1;
}

typedef void (*verbPrintFn)(const respReply *r, buf *out);

static int verbRunWith(const char *verb, const verbOpts *o, size_t argc, const char *const *argv,
                       const size_t *lens, verbPrintFn print);

/* Connects to the chosen node, authenticates, sends argv, prints the reply. */
static int verbRun(const char *verb, const verbOpts *o, size_t argc, const char *const *argv,
                   const size_t *lens) {
    return verbRunWith(verb, o, argc, argv, lens, cliFormatReply);
}

static int verbRunWith(const char *verb, const verbOpts *o, size_t argc, const char *const *argv,
                       const size_t *lens, verbPrintFn print) {
    const cliNode *n = &o->nodes[o->node];
    char err[512];
    cliConn conn;
    int crc = cliConnectNode(&conn, n, o->timeout_ms, o->password, err, sizeof err);
    if (crc != CLI_OK) {
        fprintf(stderr, "dmkv %s: node %d: %s\n", verb, o->node + 1, err);
        return crc;
    }
    respReply *r = NULL;
    if (cliCall(&conn, argc, argv, lens, &r, err, sizeof err) != 0) {
        fprintf(stderr, "dmkv %s: node %d: %s\n", verb, o->node + 1, err);
        return CLI_UNREACHABLE;
    }
    cliClose(&conn);
    buf out;
    bufInit(&out);
    if (r->type == RESP_ERROR)
        cliFormatReply(r, &out);
    else
        print(r, &out);
    bufAppendChar(&out, '\n');
    int code = CLI_OK;
    if (r->type == RESP_ERROR) {
        fwrite(out.data, 1, out.len, stderr);
        code = CLI_SERVER_ERROR;
    } else {
        fwrite(out.data, 1, out.len, stdout);
    }
    bufFree(&out);
    respReplyFree(r);
    return code;
}

int cliConnectNode(cliConn *c, const cliNode *n, int timeout_ms, const char *password, char *err,
                   size_t errlen) {
    if (cliConnect(c, n->host, n->port, timeout_ms, err, errlen) != 0) return CLI_UNREACHABLE;
    if (!password || !*password) return CLI_OK;
    const char *av[2] = {"AUTH", password};
    size_t al[2] = {4, strlen(password)};
    respReply *r = NULL;
    if (cliCall(c, 2, av, al, &r, err, errlen) != 0) return CLI_UNREACHABLE;
    int rc = CLI_OK;
    if (r->type == RESP_ERROR) {
        snprintf(err, errlen, "AUTH failed: %s", r->str);
        cliClose(c);
        rc = CLI_SERVER_ERROR;
    }
    respReplyFree(r);
    return rc;
}

static int verbArgs(const char *verb, int argc, char **argv, size_t min, size_t max, verbOpts *o,
                    size_t *npos) {
    int rc = verbParse(verb, argc, argv, o);
    if (rc >= 0) return rc;
    *npos = (size_t)(argc - optind);
    if (*npos < min || *npos > max) {
        fprintf(stderr, "dmkv %s: wrong number of arguments (see dmkv %s --help)\n", verb, verb);
        return CLI_USAGE;
    }
    return -1;
}

static int verbSimple(const char *verb, const char *command, int argc, char **argv, size_t min,
                      size_t max) {
    verbOpts o;
    size_t npos;
    int rc = verbArgs(verb, argc, argv, min, max, &o, &npos);
    if (rc >= 0) return rc;
    const char **av = xcalloc(npos + 1, sizeof *av);
    size_t *al = xcalloc(npos + 1, sizeof *al);
    av[0] = command;
    al[0] = strlen(command);
    for (size_t i = 0; i < npos; i++) {
        av[i + 1] = argv[optind + (int)i];
        al[i + 1] = strlen(av[i + 1]);
    }
    rc = verbRun(verb, &o, npos + 1, av, al);
    free(av);
    free(al);
    return rc;
}

int cliMainGet(int argc, char **argv) {
    return verbSimple("get", "GET", argc, argv, 1, 1);
}

int cliMainPut(int argc, char **argv) {
    return verbSimple("put", "SET", argc, argv, 2, 2);
}

int cliMainDel(int argc, char **argv) {
    return verbSimple("del", "DEL", argc, argv, 1, 100000);
}

/* Gossip spreads a forced leave from any node, but a member gossip has
 * already forgotten is waited for by each node until it is told. */
int cliMainForceLeave(int argc, char **argv) {
    verbOpts o;
    size_t npos;
    int rc = verbArgs("force-leave", argc, argv, 1, 1, &o, &npos);
    if (rc >= 0) return rc;
    const char *av[2] = {"FORCE-LEAVE", argv[optind]};
    size_t al[2] = {strlen(av[0]), strlen(av[1])};
    int reached = 0, refused = 0;
    for (int i = 0; i < o.nnodes; i++) {
        const cliNode *n = &o.nodes[i];
        char err[512];
        cliConn conn;
        respReply *r = NULL;
        int crc = cliConnectNode(&conn, n, o.timeout_ms, o.password, err, sizeof err);
        if (crc != CLI_OK) { /* unreachable, or AUTH refused */
            printf("node %d (%s:%d): %s%s\n", i + 1, n->host, n->port,
                   crc == CLI_UNREACHABLE ? "skipped, " : "(error) ", err);
            reached += crc != CLI_UNREACHABLE;
            refused += crc != CLI_UNREACHABLE;
            continue;
        }
        if (cliCall(&conn, 2, av, al, &r, err, sizeof err) != 0) {
            cliClose(&conn);
            printf("node %d (%s:%d): skipped, %s\n", i + 1, n->host, n->port, err);
            continue;
        }
        cliClose(&conn);
        reached++;
        buf out;
        bufInit(&out);
        cliFormatReply(r, &out);
        if (r->type == RESP_ERROR) refused++;
        printf("node %d (%s:%d): %.*s\n", i + 1, n->host, n->port, (int)out.len, out.data);
        bufFree(&out);
        respReplyFree(r);
    }
    if (!reached) {
        fprintf(stderr, "dmkv force-leave: no node of --nodes could be reached\n");
        return CLI_UNREACHABLE;
    }
    return refused ? CLI_SERVER_ERROR : CLI_OK;
}

/* The bare number, so a script can use it: n=$(dmkv incr hits). */
static void printInteger(const respReply *r, buf *out) {
    if (r->type == RESP_INTEGER)
        bufPrintf(out, "%lld", r->integer);
    else
        cliFormatReply(r, out);
}

/* dmkv incr KEY [BY]: INCR, or INCRBY when BY is given. BY is passed on
 * as typed: the node is the one judge of what is an integer, so the
 * client and the server can never disagree about it. */
int cliMainIncr(int argc, char **argv) {
    verbOpts o;
    size_t npos;
    int rc = verbArgs("incr", argc, argv, 1, 2, &o, &npos);
    if (rc >= 0) return rc;
    if (cliCheckKey("incr", argv[optind]) != 0) return CLI_USAGE;
    const char *av[3] = {npos == 1 ? "INCR" : "INCRBY", argv[optind],
                         npos == 2 ? argv[optind + 1] : NULL};
    size_t al[3] = {strlen(av[0]), strlen(av[1]), npos == 2 ? strlen(av[2]) : 0};
    return verbRunWith("incr", &o, npos + 1, av, al, printInteger);
}

int cliMainCmd(int argc, char **argv) {
    verbOpts o;
    size_t npos;
    int rc = verbArgs("cmd", argc, argv, 1, 1000000, &o, &npos);
    if (rc >= 0) return rc;
    if (npos > 1) {
        const char **av = xcalloc(npos, sizeof *av);
        size_t *al = xcalloc(npos, sizeof *al);
        for (size_t i = 0; i < npos; i++) {
            av[i] = argv[optind + (int)i];
            al[i] = strlen(av[i]);
        }
        rc = verbRun("cmd", &o, npos, av, al);
        free(av);
        free(al);
        return rc;
    }
    /* One argument: split it like an inline command (quotes, escapes). */
    cliArgs a;
    char err[512];
    if (cliSplitCommand(argv[optind], &a, err, sizeof err) != 0) {
        fprintf(stderr, "dmkv cmd: %s\n", err);
        return CLI_USAGE;
    }
    rc = verbRun("cmd", &o, a.argc, a.argv, a.lens);
    cliArgsFree(&a);
    return rc;
}

int cliSplitCommand(const char *raw, cliArgs *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    size_t rawlen = strlen(raw);
    char *line = xmalloc(rawlen + 2);
    memcpy(line, raw, rawlen);
    line[rawlen] = '\n';
    line[rawlen + 1] = '\0';
    respLimits lim = {rawlen + 2, rawlen + 2, RESP_DEFAULT_MAX_ARGS};
    respParser p;
    respParserInit(&p, &lim);
    int pr = respParseCommand(&p, line, rawlen + 1);
    if (line[0] == '*' || pr != RESP_PARSE_DONE || p.argc == 0) {
        snprintf(err, errlen, "cannot parse command '%s'%s%s", raw,
                 pr == RESP_PARSE_ERROR ? ": " : "", pr == RESP_PARSE_ERROR ? p.error : "");
        respParserFree(&p);
        free(line);
        return -1;
    }
    out->argc = p.argc;
    out->argv = xcalloc(p.argc, sizeof *out->argv);
    out->lens = xcalloc(p.argc, sizeof *out->lens);
    for (size_t i = 0; i < p.argc; i++) {
        out->argv[i] = line + p.argv[i].off;
        out->lens[i] = p.argv[i].len;
    }
    out->storage = line;
    respParserFree(&p);
    return 0;
}

void cliArgsFree(cliArgs *a) {
    free(a->argv);
    free(a->lens);
    free(a->storage);
    memset(a, 0, sizeof *a);
}

/* MEMBERS rows are [id, host, tcp, udp, state, incarnation, ms since
 * change, "self" or ""]. */
static void printMembers(const respReply *r, buf *out) {
    if (r->type != RESP_ARRAY) {
        cliFormatReply(r, out);
        return;
    }
    bufPrintf(out, "%-6s %-24s %-7s %-8s %-12s %s", "ID", "ADDRESS", "GOSSIP", "STATE",
              "INCARNATION", "SINCE");
    for (size_t i = 0; i < r->elements; i++) {
        const respReply *m = r->element[i];
        if (m->type != RESP_ARRAY || m->elements < 8) continue;
        char addr[300];
        snprintf(addr, sizeof addr,
                 strchr(m->element[1]->str ? m->element[1]->str : "", ':') ? "[%s]:%lld"
                                                                           : "%s:%lld",
                 m->element[1]->str ? m->element[1]->str : "?", m->element[2]->integer);
        double since = (double)m->element[6]->integer / 1000.0;
        bufPrintf(out, "\n%-6lld %-24s %-7lld %-8s %-12lld %.1fs%s", m->element[0]->integer, addr,
                  m->element[3]->integer, m->element[4]->str ? m->element[4]->str : "?",
                  m->element[5]->integer, since, m->element[7]->len ? "  (this node)" : "");
    }
}

/* LEADER is [id, client address, term], or nil. Returns false (and
 * leaves out alone) for any other shape. */
static bool leaderParse(const respReply *r, long long *id, const char **addr, size_t *addrlen,
                        long long *term) {
    if (r->type != RESP_ARRAY || r->elements != 3 || r->element[0]->type != RESP_INTEGER ||
        r->element[1]->type != RESP_BULK || r->element[2]->type != RESP_INTEGER)
        return false;
    *id = r->element[0]->integer;
    *addr = r->element[1]->str;
    *addrlen = r->element[1]->len;
    *term = r->element[2]->integer;
    return true;
}

/* The address, or "address unknown" while gossip has not told the node
 * where the leader listens. */
static void leaderAddr(buf *out, const char *addr, size_t len) {
    if (len)
        bufAppend(out, addr, len);
    else
        bufAppendStr(out, "address unknown");
}

int cliMainMembers(int argc, char **argv) {
    verbOpts o;
    size_t npos;
    int rc = verbArgs("members", argc, argv, 0, 0, &o, &npos);
    if (rc >= 0) return rc;
    char err[512];
    cliConn conn;
    rc = cliConnectNode(&conn, &o.nodes[o.node], o.timeout_ms, o.password, err, sizeof err);
    if (rc != CLI_OK) {
        fprintf(stderr, "dmkv members: node %d: %s\n", o.node + 1, err);
        return rc;
    }
    const char *av[1] = {"MEMBERS"};
    respReply *r = NULL;
    if (cliCall(&conn, 1, av, NULL, &r, err, sizeof err) != 0) {
        fprintf(stderr, "dmkv members: node %d: %s\n", o.node + 1, err);
        return CLI_UNREACHABLE;
    }
    buf out;
    bufInit(&out);
    if (r->type == RESP_ERROR) {
        cliFormatReply(r, &out);
        fprintf(stderr, "%.*s\n", (int)out.len, out.data);
        bufFree(&out);
        respReplyFree(r);
        cliClose(&conn);
        return CLI_SERVER_ERROR;
    }
    printMembers(r, &out);
    respReplyFree(r);
    /* The leader line comes last so the member rows stay where scripts
     * read them. A node without a coordinator (or an old one) says none. */
    av[0] = "LEADER";
    long long id, term;
    const char *addr;
    size_t addrlen;
    if (cliCall(&conn, 1, av, NULL, &r, err, sizeof err) != 0) {
        fprintf(stderr, "dmkv members: node %d: %s\n", o.node + 1, err);
        fwrite(out.data, 1, out.len, stdout);
        printf("\n");
        bufFree(&out);
        return CLI_UNREACHABLE;
    }
    if (leaderParse(r, &id, &addr, &addrlen, &term)) {
        bufPrintf(&out, "\nleader: node %lld (", id);
        leaderAddr(&out, addr, addrlen);
        bufAppendStr(&out, ")\n");
    } else {
        bufAppendStr(&out, "\nleader: none\n");
    }
    respReplyFree(r);
    cliClose(&conn);
    fwrite(out.data, 1, out.len, stdout);
    bufFree(&out);
    return CLI_OK;
}

int cliMainLeader(int argc, char **argv) {
    verbOpts o;
    size_t npos;
    int rc = verbArgs("leader", argc, argv, 0, 0, &o, &npos);
    if (rc >= 0) return rc;
    char err[512];
    cliConn conn;
    rc = cliConnectNode(&conn, &o.nodes[o.node], o.timeout_ms, o.password, err, sizeof err);
    if (rc != CLI_OK) {
        fprintf(stderr, "dmkv leader: node %d: %s\n", o.node + 1, err);
        return rc;
    }
    const char *av[1] = {"LEADER"};
    respReply *r = NULL;
    if (cliCall(&conn, 1, av, NULL, &r, err, sizeof err) != 0) {
        fprintf(stderr, "dmkv leader: node %d: %s\n", o.node + 1, err);
        return CLI_UNREACHABLE;
    }
    cliClose(&conn);
    long long id, term;
    const char *addr;
    size_t addrlen;
    buf out;
    bufInit(&out);
    if (leaderParse(r, &id, &addr, &addrlen, &term)) {
        bufPrintf(&out, "node %lld at ", id);
        leaderAddr(&out, addr, addrlen);
        bufPrintf(&out, " (term %lld)\n", term);
        fwrite(out.data, 1, out.len, stdout);
        rc = CLI_OK;
    } else if (r->type == RESP_NIL_ARRAY || r->type == RESP_NIL) {
        fprintf(stderr,
                "dmkv leader: node %d (%s:%d) knows of no leader: an election is under way, or "
                "too few nodes are up to elect one\n",
                o.node + 1, o.nodes[o.node].host, o.nodes[o.node].port);
        rc = CLI_SERVER_ERROR;
    } else {
        cliFormatReply(r, &out);
        fprintf(stderr, "dmkv leader: node %d: %.*s\n", o.node + 1, (int)out.len, out.data);
        rc = CLI_SERVER_ERROR;
    }
    bufFree(&out);
    respReplyFree(r);
    return rc;
}

/* Trace views end with a newline of their own. */
static void printTrace(const respReply *r, buf *out) {
    if (r->type == RESP_BULK && r->len && r->str[r->len - 1] == '\n')
        bufAppend(out, r->str, r->len - 1);
    else
        cliFormatReply(r, out);
}

/* dmkv trace [--logger HOST:PORT] [--order o] [--format f] [--key K] [--last N] */
int cliMainTrace(int argc, char **argv) {
    static const struct option opts[] = {
        {"logger", required_argument, 0, 'l'}, {"order", required_argument, 0, 'o'},
        {"format", required_argument, 0, 'f'}, {"key", required_argument, 0, 'k'},
        {"last", required_argument, 0, 'n'},   {"timeout", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
    };
    const char *addr = getenv("DMKV_LOGGER");
    static char dev_logger[256];
    if ((!addr || !*addr) && cliDevDefault("logger", dev_logger, sizeof dev_logger))
        addr = dev_logger;
    if (!addr || !*addr) addr = CLI_DEFAULT_LOGGER;
    const char *av[9] = {"TRACE"};
    size_t ac = 1;
    int timeout_ms = CLI_TIMEOUT_MS;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            addr = optarg;
            break;
        case 'o':
            av[ac++] = "ORDER";
            av[ac++] = optarg;
            break;
        case 'f':
            av[ac++] = "FORMAT";
            av[ac++] = optarg;
            break;
        case 'k':
            av[ac++] = "KEY";
            av[ac++] = optarg;
            break;
        case 'n':
            av[ac++] = "LAST";
            av[ac++] = optarg;
            break;
        case 't':
            timeout_ms = atoi(optarg) > 0 ? atoi(optarg) : CLI_TIMEOUT_MS;
            break;
        case 'h':
            printf("Usage: dmkv trace [--logger HOST:PORT] [--order physical|lamport|vector]\n"
                   "                  [--format text|json|shiviz] [--key K] [--last N]\n\n"
                   "Prints the events the logger collected, in the chosen order.\n"
                   "--logger defaults to $DMKV_LOGGER, then %s.\n",
                   CLI_DEFAULT_LOGGER);
            return CLI_OK;
        case ':':
            fprintf(stderr, "dmkv trace: %s needs a value\n", argv[optind - 1]);
            return CLI_USAGE;
        default:
            fprintf(stderr, "dmkv trace: unknown option %s (see dmkv trace --help)\n",
                    argv[optind - 1]);
            return CLI_USAGE;
        }
        if (ac > 7) break;
    }
    if (optind < argc) {
        fprintf(stderr, "dmkv trace: unexpected argument '%s'\n", argv[optind]);
        return CLI_USAGE;
    }
    verbOpts o;
    memset(&o, 0, sizeof o);
    char err[512];
    if (cliParseNodes(addr, o.nodes, 1, err, sizeof err) != 1) {
        fprintf(stderr, "dmkv trace: --logger: %s\n", err);
        return CLI_USAGE;
    }
    o.nnodes = 1;
    o.timeout_ms = timeout_ms;
    return verbRunWith("trace", &o, ac, av, NULL, printTrace);
}
