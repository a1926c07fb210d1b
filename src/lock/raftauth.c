/* The authenticated Raft transport; see raftauth.h for the handshake.
 *
 * Every connection in handshake is an authConn that owns the stream until
 * the handshake ends. On success the stream goes to libraft (which then
 * owns, closes and raft_free()s it); on failure we close and raft_free it.
 * The transport reports itself closed only when libraft's inner transport
 * has closed and no authConn is left, because libraft's connect requests
 * and our handshake buffers live in authConns until their last callback. */
#include "lock/raftauth.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sodium.h>
#include <uv.h>

#include "util/buf.h"
#include "util/log.h"

#define AUTH_KDF_CONTEXT     "dmkvraft"
#define AUTH_KDF_SUBKEY_ID   1
#define AUTH_LABEL_PROOF     "dmkv-raft-proof-v1"
#define AUTH_LABEL_ACK       "dmkv-raft-ack-v1"
#define AUTH_LOG_INTERVAL_MS 5000

typedef enum { AUTH_ACCEPT, AUTH_CONNECT } authRole;

typedef enum {
    AUTH_TCP,        /* connect: waiting for libraft's TCP connect + preamble */
    AUTH_READ_HELLO, /* connect: reading HELLO */
    AUTH_READ_ACK,   /* connect: PROOF written (or being written), reading ACK */
    AUTH_READ_PROOF, /* accept: HELLO written (or being written), reading PROOF */
    AUTH_WRITE_ACK,  /* accept: proof verified, ACK being written */
    AUTH_DONE,       /* verified: waiting for writes to finish, then hand over */
    AUTH_FAILED      /* closing handles */
} authPhase;

typedef struct raftAuth raftAuth;

typedef struct authConn {
    raftAuth *a;
    authRole role;
    authPhase phase;
    uv_stream_t *stream; /* NULL until connected; ours until handed over */
    uv_timer_t timer;
    bool timer_open;
    int writes; /* uv_write requests in flight */
    uv_write_t hello_req, proof_req, ack_req;
    uint8_t hello[RAFT_AUTH_HELLO_BYTES];
    uint8_t proof[RAFT_AUTH_PROOF_BYTES];
    uint8_t ack[RAFT_AUTH_ACK_BYTES];
    uint8_t in[RAFT_AUTH_PROOF_BYTES];
    size_t in_need, in_got;
    uint8_t nonce_a[RAFT_AUTH_NONCE_BYTES];
    uint8_t nonce_c[RAFT_AUTH_NONCE_BYTES];
    size_t key_index; /* accept: the key that verified the proof */
    raft_id peer_id;
    char *address; /* accept: the address libraft's preamble claimed */
    struct raft_uv_connect inner_req;
    struct raft_uv_connect *outer_req; /* connect: libraft's request */
    int status;                        /* connect: what to report on failure (0: not failed) */
    struct authConn *prev, *next;
} authConn;

struct raftAuth {
    struct raft_uv_transport *outer;
    struct raft_uv_transport inner;
    uv_loop_t *loop;
    raft_id id;
    uint8_t keys[RAFT_AUTH_MAX_KEYS][RAFT_AUTH_KEY_BYTES]; /* derived auth keys */
    size_t nkeys;
    unsigned handshake_timeout_ms;
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
    char *bind_address; /* our copy: libraft may keep the pointer */
    bool closing, inner_closed;
    authConn *conns;
    raftAuthStats stats;
    uint64_t last_log_ms;
    uint64_t unlogged; /* failures since the last warning line */
};

/* ---- the pure handshake ---- */

void raftAuthDeriveKey(const uint8_t cluster_key[RAFT_AUTH_KEY_BYTES],
                       uint8_t auth_key[RAFT_AUTH_KEY_BYTES]) {
    crypto_kdf_derive_from_key(auth_key, RAFT_AUTH_KEY_BYTES, AUTH_KDF_SUBKEY_ID, AUTH_KDF_CONTEXT,
                               cluster_key);
}

static void authPut64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t authGet64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

