/* libFuzzer target for the Raft handshake (src/lock/raftauth.c).
 *
 * Whoever reaches a node's Raft port chooses the PROOF bytes the acceptor
 * checks, and whoever answers a node's connect chooses the HELLO and ACK
 * bytes the connector checks. The input is read as those three messages
 * (zero-padded when short) and a few choices: which of three keys the
 * acceptor holds, the ids, and one bit to flip. Then:
 *  - HELLO is accepted exactly when it starts with the magic, and gives
 *    back the nonce that follows it;
 *  - an arbitrary PROOF or ACK is accepted only if it is the MAC the
 *    right key makes (a forgery that passes is a failure);
 *  - a PROOF made with a key the acceptor holds verifies, under that key's
 *    index, and its ACK verifies at the connector; the same PROOF fails
 *    with one bit flipped, with another claimed id, or at an acceptor of
 *    another id, and the ACK fails as a PROOF (labels differ). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lock/raftauth.h"

#define FUZZ_KEYS 3

static uint8_t fuzzKeys[FUZZ_KEYS][RAFT_AUTH_KEY_BYTES];

static void fuzzFail(const char *what) {
    fprintf(stderr, "fuzz_raftauth: %s\n", what);
    abort();
}

static void fuzzSetup(void) {
    static int ready;
    if (ready) return;
    if (sodium_init() < 0) fuzzFail("sodium_init failed");
    for (int i = 0; i < FUZZ_KEYS; i++) {
        uint8_t cluster[RAFT_AUTH_KEY_BYTES];
        memset(cluster, 0x11 * (i + 1), sizeof cluster);
        raftAuthDeriveKey(cluster, fuzzKeys[i]);
    }
    ready = 1;
}

/* Takes n bytes from the input, zero-filled past its end. */
static void take(const uint8_t **p, size_t *left, uint8_t *out, size_t n) {
    size_t k = *left < n ? *left : n;
    memset(out, 0, n);
    if (k) memcpy(out, *p, k);
    *p += k;
    *left -= k;
}

static uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

