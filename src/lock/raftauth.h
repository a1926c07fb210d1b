/* Authenticated Raft transport: libraft's TCP transport behind a
 * challenge-response handshake. Internal to src/lock (raftnode.c), its
 * tests and its fuzz target; nothing else includes it.
 *
 * libraft 0.15 trusts whoever connects to its Raft port: the TCP
 * transport's own preamble is just "protocol, my id, my address". A node
 * without the cluster key could therefore vote, send AppendEntries with a
 * higher term or answer as a member. This transport wraps the one from
 * raft_uv_tcp_init() and, once libraft's preamble is done, runs a
 * handshake on the same stream before handing the stream to libraft:
 *
 *     acceptor  -> connector  HELLO  "DMKVRA01" | nonce_a           40 bytes
 *     connector -> acceptor   PROOF  connector_id | nonce_c | mac_c 72 bytes
 *     acceptor  -> connector  ACK    mac_a                           32 bytes
 *
 * Ids are 8-byte big-endian, nonces 32 random bytes. Both MACs are
 * HMAC-SHA-512-256 (libsodium crypto_auth) under an auth key derived from
 * the cluster key with crypto_kdf (context "dmkvraft", subkey 1), over
 *
 *     label_len | label | nonce_a | nonce_c | connector_id | acceptor_id
 *
 * with label "dmkv-raft-proof-v1" for mac_c and "dmkv-raft-ack-v1" for
 * mac_a, so a proof can never be replayed as an ack. The acceptor checks
 * that connector_id is the id libraft's preamble claimed and that mac_c
 * verifies under one of its keys (rotation: the first key connects, every
 * key is accepted); it then answers with mac_a under that same key. The
 * connector hands the stream to libraft only after mac_a verifies, so both
 * ends have proved they hold the key and are talking to the node id they
 * expect. Anything else (bad MAC, wrong id, short read, timeout) drops the
 * connection and counts it; libraft sees a failed connect and retries
 * after its retry delay.
 *
 * Each side reads exactly the handshake bytes (the read buffer it hands
 * libuv is only the bytes still missing) and stops reading, so no Raft
 * byte is consumed here.
 *
 * What this does not do: Raft payloads are authenticated at connection
 * setup only and are not encrypted; someone who can read or rewrite the
 * TCP stream between two members after the handshake is not stopped. Also,
 * libraft's own preamble (id, address) is parsed by libraft before the
 * handshake runs.
 *
 * With no key the wrapper passes connections straight through and both
 * sides skip the handshake; a keyed node and a keyless one never agree
 * (the keyed acceptor reads Raft bytes as a proof and drops them, the
 * keyed connector times out waiting for HELLO). */
#ifndef DMKV_LOCK_RAFTAUTH_H
#define DMKV_LOCK_RAFTAUTH_H

#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>

#define RAFT_AUTH_KEY_BYTES   32
#define RAFT_AUTH_NONCE_BYTES 32
#define RAFT_AUTH_MAC_BYTES   32
#define RAFT_AUTH_MAX_KEYS    16
#define RAFT_AUTH_MAGIC       "DMKVRA01"
#define RAFT_AUTH_MAGIC_BYTES 8
#define RAFT_AUTH_HELLO_BYTES (RAFT_AUTH_MAGIC_BYTES + RAFT_AUTH_NONCE_BYTES)
#define RAFT_AUTH_PROOF_BYTES (8 + RAFT_AUTH_NONCE_BYTES + RAFT_AUTH_MAC_BYTES)
#define RAFT_AUTH_ACK_BYTES   RAFT_AUTH_MAC_BYTES

/* Connection counts of one transport since it was created. */
typedef struct raftAuthStats {
    uint64_t accepted;  /* incoming connections that proved the key */
    uint64_t rejected;  /* incoming connections dropped: bad proof, wrong id, timeout, EOF */
    uint64_t connected; /* outgoing connections whose peer proved the key */
    uint64_t refused;   /* outgoing handshakes that failed: bad HELLO or ACK, timeout, EOF */
} raftAuthStats;

