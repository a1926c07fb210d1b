/* libFuzzer target for the record codec.
 *
 * Records come back from disk, where a bad sector, a bug or a foreign
 * file can put any bytes, so recordDecode must never read outside its
 * input. When it accepts the input, the encoding must be canonical:
 * re-encoding the decoded record gives back exactly the input bytes (for
 * the current formats, 2 and 3; a record in the older, read-only format 1
 * re-encodes in format 2, and must decode back to the same fields). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzzFail(const char *what) {
    fprintf(stderr, "fuzz_store: %s\n", what);
    abort();
}

static bool sameRecord(const storeRecord *a, const storeRecord *b) {
    return a->ver.lamport == b->ver.lamport && a->ver.token == b->ver.token &&
           a->ver.origin == b->ver.origin && a->ver.seq == b->ver.seq &&
           a->ver.change_seq == b->ver.change_seq && a->ver.flags == b->ver.flags &&
           a->ver.vclock_len == b->ver.vclock_len &&
           (!a->ver.vclock_len || memcmp(a->ver.vclock, b->ver.vclock, a->ver.vclock_len) == 0) &&
           a->ver.merged_len == b->ver.merged_len &&
           (!a->ver.merged_len || memcmp(a->ver.merged, b->ver.merged, a->ver.merged_len) == 0) &&
           a->value_len == b->value_len &&
           (!a->value_len || memcmp(a->value, b->value, a->value_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size copy, so ASan catches a read one byte past the end. */
    uint8_t *in = malloc(size ? size : 1);
    if (size) memcpy(in, data, size);

    storeRecord r;
    if (recordDecode(in, size, &r) == 0) {
        if (r.ver.flags & ~STORE_KNOWN_FLAGS) fuzzFail("unknown flags accepted");
        if (r.ver.vclock_len > STORE_MAX_VCLOCK_BYTES) fuzzFail("clock over the limit accepted");
        size_t n = recordEncodedSize(&r);
        uint8_t *out = malloc(n);
        recordEncode(&r, out);
        if (r.ver.merged_len > STORE_MAX_VCLOCK_BYTES) fuzzFail("merged writes over the limit");
        if (in[0] != RECORD_FORMAT_V1) {
            if (n != size || memcmp(out, in, n) != 0)
                fuzzFail("re-encoded bytes differ from the input");
        } else {
            storeRecord again;
            if (recordDecode(out, n, &again) != 0 || !sameRecord(&r, &again))
                fuzzFail("an older record does not survive re-encoding");
        }
        free(out);
    }
    free(in);
    return 0;
}