void raftAuthMac(const uint8_t auth_key[RAFT_AUTH_KEY_BYTES], int is_ack,
                 const uint8_t nonce_a[RAFT_AUTH_NONCE_BYTES],
                 const uint8_t nonce_c[RAFT_AUTH_NONCE_BYTES], uint64_t connector_id,
                 uint64_t acceptor_id, uint8_t mac[RAFT_AUTH_MAC_BYTES]) {
    const char *label = is_ack ? AUTH_LABEL_ACK : AUTH_LABEL_PROOF;
    uint8_t label_len = (uint8_t)strlen(label);
    uint8_t ids[16];
    authPut64(ids, connector_id);
    authPut64(ids + 8, acceptor_id);
    crypto_auth_hmacsha512256_state st;
    crypto_auth_hmacsha512256_init(&st, auth_key, RAFT_AUTH_KEY_BYTES);
    crypto_auth_hmacsha512256_update(&st, &label_len, 1);
    crypto_auth_hmacsha512256_update(&st, (const uint8_t *)label, label_len);
    crypto_auth_hmacsha512256_update(&st, nonce_a, RAFT_AUTH_NONCE_BYTES);
    crypto_auth_hmacsha512256_update(&st, nonce_c, RAFT_AUTH_NONCE_BYTES);
    crypto_auth_hmacsha512256_update(&st, ids, sizeof ids);
    crypto_auth_hmacsha512256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
}

void raftAuthMakeProof(const uint8_t auth_key[RAFT_AUTH_KEY_BYTES],
                       const uint8_t nonce_a[RAFT_AUTH_NONCE_BYTES],
                       const uint8_t nonce_c[RAFT_AUTH_NONCE_BYTES], uint64_t connector_id,
                       uint64_t acceptor_id, uint8_t proof[RAFT_AUTH_PROOF_BYTES]) {
    authPut64(proof, connector_id);
    memcpy(proof + 8, nonce_c, RAFT_AUTH_NONCE_BYTES);
    raftAuthMac(auth_key, 0, nonce_a, nonce_c, connector_id, acceptor_id,
                proof + 8 + RAFT_AUTH_NONCE_BYTES);
}

int raftAuthReadHello(const uint8_t hello[RAFT_AUTH_HELLO_BYTES],
                      uint8_t nonce_a[RAFT_AUTH_NONCE_BYTES]) {
    if (memcmp(hello, RAFT_AUTH_MAGIC, RAFT_AUTH_MAGIC_BYTES) != 0) return -1;
    memcpy(nonce_a, hello + RAFT_AUTH_MAGIC_BYTES, RAFT_AUTH_NONCE_BYTES);
    return 0;
}

int raftAuthCheckProof(const uint8_t (*auth_keys)[RAFT_AUTH_KEY_BYTES], size_t nkeys,
                       const uint8_t nonce_a[RAFT_AUTH_NONCE_BYTES], uint64_t claimed_id,
                       uint64_t acceptor_id, const uint8_t proof[RAFT_AUTH_PROOF_BYTES],
                       uint8_t nonce_c[RAFT_AUTH_NONCE_BYTES], const char **why) {
    memcpy(nonce_c, proof + 8, RAFT_AUTH_NONCE_BYTES);
    if (authGet64(proof) != claimed_id) {
        *why = "handshake id differs from the id in libraft's preamble";
        return -1;
    }
    const uint8_t *theirs = proof + 8 + RAFT_AUTH_NONCE_BYTES;
    uint8_t mac[RAFT_AUTH_MAC_BYTES];
    for (size_t k = 0; k < nkeys; k++) {
        raftAuthMac(auth_keys[k], 0, nonce_a, nonce_c, claimed_id, acceptor_id, mac);
        if (crypto_verify_32(mac, theirs) == 0) return (int)k;
    }
    *why = "proof does not verify under any cluster key";
    return -1;
}

int raftAuthCheckAck(const uint8_t auth_key[RAFT_AUTH_KEY_BYTES],
                     const uint8_t nonce_a[RAFT_AUTH_NONCE_BYTES],
                     const uint8_t nonce_c[RAFT_AUTH_NONCE_BYTES], uint64_t connector_id,
                     uint64_t acceptor_id, const uint8_t ack[RAFT_AUTH_ACK_BYTES]) {
    uint8_t mac[RAFT_AUTH_MAC_BYTES];
    raftAuthMac(auth_key, 1, nonce_a, nonce_c, connector_id, acceptor_id, mac);
    return crypto_verify_32(mac, ack) == 0 ? 0 : -1;
}

/* ---- bookkeeping ---- */

static void authMaybeFireClose(raftAuth *a) {
    if (a->closing && a->inner_closed && a->conns == NULL && a->close_cb != NULL) {
        raft_uv_transport_close_cb cb = a->close_cb;
        a->close_cb = NULL;
        cb(a->outer);
    }
}

