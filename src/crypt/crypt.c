/* The cluster keyring and sealed messages; see crypt.h.
 *
 * A ring is a fixed array of raw keys: small, immutable after parsing, and
 * wiped with sodium_memzero when freed. Every temporary that held key
 * material (a decoded word, the contents of a key file) is wiped as well
 * before its memory is given back.
 *
 * Sealing is one libsodium AEAD call. The tag covers the version byte in
 * front of the caller's associated data, so a later format cannot be
 * passed off as this one by rewriting the first byte. Opening tries the
 * ring's keys in order and stops at the first that authenticates the
 * message; a forged message therefore costs at most KEYRING_MAX_KEYS tag
 * checks, and nothing is written to the caller's buffer unless one
 * succeeds. */
#include "crypt/crypt.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

_Static_assert(CRYPT_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");
_Static_assert(CRYPT_NONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce size");
_Static_assert(CRYPT_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(CRYPT_OVERHEAD == 1 + CRYPT_NONCE_BYTES + CRYPT_TAG_BYTES, "overhead");
_Static_assert(KEYRING_KEY_B64_SIZE ==
                   sodium_base64_ENCODED_LEN(CRYPT_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL),
               "base64 key size");

struct keyring {
    size_t n;
    uint8_t key[KEYRING_MAX_KEYS][CRYPT_KEY_BYTES];
};

void keyringDerive(const keyring *k, size_t i, const char *context, uint8_t out[32]) {
    crypto_generichash(out, 32, (const uint8_t *)context, strlen(context), k->key[i],
                       CRYPT_KEY_BYTES);
}

int cryptInit(void) {
    /* 1 means libsodium was already initialized, which is fine. */
    return sodium_init() < 0 ? -1 : 0;
}

static void cryptError(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cryptError(char *err, size_t errlen, const char *fmt, ...) {
    if (errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- Parsing ---------------------------------------------------------- */

static bool keyringIsSeparator(char c) {
    return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Decodes one base64 word into key. The alphabet and the padding are read
 * off the word itself, so exactly one libsodium variant applies and a word
 * mixing both alphabets is rejected. */
static int keyringDecodeKey(uint8_t key[CRYPT_KEY_BYTES], const char *word, size_t len,
                            size_t number, char *err, size_t errlen) {
    bool urlsafe = memchr(word, '-', len) || memchr(word, '_', len);
    bool padded = word[len - 1] == '=';
    int variant =
        urlsafe
            ? (padded ? sodium_base64_VARIANT_URLSAFE : sodium_base64_VARIANT_URLSAFE_NO_PADDING)
            : (padded ? sodium_base64_VARIANT_ORIGINAL : sodium_base64_VARIANT_ORIGINAL_NO_PADDING);

    /* Decoding never yields more bytes than characters, so the real length
     * of a key of the wrong size can be reported. */
    uint8_t *bin = xmalloc(len);
    size_t binlen = 0;
    int rc = sodium_base642bin(bin, len, word, len, NULL, &binlen, NULL, variant);
    if (rc != 0) {
        cryptError(err, errlen, "cluster key %zu is not valid base64", number);
        rc = -1;
    } else if (binlen != CRYPT_KEY_BYTES) {
        cryptError(err, errlen,
                   "cluster key %zu is %zu bytes; keys must be %d bytes (generate one with: "
                   "dmkv keygen)",
                   number, binlen, CRYPT_KEY_BYTES);
        rc = -1;
    } else {
        memcpy(key, bin, CRYPT_KEY_BYTES);
    }
    sodium_memzero(bin, len);
    free(bin);
    return rc;
}

int keyringParse(keyring **out, const char *text, char *err, size_t errlen) {
    keyring *k = xcalloc(1, sizeof *k);
    const char *p = text;
    int rc = -1;
    for (;;) {
        while (keyringIsSeparator(*p)) p++;
        if (*p == '\0') break;
        if (*p == '#') {
            while (*p != '\0' && *p != '\n') p++;
            continue;
        }
        const char *word = p;
        while (*p != '\0' && !keyringIsSeparator(*p)) p++;
        if (k->n == KEYRING_MAX_KEYS) {
            cryptError(err, errlen,
                       "more than %d cluster keys; a keyring holds at most %d (remove keys no "
                       "node seals with any more)",
                       KEYRING_MAX_KEYS, KEYRING_MAX_KEYS);
            goto done;
        }
        if (keyringDecodeKey(k->key[k->n], word, (size_t)(p - word), k->n + 1, err, errlen) != 0)
            goto done;
        k->n++;
    }
    if (k->n == 0) {
        cryptError(err, errlen, "no cluster key found");
        goto done;
    }
    *out = k;
    k = NULL;
    rc = 0;
done:
    keyringFree(k);
    return rc;
}

int keyringLoadFile(keyring **out, const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        cryptError(err, errlen, "cannot open cluster key file %s: %s", path, strerror(errno));
        return -1;
    }

    /* One byte more than allowed, to tell a file at the limit from one past
     * it, and one for the terminating NUL. Read until end of file rather
     * than trusting fstat, so a pipe (--cluster-key-file <(...)) works. */
    size_t cap = KEYRING_MAX_FILE_BYTES + 1;
    char *text = xmalloc(cap + 1);
    size_t len = 0;
    int rc = -1;
    while (len < cap) {
        ssize_t n = read(fd, text + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            cryptError(err, errlen, "cannot read cluster key file %s: %s", path, strerror(errno));
            goto done;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    if (len > KEYRING_MAX_FILE_BYTES) {
        cryptError(err, errlen,
                   "cluster key file %s is larger than %d KiB; it should hold only base64 keys, "
                   "one per line",
                   path, KEYRING_MAX_FILE_BYTES / 1024);
        goto done;
    }
    if (memchr(text, '\0', len)) {
        cryptError(err, errlen,
                   "cluster key file %s is not a text file (it contains a NUL byte); it should "
                   "hold only base64 keys, one per line",
                   path);
        goto done;
    }
    text[len] = '\0';

    char why[256];
    if (keyringParse(out, text, why, sizeof why) != 0) {
        cryptError(err, errlen, "cluster key file %s: %s", path, why);
        goto done;
    }
    rc = 0;
done:
    close(fd);
    sodium_memzero(text, cap + 1);
    free(text);
    return rc;
}

void keyringFree(keyring *k) {
    if (!k) return;
    sodium_memzero(k, sizeof *k);
    free(k);
}

size_t keyringCount(const keyring *k) {
    return k->n;
}

void keyringGenerate(char *out_b64, size_t cap) {
    assert(cap >= KEYRING_KEY_B64_SIZE);
    uint8_t key[CRYPT_KEY_BYTES];
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
    /* libsodium aborts rather than overflow out_b64 if cap is too small. */
    sodium_bin2base64(out_b64, cap, key, sizeof key, sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(key, sizeof key);
}

/* ---- Sealing ---------------------------------------------------------- */

/* What the tag covers besides the ciphertext: the version byte followed by
 * the caller's associated data. Purpose labels are short, so the usual
 * case needs no allocation. */
typedef struct cryptAd {
    uint8_t *p;
    size_t len;
    uint8_t small[64];
} cryptAd;

static void cryptAdInit(cryptAd *a, uint8_t version, const uint8_t *ad, size_t adlen) {
    assert(adlen < SIZE_MAX);
    a->len = adlen + 1;
    a->p = a->len <= sizeof a->small ? a->small : xmalloc(a->len);
    a->p[0] = version;
    if (adlen) memcpy(a->p + 1, ad, adlen);
}

static void cryptAdFree(cryptAd *a) {
    if (a->p != a->small) free(a->p);
}

void cryptSeal(const keyring *k, const uint8_t *ad, size_t adlen, const uint8_t *plain, size_t len,
               buf *out) {
    assert(k && k->n > 0);
    assert(len <= SIZE_MAX - CRYPT_OVERHEAD);
    cryptAd a;
    cryptAdInit(&a, CRYPT_VERSION, ad, adlen);

    bufReserve(out, len + CRYPT_OVERHEAD);
    uint8_t *msg = (uint8_t *)out->data + out->len;
    uint8_t *nonce = msg + 1, *ciphertext = msg + 1 + CRYPT_NONCE_BYTES;
    msg[0] = CRYPT_VERSION;
    /* A fresh random nonce per message: see crypt.h for why 24 random
     * bytes need no counter. */
    randombytes_buf(nonce, CRYPT_NONCE_BYTES);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(ciphertext, &clen, plain, len, a.p, a.len, NULL,
                                               nonce, k->key[0]);
    assert(clen == len + CRYPT_TAG_BYTES);
    out->len += len + CRYPT_OVERHEAD;
    cryptAdFree(&a);
}

int cryptOpen(const keyring *k, const uint8_t *ad, size_t adlen, const uint8_t *sealed, size_t len,
              buf *out, int *key_index) {
    assert(k && k->n > 0);
    if (len < CRYPT_OVERHEAD) return CRYPT_ERR_SHORT;
    if (sealed[0] != CRYPT_VERSION) return CRYPT_ERR_VERSION;

    const uint8_t *nonce = sealed + 1, *ciphertext = sealed + 1 + CRYPT_NONCE_BYTES;
    size_t clen = len - 1 - CRYPT_NONCE_BYTES, plen = len - CRYPT_OVERHEAD;
    /* At least one byte, so the destination is a real pointer even for an
     * empty plaintext. libsodium writes there only zeros on failure, past
     * out->len, which leaves the buffer's contents as they were. */
    bufReserve(out, plen ? plen : 1);
    uint8_t *plain = (uint8_t *)out->data + out->len;

    cryptAd a;
    cryptAdInit(&a, CRYPT_VERSION, ad, adlen);
    int rc = CRYPT_ERR_AUTH;
    for (size_t i = 0; i < k->n; i++) {
        unsigned long long mlen = 0;
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &mlen, NULL, ciphertext, clen, a.p,
                                                       a.len, nonce, k->key[i]) == 0) {
            assert(mlen == plen);
            out->len += plen;
            if (key_index) *key_index = (int)i;
            rc = CRYPT_OK;
            break;
        }
    }
    cryptAdFree(&a);
    return rc;
}

const char *cryptErrorName(int err) {
    switch (err) {
    case CRYPT_OK:
        return "ok";
    case CRYPT_ERR_SHORT:
        return "too short to be a sealed message";
    case CRYPT_ERR_VERSION:
        return "unknown sealed message version";
    case CRYPT_ERR_AUTH:
        return "no cluster key in the keyring opens it";
    default:
        return "unknown crypt error";
    }
}
