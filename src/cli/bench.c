/* dmkv bench: throughput and latency percentiles under a SET/GET mix.
 *
 * C client threads, spread round-robin over the nodes, each own one
 * connection and keep P requests in flight: send P, then read P replies.
 * A request's latency runs from the moment its batch was sent to the
 * moment its own reply was parsed, so with a pipeline the later replies of
 * a batch show the queueing a pipeline really causes. Every thread records
 * into its own histogram (no locks on the hot path); they are merged when
 * the threads are done. --ops bounds the count (claimed from one atomic
 * counter, so the total is exact) and --duration bounds the time; the run
 * stops at whichever comes first. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/histogram.h"

#define BENCH_MAX_CLIENTS          1024
#define BENCH_MAX_PIPELINE         10000
#define BENCH_MAX_VALUE_SIZE       (16 * 1024 * 1024)
#define BENCH_MAX_ERROR_KINDS      16
#define BENCH_ERROR_KIND_LEN       32
#define BENCH_PROGRESS_INTERVAL_MS 100

typedef struct benchConfig {
    long long ops;
    int clients;
    double put_ratio;
    long long keys;
    long long value_size;
    int pipeline;
    double duration_s;
    int json;
} benchConfig;

typedef struct benchErrors {
    char kind[BENCH_MAX_ERROR_KINDS][BENCH_ERROR_KIND_LEN];
    uint64_t count[BENCH_MAX_ERROR_KINDS];
    int n;
} benchErrors;

typedef struct benchShared {
    const benchConfig *cfg;
    const cliVerbOpts *opts;
    atomic_llong claimed;   /* requests handed out to threads */
    atomic_llong completed; /* replies received */
    atomic_int stop;
    uint64_t deadline_ns; /* 0: none */
    const char *value;
} benchShared;

typedef struct benchThread {
    benchShared *sh;
    int index;
    cliConn conn;
    histogram hist;
    benchErrors errors;
    uint64_t done;
} benchThread;

