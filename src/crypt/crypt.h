/* The cluster keyring: encryption of node-to-node traffic.
 *
 * This module owns the cluster keys and the sealed message format. When an
 * operator sets a cluster key, every gossip datagram and every TCP message
 * one node sends another is sealed here before it leaves and opened here
 * when it arrives; a message that does not open is dropped. Client traffic
 * (RESP) is not touched.
 *
 * A keyring holds up to KEYRING_MAX_KEYS keys so that keys can be rotated
 * without downtime: the first key seals, every key is tried to open. To
 * rotate, give every node [old, new], then [new, old], then [new]; at each
 * step every node can open what every other node sends.
 *
 * Wire format of a sealed message (CRYPT_OVERHEAD = 41 bytes more than the
 * plaintext):
 *
 *     +---------+-----------------+-----------------+-------------+
 *     | version | nonce           | ciphertext      | tag         |
 *     | 1 byte  | 24 bytes        | plaintext bytes | 16 bytes    |
 *     +---------+-----------------+-----------------+-------------+
 *
 * version is CRYPT_VERSION (1): XChaCha20-Poly1305 (IETF) from libsodium.
 * The tag authenticates the ciphertext, the version byte and the caller's
 * associated data. The associated data is not sent: it names what a
 * message is for ("gossip", "peer"), so the receiver must supply the same
 * bytes, and a message sealed for one purpose does not open as another (a
 * captured gossip datagram cannot be replayed as a TCP frame).
 *
 * The nonce is random for every message. With 24 bytes (192 bits) of nonce
 * the chance that two messages under one key ever share a nonce is
 * negligible (below 2^-96 after 2^48 messages), so nodes keep no nonce
 * state and need no coordination, even across restarts. Sealing does not
 * stop replay of a whole message for the same purpose; protocols that care
 * (gossip incarnations, fencing tokens) already reject stale messages.
 *
 * A keyring is immutable once built, so one ring may be used from several
 * threads at once. cryptInit() must have succeeded before anything else
 * here is called. */
#ifndef DMKV_CRYPT_CRYPT_H
#define DMKV_CRYPT_CRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define CRYPT_VERSION     1
#define CRYPT_KEY_BYTES   32
#define CRYPT_NONCE_BYTES 24
#define CRYPT_TAG_BYTES   16
/* Bytes a sealed message has beyond its plaintext: version, nonce, tag. */
#define CRYPT_OVERHEAD 41

/* Most keys one keyring holds: enough for any rotation, few enough that a
 * forged message costs a receiver at most this many tag checks. */
#define KEYRING_MAX_KEYS 16
/* Largest cluster key file keyringLoadFile reads. */
#define KEYRING_MAX_FILE_BYTES (64 * 1024)
/* Room keyringGenerate needs: 44 base64 characters and a NUL. */
#define KEYRING_KEY_B64_SIZE 45

/* cryptOpen results; cryptErrorName() gives each a phrase for logs. */
#define CRYPT_OK          0
#define CRYPT_ERR_SHORT   -1 /* shorter than CRYPT_OVERHEAD */
#define CRYPT_ERR_VERSION -2 /* first byte is not CRYPT_VERSION */
#define CRYPT_ERR_AUTH    -3 /* no key in the ring authenticates it */

typedef struct keyring keyring;

/* Initializes libsodium. Safe to call more than once; returns 0, or -1 when
 * the library cannot start (then nothing else here may be used). */
int cryptInit(void);

/* Builds a keyring from text holding one or more base64 keys, each of
 * which must decode to exactly CRYPT_KEY_BYTES bytes. Keys are separated
 * by commas, spaces, tabs or newlines; a '#' that starts a word starts a
 * comment running to the end of its line, so blank lines and comment
 * lines are ignored and a key file reads the same as a command line
 * value. Standard and URL-safe base64 are both accepted, with or without
 * '=' padding. Keys are numbered from 1 in the order they appear; the
 * first one seals.
 *
 * Returns 0 and sets *out, or returns -1 with a one-line message in err
 * (for example "cluster key 2 is not valid base64") and *out untouched.
 * err may be NULL when errlen is 0. */
int keyringParse(keyring **out, const char *text, char *err, size_t errlen);

/* Reads a cluster key file (at most KEYRING_MAX_FILE_BYTES) and parses it
 * with keyringParse. Errors name the file. The file's permissions are the
 * caller's business; it is read as it is. */
int keyringLoadFile(keyring **out, const char *path, char *err, size_t errlen);

/* Wipes the keys and frees the ring. NULL is allowed. */
void keyringFree(keyring *k);
size_t keyringCount(const keyring *k);

/* Derives a 32-byte key for another protocol (context names it, so keys
 * for different uses are unrelated) from the ring's key number i. */
void keyringDerive(const keyring *k, size_t i, const char *context, uint8_t out[32]);

/* Writes a new random key as standard padded base64 with a terminating
 * NUL; cap must be at least KEYRING_KEY_B64_SIZE. */
void keyringGenerate(char *out_b64, size_t cap);

/* Appends to out the message `plain` sealed with the ring's first key and
 * bound to the associated data `ad` (which may be empty). Appends exactly
 * len + CRYPT_OVERHEAD bytes. plain must not point into out. */
void cryptSeal(const keyring *k, const uint8_t *ad, size_t adlen, const uint8_t *plain, size_t len,
               buf *out);

/* Opens a sealed message with the same associated data it was sealed
 * with. On success appends the plaintext (len - CRYPT_OVERHEAD bytes) to
 * out, stores in *key_index (if not NULL) the position in the ring of the
 * key that opened it, and returns CRYPT_OK. Otherwise returns
 * CRYPT_ERR_SHORT, CRYPT_ERR_VERSION or CRYPT_ERR_AUTH and leaves out's
 * contents and *key_index unchanged. sealed must not point into out. */
int cryptOpen(const keyring *k, const uint8_t *ad, size_t adlen, const uint8_t *sealed, size_t len,
              buf *out, int *key_index);

/* A short phrase for a cryptOpen result, for log lines. */
const char *cryptErrorName(int err);

#endif
