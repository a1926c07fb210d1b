/* Tests of the connection layer and outbound peer links, in one process:
 * a netServer speaking a tiny RESP protocol and netPeer clients, all on
 * one libuv loop. */
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "net/net.h"
#include "net/peer.h"
#include "resp/resp.h"

/* ---- a tiny server: PING -> +PONG, ECHO x -> $x, SILENT -> no reply ---- */

typedef struct tinyServer {
    netServer *net;
    int port;
    int flushes;
    size_t open_conns;
    netConn *late;              /* sent LATE: answered from after_flush */
    int answer_late;            /* after_flush answers it only once set */
    size_t late_pending_before; /* its unwritten bytes when after_flush ran */
} tinyServer;

typedef struct tinyConn {
    respParser parser;
} tinyConn;

static void tinyOpen(void *ctx, netConn *c) {
    tinyServer *t = ctx;
    tinyConn *tc = calloc(1, sizeof *tc);
    respParserInit(&tc->parser, NULL);
    netConnSetData(c, tc);
    t->open_conns++;
}

static void tinyData(void *ctx, netConn *c) {
    tinyConn *tc = netConnGetData(c);
    buf *in = netConnInput(c);
    size_t pos = 0;
    while (pos < in->len) {
        char *data = in->data + pos;
        int r = respParseCommand(&tc->parser, data, in->len - pos);
        if (r != RESP_PARSE_DONE) break;
        if (tc->parser.argc >= 1) {
            respArg *a = tc->parser.argv;
            if (a[0].len == 4 && !memcmp(data + a[0].off, "PING", 4)) {
                respAddSimple(netConnOutput(c), "PONG");
            } else if (a[0].len == 4 && !memcmp(data + a[0].off, "ECHO", 4) &&
                       tc->parser.argc == 2) {
                respAddBulk(netConnOutput(c), data + a[1].off, a[1].len);
            } else if (a[0].len == 4 && !memcmp(data + a[0].off, "QUIT", 4)) {
                netConnClose(c);
            } else if (a[0].len == 4 && !memcmp(data + a[0].off, "LATE", 4) && ctx) {
                respAddSimple(netConnOutput(c), "EARLY");
                ((tinyServer *)ctx)->late = c;
            }
        }
        pos += tc->parser.consumed;
        respParserReset(&tc->parser);
    }
    bufConsume(in, pos);
    netConnWantFlush(c);
}

static void tinyClose(void *ctx, netConn *c) {
    tinyServer *t = ctx;
    tinyConn *tc = netConnGetData(c);
    respParserFree(&tc->parser);
    free(tc);
    t->open_conns--;
}

static void tinyBeforeFlush(void *ctx) {
    tinyServer *t = ctx;
    t->flushes++;
}

/* Answers LATE after the iteration's output was written, as the agent
 * feeds its members after the replies. */
static void tinyAfterFlush(void *ctx) {
    tinyServer *t = ctx;
    if (!t->late || !t->answer_late) return;
    t->late_pending_before = netConnPendingBytes(t->late);
    respAddSimple(netConnOutput(t->late), "LATE");
    netConnWantFlush(t->late);
    t->late = NULL;
}

static void tinyStart(uv_loop_t *loop, tinyServer *t) {
    memset(t, 0, sizeof *t);
    netHandlers h = {.ctx = t,
                     .on_open = tinyOpen,
                     .on_data = tinyData,
                     .on_close = tinyClose,
                     .before_flush = tinyBeforeFlush,
                     .after_flush = tinyAfterFlush};
    t->net = netServerCreate(loop, &h);
    char err[200];
    assert_int_equal(netServerListen(t->net, "127.0.0.1", 0, err, sizeof err), 0);
    t->port = netServerBoundPort(t->net);
    assert_true(t->port > 0);
}

static void tinyStopped(void *ctx) {
    (void)ctx;
}

/* A fresh loop with a tiny server on it and a peer linked to it. */
static netPeer *tinyOpenPair(uv_loop_t *loop, tinyServer *t, const netPeerOptions *o) {
    uv_loop_init(loop);
    tinyStart(loop, t);
    return netPeerCreate(loop, "127.0.0.1", t->port, o);
}

