/* The agent's flags, their defaults and their validation.
 *
 * Every flag has one line in the help text with its default, and the
 * defaults live in serverConfigDefaults() alone. The seed prototype's flags
 * (--id --tcp --udp --host --peers --logger-addr --use-mutex --numnodes)
 * are accepted with the same meaning, so its run scripts work unchanged. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"
#include "util/log.h"

#define DEFAULT_MAXCLIENTS       10000
#define DEFAULT_MAX_BULK_BYTES   (512ull << 20)
#define DEFAULT_MAX_QUERY_BYTES  (1ull << 30)
#define DEFAULT_MAX_OUTPUT_BYTES (1ull << 30)
#define DEFAULT_MAX_DB_BYTES     (16ull << 30)

int parseBytes(const char *s, uint64_t *out) {
    errno = 0;
    char *end;
    if (!isdigit((unsigned char)s[0])) return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -1;
    uint64_t mul = 1;
    if (*end) {
        if (!strcasecmp(end, "b"))
            mul = 1;
        else if (!strcasecmp(end, "k") || !strcasecmp(end, "kb"))
            mul = 1ull << 10;
        else if (!strcasecmp(end, "m") || !strcasecmp(end, "mb"))
            mul = 1ull << 20;
        else if (!strcasecmp(end, "g") || !strcasecmp(end, "gb"))
            mul = 1ull << 30;
        else
            return -1;
    }
    if (v > UINT64_MAX / mul) return -1;
    *out = v * mul;
    return 0;
}

static int parseInt(const char *s, long long lo, long long hi, long long *out) {
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int serverRaftPortFor(const serverConfig *cfg, int tcp_port) {
    /* +2000, not +1000: the prototype's default gossip ports are the
     * client ports + 1000. */
    int offset = cfg->raft_port ? cfg->raft_port - cfg->tcp_port : 2000;
    int p = tcp_port + offset;
    if (!cfg->raft_port && p > 65535) p = tcp_port - 2000; /* the default, near the top */
    return p;
}

int serverParsePeer(char *e, serverPeer *out, char *why, size_t whylen) {
    const char *orig_shape = "must look like host:tcp=id or host:tcp:udp=id";
    memset(out, 0, sizeof *out);
    char *eq = strrchr(e, '=');
    long long v;
    char *host = e, *ports = NULL;
    if (eq && parseInt(eq + 1, 1, UINT32_MAX, &v) == 0) {
        out->id = (uint32_t)v;
        *eq = '\0';
        if (e[0] == '[') {
            char *close = strchr(e, ']');
            if (close && close > e + 1 && close[1] == ':') {
                *close = '\0';
                host = e + 1;
                ports = close + 2;
            }
        } else {
            char *c1 = strchr(e, ':');
            if (c1 && c1 > e) {
                *c1 = '\0';
                ports = c1 + 1;
            }
        }
    }
    if (!ports) {
        snprintf(why, whylen, "peer '%s' %s", e, orig_shape);
        return -1;
    }
    char *c2 = strchr(ports, ':');
    if (c2) *c2 = '\0';
    if (parseInt(ports, 1, 65535, &v) != 0) goto bad_port;
    out->tcp_port = (int)v;
    if (c2) {
        if (parseInt(c2 + 1, 1, 65535, &v) != 0) goto bad_port;
        out->udp_port = (int)v;
    }
    if (strlen(host) >= sizeof out->host) {
        snprintf(why, whylen, "peer host '%.64s...' is too long", host);
        return -1;
    }
    memcpy(out->host, host, strlen(host) + 1);
    return 0;
bad_port:
    snprintf(why, whylen, "peer '%s' has a port outside 1..65535 or a malformed port list", host);
    return -1;
}

/* Checks every comma-separated --peers entry. */
static int validatePeers(const char *list, char *why, size_t whylen) {
    char *copy = xstrdup(list), *save = NULL;
    int rc = 0;
    for (char *e = strtok_r(copy, ",", &save); e && rc == 0; e = strtok_r(NULL, ",", &save)) {
        serverPeer p;
        rc = serverParsePeer(e, &p, why, whylen);
    }
    free(copy);
    return rc;
}

