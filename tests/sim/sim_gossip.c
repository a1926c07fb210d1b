/* Deterministic simulation of SWIM membership (src/gossip) at scale.
 *
 * N instances of the real state machine run over a simulated network: one
 * event queue ordered by time (a binary heap) holds datagrams in flight,
 * push-pull exchanges and each node's next deadline. Every link has its
 * own base latency (0.2-2 ms, fixed per pair) plus per-datagram jitter
 * (0-0.5 ms); datagrams are lost with a configurable probability; nodes
 * can be partitioned into groups that cannot reach each other, crashed
 * (they stop processing), restarted (a new instance with the same id and
 * a higher incarnation, which joins by push-pull) or asked to leave.
 * Push-pull is simulated as a direct state exchange with a round trip of
 * latency, as the agent does it over TCP. Everything random comes from one
 * seed, so a failure prints the seed that reproduces it:
 *
 *     sim_gossip <scenario> [seed]
 *
 * Each node's membership events feed a per-member tally of how many live
 * observers hold it in each state, so "DEAD at every live member" or "ALIVE
 * everywhere" is checked in O(1) per event, and a 10,000-node cluster runs
 * in one process (about 10 GB; the tally never scans all views). Member
 * lookups inside the state machine are hashed, so no step scans N.
 *
 * Scenarios (ctest runs each listed below as sim_gossip_<scenario>):
 *   crash_detect        N=50, no loss: a crashed node is DEAD at every live
 *                       member within the bound derived in gossip.h
 *   loss_no_false_dead  N=50, 10% loss, 10 simulated minutes: no live node
 *                       is ever declared DEAD
 *   dissemination_1000  N=1000: one update reaches all within log2(N) periods
 *   partition_heal      N=50 split in halves until each side declares the
 *                       other DEAD, then healed: everyone ALIVE everywhere
 *   restart_rejoin      a crashed node restarted with a higher incarnation
 *                       is ALIVE everywhere again
 *   leave               a leaving node ends LEFT everywhere, never DEAD
 *   bench               (not a test) N = 3 .. 10,000: dissemination,
 *                       detection, rejoin, false deaths under loss, traffic */
// ctest: crash_detect loss_no_false_dead dissemination_1000 partition_heal restart_rejoin leave
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gossip/codec.h"
#include "gossip/gossip.h"

#include "simrng.h"

/* ---- Generator (the simulator's own; the nodes have theirs) ----------- */

static double simUnit(simRng *r) {
    return (double)(simRand(r) >> 11) / 9007199254740992.0;
}

/* ---- Event queue ------------------------------------------------------ */

enum { EV_TICK, EV_PACKET, EV_PP_TIMER, EV_PP_REQ, EV_PP_RESP };

typedef struct simEvent {
    uint64_t at; /* microseconds */
    uint64_t seq;
    uint32_t node, from, gen, len;
    uint8_t kind;
    uint8_t *data;
} simEvent;

typedef struct heap {
    simEvent *a;
    size_t n, cap;
} heap;

static bool evBefore(const simEvent *x, const simEvent *y) {
    return x->at < y->at || (x->at == y->at && x->seq < y->seq);
}

static void heapPush(heap *h, const simEvent *e) {
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 1024;
        h->a = xrealloc(h->a, h->cap * sizeof *h->a);
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!evBefore(e, &h->a[p])) break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = *e;
}

