/* libFuzzer target for the vector clock decoder.
 *
 * The binary form is canonical, so anything the decoder accepts must
 * re-encode to exactly the bytes it consumed, satisfy the clock's
 * representation invariant, and compare EQUAL to itself. Anything it
 * rejects must leave the destination clock as it was. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock/clock.h"

static void fuzzFail(const char *what) {
    fprintf(stderr, "fuzz_clock: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vclock v;
    vclockInit(&v);
    vclockSet(&v, 9, 9); /* decode must replace this, or keep it on failure */
    size_t used = 0;
    if (vclockDecode(data, size, &v, &used) != 0) {
        if (v.n != 1 || vclockGet(&v, 9) != 9) fuzzFail("rejected input changed the clock");
        vclockFree(&v);
        return 0;
    }
    if (used == 0 || used > size) fuzzFail("consumed out of range");
    if (v.n > VCLOCK_MAX_ENTRIES) fuzzFail("too many entries accepted");
    for (size_t i = 0; i < v.n; i++) {
        if (v.e[i].node == 0 || v.e[i].counter == 0) fuzzFail("zero node or counter");
        if (i && v.e[i - 1].node >= v.e[i].node) fuzzFail("node ids not increasing");
    }

    buf b;
    bufInit(&b);
    vclockEncode(&v, &b);
    if (b.len != used || memcmp(b.data, data, used) != 0) fuzzFail("re-encoding differs");
    if (vclockEncodedSize(&v) != used) fuzzFail("encoded size differs");
    if (vclockCompare(&v, &v) != VCLOCK_EQUAL) fuzzFail("clock not equal to itself");
    if (!vclockDominates(&v, &v)) fuzzFail("clock does not dominate itself");

    /* The text forms must not trip the sanitizers either. */
    bufClear(&b);
    vclockFormat(&v, &b);
    vclockFormatJson(&v, &b);
    bufFree(&b);
    vclockFree(&v);
    return 0;
}
