/* Tests of the Raft glue with the real libraft: up to five nodes in one
 * process on one libuv loop, each with its own data directory under /tmp
 * and its own loopback port. Every wait runs the loop until a condition
 * holds or a deadline passes; nothing sleeps.
 *
 * The state machine under test folds every entry into a running hash, so
 * two nodes that applied the same entries at the same indexes hold the
 * same (count, hash, last_index), and each apply's result names that
 * state: equal results mean equal histories. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "lock/raftauth.h"
#include "lock/raftnode.h"
#include "util/log.h"

#define TEST_MAX_NODES 5
#define TEST_SEEN      256

/* ---- a state machine that remembers what it applied ---- */

typedef struct testFsm {
    uint64_t count;
    uint64_t hash;
    uint64_t last_index;
    uint64_t restored_index; /* last_index carried by the last restored snapshot */
    int restores;
    struct {
        uint64_t index;
        char result[64];
    } seen[TEST_SEEN];
} testFsm;

static uint64_t testFold(uint64_t h, const void *p, size_t len) {
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static void testFsmApply(void *ctx, uint64_t index, const uint8_t *data, size_t len, buf *out) {
    testFsm *f = ctx;
    f->count++;
    f->hash = testFold(testFold(f->hash, &index, sizeof index), data, len);
    f->last_index = index;
    char r[64];
    snprintf(r, sizeof r, "n=%llu h=%016llx", (unsigned long long)f->count,
             (unsigned long long)f->hash);
    f->seen[index % TEST_SEEN].index = index;
    memcpy(f->seen[index % TEST_SEEN].result, r, sizeof r);
    bufAppendStr(out, r);
}

static int testFsmSnapshot(void *ctx, buf *out) {
    testFsm *f = ctx;
    uint64_t st[3] = {f->count, f->hash, f->last_index};
    bufAppend(out, st, sizeof st);
    return 0;
}

static int testFsmRestore(void *ctx, const uint8_t *data, size_t len) {
    testFsm *f = ctx;
    uint64_t st[3];
    if (len != sizeof st) return -1;
    memcpy(st, data, sizeof st);
    f->count = st[0];
    f->hash = st[1];
    f->last_index = st[2];
    f->restored_index = st[2];
    f->restores++;
    return 0;
}

/* ---- a cluster on one loop ---- */

typedef struct testNode {
    raftNode *node;
    testFsm fsm;
    uint64_t id;
    char addr[32];
    char bind[32]; /* node 1 listens on every interface, the others on loopback */
    char dir[128];
    bool closed;   /* close callback ran */
    bool outsider; /* not a member of the cluster under test */
    int leader_changes;
    uint64_t last_leader_seen;
} testNode;

typedef struct testResult {
    bool done;
    int status;
    uint64_t index;
    char data[64];
    uint64_t leader_id;
    char err[512];
    testNode *close_in_callback; /* close this node from inside the callback */
} testResult;

#define TEST_RESULTS 64

typedef struct testCluster {
    uv_loop_t loop;
    /* Callback targets live here, not on a test's stack: after a failed
     * assertion the teardown closes nodes and their callbacks still run. */
    testResult results[TEST_RESULTS];
    size_t nresults;
    char root[64];
    testNode nodes[TEST_MAX_NODES];
    size_t npeers; /* nodes 0..npeers-1 form the initial configuration */
    uint8_t key[RAFT_NODE_KEY_BYTES];
    bool no_key; /* run without a cluster key */
    unsigned snapshot_threshold, snapshot_trailing;
} testCluster;

/* Binds a loopback socket to port 0 and returns it; the caller closes it
 * once every port it needs is chosen, so no two probes get the same one. */
static int testProbePort(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

static void testClusterInit(testCluster *c, size_t npeers) {
    memset(c, 0, sizeof *c);
    assert_int_equal(uv_loop_init(&c->loop), 0);
    snprintf(c->root, sizeof c->root, "/tmp/dmkv-raftnode-XXXXXX");
    assert_non_null(mkdtemp(c->root));
    randombytes_buf(c->key, sizeof c->key);
    c->npeers = npeers;
    int fds[TEST_MAX_NODES];
    for (size_t i = 0; i < TEST_MAX_NODES; i++) {
        testNode *t = &c->nodes[i];
        int port;
        fds[i] = testProbePort(&port);
        t->id = i + 1;
        t->closed = true;
        snprintf(t->addr, sizeof t->addr, "127.0.0.1:%d", port);
        snprintf(t->bind, sizeof t->bind, "0.0.0.0:%d", port);
        snprintf(t->dir, sizeof t->dir, "%s/node%zu", c->root, i + 1);
    }
    for (size_t i = 0; i < TEST_MAX_NODES; i++) close(fds[i]);
}

static void testOnLeaderChange(void *ctx, uint64_t leader_id) {
    testNode *t = ctx;
    t->leader_changes++;
    t->last_leader_seen = leader_id;
}

/* Fills cfg for node i; the arrays must outlive the call to raftNodeStart. */
static void testConfig(testCluster *c, size_t i, raftNodeConfig *cfg, uint64_t *ids,
                       const char **addrs) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t k = 0; k < c->npeers; k++) {
        ids[k] = c->nodes[k].id;
        addrs[k] = c->nodes[k].addr;
    }
    cfg->id = c->nodes[i].id;
    cfg->address = c->nodes[i].addr;
    if (i == 0) cfg->bind_address = c->nodes[i].bind;
    cfg->data_dir = c->nodes[i].dir;
    cfg->npeers = c->npeers;
    cfg->peer_ids = ids;
    cfg->peer_addresses = addrs;
    cfg->cluster_keys = c->no_key ? NULL : c->key;
    cfg->ncluster_keys = c->no_key ? 0 : 1;
    cfg->snapshot_threshold = c->snapshot_threshold;
    cfg->snapshot_trailing = c->snapshot_trailing;
}

