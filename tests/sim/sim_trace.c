/* Synthetic histories for src/trace: the logger's orderings at scale.
 *
 * A seeded generator drives five nodeClock instances through random
 * writes, reads and replication messages (some broadcast, delivered in
 * random order), so the clocks are the ones real nodes would produce.
 *
 *   sim_trace bench         times physical, Lamport and causal ordering
 *                           and concurrent-write detection on 10k, 100k
 *                           and 1M events, JSON encode and decode rates,
 *                           and the seed prototype's naive layering (peel
 *                           the events with no predecessor left, comparing
 *                           all pairs) against ours on 1k, 2k and 5k.
 *   sim_trace orders_agree  on a 20k-event history: layers equal the
 *                           naive peeling on a 1k prefix and on a 1k
 *                           window with its predecessors missing, equal
 *                           the Lamport times on the whole (every event is
 *                           logged, so both are the longest causal chain),
 *                           and concurrent pairs equal a pairwise count.
 *
 * The bench reads the clock (clock_gettime); the module never does. */
// ctest: orders_agree
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trace/trace.h"

/* xorshift64*: a fixed seed makes every run the same history. */
static uint64_t rng_state;

static void rngSeed(uint64_t seed) {
    rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
}

static uint64_t rngBelow(uint64_t n) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (rng_state * 0x2545f4914f6cdd1dull) % n;
}

#define SIM_NODES 5
#define SIM_KEYS  64

typedef struct inboxMsg {
    char id[24];
    uint64_t lamport;
    vclock vc;
} inboxMsg;

typedef struct inbox {
    inboxMsg *m;
    size_t n, cap;
} inbox;

static char *keyName(uint64_t k) {
    char name[16];
    snprintf(name, sizeof name, "key%" PRIu64, k);
    return xstrdup(name);
}

/* Puts a message stamped with c's clocks in the inbox of one random peer
 * of s, or of all of them. */
static void simSend(inbox *boxes, int s, const nodeClock *c, const char *id, bool broadcast) {
    int one = (s + 1 + (int)rngBelow(SIM_NODES - 1)) % SIM_NODES;
    for (int t = 0; t < SIM_NODES; t++) {
        if (t == s || (!broadcast && t != one)) continue;
        inbox *to = &boxes[t];
        if (to->n == to->cap) {
            to->cap = to->cap ? to->cap * 2 : 16;
            to->m = xrealloc(to->m, to->cap * sizeof *to->m);
        }
        inboxMsg *m = &to->m[to->n++];
        snprintf(m->id, sizeof m->id, "%s", id);
        m->lamport = c->lamport;
        vclockInit(&m->vc);
        vclockCopy(&m->vc, &c->vc);
    }
}

/* n events over SIM_NODES nodes: at each step a random node either takes
 * a message from its inbox or writes, reads, or replicates to one peer or
 * to all of them. Some writes carry their own clock to a peer, as a
 * replication that is not logged separately would. */
static traceEvent *simHistory(uint64_t seed, size_t n) {
    rngSeed(seed);
    traceEvent *ev = xcalloc(n, sizeof *ev);
    nodeClock clocks[SIM_NODES];
    inbox boxes[SIM_NODES];
    uint64_t seq[SIM_NODES] = {0};
    for (int i = 0; i < SIM_NODES; i++) {
        nodeClockInit(&clocks[i], (uint32_t)(i + 1));
        boxes[i] = (inbox){NULL, 0, 0};
    }
    uint64_t now_us = 1732430000000000ull;
    for (size_t k = 0; k < n; k++) {
        int s = (int)rngBelow(SIM_NODES);
        nodeClock *c = &clocks[s];
        traceEvent *e = &ev[k];
        now_us += 1 + rngBelow(20);
        e->node = (uint32_t)(s + 1);
        e->seq = ++seq[s];
        e->wall_us = now_us + (uint64_t)s * 7 + rngBelow(40); /* skew and jitter */
        inbox *in = &boxes[s];
        if (in->n && rngBelow(2) == 0) {
            size_t pick = rngBelow(in->n);
            inboxMsg m = in->m[pick];
            in->m[pick] = in->m[--in->n];
            nodeClockReceive(c, m.lamport, &m.vc);
            vclockFree(&m.vc);
            traceEventSetKind(e, TRACE_KIND_REPL_RECV);
            e->msg = xstrdup(m.id);
        } else {
            nodeClockTick(c);
            uint64_t dice = rngBelow(100);
            char id[24];
            snprintf(id, sizeof id, "%d:%" PRIu64, s + 1, e->seq);
            if (dice < 50) {
                static const traceKind writes[] = {TRACE_KIND_PUT, TRACE_KIND_PUT, TRACE_KIND_DEL,
                                                   TRACE_KIND_INCR};
                traceEventSetKind(e, writes[rngBelow(4)]);
                e->key = keyName(rngBelow(SIM_KEYS));
                e->detail = xstrdup("v");
                if (rngBelow(4) == 0) {
                    e->msg = xstrdup(id);
                    simSend(boxes, s, c, id, false);
                }
            } else if (dice < 75) {
                traceEventSetKind(e, TRACE_KIND_REPL_SEND);
                e->msg = xstrdup(id);
                simSend(boxes, s, c, id, rngBelow(3) == 0);
            } else {
                traceEventSetKind(e, TRACE_KIND_GET);
                e->key = keyName(rngBelow(SIM_KEYS));
            }
        }
        e->lamport = c->lamport;
        vclockCopy(&e->vc, &c->vc);
    }
    for (int i = 0; i < SIM_NODES; i++) {
        for (size_t m = 0; m < boxes[i].n; m++) vclockFree(&boxes[i].m[m].vc);
        free(boxes[i].m);
        nodeClockFree(&clocks[i]);
    }
    return ev;
}