/* Initializes t as a wrapper around libraft's TCP transport on loop.
 * keys holds nkeys keys of RAFT_AUTH_KEY_BYTES back to back (nkeys may be
 * 0: no authentication, at most RAFT_AUTH_MAX_KEYS); they are copied and
 * only derived auth keys are kept. bind_address (NULL for the Raft
 * address) is passed to raft_uv_tcp_set_bind_address. Returns 0, or a
 * RAFT_* code with a message in t->errmsg. */
int raftAuthTransportInit(struct raft_uv_transport *t, uv_loop_t *loop, const uint8_t *keys,
                          size_t nkeys, unsigned handshake_timeout_ms, const char *bind_address);
/* Frees t's memory. Call after the transport's close callback has fired
 * (for a raft_uv io: after raft_close's callback), or when it was never
 * handed to raft_uv_init. */
void raftAuthTransportClose(struct raft_uv_transport *t);
void raftAuthTransportStats(const struct raft_uv_transport *t, raftAuthStats *st);

/* The pure parts of the handshake, exposed for tests. */
void raftAuthDeriveKey(const uint8_t cluster_key[RAFT_AUTH_KEY_BYTES],
                       uint8_t auth_key[RAFT_AUTH_KEY_BYTES]);
/* is_ack selects the label: 0 for the connector's proof, 1 for the ack. */
void raftAuthMac(const uint8_t auth_key[RAFT_AUTH_KEY_BYTES], int is_ack,
                 const uint8_t nonce_a[RAFT_AUTH_NONCE_BYTES],
                 const uint8_t nonce_c[RAFT_AUTH_NONCE_BYTES], uint64_t connector_id,
                 uint64_t acceptor_id, uint8_t mac[RAFT_AUTH_MAC_BYTES]);

/* The steps of the handshake as pure functions over the bytes read, so
 * they can be fuzzed apart from the sockets (tests/fuzz/fuzz_raftauth.c).
 * auth_keys are derived keys (raftAuthDeriveKey). */
void raftAuthMakeProof(const uint8_t auth_key[RAFT_AUTH_KEY_BYTES],
                       const uint8_t nonce_a[RAFT_AUTH_NONCE_BYTES],
                       const uint8_t nonce_c[RAFT_AUTH_NONCE_BYTES], uint64_t connector_id,
                       uint64_t acceptor_id, uint8_t proof[RAFT_AUTH_PROOF_BYTES]);
/* Connector: 0 with the acceptor's nonce copied out, -1 when the magic is
 * not ours (a keyless node speaks libraft at once). */
int raftAuthReadHello(const uint8_t hello[RAFT_AUTH_HELLO_BYTES],
                      uint8_t nonce_a[RAFT_AUTH_NONCE_BYTES]);
/* Acceptor: the index of the key the proof verifies under, or -1 with
 * *why set when the id is not the one libraft's preamble claimed or no
 * key verifies it. nonce_c receives the connector's nonce either way. */
int raftAuthCheckProof(const uint8_t (*auth_keys)[RAFT_AUTH_KEY_BYTES], size_t nkeys,
                       const uint8_t nonce_a[RAFT_AUTH_NONCE_BYTES], uint64_t claimed_id,
                       uint64_t acceptor_id, const uint8_t proof[RAFT_AUTH_PROOF_BYTES],
                       uint8_t nonce_c[RAFT_AUTH_NONCE_BYTES], const char **why);
/* Connector: 0 when ack is the acceptor's MAC under auth_key, else -1. */
int raftAuthCheckAck(const uint8_t auth_key[RAFT_AUTH_KEY_BYTES],
                     const uint8_t nonce_a[RAFT_AUTH_NONCE_BYTES],
                     const uint8_t nonce_c[RAFT_AUTH_NONCE_BYTES], uint64_t connector_id,
                     uint64_t acceptor_id, const uint8_t ack[RAFT_AUTH_ACK_BYTES]);

#endif