static int testStartWith(testCluster *c, size_t i, const raftNodeConfig *cfg, char *err,
                         size_t errlen) {
    testNode *t = &c->nodes[i];
    memset(&t->fsm, 0, sizeof t->fsm); /* a restart begins with empty memory */
    raftNodeFsm fsm = {.ctx = &t->fsm,
                       .apply = testFsmApply,
                       .snapshot = testFsmSnapshot,
                       .restore = testFsmRestore};
    int rv = raftNodeStart(&c->loop, cfg, &fsm, &t->node, err, errlen);
    if (rv == RAFT_NODE_OK) {
        t->closed = false;
        raftNodeOnLeaderChange(t->node, testOnLeaderChange, t);
    }
    return rv;
}

static void testStart(testCluster *c, size_t i) {
    raftNodeConfig cfg;
    uint64_t ids[TEST_MAX_NODES];
    const char *addrs[TEST_MAX_NODES];
    testConfig(c, i, &cfg, ids, addrs);
    char err[512];
    int rv = testStartWith(c, i, &cfg, err, sizeof err);
    if (rv != RAFT_NODE_OK) fail_msg("node %zu did not start: %s", i + 1, err);
}

static void testOnClosed(void *ctx) {
    testNode *t = ctx;
    t->closed = true;
}

typedef bool (*testCond)(testCluster *c, void *arg);

static void testOnDeadline(uv_timer_t *h) {
    (void)h;
}

/* Runs the loop until cond holds or timeout_ms pass; returns the elapsed
 * milliseconds, or -1 on timeout. */