/* The acceptor holds keys [first, first + n) of fuzzKeys. */
static int checkProof(size_t first, size_t n, const uint8_t *nonce_a, uint64_t claimed,
                      uint64_t acceptor, const uint8_t *proof, uint8_t *nonce_c) {
    const char *why = NULL;
    int k = raftAuthCheckProof((const uint8_t(*)[RAFT_AUTH_KEY_BYTES])fuzzKeys[first], n, nonce_a,
                               claimed, acceptor, proof, nonce_c, &why);
    if (k < 0 && (why == NULL || why[0] == '\0')) fuzzFail("refused proof without a reason");
    if (k >= (int)n) fuzzFail("key index out of range");
    if (memcmp(nonce_c, proof + 8, RAFT_AUTH_NONCE_BYTES) != 0) fuzzFail("nonce not copied out");
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzzSetup();
    const uint8_t *p = data;
    size_t left = size;
    uint8_t ctl[4], ids[16];
    uint8_t hello[RAFT_AUTH_HELLO_BYTES], proof[RAFT_AUTH_PROOF_BYTES], ack[RAFT_AUTH_ACK_BYTES];
    take(&p, &left, ctl, sizeof ctl);
    take(&p, &left, ids, sizeof ids);
    take(&p, &left, hello, sizeof hello);
    take(&p, &left, proof, sizeof proof);
    take(&p, &left, ack, sizeof ack);
    size_t first = ctl[0] % FUZZ_KEYS;
    size_t nkeys = 1 + ctl[1] % (FUZZ_KEYS - first);
    uint64_t connector = get64(ids), acceptor = get64(ids + 8);

    /* HELLO: the magic decides, and the nonce is what follows it. */
    uint8_t nonce_a[RAFT_AUTH_NONCE_BYTES];
    memset(nonce_a, 0xAA, sizeof nonce_a);
    bool magic = memcmp(hello, RAFT_AUTH_MAGIC, RAFT_AUTH_MAGIC_BYTES) == 0;
    int rc = raftAuthReadHello(hello, nonce_a);
    if ((rc == 0) != magic) fuzzFail("HELLO accepted or refused against its magic");
    if (rc == 0 && memcmp(nonce_a, hello + RAFT_AUTH_MAGIC_BYTES, sizeof nonce_a) != 0)
        fuzzFail("HELLO nonce differs");
    if (rc != 0) memcpy(nonce_a, hello + RAFT_AUTH_MAGIC_BYTES, sizeof nonce_a);

    /* Arbitrary PROOF and ACK: accepted only when they are the real MAC. */
    uint8_t nonce_c[RAFT_AUTH_NONCE_BYTES], mac[RAFT_AUTH_MAC_BYTES];
    uint64_t claimed = get64(proof);
    int k = checkProof(first, nkeys, nonce_a, claimed, acceptor, proof, nonce_c);
    if (k >= 0) {
        raftAuthMac(fuzzKeys[first + (size_t)k], 0, nonce_a, nonce_c, claimed, acceptor, mac);
        if (memcmp(mac, proof + 8 + RAFT_AUTH_NONCE_BYTES, sizeof mac) != 0)
            fuzzFail("a forged proof was accepted");
    }
    if (raftAuthCheckAck(fuzzKeys[first], nonce_a, nonce_c, connector, acceptor, ack) == 0) {
        raftAuthMac(fuzzKeys[first], 1, nonce_a, nonce_c, connector, acceptor, mac);
        if (memcmp(mac, ack, sizeof mac) != 0) fuzzFail("a forged ack was accepted");
    }

    /* A real PROOF from a connector holding key `which`. */
    size_t which = ctl[2] % FUZZ_KEYS;
    bool held = which >= first && which < first + nkeys;
    uint8_t real[RAFT_AUTH_PROOF_BYTES], got_c[RAFT_AUTH_NONCE_BYTES];
    raftAuthMakeProof(fuzzKeys[which], nonce_a, proof + 8, connector, acceptor, real);
    k = checkProof(first, nkeys, nonce_a, connector, acceptor, real, got_c);
    if (held && k != (int)(which - first)) fuzzFail("a real proof did not verify under its key");
    if (!held && k >= 0) fuzzFail("a proof under a key the acceptor lacks verified");
    uint8_t real_ack[RAFT_AUTH_ACK_BYTES];
    raftAuthMac(fuzzKeys[which], 1, nonce_a, got_c, connector, acceptor, real_ack);
    if (raftAuthCheckAck(fuzzKeys[which], nonce_a, got_c, connector, acceptor, real_ack) != 0)
        fuzzFail("a real ack did not verify");

    /* ... and what must break it. */
    if (held) {
        if (checkProof(first, nkeys, nonce_a, connector + 1, acceptor, real, got_c) >= 0)
            fuzzFail("a proof passed for another claimed id");
        if (checkProof(first, nkeys, nonce_a, connector, acceptor + 1, real, got_c) >= 0)
            fuzzFail("a proof passed at an acceptor of another id");
        uint8_t flipped[RAFT_AUTH_PROOF_BYTES];
        memcpy(flipped, real, sizeof flipped);
        size_t bit = ctl[3] % (RAFT_AUTH_PROOF_BYTES * 8);
        flipped[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (checkProof(first, nkeys, nonce_a, connector, acceptor, flipped, got_c) >= 0)
            fuzzFail("a proof with a flipped bit passed");
        uint8_t as_proof[RAFT_AUTH_PROOF_BYTES];
        memcpy(as_proof, real, 8 + RAFT_AUTH_NONCE_BYTES);
        memcpy(as_proof + 8 + RAFT_AUTH_NONCE_BYTES, real_ack, RAFT_AUTH_ACK_BYTES);
        if (checkProof(first, nkeys, nonce_a, connector, acceptor, as_proof, got_c) >= 0)
            fuzzFail("an ack was accepted as a proof");
    }
    return 0;
}