static void authLink(raftAuth *a, authConn *c) {
    c->prev = NULL;
    c->next = a->conns;
    if (a->conns) a->conns->prev = c;
    a->conns = c;
}

static void authUnlink(raftAuth *a, authConn *c) {
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void authPeerName(authConn *c, char *out, size_t cap) {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(out, cap, "?");
    if (c->stream == NULL ||
        uv_tcp_getpeername((uv_tcp_t *)c->stream, (struct sockaddr *)&ss, &len) != 0)
        return;
    char host[64] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        uv_ip4_name(sin, host, sizeof host);
        port = ntohs(sin->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(sin6, host, sizeof host);
        port = ntohs(sin6->sin6_port);
    }
    snprintf(out, cap, "%s:%d", host, port);
}

/* One warning line per AUTH_LOG_INTERVAL_MS at most: a node without the key
 * retries several times a second and must not flood the log. */
static void authLogFailure(authConn *c, const char *why) {
    raftAuth *a = c->a;
    uint64_t now = uv_now(a->loop);
    a->unlogged++;
    if (a->last_log_ms != 0 && now - a->last_log_ms < AUTH_LOG_INTERVAL_MS) return;
    char peer[80];
    authPeerName(c, peer, sizeof peer);
    if (c->role == AUTH_ACCEPT) {
        logWarn("raft: dropped connection from %s claiming node %llu: %s (%llu such failures "
                "since the last report; check that every node has the same cluster key)",
                peer, (unsigned long long)c->peer_id, why, (unsigned long long)a->unlogged);
    } else {
        logWarn("raft: handshake with node %llu at %s failed: %s (%llu such failures since the "
                "last report; check that every node has the same cluster key)",
                (unsigned long long)c->peer_id, peer, why, (unsigned long long)a->unlogged);
    }
    a->last_log_ms = now;
    a->unlogged = 0;
}

static void authConnFree(authConn *c) {
    raftAuth *a = c->a;
    authUnlink(a, c);
    if (c->address) raft_free(c->address);
    sodium_memzero(c, sizeof *c);
    raft_free(c);
    authMaybeFireClose(a);
}

/* A connect-side conn is finished when its stream and timer are closed;
 * only then may libraft hear about the failure, since libraft frees its
 * request as soon as it does. */
static void authConnMaybeFinish(authConn *c) {
    if (c->stream != NULL || c->timer_open) return;
    if (c->role == AUTH_CONNECT && c->outer_req != NULL) {
        struct raft_uv_connect *req = c->outer_req;
        c->outer_req = NULL;
        req->cb(req, NULL, c->a->closing ? RAFT_CANCELED : c->status);
    }
    authConnFree(c);
}

static void authFreeHandle(uv_handle_t *h) {
    raft_free(h);
}

static void authOnStreamClosed(uv_handle_t *h) {
    authConn *c = h->data;
    raft_free(h);
    c->stream = NULL;
    authConnMaybeFinish(c);
}

static void authOnTimerClosed(uv_handle_t *h) {
    authConn *c = h->data;
    c->timer_open = false;
    authConnMaybeFinish(c);
}

static void authFail(authConn *c, const char *why, bool count) {
    if (c->phase == AUTH_FAILED) return;
    c->phase = AUTH_FAILED;
    if (c->status == 0) c->status = RAFT_NOCONNECTION;
    if (count) {
        if (c->role == AUTH_ACCEPT)
            c->a->stats.rejected++;
        else
            c->a->stats.refused++;
        authLogFailure(c, why);
    }
    if (c->stream) {
        uv_read_stop(c->stream);
        uv_close((uv_handle_t *)c->stream, authOnStreamClosed);
    }
    if (c->timer_open && !uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, authOnTimerClosed);
    authConnMaybeFinish(c);
}

/* The handshake succeeded and no write is in flight: give the stream to
 * libraft. The conn lives on until its timer has closed. */
static void authHandOver(authConn *c) {
    raftAuth *a = c->a;
    uv_stream_t *stream = c->stream;
    c->stream = NULL;
    c->phase = AUTH_FAILED; /* nothing more happens on this conn but teardown */
    uv_read_stop(stream);
    stream->data = NULL;
    if (c->role == AUTH_ACCEPT) {
        a->stats.accepted++;
        a->accept_cb(a->outer, c->peer_id, c->address, stream);
    } else {
        struct raft_uv_connect *req = c->outer_req;
        c->outer_req = NULL;
        a->stats.connected++;
        req->cb(req, stream, 0);
    }
    if (c->timer_open && !uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, authOnTimerClosed);
    authConnMaybeFinish(c);
}

static void authMaybeHandOver(authConn *c) {
    if (c->phase == AUTH_DONE && c->writes == 0) authHandOver(c);
}

/* ---- stream I/O ---- */

static void authOnTimeout(uv_timer_t *t) {
    authConn *c = t->data;
    authFail(c, "handshake timed out", true);
}

static void authOnWrite(uv_write_t *req, int status) {
    authConn *c = req->data;
    c->writes--;
    if (status < 0) {
        authFail(c, uv_strerror(status), status != UV_ECANCELED);
        return;
    }
    authMaybeHandOver(c);
}

static int authWrite(authConn *c, uv_write_t *req, uint8_t *data, size_t len) {
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    req->data = c;
    int rv = uv_write(req, c->stream, &b, 1, authOnWrite);
    if (rv == 0) c->writes++;
    return rv;
}

static void authAlloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    (void)suggested;
    authConn *c = h->data;
    /* Only the bytes still missing: libuv never reads past them, so the
     * first Raft byte stays in the socket for libraft. */
    b->base = (char *)c->in + c->in_got;
    b->len = c->in_need - c->in_got;
}