static void serverConfigDefaults(serverConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->id = 1;
    snprintf(cfg->host, sizeof cfg->host, "127.0.0.1");
    cfg->tcp_port = 0; /* 5000 + id unless given */
    cfg->udp_port = 0; /* 6000 + id unless given */
    cfg->fsync = STORE_FSYNC_EVERYSEC;
    cfg->maxclients = DEFAULT_MAXCLIENTS;
    cfg->max_bulk_bytes = DEFAULT_MAX_BULK_BYTES;
    cfg->max_query_bytes = DEFAULT_MAX_QUERY_BYTES;
    cfg->max_output_bytes = DEFAULT_MAX_OUTPUT_BYTES;
    cfg->max_db_bytes = DEFAULT_MAX_DB_BYTES;
    cfg->use_mutex = 0;
    cfg->log_level = LOG_INFO;
    gossipConfigDefault(&cfg->gossip);
}

void serverPrintHelp(void) {
    gossipConfig g;
    gossipConfigDefault(&g);
    printf("Usage: dmkv agent [flags]\n"
           "\n"
           "Runs one dmkv node. Clients speak the Redis protocol to --tcp\n"
           "(redis-cli -p PORT works).\n"
           "\n"
           "Flags (default in brackets):\n"
           "  --id N                  node id, 1..4294967295 [1]\n"
           "  --host, --bind ADDR     address to listen on [127.0.0.1]\n"
           "  --tcp PORT              client port [5000 + id]\n"
           "  --udp PORT              gossip port [6000 + id]\n"
           "  --peers LIST            other nodes, host:tcp=id or host:tcp:udp=id, comma-separated "
           "[]\n"
           "  --logger-addr HOST:PORT event logger to stream to [none]\n"
           "  --use-mutex 0|1         serialize writes with the distributed mutex [0]\n"
           "  --numnodes N            expected cluster size (informational) [0]\n"
           "  --data-dir DIR          where data is stored [./dmkv-data/node-<id>]\n"
           "  --fsync POLICY          always | everysec | no [everysec]\n"
           "                          always: a write is on disk before its reply;\n"
           "                          everysec: flushed every second (a crash of the\n"
           "                          process loses nothing, of the machine up to ~1 s);\n"
           "                          no: the operating system decides\n"
           "  --requirepass PASS      clients must AUTH with PASS [none]\n"
           "  --maxclients N          most simultaneous clients [%d]\n"
           "  --max-bulk-len BYTES    largest single argument, e.g. 512mb [512mb]\n"
           "  --max-query-buffer BYTES  most unparsed input per client; at least\n"
           "                          --max-bulk-len + 1kb [1gb]\n"
           "  --max-output-buffer BYTES most unsent replies per client before it is\n"
           "                          disconnected [1gb]\n"
           "  --max-db-size BYTES     the most the data file may grow to [16gb]\n"
           "  --log-level LEVEL       debug | info | warn | error [info]\n"
           "  --advertise ADDR        address other nodes use for this one [--host]\n"
           "  --raft-port PORT        lock coordinator (Raft) port; every node must use the\n"
           "                          same offset from its --tcp port [--tcp + 2000]\n"
           "  --raft-join             start without a Raft configuration and wait to be\n"
           "                          added with RAFT ADD on the leader (docs/LOCKS.md)\n"
           "  --cluster-key KEYS      base64 cluster keys, comma-separated; the first\n"
           "                          encrypts, all decrypt (dmkv keygen makes one) [none]\n"
           "  --cluster-key-file PATH file with one base64 key per line [none]\n"
           "\n"
           "Membership (SWIM gossip) timings, see docs/GOSSIP.md:\n"
           "  --probe-interval-ms MS  one protocol period [%u]\n"
           "  --probe-timeout-ms MS   direct ack wait before indirect probes [%u]\n"
           "  --indirect-checks K     members asked to probe a silent one [%u]\n"
           "  --suspicion-mult S      suspicion = S * max(1, log10 N) * interval [%u]\n"
           "  --retransmit-mult R     sends per update = R * ceil(log10(N+1)) [%u]\n"
           "  --gossip-interval-ms MS piggyback-only gossip rounds [%u]\n"
           "  --push-pull-interval-ms MS  full state exchange with a random member [%u]\n"
           "  --dead-retain-ms MS     how long gossip keeps a dead or left member's entry;\n"
           "                          tombstones wait for a dead member even after [%u]\n"
           "  -h, --help              this help\n",
           DEFAULT_MAXCLIENTS, g.probe_interval_ms, g.probe_timeout_ms, g.indirect_checks,
           g.suspicion_mult, g.retransmit_mult, g.gossip_interval_ms, g.push_pull_interval_ms,
           g.dead_retain_ms);
}