static simEvent heapPop(heap *h) {
    simEvent top = h->a[0], last = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && evBefore(&h->a[c + 1], &h->a[c])) c++;
        if (!evBefore(&h->a[c], &last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = last;
    return top;
}

/* ---- Simulation state ------------------------------------------------- */

typedef struct simNode {
    gossip *g;
    gossipAddr addr;
    bool up, leaving;
    int group;    /* partition: nodes reach only their own group */
    uint32_t gen; /* bumped on crash and restart: drops stale events */
    uint64_t tick_at;
    uint64_t inc; /* incarnation the "disk" kept at crash */
} simNode;

typedef struct sim {
    uint64_t seed;
    simRng rng;
    gossipConfig cfg;
    uint32_t n;
    simNode *nodes;
    heap q;
    uint64_t now, seq;
    double loss;
    bool pushpull;
    uint32_t up_count;

    /* Tally: cnt[j * 5 + s] = live observers holding member j in state s. */
    uint32_t *cnt;
    uint64_t false_dead, suspicions, dead_events;
    uint64_t *dead_about; /* DEAD events about each member, from anyone */

    /* Dissemination watch: who has seen member watch_id at >= watch_inc. */
    uint32_t watch_id;
    uint64_t watch_inc, watch_done_at;
    uint8_t *seen;
    uint32_t seen_count;

    /* Crash watch. */
    uint32_t crash_id;
    uint64_t crash_at, first_suspect_at, first_dead_at, all_dead_at;

    /* Traffic. */
    uint64_t msgs, bytes, pp_exchanges;
} sim;

static void simFail(const sim *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL (seed %" PRIu64 ", t=%.3f s): ", s->seed, (double)s->now / 1e6);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static uint32_t idOf(uint32_t i) {
    return i + 1;
}

/* Loopback literals: 127.x.y.z encodes the node, so an address maps back
 * to its node without a table. No datagram leaves the process. */
static void addrOf(uint32_t i, gossipAddr *a) {
    uint32_t id = idOf(i);
    memset(a, 0, sizeof *a);
    snprintf(a->host, sizeof a->host, "127.%u.%u.%u", (id >> 16) & 255, (id >> 8) & 255, id & 255);
    a->udp_port = 7946;
    a->tcp_port = 7947;
}

static uint32_t indexOfAddr(const sim *s, const gossipAddr *a) {
    unsigned x[4];
    if (sscanf(a->host, "%u.%u.%u.%u", &x[0], &x[1], &x[2], &x[3]) != 4 || x[0] != 127)
        simFail(s, "packet to unknown address %s", a->host);
    uint32_t id = (x[1] << 16) | (x[2] << 8) | x[3];
    if (id == 0 || id > s->n) simFail(s, "packet to unknown address %s", a->host);
    return id - 1;
}

static bool reachable(const sim *s, uint32_t a, uint32_t b) {
    return s->nodes[a].group == s->nodes[b].group;
}

/* Fixed per pair, 0.2-2 ms, plus 0-0.5 ms jitter per datagram. */
static uint64_t latencyUs(sim *s, uint32_t a, uint32_t b) {
    uint32_t lo = a < b ? a : b, hi = a < b ? b : a;
    simRng pair = {s->seed ^ ((uint64_t)lo << 32 | hi)};
    return 200 + simBelow(&pair, 1801) + simBelow(&s->rng, 501);
}

static void schedule(sim *s, uint8_t kind, uint64_t at, uint32_t node, uint32_t from, uint32_t gen,
                     uint8_t *data, uint32_t len) {
    simEvent e = {.at = at,
                  .seq = s->seq++,
                  .node = node,
                  .from = from,
                  .gen = gen,
                  .len = len,
                  .kind = kind,
                  .data = data};
    heapPush(&s->q, &e);
}

/* ---- Observing the nodes ---------------------------------------------- */

static uint32_t *tally(sim *s, uint32_t id, gossipState st) {
    return &s->cnt[(size_t)(id - 1) * 5 + st];
}

static void onEvent(sim *s, uint32_t observer, const gossipEvent *ev) {
    (void)observer;
    if (ev->id == 0 || ev->id > s->n) simFail(s, "event about unknown id %u", ev->id);
    if (ev->old_state != GOSSIP_NONE) (*tally(s, ev->id, ev->old_state))--;
    if (ev->new_state != GOSSIP_NONE) (*tally(s, ev->id, ev->new_state))++;
    const simNode *subject = &s->nodes[ev->id - 1];
    uint64_t at = s->now;
    if (ev->new_state == GOSSIP_DEAD && ev->old_state != GOSSIP_DEAD) {
        s->dead_events++;
        s->dead_about[ev->id - 1]++;
        if (subject->up && !subject->leaving) s->false_dead++;
    }
    if (ev->new_state == GOSSIP_SUSPECT && ev->old_state == GOSSIP_ALIVE) s->suspicions++;
    if (ev->id == s->watch_id && ev->new_state == GOSSIP_ALIVE && ev->incarnation >= s->watch_inc &&
        !s->seen[observer]) {
        s->seen[observer] = 1;
        if (++s->seen_count == s->up_count && !s->watch_done_at) s->watch_done_at = at;
    }
    if (ev->id == s->crash_id && s->crash_at) {
        if (ev->new_state == GOSSIP_SUSPECT && !s->first_suspect_at) s->first_suspect_at = at;
        if (ev->new_state == GOSSIP_DEAD && !s->first_dead_at) s->first_dead_at = at;
        if (*tally(s, ev->id, GOSSIP_DEAD) == s->up_count && !s->all_dead_at) s->all_dead_at = at;
    }
}

/* After any call into node i: collect its events and datagrams, and
 * make sure its next deadline is in the queue. */
static void afterCall(sim *s, uint32_t i) {
    simNode *n = &s->nodes[i];
    gossipEvent ev;
    while (gossipNextEvent(n->g, &ev)) onEvent(s, i, &ev);
    gossipPacket p;
    while (gossipNextPacket(n->g, &p)) {
        if (p.len > s->cfg.max_datagram_bytes) simFail(s, "datagram of %zu bytes", p.len);
        s->msgs++;
        s->bytes += p.len;
        uint32_t to = p.to_id ? p.to_id - 1 : indexOfAddr(s, &p.to);
        if (to >= s->n) simFail(s, "datagram to id %u", p.to_id);
        if (s->loss > 0 && simUnit(&s->rng) < s->loss) continue;
        uint8_t *copy = xmalloc(p.len);
        memcpy(copy, p.data, p.len);
        schedule(s, EV_PACKET, s->now + latencyUs(s, i, to), to, i, 0, copy, (uint32_t)p.len);
    }
    uint64_t d = gossipNextDeadline(n->g);
    if (d == UINT64_MAX) return;
    uint64_t at = d * 1000;
    if (at < s->now) at = s->now;
    if (at < n->tick_at) {
        n->tick_at = at;
        schedule(s, EV_TICK, at, i, i, n->gen, NULL, 0);
    }
}

static uint64_t nowMs(const sim *s) {
    return s->now / 1000;
}

static void startPushPull(sim *s, uint32_t i, uint32_t target) {
    buf b;
    bufInit(&b);
    gossipEncodeState(s->nodes[i].g, &b);
    s->pp_exchanges++;
    /* Connect and send: a round trip and a half; call it two latencies. */
    uint64_t at = s->now + 2 * latencyUs(s, i, target);
    schedule(s, EV_PP_REQ, at, target, i, s->nodes[i].gen, (uint8_t *)b.data, (uint32_t)b.len);
}

static void step(sim *s, simEvent *e) {
    s->now = e->at;
    simNode *n = &s->nodes[e->node];
    switch (e->kind) {
    case EV_TICK:
        if (!n->up || n->gen != e->gen || n->tick_at != e->at) break;
        n->tick_at = UINT64_MAX;
        gossipTick(n->g, nowMs(s));
        if (gossipNextDeadline(n->g) <= nowMs(s))
            simFail(s, "node %u: deadline not advanced by a tick", idOf(e->node));
        afterCall(s, e->node);
        break;
    case EV_PACKET:
        if (n->up && reachable(s, e->from, e->node)) {
            gossipOnPacket(n->g, nowMs(s), e->data, e->len, &s->nodes[e->from].addr);
            afterCall(s, e->node);
        }
        break;
    case EV_PP_TIMER: {
        if (!n->up || n->gen != e->gen) break;
        gossipMember m;
        if (s->pushpull && !n->leaving && gossipPickPushPullTarget(n->g, &m))
            startPushPull(s, e->node, m.id - 1);
        uint64_t next = s->now + gossipPushPullIntervalMs(n->g) * 1000;
        schedule(s, EV_PP_TIMER, next, e->node, e->node, n->gen, NULL, 0);
        break;
    }
    case EV_PP_REQ:
        /* The responder merges, then answers with its (updated) state. */
        if (n->up && reachable(s, e->from, e->node)) {
            if (gossipMergeState(n->g, nowMs(s), e->data, e->len) != 0)
                simFail(s, "node %u rejected a state blob", idOf(e->node));
            afterCall(s, e->node);
            buf b;
            bufInit(&b);
            gossipEncodeState(n->g, &b);
            schedule(s, EV_PP_RESP, s->now + latencyUs(s, e->node, e->from), e->from, e->node,
                     e->gen, (uint8_t *)b.data, (uint32_t)b.len);
        }
        break;
    case EV_PP_RESP:
        if (n->up && n->gen == e->gen && reachable(s, e->from, e->node)) {
            if (gossipMergeState(n->g, nowMs(s), e->data, e->len) != 0)
                simFail(s, "node %u rejected a state blob", idOf(e->node));
            afterCall(s, e->node);
        }
        break;
    }
    free(e->data);
}

static void runUntil(sim *s, uint64_t until_us) {
    while (s->q.n > 0 && s->q.a[0].at <= until_us) {
        simEvent e = heapPop(&s->q);
        step(s, &e);
    }
    if (s->now < until_us) s->now = until_us;
}

/* Runs until cond holds (checked every 10 ms) or `limit_us` passes;
 * returns whether it held. */
static bool runWhile(sim *s, bool (*cond)(sim *), uint64_t limit_us) {
    uint64_t end = s->now + limit_us;
    while (s->now < end) {
        if (cond(s)) return true;
        runUntil(s, s->now + 10000);
    }
    return cond(s);
}

/* ---- Building, crashing, restarting ----------------------------------- */

static gossip *newInstance(sim *s, uint32_t i, uint64_t inc) {
    gossip *g = gossipCreate(&s->cfg, idOf(i), &s->nodes[i].addr, NULL, 0, inc,
                             s->seed * 1000003 + i * 7919 + inc, nowMs(s));
    if (!g) simFail(s, "gossipCreate failed for node %u", idOf(i));
    return g;
}

/* N nodes that already know each other (a restored member list, so the
 * start is not a storm of join rumours), each with its push-pull timer at
 * a random phase. */
static void simInit(sim *s, uint32_t n, uint64_t seed, double loss, bool pushpull) {
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->rng.s = seed;
    gossipConfigDefault(&s->cfg);
    s->n = n;
    s->loss = loss;
    s->pushpull = pushpull;
    s->now = 1000000;
    s->nodes = xcalloc(n, sizeof *s->nodes);
    s->cnt = xcalloc((size_t)n * 5, sizeof *s->cnt);
    s->dead_about = xcalloc(n, sizeof *s->dead_about);
    s->seen = xcalloc(n, 1);
    for (uint32_t i = 0; i < n; i++) addrOf(i, &s->nodes[i].addr);
    buf b;
    bufInit(&b);
    gossipEncodeStateHeader(&b, UINT32_MAX, n);
    for (uint32_t i = 0; i < n; i++) {
        gossipUpdate u;
        memset(&u, 0, sizeof u);
        u.kind = GOSSIP_ALIVE;
        u.node = idOf(i);
        u.incarnation = 1;
        u.addr = s->nodes[i].addr;
        gossipEncodeStateEntry(&b, &u);
    }
    for (uint32_t i = 0; i < n; i++) {
        simNode *nd = &s->nodes[i];
        nd->up = true;
        nd->tick_at = UINT64_MAX;
        nd->g = newInstance(s, i, 1);
        if (gossipRestoreState(nd->g, nowMs(s), (uint8_t *)b.data, b.len) != 0)
            simFail(s, "restore failed");
        s->up_count++;
        afterCall(s, i);
        uint64_t pp = s->now + simBelow(&s->rng, gossipPushPullIntervalMs(nd->g) * 1000);
        schedule(s, EV_PP_TIMER, pp, i, i, nd->gen, NULL, 0);
    }
    bufFree(&b);
}

static void simFree(sim *s) {
    for (uint32_t i = 0; i < s->n; i++) gossipFree(s->nodes[i].g);
    while (s->q.n) {
        simEvent e = heapPop(&s->q);
        free(e.data);
    }
    free(s->q.a);
    free(s->nodes);
    free(s->cnt);
    free(s->dead_about);
    free(s->seen);
}

/* kill -9: the node's view leaves the tally, its instance is gone; only
 * its incarnation survives, as the agent persists it. */
static void simCrash(sim *s, uint32_t i) {
    simNode *n = &s->nodes[i];
    gossipMember m;
    for (size_t k = 0; gossipMemberAt(n->g, k, &m); k++) (*tally(s, m.id, m.state))--;
    n->inc = gossipSelfIncarnation(n->g);
    gossipFree(n->g);
    n->g = NULL;
    n->up = false;
    n->gen++;
    s->up_count--;
}

/* A new process: same id and address, a higher incarnation, an empty
 * member list, and a push-pull with one live peer to join. */
static void simRestart(sim *s, uint32_t i) {
    simNode *n = &s->nodes[i];
    n->gen++;
    n->up = true;
    n->leaving = false;
    n->tick_at = UINT64_MAX;
    n->g = newInstance(s, i, n->inc + 1);
    s->up_count++;
    afterCall(s, i);
    uint32_t peer;
    do peer = (uint32_t)simBelow(&s->rng, s->n);
    while (peer == i || !s->nodes[peer].up);
    startPushPull(s, i, peer);
    uint64_t pp = s->now + gossipPushPullIntervalMs(n->g) * 1000;
    schedule(s, EV_PP_TIMER, pp, i, i, n->gen, NULL, 0);
}

static uint32_t randomUpNode(sim *s) {
    uint32_t i;
    do i = (uint32_t)simBelow(&s->rng, s->n);
    while (!s->nodes[i].up);
    return i;
}

static bool allAliveEverywhere(const sim *s) {
    for (uint32_t j = 0; j < s->n; j++) {
        if (s->nodes[j].up && s->cnt[(size_t)j * 5 + GOSSIP_ALIVE] != s->up_count) return false;
    }
    return true;
}

static bool condAllAlive(sim *s) {
    return allAliveEverywhere(s);
}

static bool condAllDead(sim *s) {
    return s->all_dead_at != 0;
}

static bool condWatchDone(sim *s) {
    return s->watch_done_at != 0;
}

static void watchCrash(sim *s, uint32_t i) {
    s->crash_id = idOf(i);
    s->crash_at = s->now;
    s->first_suspect_at = s->first_dead_at = s->all_dead_at = 0;
}

static void watchUpdate(sim *s, uint32_t id, uint64_t inc) {
    s->watch_id = id;
    s->watch_inc = inc;
    s->watch_done_at = 0;
    s->seen_count = 0;
    memset(s->seen, 0, s->n);
}

static double secs(uint64_t us) {
    return (double)us / 1e6;
}

static double periods(const sim *s, uint64_t us) {
    return (double)us / 1000.0 / s->cfg.probe_interval_ms;
}

/* The bound derived in gossip.h, with margins: the first failed probe
 * within 5 periods (a given period is missed by all N-1 probers with
 * probability ~1/e, five in a row ~0.7%), the minimum suspicion timeout,
 * and 2 s for the confirmation and the spread of DEAD. */
static uint64_t detectBoundUs(const sim *s, uint32_t n) {
    double scale = n > 10 ? log10((double)n) : 1.0;
    double susp_ms = s->cfg.suspicion_mult * scale * s->cfg.probe_interval_ms;
    return (uint64_t)((5.0 * s->cfg.probe_interval_ms + susp_ms + 2000.0) * 1000.0);
}

/* ---- Scenarios -------------------------------------------------------- */

static int scenarioCrashDetect(uint64_t seed) {
    sim s;
    simInit(&s, 50, seed, 0.0, true);
    runUntil(&s, s.now + 10 * 1000000ull);
    uint64_t bound = detectBoundUs(&s, 50);
    double sum = 0, worst = 0, sum_first = 0;
    const int trials = 10;
    for (int t = 0; t < trials; t++) {
        uint32_t victim = randomUpNode(&s);
        simCrash(&s, victim);
        watchCrash(&s, victim);
        if (!runWhile(&s, condAllDead, 30 * 1000000ull))
            simFail(&s, "node %u not DEAD everywhere after 30 s (%u of %u)", idOf(victim),
                    *tally(&s, idOf(victim), GOSSIP_DEAD), s.up_count);
        uint64_t took = s.all_dead_at - s.crash_at;
        printf("crash %2d: node %2u first SUSPECT %.2f s, first DEAD %.2f s, DEAD at all %u "
               "live members %.2f s\n",
               t + 1, idOf(victim), secs(s.first_suspect_at - s.crash_at),
               secs(s.first_dead_at - s.crash_at), s.up_count, secs(took));
        if (took > bound)
            simFail(&s, "detection took %.2f s, bound %.2f s", secs(took), secs(bound));
        sum += secs(took);
        sum_first += secs(s.first_suspect_at - s.crash_at);
        if (secs(took) > worst) worst = secs(took);
        s.crash_at = 0;
        runUntil(&s, s.now + 2 * 1000000ull);
    }
    printf("crash_detect: N=50, %d crashes: DEAD everywhere after mean %.2f s, max %.2f s "
           "(bound %.2f s); first suspicion after mean %.2f periods (SWIM e/(e-1) = 1.58); "
           "false DEAD %" PRIu64 "\n",
           trials, sum / trials, worst, secs(bound), sum_first / trials / 0.5, s.false_dead);
    if (s.false_dead) simFail(&s, "%" PRIu64 " live members declared DEAD", s.false_dead);
    simFree(&s);
    return 0;
}

static int scenarioLossNoFalseDead(uint64_t seed) {
    sim s;
    simInit(&s, 50, seed, 0.10, true);
    uint64_t start = s.now;
    for (int minute = 1; minute <= 10; minute++) {
        runUntil(&s, start + (uint64_t)minute * 60 * 1000000ull);
        if (s.false_dead)
            simFail(&s, "%" PRIu64 " DEAD declarations about live members", s.false_dead);
    }
    uint64_t refuted = 0, raised = 0, probes = 0, failed = 0;
    for (uint32_t i = 0; i < s.n; i++) {
        const gossipStats *st = gossipGetStats(s.nodes[i].g);
        refuted += st->suspicions_refuted;
        raised += st->suspicions_raised;
        probes += st->probes_sent;
        failed += st->probes_failed;
    }
    printf("loss_no_false_dead: N=50, 10%% loss, 600 s: %" PRIu64 " probes, %" PRIu64
           " failed, %" PRIu64 " suspicions raised (%" PRIu64 " SUSPECT transitions seen), "
           "%" PRIu64 " refuted, 0 false DEAD; %.1f msgs/member/s\n",
           probes, failed, raised, s.suspicions, refuted, (double)s.msgs / s.n / 600.0);
    simFree(&s);
    return 0;
}

/* Returns the periods an update from node 0 needed to reach everyone. */
static double measureDissemination(sim *s) {
    uint32_t src = 0;
    while (!s->nodes[src].up) src++;
    uint64_t inc = gossipSelfIncarnation(s->nodes[src].g) + 1;
    watchUpdate(s, idOf(src), inc);
    uint64_t t0 = s->now;
    if (gossipUpdateMeta(s->nodes[src].g, nowMs(s), (const uint8_t *)"v2", 2) != 0)
        simFail(s, "meta update refused");
    afterCall(s, src);
    if (!runWhile(s, condWatchDone, 60 * 1000000ull))
        simFail(s, "update reached %u of %u members in 60 s", s->seen_count, s->up_count);
    return periods(s, s->watch_done_at - t0);
}

static int scenarioDissemination(uint64_t seed) {
    sim s;
    simInit(&s, 1000, seed, 0.0, true);
    runUntil(&s, s.now + 5 * 1000000ull);
    double worst = 0, sum = 0;
    const int trials = 5;
    double bound = log2(1000.0); /* c = 1: at most log2 N protocol periods */
    for (int t = 0; t < trials; t++) {
        double p = measureDissemination(&s);
        printf("update %d: all 1000 members after %.2f periods (%.2f s)\n", t + 1, p, p * 0.5);
        sum += p;
        if (p > worst) worst = p;
        if (p > bound) simFail(&s, "dissemination took %.2f periods, bound %.2f", p, bound);
        runUntil(&s, s.now + 3 * 1000000ull);
    }
    printf("dissemination_1000: mean %.2f, max %.2f protocol periods (bound c*log2(N) = "
           "%.2f with c = 1)\n",
           sum / trials, worst, bound);
    simFree(&s);
    return 0;
}

static bool condSplitComplete(sim *s) {
    /* Every member is DEAD at every observer of the other half. */
    for (uint32_t j = 0; j < s->n; j++) {
        if (s->cnt[(size_t)j * 5 + GOSSIP_DEAD] != s->n / 2) return false;
    }
    return true;
}

static int scenarioPartitionHeal(uint64_t seed) {
    sim s;
    simInit(&s, 50, seed, 0.0, true);
    runUntil(&s, s.now + 10 * 1000000ull);
    for (uint32_t i = 0; i < s.n; i++) s.nodes[i].group = i < s.n / 2 ? 0 : 1;
    uint64_t split = s.now;
    if (!runWhile(&s, condSplitComplete, 120 * 1000000ull))
        simFail(&s, "halves did not declare each other DEAD within 120 s");
    uint64_t apart = s.now - split;
    runUntil(&s, s.now + 5 * 1000000ull);
    for (uint32_t i = 0; i < s.n; i++) s.nodes[i].group = 0;
    uint64_t healed = s.now;
    uint64_t pp_before = s.pp_exchanges;
    /* Gossip to the dead reaches across within a round or two; push-pull
     * (every 60 s per node at N = 50) is the slower backstop. */
    const uint64_t bound = 20 * 1000000ull;
    if (!runWhile(&s, condAllAlive, bound))
        simFail(&s, "membership not ALIVE everywhere %.0f s after healing", secs(bound));
    uint64_t refuted = 0;
    for (uint32_t i = 0; i < s.n; i++) refuted += gossipGetStats(s.nodes[i].g)->suspicions_refuted;
    printf("partition_heal: N=50 split 25/25; each side declared the other DEAD after %.2f s; "
           "after healing, everyone ALIVE at everyone in %.2f s (bound %.0f s), "
           "%" PRIu64 " push-pulls, %" PRIu64 " refutations in total\n",
           secs(apart), secs(s.now - healed), secs(bound), s.pp_exchanges - pp_before, refuted);
    simFree(&s);
    return 0;
}

static int scenarioRestartRejoin(uint64_t seed) {
    sim s;
    simInit(&s, 50, seed, 0.0, true);
    runUntil(&s, s.now + 10 * 1000000ull);
    uint32_t victim = randomUpNode(&s);
    simCrash(&s, victim);
    watchCrash(&s, victim);
    if (!runWhile(&s, condAllDead, 30 * 1000000ull)) simFail(&s, "crashed node not DEAD");
    printf("node %u crashed: DEAD everywhere after %.2f s\n", idOf(victim),
           secs(s.all_dead_at - s.crash_at));
    s.crash_id = 0;
    runUntil(&s, s.now + 5 * 1000000ull);
    uint64_t t0 = s.now;
    simRestart(&s, victim);
    const uint64_t bound = 10 * 1000000ull;
    if (!runWhile(&s, condAllAlive, bound))
        simFail(&s, "restarted node ALIVE at %u of %u after %.0f s",
                *tally(&s, idOf(victim), GOSSIP_ALIVE), s.up_count, secs(bound));
    printf("restart_rejoin: node %u restarted at incarnation %" PRIu64 ", ALIVE at all %u "
           "members (and sees them all) after %.2f s (bound %.0f s)\n",
           idOf(victim), gossipSelfIncarnation(s.nodes[victim].g), s.up_count, secs(s.now - t0),
           secs(bound));
    if (s.false_dead) simFail(&s, "%" PRIu64 " live members declared DEAD", s.false_dead);
    simFree(&s);
    return 0;
}

static int scenarioLeave(uint64_t seed) {
    sim s;
    simInit(&s, 50, seed, 0.0, true);
    runUntil(&s, s.now + 10 * 1000000ull);
    uint32_t x = randomUpNode(&s);
    uint32_t id = idOf(x);
    uint64_t t0 = s.now;
    s.nodes[x].leaving = true;
    gossipLeave(s.nodes[x].g, nowMs(&s));
    afterCall(&s, x);
    while (!gossipLeaveDone(s.nodes[x].g)) {
        if (s.now - t0 > 10 * 1000000ull) simFail(&s, "leave not done after 10 s");
        runUntil(&s, s.now + 10000);
    }
    uint64_t done = s.now;
    simCrash(&s, x); /* the process exits */
    uint64_t left_all = 0;
    while (s.now - done < 30 * 1000000ull) {
        runUntil(&s, s.now + 10000);
        if (!left_all && *tally(&s, id, GOSSIP_LEFT) == s.up_count) left_all = s.now;
    }
    if (!left_all)
        simFail(&s, "node %u LEFT at only %u of %u", id, *tally(&s, id, GOSSIP_LEFT), s.up_count);
    if (s.dead_about[x])
        simFail(&s, "node %u declared DEAD %" PRIu64 " times", id, s.dead_about[x]);
    printf("leave: node %u left; done broadcasting after %.2f s; LEFT at all %u members after "
           "%.2f s; DEAD declarations about it: 0 (watched 30 s more)\n",
           id, secs(done - t0), s.up_count, secs(left_all - t0));
    simFree(&s);
    return 0;
}

/* ---- Bench ------------------------------------------------------------ */

static double wallSecs(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t falseDeadUnderLoss(sim *s, double loss, uint64_t dur_us) {
    s->loss = loss;
    uint64_t before = s->false_dead;
    runUntil(s, s->now + dur_us);
    s->loss = 0;
    return s->false_dead - before;
}

static void benchOne(uint32_t n, uint64_t seed) {
    double w0 = wallSecs();
    sim s;
    simInit(&s, n, seed, 0.0, true);
    double built = wallSecs() - w0;
    runUntil(&s, s.now + 3 * 1000000ull);

    /* Traffic in steady state. */
    uint64_t m0 = s.msgs, b0 = s.bytes, window = 10 * 1000000ull;
    runUntil(&s, s.now + window);
    double msgs = (double)(s.msgs - m0) / n / secs(window);
    double bytes = (double)(s.bytes - b0) / n / secs(window);

    int trials = n >= 10000 ? 2 : 5;
    double diss = 0, first = 0, all = 0, rejoin = 0;
    for (int t = 0; t < trials; t++) {
        diss += measureDissemination(&s) / trials;
        runUntil(&s, s.now + 2 * 1000000ull);
    }
    for (int t = 0; t < trials; t++) {
        uint32_t victim = randomUpNode(&s);
        simCrash(&s, victim);
        watchCrash(&s, victim);
        if (!runWhile(&s, condAllDead, 60 * 1000000ull)) simFail(&s, "crash not detected in 60 s");
        first += secs(s.first_suspect_at - s.crash_at) / trials;
        all += secs(s.all_dead_at - s.crash_at) / trials;
        s.crash_at = 0;
        s.crash_id = 0;
        /* Restart it, so every trial runs at N, and time its rejoin. */
        runUntil(&s, s.now + 1000000ull);
        uint64_t t0 = s.now;
        simRestart(&s, victim);
        if (!runWhile(&s, condAllAlive, 60 * 1000000ull)) simFail(&s, "no rejoin in 60 s");
        rejoin += secs(s.now - t0) / trials;
        runUntil(&s, s.now + 1000000ull);
    }

    uint64_t loss_us = n >= 10000 ? 5 * 1000000ull : n >= 1000 ? 60 * 1000000ull : 300 * 1000000ull;
    uint64_t fd5 = falseDeadUnderLoss(&s, 0.05, loss_us);
    uint64_t fd10 = falseDeadUnderLoss(&s, 0.10, loss_us);

    double scale = n > 10 ? log10((double)n) : 1.0;
    double I = s.cfg.probe_interval_ms / 1000.0;
    double first_model = 0.5 + exp(1.0) / (exp(1.0) - 1.0); /* periods */
    double ours = first_model * I + s.cfg.suspicion_mult * scale * I;
    double ml = first_model * I + 4.0 * scale * I; /* memberlist LAN (mult 4) at our interval */
    printf("%6u %6.2f %6.2f %6.2f %6.2f %6.2f %6.2f %5" PRIu64 " %5" PRIu64 " %5.0fs %7.1f "
           "%8.0f %6.1fs %7.1fs\n",
           n, diss, first / I, all, ours, ml, rejoin, fd5, fd10, secs(loss_us), msgs, bytes, built,
           wallSecs() - w0);
    fflush(stdout);
    simFree(&s);
}

static int scenarioBench(uint64_t seed, uint32_t max_n) {
    gossipConfig c;
    gossipConfigDefault(&c);
    printf("SWIM bench (deterministic simulator, seed %" PRIu64 "): probe interval I = %u ms, "
           "timeout %u ms, k = %u,\nsuspicion mult S = %u (max x%u), retransmit mult %u, gossip "
           "every %u ms to %u members; links 0.2-2 ms + 0-0.5 ms jitter\n",
           seed, c.probe_interval_ms, c.probe_timeout_ms, c.indirect_checks, c.suspicion_mult,
           c.suspicion_max_timeout_mult, c.retransmit_mult, c.gossip_interval_ms, c.gossip_nodes);
    printf(
        "diss   periods until a metadata update reached every member (mean of 5; 2 at 10k)\n"
        "1st    periods from a crash to the first SUSPECT anywhere (SWIM: a member is first\n"
        "       picked after e/(e-1) = 1.58 periods, plus half a period of phase = 2.08)\n"
        "dead   seconds from a crash until DEAD at every live member (mean of 5; 2 at 10k)\n"
        "model  2.08 I + S max(1, log10 N) I, spread not counted\n"
        "mlist  the same with memberlist's LAN suspicion mult 4, at our interval\n"
        "rejoin seconds from restarting a crashed node (higher incarnation, push-pull with\n"
        "       one peer) until it is ALIVE at every member and sees them all\n"
        "fd5/10 live members declared DEAD by anyone at 5%% / 10%% datagram loss, over `run`\n"
        "msgs, bytes  sent per member per second at 0%% loss; build = cluster setup wall time\n");
    printf("%6s %6s %6s %6s %6s %6s %6s %5s %5s %6s %7s %8s %7s %8s\n", "N", "diss", "1st", "dead",
           "model", "mlist", "rejoin", "fd5", "fd10", "run", "msgs/s", "bytes/s", "build", "wall");
    uint32_t sizes[] = {3, 5, 10, 100, 1000, 10000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (sizes[i] > max_n) break;
        benchOne(sizes[i], seed + i);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: sim_gossip crash_detect|loss_no_false_dead|dissemination_1000|"
                        "partition_heal|restart_rejoin|leave|bench [seed] [bench: max N]\n");
        return 2;
    }
    const char *sc = argv[1];
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0) : 1;
    if (getenv("SIM_SEED")) seed = strtoull(getenv("SIM_SEED"), NULL, 0);
    double w0 = wallSecs();
    int rc;
    if (strcmp(sc, "crash_detect") == 0)
        rc = scenarioCrashDetect(seed);
    else if (strcmp(sc, "loss_no_false_dead") == 0)
        rc = scenarioLossNoFalseDead(seed);
    else if (strcmp(sc, "dissemination_1000") == 0)
        rc = scenarioDissemination(seed);
    else if (strcmp(sc, "partition_heal") == 0)
        rc = scenarioPartitionHeal(seed);
    else if (strcmp(sc, "restart_rejoin") == 0)
        rc = scenarioRestartRejoin(seed);
    else if (strcmp(sc, "leave") == 0)
        rc = scenarioLeave(seed);
    else if (strcmp(sc, "bench") == 0)
        rc = scenarioBench(seed, argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 10000);
    else {
        fprintf(stderr, "sim_gossip: unknown scenario '%s'\n", sc);
        return 2;
    }
    if (strcmp(sc, "bench") != 0)
        printf("%s: PASS (seed %" PRIu64 ", %.1f s wall)\n", sc, seed, wallSecs() - w0);
    return rc;
}