/* Closes the peer and the server and checks the loop has nothing left. */
static void tinyFinish(uv_loop_t *loop, tinyServer *t, netPeer *p) {
    netPeerClose(p);
    netServerShutdown(t->net, tinyStopped);
    uv_run(loop, UV_RUN_DEFAULT);
    netServerFree(t->net);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- call bookkeeping ---- */

typedef struct callResult {
    int done;
    int failed;
    int in_order; /* replies matched the order calls were made */
    int next_expected;
    char last_err[400];
} callResult;

typedef struct echoCall {
    callResult *res;
    int n;
} echoCall;

static void onEcho(void *ctx, const respReply *r, const char *err) {
    echoCall *c = ctx;
    c->res->done++;
    if (!r) {
        c->res->failed++;
        snprintf(c->res->last_err, sizeof c->res->last_err, "%s", err);
    } else {
        int got = atoi(r->str ? r->str : "-1");
        if (r->type == RESP_BULK && got == c->n && got == c->res->next_expected) c->res->in_order++;
        c->res->next_expected++;
    }
    free(c);
}

static void runUntil(uv_loop_t *loop, const int *counter, int target) {
    uint64_t start = uv_now(loop);
    while (*counter < target && uv_now(loop) - start < 10000) uv_run(loop, UV_RUN_ONCE);
}

static void test_pipelined_calls_get_their_own_replies_in_order(void **state) {
    (void)state;
    uv_loop_t loop;
    tinyServer t;
    netPeer *p = tinyOpenPair(&loop, &t, NULL);
    callResult res = {0};
    for (int i = 0; i < 2000; i++) {
        char num[16];
        int len = snprintf(num, sizeof num, "%d", i);
        const char *argv[2] = {"ECHO", num};
        size_t lens[2] = {4, (size_t)len};
        echoCall *c = calloc(1, sizeof *c);
        c->res = &res;
        c->n = i;
        netPeerCall(p, 2, argv, lens, onEcho, c);
    }
    runUntil(&loop, &res.done, 2000);
    assert_int_equal(res.done, 2000);
    assert_int_equal(res.failed, 0);
    assert_int_equal(res.in_order, 2000);
    assert_true(t.flushes > 0);
    netPeerClose(p);
    netServerShutdown(t.net, tinyStopped);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(t.open_conns, 0);
    netServerFree(t.net);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_unreachable_peer_fails_every_call_with_a_reason(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    tinyServer t;
    tinyStart(&loop, &t);
    int port = t.port;
    netServerShutdown(t.net, tinyStopped); /* nothing listens on port now */
    uv_run(&loop, UV_RUN_DEFAULT);
    netServerFree(t.net);
    netPeer *p = netPeerCreate(&loop, "127.0.0.1", port, NULL);
    callResult res = {0};
    for (int i = 0; i < 3; i++) {
        echoCall *c = calloc(1, sizeof *c);
        c->res = &res;
        const char *argv[1] = {"PING"};
        netPeerCall(p, 1, argv, NULL, onEcho, c);
    }
    runUntil(&loop, &res.done, 3);
    assert_int_equal(res.failed, 3);
    assert_non_null(strstr(res.last_err, "127.0.0.1"));
    netPeerClose(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_a_silent_peer_times_out_and_the_next_call_reconnects(void **state) {
    (void)state;
    uv_loop_t loop;
    tinyServer t;
    netPeerOptions o = {.call_timeout_ms = 200, .connect_timeout_ms = 200};
    netPeer *p = tinyOpenPair(&loop, &t, &o);
    callResult res = {0};
    echoCall *c = calloc(1, sizeof *c);
    c->res = &res;
    const char *silent[1] = {"SILENT"};
    netPeerCall(p, 1, silent, NULL, onEcho, c);
    runUntil(&loop, &res.done, 1);
    assert_int_equal(res.failed, 1);
    assert_non_null(strstr(res.last_err, "timed out"));
    /* The link recovers on the next call. */
    callResult res2 = {0};
    echoCall *c2 = calloc(1, sizeof *c2);
    c2->res = &res2;
    const char *argv[2] = {"ECHO", "0"};
    netPeerCall(p, 2, argv, NULL, onEcho, c2);
    runUntil(&loop, &res2.done, 1);
    assert_int_equal(res2.failed, 0);
    assert_int_equal(res2.in_order, 1);
    tinyFinish(&loop, &t, p);
}

static void test_server_closing_the_connection_fails_pending_calls(void **state) {
    (void)state;
    uv_loop_t loop;
    tinyServer t;
    netPeer *p = tinyOpenPair(&loop, &t, NULL);
    callResult res = {0};
    const char *quit[1] = {"QUIT"};
    const char *ping[1] = {"PING"};
    echoCall *c1 = calloc(1, sizeof *c1);
    c1->res = &res;
    netPeerCall(p, 1, quit, NULL, onEcho, c1);
    echoCall *c2 = calloc(1, sizeof *c2);
    c2->res = &res;
    netPeerCall(p, 1, ping, NULL, onEcho, c2);
    runUntil(&loop, &res.done, 2);
    assert_int_equal(res.done, 2);
    assert_int_equal(res.failed, 2);
    tinyFinish(&loop, &t, p);
}

static void test_closing_a_peer_with_calls_in_flight_fails_them_once(void **state) {
    (void)state;
    uv_loop_t loop;
    tinyServer t;
    netPeer *p = tinyOpenPair(&loop, &t, NULL);
    callResult res = {0};
    for (int i = 0; i < 10; i++) {
        echoCall *c = calloc(1, sizeof *c);
        c->res = &res;
        const char *silent[1] = {"SILENT"};
        netPeerCall(p, 1, silent, NULL, onEcho, c);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    netPeerClose(p);
    assert_int_equal(res.done, 10);
    assert_int_equal(res.failed, 10);
    netServerShutdown(t.net, tinyStopped);
    uv_run(&loop, UV_RUN_DEFAULT);
    netServerFree(t.net);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A write that fails at once (the peer reset the connection) fails its call
 * from the loop, never inside netPeerCall: callers hand over state with the
 * call and may still use it until netPeerCall returns. */
static void test_a_reset_connection_fails_the_next_call_from_the_loop(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    netPeer *p = netPeerCreate(&loop, "127.0.0.1", ntohs(sa.sin_port), NULL);
    callResult res = {0};
    const char *ping[1] = {"PING"};
    echoCall *c1 = calloc(1, sizeof *c1);
    c1->res = &res;
    netPeerCall(p, 1, ping, NULL, onEcho, c1);
    while (netPeerQueuedBytes(p) > 0) uv_run(&loop, UV_RUN_ONCE); /* connected, PING sent */
    int cfd = accept(lfd, NULL, NULL);
    assert_true(cfd >= 0);
    char in[64];
    assert_int_equal(read(cfd, in, sizeof in), 14); /* *1\r\n$4\r\nPING\r\n */
    assert_int_equal(write(cfd, "+PONG\r\n", 7), 7);
    runUntil(&loop, &res.done, 1);
    assert_int_equal(res.failed, 0);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(cfd); /* RST */
    echoCall *c2 = calloc(1, sizeof *c2);
    c2->res = &res;
    netPeerCall(p, 1, ping, NULL, onEcho, c2);
    assert_int_equal(res.done, 1); /* not yet */
    runUntil(&loop, &res.done, 2);
    assert_int_equal(res.done, 2);
    assert_int_equal(res.failed, 1);
    netPeerClose(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    close(lfd);
    assert_int_equal(uv_loop_close(&loop), 0);
}

typedef struct lateResult {
    int done;
    char replies[4][16];
} lateResult;

static void onLateReply(void *ctx, const respReply *r, const char *err) {
    (void)err;
    lateResult *res = ctx;
    if (res->done < 4)
        snprintf(res->replies[res->done], sizeof res->replies[0], "%s", r && r->str ? r->str : "");
    res->done++;
}

/* netServerFlush writes the replies queued so far, then runs after_flush,
 * and returns only once what after_flush queued is written too: a flush at
 * the loop's prepare step must not leave output behind while the loop
 * blocks. */
static void test_after_flush_runs_after_the_replies_and_its_output_is_written_too(void **state) {
    (void)state;
    uv_loop_t loop;
    tinyServer t;
    netPeer *p = tinyOpenPair(&loop, &t, NULL);
    lateResult res = {0};
    const char *ping[1] = {"PING"}, *late[1] = {"LATE"}, *silent[1] = {"SILENT"};
    netPeerCall(p, 1, ping, NULL, onLateReply, &res);
    netPeerCall(p, 1, late, NULL, onLateReply, &res);
    netPeerCall(p, 1, silent, NULL, onLateReply, &res);
    netPeerCall(p, 1, silent, NULL, onLateReply, &res);
    runUntil(&loop, &res.done, 2); /* PONG, EARLY; LATE is registered */
    assert_int_equal(res.done, 2);
    netConn *c = t.late;
    assert_non_null(c);
    respAddSimple(netConnOutput(c), "MORE");
    netConnWantFlush(c);
    t.answer_late = 1;
    netServerFlush(t.net);
    assert_int_equal(t.late_pending_before, 0); /* MORE went out before after_flush */
    assert_null(t.late);
    assert_int_equal(netConnPendingBytes(c), 0); /* and LATE before the flush returned */
    runUntil(&loop, &res.done, 4);
    assert_int_equal(res.done, 4);
    assert_string_equal(res.replies[0], "PONG");
    assert_string_equal(res.replies[1], "EARLY");
    assert_string_equal(res.replies[2], "MORE");
    assert_string_equal(res.replies[3], "LATE");
    tinyFinish(&loop, &t, p);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* as in the agent */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_calls_get_their_own_replies_in_order),
        cmocka_unit_test(test_unreachable_peer_fails_every_call_with_a_reason),
        cmocka_unit_test(test_a_silent_peer_times_out_and_the_next_call_reconnects),
        cmocka_unit_test(test_server_closing_the_connection_fails_pending_calls),
        cmocka_unit_test(test_closing_a_peer_with_calls_in_flight_fails_them_once),
        cmocka_unit_test(test_a_reset_connection_fails_the_next_call_from_the_loop),
        cmocka_unit_test(test_after_flush_runs_after_the_replies_and_its_output_is_written_too),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