enum {
    OPT_ID = 256,
    OPT_HOST,
    OPT_TCP,
    OPT_UDP,
    OPT_PEERS,
    OPT_LOGGER,
    OPT_MUTEX,
    OPT_NUMNODES,
    OPT_DATADIR,
    OPT_FSYNC,
    OPT_PASS,
    OPT_MAXCLIENTS,
    OPT_MAXBULK,
    OPT_MAXQUERY,
    OPT_MAXOUTPUT,
    OPT_MAXDB,
    OPT_LOGLEVEL,
    OPT_ADVERTISE,
    OPT_RAFTPORT,
    OPT_RAFTJOIN,
    OPT_CLUSTERKEY,
    OPT_CLUSTERKEYFILE,
    OPT_G_PROBE_INTERVAL,
    OPT_G_PROBE_TIMEOUT,
    OPT_G_INDIRECT,
    OPT_G_SUSPICION,
    OPT_G_RETRANSMIT,
    OPT_G_GOSSIP_INTERVAL,
    OPT_G_PUSHPULL,
    OPT_G_DEAD_RETAIN,
};

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "dmkv agent: ");                                                           \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        return -1;                                                                                 \
    } while (0)

static int copyFlag(char *dst, size_t cap, const char *val, const char *flag) {
    if (strlen(val) >= cap) {
        fprintf(stderr, "dmkv agent: --%s is too long (max %zu bytes)\n", flag, cap - 1);
        return -1;
    }
    memcpy(dst, val, strlen(val) + 1);
    return 0;
}

