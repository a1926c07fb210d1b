/* libFuzzer target for the record codec.
 *
 * Records come back from disk, where a bad sector, a bug or a foreign
 * file can put any bytes, so recordDecode must never read outside its
 * input. When it accepts the input, the encoding must be canonical:
 * re-encoding the decoded record gives back exactly the input bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size copy, so ASan catches a read one byte past the end. */
    uint8_t *in = malloc(size ? size : 1);
    if (size) memcpy(in, data, size);

    storeRecord r;
    if (recordDecode(in, size, &r) == 0) {
        if (r.ver.flags & ~STORE_FLAG_TOMBSTONE) abort();
        if (r.ver.vclock_len > STORE_MAX_VCLOCK_BYTES) abort();
        size_t n = recordEncodedSize(&r);
        if (n != size) {
            fprintf(stderr, "re-encoded size %zu != input size %zu\n", n, size);
            abort();
        }
        uint8_t *out = malloc(n);
        recordEncode(&r, out);
        if (memcmp(out, in, n) != 0) {
            fprintf(stderr, "re-encoded bytes differ from the input\n");
            abort();
        }
        free(out);
    }
    free(in);
    return 0;
}