static void authOnHandshakeRead(authConn *c);

static void authOnRead(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
    (void)b;
    authConn *c = s->data;
    if (nread == 0) return;
    if (nread < 0) {
        authFail(c,
                 nread == UV_EOF ? "peer closed the connection during the handshake"
                                 : uv_strerror((int)nread),
                 true);
        return;
    }
    c->in_got += (size_t)nread;
    if (c->in_got < c->in_need) return;
    uv_read_stop(s);
    authOnHandshakeRead(c);
}

static int authExpect(authConn *c, size_t n) {
    c->in_need = n;
    c->in_got = 0;
    return uv_read_start(c->stream, authAlloc, authOnRead);
}

static void authOnHandshakeRead(authConn *c) {
    raftAuth *a = c->a;
    switch (c->phase) {
    case AUTH_READ_HELLO:
        if (raftAuthReadHello(c->in, c->nonce_a) != 0) {
            authFail(c, "peer did not send a dmkv handshake (is it running without a cluster key?)",
                     true);
            return;
        }
        randombytes_buf(c->nonce_c, sizeof c->nonce_c);
        raftAuthMakeProof(a->keys[0], c->nonce_a, c->nonce_c, a->id, c->peer_id, c->proof);
        c->phase = AUTH_READ_ACK;
        if (authWrite(c, &c->proof_req, c->proof, sizeof c->proof) != 0 ||
            authExpect(c, RAFT_AUTH_ACK_BYTES) != 0) {
            authFail(c, "cannot write the handshake", true);
        }
        return;
    case AUTH_READ_ACK:
        if (raftAuthCheckAck(a->keys[0], c->nonce_a, c->nonce_c, a->id, c->peer_id, c->in) != 0) {
            authFail(c,
                     "peer's answer does not verify (different cluster key, or another node "
                     "listens at this address)",
                     true);
            return;
        }
        c->phase = AUTH_DONE;
        authMaybeHandOver(c);
        return;
    case AUTH_READ_PROOF: {
        const char *why = NULL;
        int k = raftAuthCheckProof((const uint8_t(*)[RAFT_AUTH_KEY_BYTES])a->keys, a->nkeys,
                                   c->nonce_a, c->peer_id, a->id, c->in, c->nonce_c, &why);
        if (k < 0) {
            authFail(c, why, true);
            return;
        }
        c->key_index = (size_t)k;
        raftAuthMac(a->keys[k], 1, c->nonce_a, c->nonce_c, c->peer_id, a->id, c->ack);
        c->phase = AUTH_DONE;
        if (authWrite(c, &c->ack_req, c->ack, sizeof c->ack) != 0) {
            authFail(c, "cannot write the handshake", true);
            return;
        }
        authMaybeHandOver(c);
        return;
    }
    default:
        return;
    }
}

/* Arms the deadline and starts the first step of the handshake on a stream
 * that libraft's transport has just set up. */