int serverParseArgs(serverConfig *cfg, int argc, char **argv) {
    static const struct option opts[] = {
        {"id", required_argument, 0, OPT_ID},
        {"host", required_argument, 0, OPT_HOST},
        {"bind", required_argument, 0, OPT_HOST},
        {"tcp", required_argument, 0, OPT_TCP},
        {"port", required_argument, 0, OPT_TCP},
        {"udp", required_argument, 0, OPT_UDP},
        {"peers", required_argument, 0, OPT_PEERS},
        {"logger-addr", required_argument, 0, OPT_LOGGER},
        {"use-mutex", required_argument, 0, OPT_MUTEX},
        {"numnodes", required_argument, 0, OPT_NUMNODES},
        {"data-dir", required_argument, 0, OPT_DATADIR},
        {"fsync", required_argument, 0, OPT_FSYNC},
        {"requirepass", required_argument, 0, OPT_PASS},
        {"maxclients", required_argument, 0, OPT_MAXCLIENTS},
        {"max-bulk-len", required_argument, 0, OPT_MAXBULK},
        {"max-query-buffer", required_argument, 0, OPT_MAXQUERY},
        {"max-output-buffer", required_argument, 0, OPT_MAXOUTPUT},
        {"max-db-size", required_argument, 0, OPT_MAXDB},
        {"log-level", required_argument, 0, OPT_LOGLEVEL},
        {"advertise", required_argument, 0, OPT_ADVERTISE},
        {"raft-port", required_argument, 0, OPT_RAFTPORT},
        {"raft-join", no_argument, 0, OPT_RAFTJOIN},
        {"cluster-key", required_argument, 0, OPT_CLUSTERKEY},
        {"cluster-key-file", required_argument, 0, OPT_CLUSTERKEYFILE},
        {"probe-interval-ms", required_argument, 0, OPT_G_PROBE_INTERVAL},
        {"probe-timeout-ms", required_argument, 0, OPT_G_PROBE_TIMEOUT},
        {"indirect-checks", required_argument, 0, OPT_G_INDIRECT},
        {"suspicion-mult", required_argument, 0, OPT_G_SUSPICION},
        {"retransmit-mult", required_argument, 0, OPT_G_RETRANSMIT},
        {"gossip-interval-ms", required_argument, 0, OPT_G_GOSSIP_INTERVAL},
        {"push-pull-interval-ms", required_argument, 0, OPT_G_PUSHPULL},
        {"dead-retain-ms", required_argument, 0, OPT_G_DEAD_RETAIN},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    serverConfigDefaults(cfg);
    bool data_dir_set = false, query_set = false;
    long long v;
    uint64_t b;
    /* 0, not 1: a full reset (glibc and musl), so a parse after one that
     * stopped inside grouped options ("-hh") does not resume in the old argv. */
    optind = 0;
    opterr = 0;
    int o;
    int at = 0;
    while ((o = getopt_long(argc, argv, ":h", opts, &at)) != -1) {
        switch (o) {
        case 'h':
            serverPrintHelp();
            return 1;
        case OPT_ID:
            if (parseInt(optarg, 1, UINT32_MAX, &v))
                FAIL("--id must be 1..4294967295, got '%s'", optarg);
            cfg->id = (uint32_t)v;
            break;
        case OPT_HOST:
            if (copyFlag(cfg->host, sizeof cfg->host, optarg, "host")) return -1;
            break;
        case OPT_TCP:
            if (parseInt(optarg, 1, 65535, &v))
                FAIL("--tcp must be a port 1..65535, got '%s'", optarg);
            cfg->tcp_port = (int)v;
            break;
        case OPT_RAFTPORT:
            if (parseInt(optarg, 1, 65535, &v))
                FAIL("--raft-port must be a port 1..65535, got '%s'", optarg);
            cfg->raft_port = (int)v;
            break;
        case OPT_RAFTJOIN:
            cfg->raft_join = true;
            break;
        case OPT_UDP:
            if (parseInt(optarg, 1, 65535, &v))
                FAIL("--udp must be a port 1..65535, got '%s'", optarg);
            cfg->udp_port = (int)v;
            break;
        case OPT_PEERS: {
            char why[512];
            if (copyFlag(cfg->peers, sizeof cfg->peers, optarg, "peers")) return -1;
            if (validatePeers(optarg, why, sizeof why)) FAIL("--peers: %s", why);
            break;
        }
        case OPT_LOGGER:
            if (copyFlag(cfg->logger_addr, sizeof cfg->logger_addr, optarg, "logger-addr"))
                return -1;
            if (!strchr(optarg, ':')) FAIL("--logger-addr must be HOST:PORT, got '%s'", optarg);
            break;
        case OPT_MUTEX:
            if (parseInt(optarg, 0, 1, &v)) FAIL("--use-mutex must be 0 or 1, got '%s'", optarg);
            cfg->use_mutex = (int)v;
            break;
        case OPT_NUMNODES:
            if (parseInt(optarg, 0, 100000, &v))
                FAIL("--numnodes must be 0..100000, got '%s'", optarg);
            cfg->numnodes = (int)v;
            break;
        case OPT_DATADIR:
            if (copyFlag(cfg->data_dir, sizeof cfg->data_dir, optarg, "data-dir")) return -1;
            if (!optarg[0]) FAIL("--data-dir must not be empty");
            data_dir_set = true;
            break;
        case OPT_FSYNC:
            if (!strcasecmp(optarg, "always"))
                cfg->fsync = STORE_FSYNC_ALWAYS;
            else if (!strcasecmp(optarg, "everysec"))
                cfg->fsync = STORE_FSYNC_EVERYSEC;
            else if (!strcasecmp(optarg, "no"))
                cfg->fsync = STORE_FSYNC_NO;
            else
                FAIL("--fsync must be always, everysec or no, got '%s'", optarg);
            break;
        case OPT_PASS:
            if (copyFlag(cfg->requirepass, sizeof cfg->requirepass, optarg, "requirepass"))
                return -1;
            break;
        case OPT_MAXCLIENTS:
            if (parseInt(optarg, 1, 1000000, &v))
                FAIL("--maxclients must be 1..1000000, got '%s'", optarg);
            cfg->maxclients = (int)v;
            break;
        case OPT_MAXBULK:
            if (parseBytes(optarg, &b) || b < 1024 || b > (4ull << 30))
                FAIL("--max-bulk-len must be a size from 1kb to 4gb (like 512mb), got '%s'",
                     optarg);
            cfg->max_bulk_bytes = b;
            break;
        case OPT_MAXQUERY:
            if (parseBytes(optarg, &b) || b < 64 * 1024)
                FAIL("--max-query-buffer must be a size of at least 64kb, got '%s'", optarg);
            cfg->max_query_bytes = b;
            query_set = true;
            break;
        case OPT_MAXOUTPUT:
            if (parseBytes(optarg, &b) || b < 64 * 1024)
                FAIL("--max-output-buffer must be a size of at least 64kb, got '%s'", optarg);
            cfg->max_output_bytes = b;
            break;
        case OPT_MAXDB:
            if (parseBytes(optarg, &b) || b < (1ull << 20))
                FAIL("--max-db-size must be a size of at least 1mb, got '%s'", optarg);
            cfg->max_db_bytes = b;
            break;
        case OPT_LOGLEVEL:
            if (!strcasecmp(optarg, "debug"))
                cfg->log_level = LOG_DEBUG;
            else if (!strcasecmp(optarg, "info"))
                cfg->log_level = LOG_INFO;
            else if (!strcasecmp(optarg, "warn"))
                cfg->log_level = LOG_WARN;
            else if (!strcasecmp(optarg, "error"))
                cfg->log_level = LOG_ERROR;
            else
                FAIL("--log-level must be debug, info, warn or error, got '%s'", optarg);
            break;
        case OPT_ADVERTISE: {
            unsigned char tmp[16];
            if (inet_pton(AF_INET, optarg, tmp) != 1 && inet_pton(AF_INET6, optarg, tmp) != 1)
                FAIL("--advertise must be an IPv4 or IPv6 address, got '%s'", optarg);
            if (copyFlag(cfg->advertise, sizeof cfg->advertise, optarg, "advertise")) return -1;
            break;
        }
        case OPT_CLUSTERKEY:
            if (!optarg[0]) FAIL("--cluster-key must not be empty (dmkv keygen makes a key)");
            if (copyFlag(cfg->cluster_key, sizeof cfg->cluster_key, optarg, "cluster-key"))
                return -1;
            break;
        case OPT_CLUSTERKEYFILE:
            if (!optarg[0]) FAIL("--cluster-key-file must not be empty");
            if (copyFlag(cfg->cluster_key_file, sizeof cfg->cluster_key_file, optarg,
                         "cluster-key-file"))
                return -1;
            break;
        case OPT_G_PROBE_INTERVAL:
        case OPT_G_PROBE_TIMEOUT:
        case OPT_G_INDIRECT:
        case OPT_G_SUSPICION:
        case OPT_G_RETRANSMIT:
        case OPT_G_GOSSIP_INTERVAL:
        case OPT_G_PUSHPULL: {
            if (parseInt(optarg, 0, 3600000, &v))
                FAIL("--%s must be a whole number, got '%s'", opts[at].name, optarg);
            uint32_t *field = o == OPT_G_PROBE_INTERVAL    ? &cfg->gossip.probe_interval_ms
                              : o == OPT_G_PROBE_TIMEOUT   ? &cfg->gossip.probe_timeout_ms
                              : o == OPT_G_INDIRECT        ? &cfg->gossip.indirect_checks
                              : o == OPT_G_SUSPICION       ? &cfg->gossip.suspicion_mult
                              : o == OPT_G_RETRANSMIT      ? &cfg->gossip.retransmit_mult
                              : o == OPT_G_GOSSIP_INTERVAL ? &cfg->gossip.gossip_interval_ms
                                                           : &cfg->gossip.push_pull_interval_ms;
            *field = (uint32_t)v;
            break;
        }
        case OPT_G_DEAD_RETAIN:
            if (parseInt(optarg, 0, 7 * 86400000, &v))
                FAIL("--%s must be a whole number of milliseconds up to 7 days, got '%s'",
                     opts[at].name, optarg);
            cfg->gossip.dead_retain_ms = (uint32_t)v;
            break;
        case ':':
            FAIL("%s needs a value (see dmkv agent --help)", argv[optind - 1]);
        default:
            FAIL("unknown flag %s (see dmkv agent --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) FAIL("unexpected argument '%s' (see dmkv agent --help)", argv[optind]);
    if (cfg->tcp_port == 0) {
        if (cfg->id > 60535) FAIL("--tcp is required when --id is above 60535");
        cfg->tcp_port = 5000 + (int)cfg->id;
    }
    if (cfg->udp_port == 0) {
        if (cfg->id > 59535) FAIL("--udp is required when --id is above 59535");
        cfg->udp_port = 6000 + (int)cfg->id;
    }
    if (cfg->raft_port == 0) cfg->raft_port = serverRaftPortFor(cfg, cfg->tcp_port);
    if (cfg->raft_port == cfg->tcp_port || cfg->raft_port == cfg->udp_port)
        FAIL("--raft-port %d is already the client or gossip port", cfg->raft_port);
    char gerr[256];
    if (gossipConfigCheck(&cfg->gossip, gerr, sizeof gerr) != 0) FAIL("%s", gerr);
    if (!data_dir_set)
        snprintf(cfg->data_dir, sizeof cfg->data_dir, "./dmkv-data/node-%" PRIu32, cfg->id);
    if (cfg->cluster_key[0] && cfg->cluster_key_file[0])
        FAIL("give either --cluster-key or --cluster-key-file, not both");
    if (!cfg->advertise[0]) {
        unsigned char tmp[16];
        if (inet_pton(AF_INET, cfg->host, tmp) == 1 || inet_pton(AF_INET6, cfg->host, tmp) == 1) {
            if (!strcmp(cfg->host, "0.0.0.0") || !strcmp(cfg->host, "::"))
                FAIL("--host %s listens everywhere: say which address peers should use with "
                     "--advertise",
                     cfg->host);
            snprintf(cfg->advertise, sizeof cfg->advertise, "%s", cfg->host);
        } else if (!strcmp(cfg->host, "localhost")) {
            snprintf(cfg->advertise, sizeof cfg->advertise, "127.0.0.1");
        } else {
            FAIL("--host %s is a name: give the address peers should use with --advertise",
                 cfg->host);
        }
    }
    /* The query buffer must hold a largest argument with its header. */
    if (query_set && cfg->max_query_bytes < cfg->max_bulk_bytes + 1024)
        FAIL("--max-query-buffer must be at least --max-bulk-len + 1kb (%" PRIu64 " bytes)",
             cfg->max_bulk_bytes + 1024);
    if (!query_set && cfg->max_query_bytes < cfg->max_bulk_bytes + 64 * 1024)
        cfg->max_query_bytes = cfg->max_bulk_bytes + 64 * 1024;
    return 0;
}