static double nowMs(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The seed prototype's layering: repeatedly take, as the next layer, the
 * events with no predecessor among those left, comparing every pair. */
static size_t *naiveLayers(const traceEvent *const *ev, size_t n) {
    size_t *layer = xcalloc(n, sizeof *layer);
    size_t *left = xmalloc(n * sizeof *left), nleft = n;
    size_t *next = xmalloc(n * sizeof *next);
    for (size_t i = 0; i < n; i++) left[i] = i;
    for (size_t L = 1; nleft; L++) {
        size_t nnext = 0;
        for (size_t a = 0; a < nleft; a++) {
            bool has_pred = false;
            for (size_t b = 0; b < nleft && !has_pred; b++) {
                has_pred = vclockCompare(&ev[left[b]]->vc, &ev[left[a]]->vc) == VCLOCK_BEFORE;
            }
            if (has_pred)
                next[nnext++] = left[a];
            else
                layer[left[a]] = L;
        }
        size_t *t = left;
        left = next;
        next = t;
        nleft = nnext;
    }
    free(left);
    free(next);
    return layer;
}

static uint64_t pairwiseConcurrentWrites(const traceEvent *const *ev, size_t n) {
    uint64_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (!traceKindIsWrite(ev[i]->kind)) continue;
        for (size_t j = i + 1; j < n; j++) {
            if (!traceKindIsWrite(ev[j]->kind) || strcmp(ev[i]->key, ev[j]->key) != 0) continue;
            count += vclockCompare(&ev[i]->vc, &ev[j]->vc) == VCLOCK_CONCURRENT;
        }
    }
    return count;
}

static void freeHistory(traceEvent *ev, size_t n) {
    traceBatchFree(ev, n);
}

/* ---- bench ------------------------------------------------------------ */

/* Best of three runs: the machine is shared, the minimum is the cost. */
#define BENCH_RUNS 3

static void benchOrderings(size_t n) {
    traceEvent *h = simHistory(42, n);
    const traceEvent **ev = traceEventPointers(h, n);
    double best[4] = {1e300, 1e300, 1e300, 1e300};
    size_t nlayers = 0;
    uint64_t pairs = 0;
    for (int run = 0; run < BENCH_RUNS; run++) {
        double t0 = nowMs();
        size_t *phys = traceOrderPhysical(ev, n);
        double t1 = nowMs();
        size_t *lam = traceOrderLamport(ev, n);
        double t2 = nowMs();
        traceLayers layers;
        traceOrderLayers(ev, n, &layers);
        double t3 = nowMs();
        traceConcurrent c;
        traceOrderConcurrentWrites(ev, n, TRACE_MAX_LISTED_PAIRS, &c);
        double t4 = nowMs();
        double took[4] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3};
        for (int k = 0; k < 4; k++) best[k] = took[k] < best[k] ? took[k] : best[k];
        nlayers = layers.nlayers;
        pairs = c.total;
        free(phys);
        free(lam);
        traceLayersFree(&layers);
        traceConcurrentFree(&c);
    }
    printf("%9zu  %11.1f %10.1f %9.1f %13.1f %9.1f  %8zu %16" PRIu64 "\n", n, best[0], best[1],
           best[2], best[3], best[0] + best[1] + best[2] + best[3], nlayers, pairs);
    free(ev);
    freeHistory(h, n);
}