static void authBegin(authConn *c, uv_stream_t *stream) {
    raftAuth *a = c->a;
    c->stream = stream;
    stream->data = c;
    uv_timer_start(&c->timer, authOnTimeout, a->handshake_timeout_ms, 0);
    if (c->role == AUTH_CONNECT) {
        c->phase = AUTH_READ_HELLO;
        if (authExpect(c, RAFT_AUTH_HELLO_BYTES) != 0)
            authFail(c, "cannot read from the connection", true);
        return;
    }
    randombytes_buf(c->nonce_a, sizeof c->nonce_a);
    memcpy(c->hello, RAFT_AUTH_MAGIC, RAFT_AUTH_MAGIC_BYTES);
    memcpy(c->hello + RAFT_AUTH_MAGIC_BYTES, c->nonce_a, RAFT_AUTH_NONCE_BYTES);
    c->phase = AUTH_READ_PROOF;
    if (authWrite(c, &c->hello_req, c->hello, sizeof c->hello) != 0 ||
        authExpect(c, RAFT_AUTH_PROOF_BYTES) != 0) {
        authFail(c, "cannot write the handshake", true);
    }
}

static authConn *authConnNew(raftAuth *a, authRole role, raft_id peer_id) {
    authConn *c = raft_calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->a = a;
    c->role = role;
    c->phase = role == AUTH_CONNECT ? AUTH_TCP : AUTH_READ_PROOF;
    c->peer_id = peer_id;
    uv_timer_init(a->loop, &c->timer);
    c->timer.data = c;
    c->timer_open = true;
    authLink(a, c);
    return c;
}

/* ---- the raft_uv_transport interface ---- */

static int authInit(struct raft_uv_transport *t, raft_id id, const char *address) {
    raftAuth *a = t->impl;
    a->id = id;
    int rv = a->inner.init(&a->inner, id, address);
    if (rv != 0) snprintf(t->errmsg, sizeof t->errmsg, "%s", a->inner.errmsg);
    return rv;
}

/* A Raft connection whose data goes unacknowledged for this long is
 * dropped by the kernel, so libraft reconnects. Without it a connection
 * that lived through a partition keeps backing off its retransmissions
 * (the gaps double up to two minutes), and the healed node is reached
 * only when the next one happens to go out, 20-30 s after a 30 s cut. */
#define RAFT_TCP_USER_TIMEOUT_MS 3000

static void authTuneStream(uv_stream_t *stream) {
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)stream, &fd) != 0) return;
    unsigned int ms = RAFT_TCP_USER_TIMEOUT_MS;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms); /* best effort */
}

static void authOnAccept(struct raft_uv_transport *inner, raft_id id, const char *address,
                         struct uv_stream_s *stream) {
    raftAuth *a = inner->data;
    authTuneStream(stream);
    if (a->closing) {
        uv_close((uv_handle_t *)stream, authFreeHandle);
        return;
    }
    if (a->nkeys == 0) {
        a->stats.accepted++;
        a->accept_cb(a->outer, id, address, stream);
        return;
    }
    authConn *c = authConnNew(a, AUTH_ACCEPT, id);
    size_t alen = strlen(address);
    if (c != NULL) c->address = raft_malloc(alen + 1);
    if (c == NULL || c->address == NULL) {
        uv_close((uv_handle_t *)stream, authFreeHandle);
        if (c) authFail(c, "out of memory", false);
        return;
    }
    memcpy(c->address, address, alen + 1);
    authBegin(c, stream);
}

static int authListen(struct raft_uv_transport *t, raft_uv_accept_cb cb) {
    raftAuth *a = t->impl;
    a->accept_cb = cb;
    int rv = a->inner.listen(&a->inner, authOnAccept);
    if (rv != 0) snprintf(t->errmsg, sizeof t->errmsg, "%s", a->inner.errmsg);
    return rv;
}

static void authOnInnerConnect(struct raft_uv_connect *req, struct uv_stream_s *stream,
                               int status) {
    authConn *c = req->data;
    raftAuth *a = c->a;
    if (status != 0) {
        c->status = status;
        authFail(c, raft_strerror(status), false);
        return;
    }
    if (a->closing) {
        uv_close((uv_handle_t *)stream, authFreeHandle);
        authFail(c, "transport closing", false);
        return;
    }
    authTuneStream(stream);
    if (a->nkeys == 0) {
        struct raft_uv_connect *outer = c->outer_req;
        c->outer_req = NULL;
        a->stats.connected++;
        outer->cb(outer, stream, 0);
        authFail(c, "handed over", false); /* just tears the conn down */
        return;
    }
    authBegin(c, stream);
}