static uint64_t benchNowNs(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: fast, and seeded per thread so runs are repeatable. */
static uint64_t benchRandom(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static void benchErrorCount(benchErrors *e, const char *kind, size_t len, uint64_t n) {
    if (len >= BENCH_ERROR_KIND_LEN) len = BENCH_ERROR_KIND_LEN - 1;
    for (int i = 0; i < e->n; i++)
        if (strlen(e->kind[i]) == len && !memcmp(e->kind[i], kind, len)) {
            e->count[i] += n;
            return;
        }
    int slot = e->n < BENCH_MAX_ERROR_KINDS ? e->n++ : BENCH_MAX_ERROR_KINDS - 1;
    if (slot == BENCH_MAX_ERROR_KINDS - 1 && e->count[slot]) {
        snprintf(e->kind[slot], BENCH_ERROR_KIND_LEN, "other");
    } else {
        memcpy(e->kind[slot], kind, len);
        e->kind[slot][len] = '\0';
    }
    e->count[slot] += n;
}

/* An error reply's kind is its first word: "ERR", "NOAUTH", ... */
static void benchErrorReply(benchErrors *e, const respReply *r) {
    const char *s = r->str ? r->str : "";
    size_t len = strcspn(s, " ");
    benchErrorCount(e, len ? s : "ERR", len ? len : 3, 1);
}

static void *benchThreadMain(void *arg) {
    benchThread *t = arg;
    benchShared *sh = t->sh;
    const benchConfig *cfg = sh->cfg;
    uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(t->index + 1);
    buf req;
    bufInit(&req);
    char key[32];
    char err[512];
    size_t vlen = (size_t)cfg->value_size;
    while (!atomic_load(&sh->stop)) {
        long long first = atomic_fetch_add(&sh->claimed, cfg->pipeline);
        if (first >= cfg->ops) break;
        long long n = cfg->ops - first < cfg->pipeline ? cfg->ops - first : cfg->pipeline;
        req.len = 0;
        for (long long i = 0; i < n; i++) {
            uint64_t r = benchRandom(&seed);
            int klen = snprintf(key, sizeof key, "key:%llu",
                                (unsigned long long)(r % (uint64_t)cfg->keys));
            bool put = (double)(benchRandom(&seed) >> 11) / 9007199254740992.0 < cfg->put_ratio;
            const char *av[3] = {put ? "SET" : "GET", key, sh->value};
            size_t al[3] = {3, (size_t)klen, vlen};
            respAddCommand(&req, put ? 3 : 2, av, al);
        }
        uint64_t sent = benchNowNs();
        if (cliSendRaw(&t->conn, req.data, req.len, err, sizeof err) != 0) {
            benchErrorCount(&t->errors, "connection", 10, 1);
            break;
        }
        bool broken = false;
        for (long long i = 0; i < n; i++) {
            respReply *r = NULL;
            if (cliReadReply(&t->conn, &r, err, sizeof err) != 0) {
                benchErrorCount(&t->errors, "connection", 10, 1);
                broken = true;
                break;
            }
            histogramRecord(&t->hist, benchNowNs() - sent);
            if (r->type == RESP_ERROR) benchErrorReply(&t->errors, r);
            respReplyFree(r);
            t->done++;
            atomic_fetch_add(&sh->completed, 1);
        }
        if (broken) break;
        if (sh->deadline_ns && benchNowNs() >= sh->deadline_ns) atomic_store(&sh->stop, 1);
    }
    bufFree(&req);
    cliClose(&t->conn);
    return NULL;
}

static void benchProgress(const benchShared *sh, uint64_t start_ns) {
    double frac = (double)atomic_load(&sh->completed) / (double)sh->cfg->ops;
    if (sh->cfg->duration_s > 0) {
        double tf = (double)(benchNowNs() - start_ns) / 1e9 / sh->cfg->duration_s;
        if (tf > frac) frac = tf;
    }
    if (frac > 1) frac = 1;
    char bar[41];
    int filled = (int)(frac * 40);
    for (int i = 0; i < 40; i++) bar[i] = i < filled ? '#' : ' ';
    bar[40] = '\0';
    fprintf(stderr, "\r[%s] %3d%% %lld ops", bar, (int)(frac * 100),
            (long long)atomic_load(&sh->completed));
    fflush(stderr);
}

static void benchUsage(void) {
    printf("Usage: dmkv bench [--ops N] [--clients C] [--put-ratio R] [--keys K]\n"
           "                  [--value-size B] [--pipeline P] [--duration S] [--json]\n\n"
           "Runs C client threads (spread round-robin over --nodes), each sending\n"
           "SET key:<n> <value> (with probability R) or GET key:<n> for random n < K,\n"
           "P requests in flight per connection. Stops after N requests or S seconds,\n"
           "whichever comes first (S = 0: no time limit). Prints throughput, latency\n"
           "percentiles (a request's latency runs from its batch's send to its own\n"
           "reply) and errors by kind.\n\n"
           "  --ops N          requests in all [100000]\n"
           "  --clients C      connections/threads [8]\n"
           "  --put-ratio R    fraction of SETs, 0..1 [0.5]\n"
           "  --keys K         key space [10000]\n"
           "  --value-size B   SET value bytes [16]\n"
           "  --pipeline P     requests in flight per connection [1]\n"
           "  --duration S     seconds at most, 0 = until --ops [0]\n"
           "  --json           one JSON object instead of text\n");
    cliVerbUsageCommon();
}

enum {
    OPT_OPS = 256,
    OPT_CLIENTS,
    OPT_PUT_RATIO,
    OPT_KEYS,
    OPT_VALUE_SIZE,
    OPT_PIPELINE,
    OPT_DURATION,
    OPT_JSON
};

static int benchBadValue(const char *flag, const char *arg, const char *want) {
    fprintf(stderr, "dmkv bench: %s must be %s, got '%s'\n", flag, want, arg);
    return CLI_USAGE;
}

static int benchParseInt(const char *flag, const char *arg, long long min, long long max,
                         long long *out) {
    char *end;
    long long v = strtoll(arg, &end, 10);
    if (!*arg || *end || v < min || v > max) {
        char want[96];
        snprintf(want, sizeof want, "a whole number from %lld to %lld", min, max);
        return benchBadValue(flag, arg, want);
    }
    *out = v;
    return -1;
}

static int benchOption(void *ctx, int code, const char *arg) {
    benchConfig *c = ctx;
    long long v = 0;
    int rc = -1;
    char *end;
    switch (code) {
    case OPT_OPS:
        rc = benchParseInt("--ops", arg, 1, (long long)1 << 50, &c->ops);
        break;
    case OPT_CLIENTS:
        rc = benchParseInt("--clients", arg, 1, BENCH_MAX_CLIENTS, &v);
        c->clients = (int)v;
        break;
    case OPT_KEYS:
        rc = benchParseInt("--keys", arg, 1, (long long)1 << 40, &c->keys);
        break;
    case OPT_VALUE_SIZE:
        rc = benchParseInt("--value-size", arg, 0, BENCH_MAX_VALUE_SIZE, &c->value_size);
        break;
    case OPT_PIPELINE:
        rc = benchParseInt("--pipeline", arg, 1, BENCH_MAX_PIPELINE, &v);
        c->pipeline = (int)v;
        break;
    case OPT_PUT_RATIO:
        c->put_ratio = strtod(arg, &end);
        if (!*arg || *end || !(c->put_ratio >= 0 && c->put_ratio <= 1))
            rc = benchBadValue("--put-ratio", arg, "a fraction from 0 to 1");
        break;
    case OPT_DURATION:
        c->duration_s = strtod(arg, &end);
        if (!*arg || *end || !(c->duration_s >= 0 && c->duration_s <= 86400))
            rc = benchBadValue("--duration", arg, "seconds from 0 to 86400");
        break;
    case OPT_JSON:
        c->json = 1;
        break;
    }
    return rc;
}

static void benchJsonString(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void benchReport(const benchConfig *cfg, const histogram *h, const benchErrors *e,
                        double seconds) {
    uint64_t ops = histogramCount(h);
    double rate = seconds > 0 ? (double)ops / seconds : 0;
    double p50 = (double)histogramPercentile(h, 50) / 1e6,
           p90 = (double)histogramPercentile(h, 90) / 1e6;
    double p99 = (double)histogramPercentile(h, 99) / 1e6,
           p999 = (double)histogramPercentile(h, 99.9) / 1e6;
    double max = (double)histogramMax(h) / 1e6;
    if (cfg->json) {
        printf("{\"ops\": %llu, \"seconds\": %.6f, \"ops_per_sec\": %.1f, \"p50_ms\": %.4f, "
               "\"p90_ms\": %.4f, "
               "\"p99_ms\": %.4f, \"p999_ms\": %.4f, \"max_ms\": %.4f, \"errors\": {",
               (unsigned long long)ops, seconds, rate, p50, p90, p99, p999, max);
        for (int i = 0; i < e->n; i++) {
            if (i) printf(", ");
            benchJsonString(e->kind[i]);
            printf(": %llu", (unsigned long long)e->count[i]);
        }
        printf("}}\n");
        return;
    }
    printf("%llu requests in %.2f s: %.0f ops/s (%d clients, pipeline %d, %.0f%% SET)\n",
           (unsigned long long)ops, seconds, rate, cfg->clients, cfg->pipeline,
           cfg->put_ratio * 100);
    printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", p50, p90, p99, p999,
           max);
    printf("errors:");
    if (e->n == 0) printf(" none");
    for (int i = 0; i < e->n; i++) printf(" %s %llu", e->kind[i], (unsigned long long)e->count[i]);
    printf("\n");
}

int cliMainBench(int argc, char **argv) {
    static const struct option extra[] = {
        {"ops", required_argument, 0, OPT_OPS},
        {"clients", required_argument, 0, OPT_CLIENTS},
        {"put-ratio", required_argument, 0, OPT_PUT_RATIO},
        {"keys", required_argument, 0, OPT_KEYS},
        {"value-size", required_argument, 0, OPT_VALUE_SIZE},
        {"pipeline", required_argument, 0, OPT_PIPELINE},
        {"duration", required_argument, 0, OPT_DURATION},
        {"json", no_argument, 0, OPT_JSON},
        {0, 0, 0, 0},
    };
    benchConfig cfg = {.ops = 100000,
                       .clients = 8,
                       .put_ratio = 0.5,
                       .keys = 10000,
                       .value_size = 16,
                       .pipeline = 1};
    cliVerbOpts *o = xcalloc(1, sizeof *o);
    int rc = cliVerbParse("bench", argc, argv, o, extra, benchOption, &cfg, benchUsage);
    if (rc < 0 && optind < argc) {
        fprintf(stderr, "dmkv bench: unexpected argument '%s' (see dmkv bench --help)\n",
                argv[optind]);
        rc = CLI_USAGE;
    }
    if (rc >= 0) {
        free(o);
        return rc;
    }
    benchShared sh = {.cfg = &cfg, .opts = o};
    char *value = xmalloc((size_t)cfg.value_size + 1);
    memset(value, 'x', (size_t)cfg.value_size);
    value[cfg.value_size] = '\0';
    sh.value = value;
    benchThread *threads = xcalloc((size_t)cfg.clients, sizeof *threads);
    pthread_t *tids = xcalloc((size_t)cfg.clients, sizeof *tids);
    rc = CLI_OK;
    /* Connect everything first, so the clock measures requests only. */
    for (int i = 0; i < cfg.clients; i++) {
        char err[512];
        threads[i].sh = &sh;
        threads[i].index = i;
        histogramInit(&threads[i].hist);
        int node = i % o->nnodes;
        int crc = cliConnectNode(&threads[i].conn, &o->nodes[node], o->timeout_ms, o->password, err,
                                 sizeof err);
        if (crc == CLI_UNREACHABLE) {
            fprintf(stderr, "dmkv bench: node %d: %s\n", node + 1, err);
            for (int j = 0; j < i; j++) cliClose(&threads[j].conn);
            rc = CLI_UNREACHABLE;
            goto out;
        }
        if (crc == CLI_SERVER_ERROR) {
            /* Run anyway: the refused requests are counted by kind. */
            cliConnect(&threads[i].conn, o->nodes[node].host, o->nodes[node].port, o->timeout_ms,
                       err, sizeof err);
        }
    }
    uint64_t start = benchNowNs();
    if (cfg.duration_s > 0) sh.deadline_ns = start + (uint64_t)(cfg.duration_s * 1e9);
    for (int i = 0; i < cfg.clients; i++) {
        if (pthread_create(&tids[i], NULL, benchThreadMain, &threads[i]) != 0) {
            fprintf(stderr, "dmkv bench: cannot start thread %d\n", i + 1);
            abort();
        }
    }
    bool progress = isatty(STDERR_FILENO);
    while (progress && atomic_load(&sh.completed) < cfg.ops && !atomic_load(&sh.stop)) {
        benchProgress(&sh, start);
        struct timespec nap = {0, BENCH_PROGRESS_INTERVAL_MS * 1000000L};
        nanosleep(&nap, NULL);
        if (sh.deadline_ns && benchNowNs() >= sh.deadline_ns) atomic_store(&sh.stop, 1);
    }
    for (int i = 0; i < cfg.clients; i++) pthread_join(tids[i], NULL);
    double seconds = (double)(benchNowNs() - start) / 1e9;
    if (progress) {
        benchProgress(&sh, start);
        fprintf(stderr, "\n");
    }
    histogram *all = xmalloc(sizeof *all);
    histogramInit(all);
    benchErrors errors;
    memset(&errors, 0, sizeof errors);
    for (int i = 0; i < cfg.clients; i++) {
        histogramMerge(all, &threads[i].hist);
        for (int k = 0; k < threads[i].errors.n; k++) {
            const char *kind = threads[i].errors.kind[k];
            benchErrorCount(&errors, kind, strlen(kind), threads[i].errors.count[k]);
            if (!strcmp(kind, "connection"))
                rc = CLI_UNREACHABLE;
            else if (rc == CLI_OK)
                rc = CLI_SERVER_ERROR;
        }
    }
    benchReport(&cfg, all, &errors, seconds);
    free(all);
out:
    free(tids);
    free(threads);
    free(value);
    free(o);
    return rc;
}