static void benchJson(size_t n) {
    traceEvent *h = simHistory(7, n);
    buf b;
    bufInit(&b);
    double t0 = nowMs();
    for (size_t i = 0; i < n; i++) traceEventToJson(&h[i], &b);
    double t1 = nowMs();
    /* Decode in the largest batches the logger accepts. */
    size_t decoded = 0, pos = 0;
    char err[256];
    while (pos < b.len) {
        size_t end = pos, lines = 0;
        while (end < b.len && lines < TRACE_BATCH_MAX_EVENTS) {
            const char *nl = memchr(b.data + end, '\n', b.len - end);
            end = nl ? (size_t)(nl - b.data) + 1 : b.len;
            lines++;
        }
        traceEvent *out;
        size_t got;
        if (traceBatchDecode(b.data + pos, end - pos, &out, &got, err, sizeof err) != 0) {
            fprintf(stderr, "decode failed: %s\n", err);
            exit(1);
        }
        decoded += got;
        traceBatchFree(out, got);
        pos = end;
    }
    double t2 = nowMs();
    printf("json: %zu events, %.1f bytes/event: encode %.0f events/s, decode %.0f events/s\n",
           decoded, (double)b.len / (double)n, (double)n / ((t1 - t0) / 1e3),
           (double)n / ((t2 - t1) / 1e3));
    bufFree(&b);
    freeHistory(h, n);
}

static void benchNaive(void) {
    static const size_t sizes[] = {1000, 2000, 5000};
    traceEvent *h = simHistory(3, 5000);
    const traceEvent **ev = traceEventPointers(h, 5000);
    printf("\nnaive layering (seed prototype) against traceOrderLayers:\n");
    printf("%9s  %10s %10s %10s\n", "events", "naive_ms", "ours_ms", "ratio");
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        double t0 = nowMs();
        size_t *naive = naiveLayers(ev, n);
        double t1 = nowMs();
        traceLayers layers;
        traceOrderLayers(ev, n, &layers);
        double t2 = nowMs();
        bool same = true;
        for (size_t i = 0; i < n; i++) same = same && naive[i] == layers.layer[i];
        printf("%9zu  %10.1f %10.3f %10.0f%s\n", n, t1 - t0, t2 - t1, (t1 - t0) / (t2 - t1),
               same ? "" : "  LAYERS DIFFER");
        free(naive);
        traceLayersFree(&layers);
    }
    free(ev);
    freeHistory(h, 5000);
}

static int runBench(void) {
    printf("orderings on %d nodes, %d keys (ms, best of %d):\n", SIM_NODES, SIM_KEYS, BENCH_RUNS);
    printf("%9s  %11s %10s %9s %13s %9s  %8s %16s\n", "events", "physical", "lamport", "layers",
           "concurrent", "total", "nlayers", "concurrent_pairs");
    benchOrderings(10000);
    benchOrderings(100000);
    benchOrderings(1000000);
    printf("\n");
    benchJson(1000000);
    benchNaive();
    return 0;
}

/* ---- orders_agree ----------------------------------------------------- */

static int compareWithNaive(const char *what, const traceEvent *const *ev, size_t n) {
    size_t *naive = naiveLayers(ev, n);
    traceLayers layers;
    traceOrderLayers(ev, n, &layers);
    int bad = 0;
    for (size_t i = 0; i < n && !bad; i++) {
        if (naive[i] != layers.layer[i]) {
            fprintf(stderr, "%s: node %" PRIu32 " seq %" PRIu64 " layer %zu, naive %zu\n", what,
                    ev[i]->node, ev[i]->seq, layers.layer[i], naive[i]);
            bad = 1;
        }
    }
    traceConcurrent c;
    traceOrderConcurrentWrites(ev, n, 0, &c);
    uint64_t want = pairwiseConcurrentWrites(ev, n);
    if (c.total != want) {
        fprintf(stderr, "%s: %" PRIu64 " concurrent pairs, pairwise %" PRIu64 "\n", what, c.total,
                want);
        bad = 1;
    }
    printf("%s: %zu events, %zu layers, %" PRIu64 " concurrent pairs: %s\n", what, n,
           layers.nlayers, c.total, bad ? "DIFFER" : "agree");
    traceConcurrentFree(&c);
    traceLayersFree(&layers);
    free(naive);
    return bad;
}

static int runOrdersAgree(void) {
    size_t n = 20000;
    traceEvent *h = simHistory(2024, n);
    const traceEvent **ev = traceEventPointers(h, n);
    int bad = compareWithNaive("prefix", ev, 1000);
    bad |= compareWithNaive("window", ev + 10000, 1000);

    traceLayers layers;
    traceOrderLayers(ev, n, &layers);
    for (size_t i = 0; i < n; i++) {
        if (layers.layer[i] != ev[i]->lamport) {
            fprintf(stderr,
                    "whole: node %" PRIu32 " seq %" PRIu64 " layer %zu, Lamport %" PRIu64 "\n",
                    ev[i]->node, ev[i]->seq, layers.layer[i], ev[i]->lamport);
            bad = 1;
            break;
        }
    }
    printf("whole: %zu events, %zu layers equal to Lamport times: %s\n", n, layers.nlayers,
           bad ? "no" : "yes");
    traceLayersFree(&layers);
    free(ev);
    freeHistory(h, n);
    return bad;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "bench") == 0) return runBench();
    if (strcmp(mode, "orders_agree") == 0) return runOrdersAgree();
    fprintf(stderr, "usage: %s bench|orders_agree\n", argv[0]);
    return 2;
}
