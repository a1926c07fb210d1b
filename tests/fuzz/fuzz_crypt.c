/* libFuzzer target for the cluster keyring.
 *
 * cryptOpen sees every datagram and frame that reaches a node's gossip and
 * peer ports, so it must never crash or read past its input, and when it
 * fails it must leave the caller's buffer as it was. The same bytes are
 * also sealed and opened again, which must give them back, and opened
 * after one bit chosen by the input is flipped, which must fail. Finally
 * they are parsed as key text (a --cluster-key value or a key file):
 * whatever the text, the parser either builds a ring of 1..16 keys or
 * writes a one-line error into a buffer whose size the input chooses. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypt/crypt.h"

static keyring *fuzzRing;

static void fuzzFail(const char *what) {
    fprintf(stderr, "fuzz_crypt: %s\n", what);
    abort();
}

/* Two fixed keys, so opening tries more than one. */
static void fuzzSetup(void) {
    if (fuzzRing) return;
    char err[256];
    if (cryptInit() != 0) fuzzFail("cryptInit failed");
    if (keyringParse(&fuzzRing,
                     "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
                     "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n",
                     err, sizeof err) != 0)
        fuzzFail(err);
}

static void fuzzOpenArbitrary(const uint8_t *data, size_t size) {
    static const uint8_t ad[] = "gossip";
    buf out;
    bufInit(&out);
    bufAppend(&out, "kept", 4);
    int idx = -1;
    int rc = cryptOpen(fuzzRing, ad, sizeof ad - 1, data, size, &out, &idx);
    if (rc == CRYPT_OK) {
        /* Forging a tag is not expected to happen; if it does, the result
         * must still be consistent. */
        if (out.len != 4 + size - CRYPT_OVERHEAD || idx < 0 || idx > 1)
            fuzzFail("inconsistent success");
    } else {
        if (rc != CRYPT_ERR_SHORT && rc != CRYPT_ERR_VERSION && rc != CRYPT_ERR_AUTH)
            fuzzFail("unknown error code");
        if (rc == CRYPT_ERR_SHORT && size >= CRYPT_OVERHEAD) fuzzFail("long input called short");
        if (out.len != 4 || memcmp(out.data, "kept", 4) != 0 || idx != -1)
            fuzzFail("failed open changed its outputs");
    }
    bufFree(&out);
}

static void fuzzSealRoundTrip(const uint8_t *data, size_t size) {
    static const uint8_t ad[] = "peer";
    buf sealed, out;
    bufInit(&sealed);
    bufInit(&out);
    cryptSeal(fuzzRing, ad, sizeof ad - 1, data, size, &sealed);
    if (sealed.len != size + CRYPT_OVERHEAD) fuzzFail("sealed length");
    int idx = -1;
    if (cryptOpen(fuzzRing, ad, sizeof ad - 1, (uint8_t *)sealed.data, sealed.len, &out, &idx) !=
            CRYPT_OK ||
        idx != 0 || out.len != size || (size && memcmp(out.data, data, size) != 0))
        fuzzFail("round trip");

    size_t bit = 0;
    for (size_t i = 0; i < size && i < 8; i++) bit = bit * 256 + data[i];
    bit %= sealed.len * 8;
    sealed.data[bit / 8] ^= (char)(1u << (bit % 8));
    bufClear(&out);
    if (cryptOpen(fuzzRing, ad, sizeof ad - 1, (uint8_t *)sealed.data, sealed.len, &out, NULL) ==
        CRYPT_OK)
        fuzzFail("a flipped bit went unnoticed");
    bufFree(&sealed);
    bufFree(&out);
}

static void fuzzParse(const uint8_t *data, size_t size) {
    char *text = xmalloc(size + 1);
    if (size) memcpy(text, data, size);
    text[size] = '\0';
    size_t errlen = size ? data[0] % 200 : 0;
    char *err = errlen ? xmalloc(errlen) : NULL;

    keyring *k = NULL;
    if (keyringParse(&k, text, err, errlen) == 0) {
        size_t n = keyringCount(k);
        if (n < 1 || n > KEYRING_MAX_KEYS) fuzzFail("key count out of range");
        keyringFree(k);
    } else {
        if (k) fuzzFail("failed parse set out");
        if (errlen) {
            size_t len = strnlen(err, errlen);
            if (len == errlen) fuzzFail("error not terminated");
            if (len == 0 && errlen > 1) fuzzFail("empty error");
            if (memchr(err, '\n', len)) fuzzFail("error spans lines");
        }
    }
    free(err);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzzSetup();
    fuzzOpenArbitrary(data, size);
    fuzzSealRoundTrip(data, size);
    fuzzParse(data, size);
    return 0;
}