static int64_t testRunUntil(testCluster *c, testCond cond, void *arg, unsigned timeout_ms) {
    uv_timer_t deadline;
    uv_timer_init(&c->loop, &deadline);
    uv_update_time(&c->loop);
    uint64_t start = uv_now(&c->loop);
    uv_timer_start(&deadline, testOnDeadline, timeout_ms, 0);
    int64_t took = -1;
    for (;;) {
        uv_update_time(&c->loop);
        uint64_t now = uv_now(&c->loop);
        if (cond(c, arg)) {
            took = (int64_t)(now - start);
            break;
        }
        if (now - start >= timeout_ms) break;
        uv_run(&c->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&c->loop, UV_RUN_NOWAIT);
    return took;
}

static bool testNever(testCluster *c, void *arg) {
    (void)c;
    (void)arg;
    return false;
}

static void testRunFor(testCluster *c, unsigned ms) {
    testRunUntil(c, testNever, NULL, ms);
}

static bool testNodeClosed(testCluster *c, void *arg) {
    (void)c;
    return ((testNode *)arg)->closed;
}

static void testStop(testCluster *c, size_t i) {
    testNode *t = &c->nodes[i];
    assert_false(t->closed);
    raftNodeClose(t->node, testOnClosed, t);
    t->node = NULL;
    assert_true(testRunUntil(c, testNodeClosed, t, 5000) >= 0);
}

static int testRemoveEntry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void testClusterFree(testCluster *c) {
    for (size_t i = 0; i < TEST_MAX_NODES; i++)
        if (!c->nodes[i].closed) testStop(c, i);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    nftw(c->root, testRemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
}

static int testSetup(void **state) {
    testCluster *c = calloc(1, sizeof *c);
    testClusterInit(c, 3);
    *state = c;
    return 0;
}

/* Also runs after a failed test, so nodes close and directories go. */
static int testTeardown(void **state) {
    testCluster *c = *state;
    testClusterFree(c);
    free(c);
    return 0;
}

/* The one leader among running nodes that every running node agrees on,
 * or -1. */
static int testLeader(testCluster *c) {
    int leader = -1;
    for (size_t i = 0; i < TEST_MAX_NODES; i++) {
        testNode *t = &c->nodes[i];
        if (t->closed || t->outsider || t->node == NULL || !raftNodeIsLeader(t->node)) continue;
        if (leader != -1) return -1;
        leader = (int)i;
    }
    if (leader == -1) return -1;
    for (size_t i = 0; i < TEST_MAX_NODES; i++) {
        testNode *t = &c->nodes[i];
        if (!t->closed && !t->outsider && t->node != NULL &&
            raftNodeLeaderId(t->node) != c->nodes[leader].id)
            return -1;
    }
    return leader;
}

static bool testHasLeader(testCluster *c, void *arg) {
    (void)arg;
    return testLeader(c) >= 0;
}

static int testWaitLeader(testCluster *c, unsigned timeout_ms, int64_t *took) {
    int64_t t = testRunUntil(c, testHasLeader, NULL, timeout_ms);
    if (took) *took = t;
    return t < 0 ? -1 : testLeader(c);
}

/* Every running node's state machine has applied through index. */
static bool testAllApplied(testCluster *c, void *arg) {
    uint64_t index = *(uint64_t *)arg;
    for (size_t i = 0; i < TEST_MAX_NODES; i++) {
        testNode *t = &c->nodes[i];
        if (!t->closed && !t->outsider && t->fsm.last_index < index) return false;
    }
    return true;
}

/* A fresh result slot; slots are reused round-robin. */
static testResult *testSlot(testCluster *c) {
    testResult *r = &c->results[c->nresults++ % TEST_RESULTS];
    memset(r, 0, sizeof *r);
    return r;
}

static void testOnResult(void *ctx, const raftNodeResult *res) {
    testResult *r = ctx;
    r->done = true;
    r->status = res->status;
    r->index = res->index;
    snprintf(r->data, sizeof r->data, "%.*s", (int)res->len, (const char *)res->data);
    r->leader_id = res->leader_id;
    snprintf(r->err, sizeof r->err, "%s", res->err);
    if (r->close_in_callback != NULL) {
        testNode *t = r->close_in_callback;
        raftNodeClose(t->node, testOnClosed, t);
        t->node = NULL;
    }
}

static bool testResultDone(testCluster *c, void *arg) {
    (void)c;
    return ((testResult *)arg)->done;
}

/* Proposes on node i and waits for its result. */
static testResult testPropose(testCluster *c, size_t i, const char *data) {
    testResult *r = testSlot(c);
    int rv = raftNodePropose(c->nodes[i].node, data, strlen(data), testOnResult, r);
    if (rv != RAFT_NODE_OK)
        fail_msg("propose on node %zu: %s: %s", i + 1, raftNodeStatusName(rv),
                 raftNodeErrmsg(c->nodes[i].node));
    assert_true(testRunUntil(c, testResultDone, r, 3000) >= 0);
    return *r;
}

/* ---- tests ---- */

static void test_three_nodes_elect_a_leader_and_apply_an_entry_everywhere(void **state) {
    testCluster *c = *state;
    for (size_t i = 0; i < 3; i++) testStart(c, i);
    int64_t took;
    int leader = testWaitLeader(c, 3000, &took);
    assert_true(leader >= 0);
    fprintf(stderr, "    measured: leader elected %lld ms after start\n", (long long)took);

    testResult r = testPropose(c, (size_t)leader, "hello");
    assert_int_equal(r.status, RAFT_NODE_OK);
    assert_true(r.index > 0);
    assert_true(strncmp(r.data, "n=1 ", 4) == 0);
    assert_true(testRunUntil(c, testAllApplied, &r.index, 3000) >= 0);
    for (size_t i = 0; i < 3; i++) {
        testFsm *f = &c->nodes[i].fsm;
        assert_int_equal(f->last_index, r.index);
        assert_int_equal(f->seen[r.index % TEST_SEEN].index, r.index);
        assert_string_equal(f->seen[r.index % TEST_SEEN].result, r.data);
    }

    /* A barrier on the leader completes after everything before it. */
    testResult *b = testSlot(c);
    assert_int_equal(raftNodeBarrier(c->nodes[leader].node, testOnResult, b), RAFT_NODE_OK);
    assert_true(testRunUntil(c, testResultDone, b, 3000) >= 0);
    assert_int_equal(b->status, RAFT_NODE_OK);
    assert_true(b->index > r.index);

    /* A follower refuses and names the leader. */
    size_t follower = (size_t)(leader + 1) % 3;
    testResult *never = testSlot(c);
    raftNode *fn = c->nodes[follower].node;
    assert_int_equal(raftNodePropose(fn, "x", 1, testOnResult, never), RAFT_NODE_NOT_LEADER);
    assert_int_equal(raftNodeLeaderId(fn), c->nodes[leader].id);
    assert_string_equal(raftNodeLeaderAddress(fn), c->nodes[leader].addr);
    assert_non_null(strstr(raftNodeErrmsg(fn), c->nodes[leader].addr));
    assert_int_equal(raftNodeBarrier(fn, testOnResult, never), RAFT_NODE_NOT_LEADER);
    testRunFor(c, 100);
    assert_false(never->done);

    struct raftNodeStats st;
    raftNodeStats(c->nodes[leader].node, &st);
    assert_int_equal(st.state, RAFT_NODE_LEADER);
    assert_int_equal(st.voters, 3);
    assert_int_equal(st.entries_applied, 1);
    assert_int_equal(st.proposals_pending, 0);
    assert_true(st.auth_accepted >= 2); /* both followers dialed in with the key */
    assert_int_equal(st.auth_rejected, 0);
}

static void test_stopping_the_leader_elects_a_new_one_that_applies_entries(void **state) {
    testCluster *c = *state;
    for (size_t i = 0; i < 3; i++) testStart(c, i);
    int old = testWaitLeader(c, 3000, NULL);
    assert_true(old >= 0);
    testResult r = testPropose(c, (size_t)old, "before");
    assert_int_equal(r.status, RAFT_NODE_OK);
    assert_true(testRunUntil(c, testAllApplied, &r.index, 3000) >= 0);
    uint64_t term_before = raftNodeTerm(c->nodes[old].node);
    for (size_t i = 0; i < 3; i++) c->nodes[i].leader_changes = 0;

    /* Stopped from inside its own result callback: raftNodeClose must
     * finish the close after libraft has returned. */
    testResult *bye = testSlot(c);
    bye->close_in_callback = &c->nodes[old];
    assert_int_equal(raftNodePropose(c->nodes[old].node, "bye", 3, testOnResult, bye),
                     RAFT_NODE_OK);
    assert_true(testRunUntil(c, testResultDone, bye, 3000) >= 0);
    assert_int_equal(bye->status, RAFT_NODE_OK);
    int64_t took;
    int leader = testWaitLeader(c, 3000, &took);
    assert_true(leader >= 0);
    assert_true(leader != old);
    assert_true(c->nodes[old].closed);
    fprintf(stderr, "    measured: new leader %lld ms after the old one stopped\n",
            (long long)took);
    assert_true(raftNodeTerm(c->nodes[leader].node) > term_before);
    for (size_t i = 0; i < 3; i++) {
        if ((int)i == old) continue;
        assert_true(c->nodes[i].leader_changes >= 1);
        assert_int_equal(c->nodes[i].last_leader_seen, c->nodes[leader].id);
    }

    testResult r2 = testPropose(c, (size_t)leader, "after");
    assert_int_equal(r2.status, RAFT_NODE_OK);
    assert_true(r2.index > r.index);
    assert_true(testRunUntil(c, testAllApplied, &r2.index, 3000) >= 0);
    for (size_t i = 0; i < 3; i++) {
        if ((int)i == old) continue;
        assert_string_equal(c->nodes[i].fsm.seen[r2.index % TEST_SEEN].result, r2.data);
    }
}

typedef struct testSame {
    size_t a, b;
} testSame;

static bool testSameState(testCluster *c, void *arg) {
    testSame *s = arg;
    testFsm *x = &c->nodes[s->a].fsm, *y = &c->nodes[s->b].fsm;
    return x->last_index == y->last_index && x->hash == y->hash && x->count == y->count;
}

/* Stops a follower, applies `entries` entries without it, restarts it from
 * its data directory and waits until it holds the leader's state. */
static void testRestartCatchesUp(testCluster *c, unsigned snapshot_threshold, int entries,
                                 bool expect_snapshot) {
    c->snapshot_threshold = snapshot_threshold;
    c->snapshot_trailing = snapshot_threshold ? 2 : 0;
    for (size_t i = 0; i < 3; i++) testStart(c, i);
    int leader = testWaitLeader(c, 3000, NULL);
    assert_true(leader >= 0);
    testResult r = {0};
    for (int k = 0; k < 3; k++) r = testPropose(c, (size_t)leader, "warm-up");
    assert_true(testRunUntil(c, testAllApplied, &r.index, 3000) >= 0);

    size_t follower = (size_t)(leader + 1) % 3;
    uint64_t stopped_at = c->nodes[follower].fsm.last_index;
    testStop(c, follower);
    for (int k = 0; k < entries; k++) {
        char data[32];
        snprintf(data, sizeof data, "while-down-%d", k);
        r = testPropose(c, (size_t)leader, data);
        assert_int_equal(r.status, RAFT_NODE_OK);
    }

    uv_update_time(&c->loop);
    uint64_t t0 = uv_now(&c->loop);
    testStart(c, follower);
    testSame s = {follower, (size_t)leader};
    int64_t took = testRunUntil(c, testSameState, &s, 3000);
    uv_update_time(&c->loop);
    assert_true(took >= 0);
    fprintf(stderr, "    measured: restarted follower caught up %llu entries in %llu ms (%s)\n",
            (unsigned long long)(c->nodes[leader].fsm.last_index - stopped_at),
            (unsigned long long)(uv_now(&c->loop) - t0),
            expect_snapshot ? "snapshot install" : "log replay");
    testFsm *f = &c->nodes[follower].fsm;
    assert_int_equal(f->last_index, c->nodes[leader].fsm.last_index);
    if (expect_snapshot) {
        struct raftNodeStats st;
        raftNodeStats(c->nodes[leader].node, &st);
        assert_true(st.snapshots_taken >= 1);
        /* It got state it never applied itself: a snapshot from the leader. */
        assert_true(f->restores >= 1);
        assert_true(f->restored_index > stopped_at);
    } else {
        assert_int_equal(f->restores, 0);
    }

    /* And it keeps up afterwards. */
    r = testPropose(c, (size_t)leader, "after-restart");
    assert_true(testRunUntil(c, testAllApplied, &r.index, 3000) >= 0);
    assert_string_equal(f->seen[r.index % TEST_SEEN].result, r.data);
}

static void test_a_restarted_follower_catches_up_from_the_log(void **state) {
    testRestartCatchesUp(*state, 0, 20, false);
}

static void test_a_restarted_follower_catches_up_from_a_snapshot(void **state) {
    testRestartCatchesUp(*state, 8, 40, true);
}

static void test_a_second_node_on_the_same_data_dir_is_refused(void **state) {
    testCluster *c = *state;
    testStart(c, 0);

    /* Node 2's configuration, but node 1's directory. */
    raftNodeConfig cfg;
    uint64_t ids[TEST_MAX_NODES];
    const char *addrs[TEST_MAX_NODES];
    testConfig(c, 1, &cfg, ids, addrs);
    cfg.data_dir = c->nodes[0].dir;
    char err[512];
    assert_int_equal(testStartWith(c, 1, &cfg, err, sizeof err), RAFT_NODE_ERROR);
    assert_non_null(strstr(err, "in use"));
    assert_non_null(strstr(err, "LOCK"));
    assert_true(c->nodes[1].closed);

    /* Once the owner has stopped, the directory is free again. */
    testStop(c, 0);
    testConfig(c, 0, &cfg, ids, addrs);
    assert_int_equal(testStartWith(c, 0, &cfg, err, sizeof err), RAFT_NODE_OK);
}

static bool testIsLeader(testCluster *c, void *arg) {
    return raftNodeIsLeader(c->nodes[*(size_t *)arg].node);
}

static void test_a_node_without_the_cluster_key_cannot_join_or_disturb(void **state) {
    testCluster *c = *state;
    for (size_t i = 0; i < 3; i++) testStart(c, i);
    int leader = testWaitLeader(c, 3000, NULL);
    assert_true(leader >= 0);
    uint64_t term = raftNodeTerm(c->nodes[leader].node);

    /* The intruder leads a cluster of its own and keeps trying to make a
     * follower of ours its voter. With the right key (checked by hand)
     * that follower switches its leader to the intruder within 100 ms:
     * libraft 0.15 follows any AppendEntries of its current term. */
    size_t in = 3, victim = (size_t)(leader + 1) % 3;
    c->nodes[in].outsider = true;
    raftNodeConfig cfg;
    uint64_t ids[1] = {c->nodes[in].id};
    const char *addrs[1] = {c->nodes[in].addr};
    uint8_t wrong[RAFT_NODE_KEY_BYTES];
    randombytes_buf(wrong, sizeof wrong);
    memset(&cfg, 0, sizeof cfg);
    cfg.id = c->nodes[in].id;
    cfg.address = c->nodes[in].addr;
    cfg.data_dir = c->nodes[in].dir;
    cfg.npeers = 1;
    cfg.peer_ids = ids;
    cfg.peer_addresses = addrs;
    cfg.cluster_keys = wrong;
    cfg.ncluster_keys = 1;
    char err[512];
    assert_int_equal(testStartWith(c, in, &cfg, err, sizeof err), RAFT_NODE_OK);
    assert_true(testRunUntil(c, testIsLeader, &in, 3000) >= 0);
    raftNode *intruder = c->nodes[in].node;

    testResult *add = NULL;
    for (int tick = 0; tick < 20; tick++) {
        if ((add == NULL || add->done) && raftNodeIsLeader(intruder)) {
            add = testSlot(c);
            assert_int_equal(raftNodeAddVoter(intruder, c->nodes[victim].id, c->nodes[victim].addr,
                                              testOnResult, add),
                             RAFT_NODE_OK);
        }
        testRunFor(c, 100);
        for (size_t i = 0; i < 3; i++) {
            assert_int_equal(raftNodeTerm(c->nodes[i].node), term);
            assert_int_equal(raftNodeLeaderId(c->nodes[i].node), c->nodes[leader].id);
        }
    }
    uint64_t rejected = 0;
    for (size_t i = 0; i < 3; i++) {
        struct raftNodeStats st;
        raftNodeStats(c->nodes[i].node, &st);
        rejected += st.auth_rejected;
    }
    fprintf(stderr, "    measured: %llu intruder connections rejected in 2 s\n",
            (unsigned long long)rejected);
    assert_true(rejected >= 2);
    struct raftNodeStats st;
    raftNodeStats(intruder, &st);
    assert_true(st.auth_refused >= 2);
    assert_int_equal(st.auth_connected, 0);

    /* The cluster still commits. */
    testResult r = testPropose(c, (size_t)leader, "still-here");
    assert_int_equal(r.status, RAFT_NODE_OK);
    assert_true(testRunUntil(c, testAllApplied, &r.index, 3000) >= 0);

    /* Closing the intruder fails its pending change. */
    testStop(c, in);
    assert_true(add->done);
    assert_true(add->status != RAFT_NODE_OK);
}

static void test_a_fourth_node_joins_as_a_voter_and_can_be_removed(void **state) {
    testCluster *c = *state;
    for (size_t i = 0; i < 3; i++) testStart(c, i);
    int leader = testWaitLeader(c, 3000, NULL);
    assert_true(leader >= 0);
    testResult r = testPropose(c, (size_t)leader, "before-join");

    size_t fourth = 3;
    raftNodeConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.id = c->nodes[fourth].id;
    cfg.address = c->nodes[fourth].addr;
    cfg.data_dir = c->nodes[fourth].dir;
    cfg.join = true;
    cfg.cluster_keys = c->key;
    cfg.ncluster_keys = 1;
    char err[512];
    assert_int_equal(testStartWith(c, fourth, &cfg, err, sizeof err), RAFT_NODE_OK);

    uv_update_time(&c->loop);
    uint64_t t0 = uv_now(&c->loop);
    testResult *add = testSlot(c);
    raftNode *ln = c->nodes[leader].node;
    assert_int_equal(
        raftNodeAddVoter(ln, c->nodes[fourth].id, c->nodes[fourth].addr, testOnResult, add),
        RAFT_NODE_OK);
    /* One change at a time. */
    testResult *busy = testSlot(c);
    assert_int_equal(raftNodeRemove(ln, 2, testOnResult, busy), RAFT_NODE_BUSY);
    assert_true(testRunUntil(c, testResultDone, add, 10000) >= 0);
    uv_update_time(&c->loop);
    if (add->status != RAFT_NODE_OK) fail_msg("add voter: %s", add->err);
    fprintf(stderr, "    measured: fourth voter added in %llu ms\n",
            (unsigned long long)(uv_now(&c->loop) - t0));
    struct raftNodeStats st;
    raftNodeStats(ln, &st);
    assert_int_equal(st.voters, 4);
    assert_true(c->nodes[fourth].fsm.last_index >= r.index);

    /* Adding it again is a no-op that still succeeds. */
    testResult *again = testSlot(c);
    assert_int_equal(
        raftNodeAddVoter(ln, c->nodes[fourth].id, c->nodes[fourth].addr, testOnResult, again),
        RAFT_NODE_OK);
    assert_true(testRunUntil(c, testResultDone, again, 3000) >= 0);
    assert_int_equal(again->status, RAFT_NODE_OK);

    r = testPropose(c, (size_t)leader, "after-join");
    assert_true(testRunUntil(c, testAllApplied, &r.index, 3000) >= 0);
    assert_string_equal(c->nodes[fourth].fsm.seen[r.index % TEST_SEEN].result, r.data);

    testResult *rm = testSlot(c);
    assert_int_equal(raftNodeRemove(ln, c->nodes[fourth].id, testOnResult, rm), RAFT_NODE_OK);
    assert_true(testRunUntil(c, testResultDone, rm, 3000) >= 0);
    assert_int_equal(rm->status, RAFT_NODE_OK);
    raftNodeStats(ln, &st);
    assert_int_equal(st.voters, 3);
}

static void test_proposals_are_refused_when_too_big_or_the_disk_is_nearly_full(void **state) {
    testCluster *c = *state;
    c->npeers = 1;
    raftNodeConfig cfg;
    uint64_t ids[TEST_MAX_NODES];
    const char *addrs[TEST_MAX_NODES];
    testConfig(c, 0, &cfg, ids, addrs);
    cfg.min_free_bytes = UINT64_MAX / 4; /* more than any disk has */
    cfg.max_entry_bytes = 16;
    char err[512];
    assert_int_equal(testStartWith(c, 0, &cfg, err, sizeof err), RAFT_NODE_OK);
    size_t only = 0;
    assert_true(testRunUntil(c, testIsLeader, &only, 3000) >= 0);
    raftNode *n = c->nodes[0].node;
    testResult *never = testSlot(c);
    char big[17] = "0123456789abcdef";
    assert_int_equal(raftNodePropose(n, big, 17, testOnResult, never), RAFT_NODE_TOO_BIG);
    assert_int_equal(raftNodePropose(n, big, 4, testOnResult, never), RAFT_NODE_NO_SPACE);
    assert_non_null(strstr(raftNodeErrmsg(n), "MiB free"));
    assert_int_equal(raftNodePropose(n, big, 0, testOnResult, never), RAFT_NODE_INVALID);
    testRunFor(c, 50);
    assert_false(never->done);
}

static void test_without_a_cluster_key_nodes_talk_unauthenticated(void **state) {
    testCluster *c = *state;
    c->no_key = true;
    for (size_t i = 0; i < 3; i++) testStart(c, i);
    int leader = testWaitLeader(c, 3000, NULL);
    assert_true(leader >= 0);
    testResult r = testPropose(c, (size_t)leader, "plain");
    assert_int_equal(r.status, RAFT_NODE_OK);
    assert_true(testRunUntil(c, testAllApplied, &r.index, 3000) >= 0);
    struct raftNodeStats st;
    raftNodeStats(c->nodes[leader].node, &st);
    assert_true(st.auth_accepted >= 2); /* passed straight through */
    assert_int_equal(st.auth_rejected, 0);
}

static void test_a_failed_bootstrap_is_reported_and_cleaned_up(void **state) {
    testCluster *c = *state;
    /* A stray file where the bootstrap entry must go. */
    char path[256];
    snprintf(path, sizeof path, "%s/raft", c->nodes[0].dir);
    assert_int_equal(mkdir(c->nodes[0].dir, 0700), 0);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/raft/0000000000000001-0000000000000001", c->nodes[0].dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("stray bytes", f);
    fclose(f);
    char err[512];
    raftNodeConfig cfg;
    uint64_t ids[TEST_MAX_NODES];
    const char *addrs[TEST_MAX_NODES];
    testConfig(c, 0, &cfg, ids, addrs);
    assert_int_equal(testStartWith(c, 0, &cfg, err, sizeof err), RAFT_NODE_ERROR);
    assert_non_null(strstr(err, "raft bootstrap in"));
    assert_non_null(strstr(err, "libraft error"));
    /* libraft was initialized, so cleanup finishes on the loop; the
     * teardown then checks that no handle is left, and the lock is gone. */
    testRunFor(c, 100);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    close(fd);
    snprintf(path, sizeof path, "%s/raft/LOCK", c->nodes[0].dir);
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    close(fd);
}

static void test_a_corrupt_log_stops_the_node_and_it_can_rejoin_wiped(void **state) {
    testCluster *c = *state;
    for (size_t i = 0; i < 3; i++) testStart(c, i);
    int leader = testWaitLeader(c, 3000, NULL);
    assert_true(leader >= 0);
    testResult r = testPropose(c, (size_t)leader, "before-corruption");
    assert_true(testRunUntil(c, testAllApplied, &r.index, 3000) >= 0);
    size_t victim = (size_t)(leader + 1) % 3;
    testStop(c, victim);
    char path[256];
    snprintf(path, sizeof path, "%s/raft/0000000000000001-0000000000000001", c->nodes[victim].dir);
    FILE *f = fopen(path, "r+");
    assert_non_null(f);
    fseek(f, 40, SEEK_SET);
    fputs("not raft data", f); /* breaks the checksum of entry 1 */
    fclose(f);

    raftNodeConfig cfg;
    uint64_t ids[TEST_MAX_NODES];
    const char *addrs[TEST_MAX_NODES];
    testConfig(c, victim, &cfg, ids, addrs);
    char err[512];
    assert_int_equal(testStartWith(c, victim, &cfg, err, sizeof err), RAFT_NODE_ERROR);
    assert_non_null(strstr(err, "raft start in"));
    assert_non_null(strstr(err, "checksum"));
    /* libraft was initialized, so cleanup finishes on the loop (the
     * teardown checks no handle is left) and the lock is released. */
    testRunFor(c, 100);
    snprintf(path, sizeof path, "%s/raft/LOCK", c->nodes[victim].dir);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    close(fd);

    /* The documented way back: remove it, wipe its raft directory, start
     * it with join and add it again. */
    raftNode *ln = c->nodes[leader].node;
    testResult *rm = testSlot(c);
    assert_int_equal(raftNodeRemove(ln, c->nodes[victim].id, testOnResult, rm), RAFT_NODE_OK);
    assert_true(testRunUntil(c, testResultDone, rm, 3000) >= 0);
    assert_int_equal(rm->status, RAFT_NODE_OK);
    snprintf(path, sizeof path, "%s/raft", c->nodes[victim].dir);
    nftw(path, testRemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
    memset(&cfg, 0, sizeof cfg);
    cfg.id = c->nodes[victim].id;
    cfg.address = c->nodes[victim].addr;
    cfg.data_dir = c->nodes[victim].dir;
    cfg.join = true;
    cfg.cluster_keys = c->key;
    cfg.ncluster_keys = 1;
    assert_int_equal(testStartWith(c, victim, &cfg, err, sizeof err), RAFT_NODE_OK);
    testResult *add = testSlot(c);
    assert_int_equal(
        raftNodeAddVoter(ln, c->nodes[victim].id, c->nodes[victim].addr, testOnResult, add),
        RAFT_NODE_OK);
    assert_true(testRunUntil(c, testResultDone, add, 5000) >= 0);
    assert_int_equal(add->status, RAFT_NODE_OK);
    testSame same = {victim, (size_t)leader};
    assert_true(testRunUntil(c, testSameState, &same, 3000) >= 0);
}

static void test_bad_configurations_are_refused_with_a_reason(void **state) {
    testCluster *c = *state;
    raftNodeConfig cfg;
    uint64_t ids[TEST_MAX_NODES];
    const char *addrs[TEST_MAX_NODES];
    char err[512];

    testConfig(c, 0, &cfg, ids, addrs);
    cfg.id = 9;
    assert_int_equal(testStartWith(c, 0, &cfg, err, sizeof err), RAFT_NODE_INVALID);
    assert_non_null(strstr(err, "does not include this node"));

    testConfig(c, 0, &cfg, ids, addrs);
    ids[2] = ids[1];
    assert_int_equal(testStartWith(c, 0, &cfg, err, sizeof err), RAFT_NODE_INVALID);
    assert_non_null(strstr(err, "share an id"));

    testConfig(c, 0, &cfg, ids, addrs);
    cfg.heartbeat_timeout_ms = 400;
    assert_int_equal(testStartWith(c, 0, &cfg, err, sizeof err), RAFT_NODE_INVALID);
    assert_non_null(strstr(err, "heartbeat"));

    testConfig(c, 0, &cfg, ids, addrs);
    cfg.join = true;
    assert_int_equal(testStartWith(c, 0, &cfg, err, sizeof err), RAFT_NODE_INVALID);
    assert_non_null(strstr(err, "joining"));
}

static void test_handshake_macs_bind_key_nonces_ids_and_direction(void **state) {
    (void)state;
    uint8_t k1[RAFT_AUTH_KEY_BYTES], k2[RAFT_AUTH_KEY_BYTES], a1[32], a2[32];
    uint8_t na[RAFT_AUTH_NONCE_BYTES], nc[RAFT_AUTH_NONCE_BYTES];
    randombytes_buf(k1, sizeof k1);
    randombytes_buf(k2, sizeof k2);
    randombytes_buf(na, sizeof na);
    randombytes_buf(nc, sizeof nc);
    raftAuthDeriveKey(k1, a1);
    raftAuthDeriveKey(k2, a2);
    assert_memory_not_equal(a1, k1, 32); /* the cluster key itself is never the MAC key */
    assert_memory_not_equal(a1, a2, 32);

    uint8_t m[32], other[32];
    raftAuthMac(a1, 0, na, nc, 1, 2, m);
    raftAuthMac(a1, 0, na, nc, 1, 2, other);
    assert_memory_equal(m, other, 32);
    raftAuthMac(a2, 0, na, nc, 1, 2, other); /* another key */
    assert_memory_not_equal(m, other, 32);
    raftAuthMac(a1, 1, na, nc, 1, 2, other); /* a proof is not an ack */
    assert_memory_not_equal(m, other, 32);
    raftAuthMac(a1, 0, na, nc, 2, 1, other); /* ids swapped */
    assert_memory_not_equal(m, other, 32);
    raftAuthMac(a1, 0, nc, na, 1, 2, other); /* nonces swapped */
    assert_memory_not_equal(m, other, 32);
}

/* A test that gets a fresh cluster (no node started) and its teardown. */
#define TEST_ON_CLUSTER(f) cmocka_unit_test_setup_teardown(f, testSetup, testTeardown)

int main(void) {
    logSetup("test", 0, LOG_WARN);
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_macs_bind_key_nonces_ids_and_direction),
        TEST_ON_CLUSTER(test_bad_configurations_are_refused_with_a_reason),
        TEST_ON_CLUSTER(test_three_nodes_elect_a_leader_and_apply_an_entry_everywhere),
        TEST_ON_CLUSTER(test_stopping_the_leader_elects_a_new_one_that_applies_entries),
        TEST_ON_CLUSTER(test_a_restarted_follower_catches_up_from_the_log),
        TEST_ON_CLUSTER(test_a_restarted_follower_catches_up_from_a_snapshot),
        TEST_ON_CLUSTER(test_a_second_node_on_the_same_data_dir_is_refused),
        TEST_ON_CLUSTER(test_a_failed_bootstrap_is_reported_and_cleaned_up),
        TEST_ON_CLUSTER(test_a_corrupt_log_stops_the_node_and_it_can_rejoin_wiped),
        TEST_ON_CLUSTER(test_a_node_without_the_cluster_key_cannot_join_or_disturb),
        TEST_ON_CLUSTER(test_without_a_cluster_key_nodes_talk_unauthenticated),
        TEST_ON_CLUSTER(test_a_fourth_node_joins_as_a_voter_and_can_be_removed),
        TEST_ON_CLUSTER(test_proposals_are_refused_when_too_big_or_the_disk_is_nearly_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