static int authConnect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                       const char *address, raft_uv_connect_cb cb) {
    raftAuth *a = t->impl;
    authConn *c = authConnNew(a, AUTH_CONNECT, id);
    if (c == NULL) return RAFT_NOMEM;
    req->cb = cb;
    c->inner_req.data = c;
    int rv = a->inner.connect(&a->inner, &c->inner_req, id, address, authOnInnerConnect);
    if (rv != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "%s", a->inner.errmsg);
        /* libraft was not told anything yet and keeps its request. */
        authFail(c, "connect failed", false);
        return rv;
    }
    c->outer_req = req;
    return 0;
}

static void authOnInnerClosed(struct raft_uv_transport *inner) {
    raftAuth *a = inner->data;
    a->inner_closed = true;
    authMaybeFireClose(a);
}

static void authClose(struct raft_uv_transport *t, raft_uv_transport_close_cb cb) {
    raftAuth *a = t->impl;
    a->closing = true;
    a->close_cb = cb;
    /* Handshakes in progress end now: libraft gets RAFT_CANCELED for its
     * connects and never sees the half-authenticated incoming streams. */
    authConn *c = a->conns;
    while (c) {
        authConn *next = c->next;
        if (c->stream != NULL) authFail(c, "transport closing", false);
        c = next;
    }
    /* Connects still inside libraft's transport are canceled by it; their
     * callbacks arrive through authOnInnerConnect. */
    a->inner.close(&a->inner, authOnInnerClosed);
}

int raftAuthTransportInit(struct raft_uv_transport *t, uv_loop_t *loop, const uint8_t *keys,
                          size_t nkeys, unsigned handshake_timeout_ms, const char *bind_address) {
    memset(t, 0, sizeof *t);
    if (nkeys > RAFT_AUTH_MAX_KEYS) {
        snprintf(t->errmsg, sizeof t->errmsg, "at most %d cluster keys are allowed, got %zu",
                 RAFT_AUTH_MAX_KEYS, nkeys);
        return RAFT_INVALID;
    }
    if (sodium_init() < 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "libsodium failed to initialize");
        return RAFT_INVALID;
    }
    raftAuth *a = raft_calloc(1, sizeof *a);
    if (a == NULL) return RAFT_NOMEM;
    int rv = raft_uv_tcp_init(&a->inner, loop);
    if (rv != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "raft TCP transport: %s", raft_strerror(rv));
        raft_free(a);
        return rv;
    }
    if (bind_address != NULL) {
        size_t blen = strlen(bind_address) + 1;
        a->bind_address = raft_malloc(blen);
        if (a->bind_address != NULL) memcpy(a->bind_address, bind_address, blen);
        rv =
            a->bind_address ? raft_uv_tcp_set_bind_address(&a->inner, a->bind_address) : RAFT_NOMEM;
        if (rv != 0) {
            snprintf(t->errmsg, sizeof t->errmsg, "bad raft bind address \"%s\" (want IPv4:port)",
                     bind_address);
            raft_uv_tcp_close(&a->inner);
            raft_free(a->bind_address);
            raft_free(a);
            return rv;
        }
    }
    a->inner.data = a;
    a->outer = t;
    a->loop = loop;
    a->nkeys = nkeys;
    a->handshake_timeout_ms = handshake_timeout_ms ? handshake_timeout_ms : 2000;
    for (size_t i = 0; i < nkeys; i++)
        raftAuthDeriveKey(keys + i * RAFT_AUTH_KEY_BYTES, a->keys[i]);
    t->impl = a;
    t->init = authInit;
    t->listen = authListen;
    t->connect = authConnect;
    t->close = authClose;
    return 0;
}

void raftAuthTransportClose(struct raft_uv_transport *t) {
    raftAuth *a = t->impl;
    if (a == NULL) return;
    raft_uv_tcp_close(&a->inner);
    sodium_memzero(a->keys, sizeof a->keys);
    raft_free(a->bind_address);
    raft_free(a);
    t->impl = NULL;
}

void raftAuthTransportStats(const struct raft_uv_transport *t, raftAuthStats *st) {
    const raftAuth *a = t->impl;
    if (a == NULL) {
        memset(st, 0, sizeof *st);
        return;
    }
    *st = a->stats;
}
