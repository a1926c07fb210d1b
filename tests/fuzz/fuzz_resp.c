/* libFuzzer target for the RESP decoders.
 *
 * The request parser sees every byte a client sends, so besides "never
 * crash, never leak, never read past len" it must give the same answer
 * however the bytes were split into reads. Each input is parsed as a
 * pipeline twice, once whole and once with its first command cut at a
 * byte chosen by the input itself, and the two outcomes must match. The
 * same bytes are then given to the client-side reply parser. Every call
 * gets a buffer of exactly the length it is told, so AddressSanitizer
 * catches a read one byte too far. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resp/resp.h"

/* Small limits so the fuzzer reaches every limit check quickly. */
static const respLimits fuzzRequestLimits = {
    .max_inline_bytes = 256, .max_bulk_bytes = 1024, .max_args = 32};
static const respReplyLimits fuzzReplyLimits = {
    .max_bulk_bytes = 1024, .max_elements = 32, .max_depth = 8};

static char *fuzzCopy(const uint8_t *p, size_t n) {
    char *d = xmalloc(n);
    if (n) memcpy(d, p, n);
    return d;
}

/* Parses in[0..n) as a pipeline and appends a digest of every outcome to
 * out. The first command is first shown only its first `split` bytes. */
static void fuzzParsePipeline(const uint8_t *in, size_t n, size_t split, buf *out) {
    respParser p;
    respParserInit(&p, &fuzzRequestLimits);
    size_t off = 0;
    int first = 1;
    for (;;) {
        size_t rem = n - off;
        int early_rc = RESP_PARSE_MORE;
        size_t early_consumed = 0;
        const char *early_error = NULL;
        if (first && split < rem) {
            char *part = fuzzCopy(in + off, split);
            early_rc = respParseCommand(&p, part, split);
            free(part);
            /* A prefix may already complete or break the command; then the
             * whole buffer must say exactly the same. */
            early_consumed = p.consumed;
            early_error = p.error;
            if (early_rc != RESP_PARSE_MORE) respParserReset(&p);
        }
        first = 0;
        char *data = fuzzCopy(in + off, rem);
        int rc = respParseCommand(&p, data, rem);
        if (early_rc != RESP_PARSE_MORE &&
            (rc != early_rc || p.consumed != early_consumed || p.error != early_error))
            abort();
        bufPrintf(out, "rc=%d;", rc);
        if (rc == RESP_PARSE_DONE) {
            if (p.consumed == 0 || p.consumed > rem) abort();
            bufPrintf(out, "argc=%zu;consumed=%zu;", p.argc, p.consumed);
            for (size_t i = 0; i < p.argc; i++) {
                if (p.argv[i].off + p.argv[i].len > p.consumed) abort();
                bufPrintf(out, "%zu:", p.argv[i].len);
                bufAppend(out, data + p.argv[i].off, p.argv[i].len);
            }
            free(data);
            off += p.consumed;
            respParserReset(&p);
            continue;
        }
        if (rc == RESP_PARSE_ERROR)
            bufPrintf(out, "error=%s;", p.error);
        else if (rc != RESP_PARSE_MORE || p.need <= rem)
            abort();
        free(data);
        break;
    }
    respParserFree(&p);
}

static void fuzzReply(const uint8_t *in, size_t n) {
    char *data = fuzzCopy(in, n);
    respReply *r = NULL;
    size_t consumed = 0;
    const char *err = NULL;
    int rc = respReplyParse(data, n, &fuzzReplyLimits, &r, &consumed, &err);
    free(data);
    if (rc == RESP_PARSE_DONE) {
        if (!r || consumed == 0 || consumed > n) abort();
        /* The reply ends exactly at consumed: one byte less is incomplete. */
        respReply *shorter = NULL;
        char *prefix = fuzzCopy(in, consumed - 1);
        if (respReplyParse(prefix, consumed - 1, &fuzzReplyLimits, &shorter, &consumed, &err) !=
            RESP_PARSE_MORE)
            abort();
        free(prefix);
    } else if (rc == RESP_PARSE_ERROR) {
        if (!err || r) abort();
    } else if (rc != RESP_PARSE_MORE || r) {
        abort();
    }
    respReplyFree(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t split = size ? ((size_t)data[0] * 257 + data[size - 1]) % (size + 1) : 0;
    buf whole, cut;
    bufInit(&whole);
    bufInit(&cut);
    fuzzParsePipeline(data, size, size, &whole);
    fuzzParsePipeline(data, size, split, &cut);
    if (whole.len != cut.len || (whole.len && memcmp(whole.data, cut.data, whole.len) != 0))
        abort();
    bufFree(&whole);
    bufFree(&cut);
    fuzzReply(data, size);
    return 0;
}
