/* Unit tests for the RESP module: request parser, reply writer, reply parser.
 *
 * Inputs are copied into heap buffers of exactly the length given to the
 * parser, so under AddressSanitizer any read past `len` fails the test.
 * The property that matters most for a network parser, that the result
 * does not depend on how the bytes were split into reads, is checked at
 * every split point of hand-written requests and on random input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "resp/resp.h"

typedef struct expectArg {
    const char *s;
    size_t n;
} expectArg;

#define ARG(lit)                                                                                   \
    { lit, sizeof(lit) - 1 }
#define LIT(lit) lit, sizeof(lit) - 1
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static char *dupExact(const char *s, size_t n) {
    char *d = xmalloc(n);
    if (n) memcpy(d, s, n);
    return d;
}

/* Fixed-seed xorshift64*, so a failing iteration is reproducible. */
static uint64_t prngState;

static void prngSeed(uint64_t seed) {
    prngState = seed ? seed : 1;
}

static uint64_t prngNext(void) {
    prngState ^= prngState >> 12;
    prngState ^= prngState << 25;
    prngState ^= prngState >> 27;
    return prngState * 2685821657736338717ull;
}

static void assertArgs(const respParser *p, const char *data, const expectArg *want, size_t n) {
    assert_int_equal(p->argc, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(p->argv[i].len, want[i].n);
        assert_true(p->argv[i].off + p->argv[i].len <= p->consumed);
        if (want[i].n) assert_memory_equal(data + p->argv[i].off, want[i].s, want[i].n);
    }
}

static int parseOnce(respParser *p, const char *in, size_t n) {
    char *copy = dupExact(in, n);
    int rc = respParseCommand(p, copy, n);
    free(copy);
    return rc;
}

static void assertParseError(const respLimits *lim, const char *in, size_t n, const char *msg) {
    respParser p;
    respParserInit(&p, lim);
    assert_int_equal(parseOnce(&p, in, n), RESP_PARSE_ERROR);
    assert_string_equal(p.error, msg);
    respParserFree(&p);
}

static void assertEmptyCommand(const char *in, size_t n) {
    respParser p;
    respParserInit(&p, NULL);
    assert_int_equal(parseOnce(&p, in, n), RESP_PARSE_DONE);
    assert_int_equal(p.argc, 0);
    assert_int_equal(p.consumed, n);
    respParserFree(&p);
}

/* For each k: data[0..k) must ask for more, then the whole must give
 * `want`. Then once more feeding one byte at a time into one parser. */
static void assertParsesAtEverySplit(const char *in, size_t n, const expectArg *want,
                                     size_t nwant) {
    for (size_t k = 0; k < n; k++) {
        respParser p;
        respParserInit(&p, NULL);
        assert_int_equal(parseOnce(&p, in, k), RESP_PARSE_MORE);
        assert_true(p.need > k);
        char *whole = dupExact(in, n);
        assert_int_equal(respParseCommand(&p, whole, n), RESP_PARSE_DONE);
        assert_int_equal(p.consumed, n);
        assertArgs(&p, whole, want, nwant);
        free(whole);
        respParserFree(&p);
    }

    respParser p;
    respParserInit(&p, NULL);
    for (size_t k = 0; k < n; k++) assert_int_equal(parseOnce(&p, in, k), RESP_PARSE_MORE);
    char *whole = dupExact(in, n);
    assert_int_equal(respParseCommand(&p, whole, n), RESP_PARSE_DONE);
    assert_int_equal(p.consumed, n);
    assertArgs(&p, whole, want, nwant);
    free(whole);
    respParserFree(&p);
}

/* ---- Request parser: splits ---- */

static void test_multibulk_with_binary_bulks_parses_identically_at_every_split(void **state) {
    (void)state;
    static const char in[] = "*4\r\n$3\r\nSET\r\n$7\r\nk\r\n\0x\r\n\r\n$0\r\n\r\n$2\r\n\0\0\r\n";
    expectArg want[] = {ARG("SET"), ARG("k\r\n\0x\r\n"), ARG(""), ARG("\0\0")};
    assertParsesAtEverySplit(in, sizeof in - 1, want, NELEM(want));
}

static void test_multibulk_with_multidigit_lengths_parses_at_every_split(void **state) {
    (void)state;
    char in[400];
    char payload[300];
    for (size_t i = 0; i < sizeof payload; i++) payload[i] = (char)(i * 7);
    size_t n = (size_t)snprintf(in, sizeof in, "*12\r\n");
    for (int i = 0; i < 10; i++) n += (size_t)snprintf(in + n, sizeof in - n, "$1\r\n%d\r\n", i);
    n += (size_t)snprintf(in + n, sizeof in - n, "$%zu\r\n", sizeof payload);
    memcpy(in + n, payload, sizeof payload);
    n += sizeof payload;
    memcpy(in + n, "\r\n$2\r\nzz\r\n", 10);
    n += 10;
    expectArg want[12] = {ARG("0"), ARG("1"), ARG("2"), ARG("3"), ARG("4"),
                          ARG("5"), ARG("6"), ARG("7"), ARG("8"), ARG("9")};
    want[10].s = payload;
    want[10].n = sizeof payload;
    want[11].s = "zz";
    want[11].n = 2;
    assertParsesAtEverySplit(in, n, want, NELEM(want));
}

static void test_inline_with_quotes_and_escapes_parses_identically_at_every_split(void **state) {
    (void)state;
    static const char in[] =
        "SET  \"a b\\x41\\n\\\"\\t\\r\\b\\a\\\\\\q\" 'it\\'s \\n' plain\tfoo\"x y\"\r\n";
    expectArg want[] = {ARG("SET"), ARG("a bA\n\"\t\r\b\a\\q"), ARG("it's \\n"), ARG("plain"),
                        ARG("foox y")};
    assertParsesAtEverySplit(in, sizeof in - 1, want, NELEM(want));
}

static void test_inline_with_bare_lf_and_empty_quoted_arg_parses_at_every_split(void **state) {
    (void)state;
    static const char in[] = "ECHO \"\" '' \"\\x00\\xfF\"\n";
    expectArg want[] = {ARG("ECHO"), ARG(""), ARG(""), ARG("\0\xff")};
    assertParsesAtEverySplit(in, sizeof in - 1, want, NELEM(want));
}

/* ---- Request parser: inline details ---- */

static void test_inline_splits_like_redis(void **state) {
    (void)state;
    static const struct {
        const char *in;
        expectArg want[4];
        size_t n;
    } cases[] = {
        {"\r\n", {{0}}, 0},
        {"  \t \v\f \r\n", {{0}}, 0},
        {"a\tb   c\n", {ARG("a"), ARG("b"), ARG("c")}, 3},
        {"a\rb\r\n", {ARG("a"), ARG("b")}, 2},
        {"foo\"bar\" baz\r\n", {ARG("foobar"), ARG("baz")}, 2},
        {"\"\\x4g\"\r\n", {ARG("x4g")}, 1},
        {"'a\\\"b'\r\n", {ARG("a\\\"b")}, 1},
        {"'a\\b'\r\n", {ARG("a\\b")}, 1},
        {"\"a\\\\\"\r\n", {ARG("a\\")}, 1},
        {"x\"\"\r\n", {ARG("x")}, 1},
        {"\"q\"\t'r'\r\n", {ARG("q"), ARG("r")}, 2},
    };
    for (size_t i = 0; i < NELEM(cases); i++) {
        respParser p;
        respParserInit(&p, NULL);
        size_t n = strlen(cases[i].in);
        char *data = dupExact(cases[i].in, n);
        assert_int_equal(respParseCommand(&p, data, n), RESP_PARSE_DONE);
        assert_int_equal(p.consumed, n);
        assertArgs(&p, data, cases[i].want, cases[i].n);
        free(data);
        respParserFree(&p);
    }
}

static void test_inline_rejects_unbalanced_quotes(void **state) {
    (void)state;
    static const char *const bad[] = {
        "\"unterminated\r\n", "'unterminated\r\n",         "\"a\"b\r\n", "'a'b\r\n",
        "a\"b c\"d\r\n",      "\"ends in backslash\\\r\n", "'\\'\r\n",
    };
    for (size_t i = 0; i < NELEM(bad); i++)
        assertParseError(NULL, bad[i], strlen(bad[i]), "unbalanced quotes in request");
}

static void test_inline_nul_byte_is_ordinary_text(void **state) {
    (void)state;
    static const char in[] = "GET a\0b\r\n";
    respParser p;
    respParserInit(&p, NULL);
    char *data = dupExact(in, sizeof in - 1);
    assert_int_equal(respParseCommand(&p, data, sizeof in - 1), RESP_PARSE_DONE);
    expectArg want[] = {ARG("GET"), ARG("a\0b")};
    assertArgs(&p, data, want, NELEM(want));
    free(data);
    respParserFree(&p);
}

/* ---- Request parser: pipelining ---- */

static void test_pipelined_mixed_batch_parses_in_sequence(void **state) {
    (void)state;
    static const char in[] = "PING\r\n"
                             "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
                             "\r\n"
                             "*0\r\n"
                             "ECHO 'x y'\n"
                             "*-1\r\n"
                             "*1\r\n$4\r\nQUIT\r\n"
                             "*1\r\n$4\r\nQU";
    static const struct {
        expectArg want[2];
        size_t argc;
        size_t consumed;
    } steps[] = {
        {{ARG("PING")}, 1, 6},  {{ARG("GET"), ARG("k")}, 2, 20},    {{{0}}, 0, 2},
        {{{0}}, 0, 4},          {{ARG("ECHO"), ARG("x y")}, 2, 11}, {{{0}}, 0, 5},
        {{ARG("QUIT")}, 1, 14},
    };
    size_t n = sizeof in - 1;
    char *data = dupExact(in, n);
    respParser p;
    respParserInit(&p, NULL);
    respArg *argv_before = p.argv;
    size_t off = 0;
    for (size_t i = 0; i < NELEM(steps); i++) {
        assert_int_equal(respParseCommand(&p, data + off, n - off), RESP_PARSE_DONE);
        assert_int_equal(p.consumed, steps[i].consumed);
        assertArgs(&p, data + off, steps[i].want, steps[i].argc);
        off += p.consumed;
        respParserReset(&p);
        assert_ptr_equal(p.argv, argv_before);
    }
    assert_int_equal(respParseCommand(&p, data + off, n - off), RESP_PARSE_MORE);
    assert_int_equal(p.need, n - off + 4);
    free(data);
    respParserFree(&p);
}

static void test_reset_keeps_argv_and_huge_command_does_not_break_next(void **state) {
    (void)state;
    buf b;
    bufInit(&b);
    enum { MANY = 5000 };
    respAddArrayLen(&b, MANY);
    for (int i = 0; i < MANY; i++) respAddBulkInt(&b, i);
    bufAppendStr(&b, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");

    respParser p;
    respParserInit(&p, NULL);
    assert_int_equal(respParseCommand(&p, b.data, b.len), RESP_PARSE_DONE);
    assert_int_equal(p.argc, MANY);
    assert_int_equal(p.argv[4321].len, 4);
    assert_memory_equal(b.data + p.argv[4321].off, "4321", 4);
    size_t off = p.consumed;
    respParserReset(&p);
    /* One huge request must not pin its argv for the connection's life. */
    assert_true(p.argv_cap <= 1024);
    assert_int_equal(respParseCommand(&p, b.data + off, b.len - off), RESP_PARSE_DONE);
    expectArg want[] = {ARG("GET"), ARG("k")};
    assertArgs(&p, b.data + off, want, NELEM(want));
    assert_int_equal(off + p.consumed, b.len);
    respParserFree(&p);
    bufFree(&b);
}

/* ---- Request parser: limits ---- */

static void test_inline_line_limit_accepts_64k_and_rejects_one_more(void **state) {
    (void)state;
    size_t max = RESP_DEFAULT_MAX_INLINE;
    char *line = xmalloc(max + 2);
    memset(line, 'a', max + 1);
    line[max] = '\n';

    respParser p;
    respParserInit(&p, NULL);
    assert_int_equal(parseOnce(&p, line, max), RESP_PARSE_MORE);
    assert_int_equal(parseOnce(&p, line, max + 1), RESP_PARSE_DONE);
    assert_int_equal(p.argc, 1);
    assert_int_equal(p.argv[0].len, max);
    respParserFree(&p);

    line[max] = 'a';
    line[max + 1] = '\n';
    respParserInit(&p, NULL);
    assert_int_equal(parseOnce(&p, line, max), RESP_PARSE_MORE);
    assert_int_equal(parseOnce(&p, line, max + 1), RESP_PARSE_ERROR);
    assert_string_equal(p.error, "too big inline request");
    respParserFree(&p);
    /* The verdict must not depend on whether the newline arrived too. */
    assertParseError(NULL, line, max + 2, "too big inline request");
    free(line);
}

static void test_multibulk_count_line_limit_is_64k(void **state) {
    (void)state;
    size_t max = RESP_DEFAULT_MAX_INLINE;
    char *line = xmalloc(max + 2);
    line[0] = '*';
    memset(line + 1, '9', max + 1);
    respParser p;
    respParserInit(&p, NULL);
    assert_int_equal(parseOnce(&p, line, max), RESP_PARSE_MORE);
    assert_int_equal(parseOnce(&p, line, max + 1), RESP_PARSE_ERROR);
    assert_string_equal(p.error, "too big mbulk count string");
    respParserFree(&p);

    /* A line of exactly the limit ends in time and is judged as a number. */
    line[max] = '\n';
    assertParseError(NULL, line, max + 1, "invalid multibulk length");
    free(line);
}

static void test_bulk_count_line_limit_is_64k(void **state) {
    (void)state;
    size_t max = RESP_DEFAULT_MAX_INLINE;
    size_t hdr = 4; /* "*1\r\n" */
    char *in = xmalloc(hdr + max + 2);
    memcpy(in, "*1\r\n$", 5);
    memset(in + 5, '7', max);
    in[hdr + max] = '\n';
    assertParseError(NULL, in, hdr + max + 1, "invalid bulk length");

    in[hdr + max] = '7';
    respParser p;
    respParserInit(&p, NULL);
    assert_int_equal(parseOnce(&p, in, hdr + max), RESP_PARSE_MORE);
    assert_int_equal(parseOnce(&p, in, hdr + max + 1), RESP_PARSE_ERROR);
    assert_string_equal(p.error, "too big bulk count string");
    respParserFree(&p);
    free(in);
}

static void test_bulk_length_limit_at_and_past_configured_max(void **state) {
    (void)state;
    respLimits lim = {.max_bulk_bytes = 10};
    static const char ok[] = "*1\r\n$10\r\n0123456789\r\n";
    respParser p;
    respParserInit(&p, &lim);
    assert_int_equal(parseOnce(&p, LIT(ok)), RESP_PARSE_DONE);
    assert_int_equal(p.argv[0].len, 10);
    respParserFree(&p);
    /* Rejected as soon as the header is read, before any data arrives. */
    assertParseError(&lim, LIT("*1\r\n$11\r\n"), "invalid bulk length");
}

static void test_max_args_at_and_past_boundary(void **state) {
    (void)state;
    respLimits lim = {.max_args = 4};
    respParser p;
    respParserInit(&p, &lim);
    assert_int_equal(parseOnce(&p, LIT("*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n")),
                     RESP_PARSE_DONE);
    assert_int_equal(p.argc, 4);
    respParserReset(&p);
    assert_int_equal(parseOnce(&p, LIT("a b c d\r\n")), RESP_PARSE_DONE);
    assert_int_equal(p.argc, 4);
    respParserFree(&p);
    assertParseError(&lim, LIT("*5\r\n"), "invalid multibulk length");
    assertParseError(&lim, LIT("a b c d e\r\n"), "too many arguments in inline request");
}

static void test_multibulk_count_is_not_trusted_for_allocation(void **state) {
    (void)state;
    /* A huge announced count with no arguments behind it must cost
     * nothing: the parser only asks for more. */
    respParser p;
    respParserInit(&p, NULL);
    assert_int_equal(parseOnce(&p, LIT("*1048576\r\n")), RESP_PARSE_MORE);
    assert_true(p.argv_cap <= 16);
    respParserFree(&p);
}

/* The bytes a parser has already searched for a newline are overwritten
 * with newlines before the next call. A parser that resumes where it
 * stopped never sees them; one that rescans would end the line early. */
static void test_line_search_resumes_without_rereading_seen_bytes(void **state) {
    (void)state;
    static const char in[] = "PING and then some\r\n";
    size_t n = sizeof in - 1;
    char *data = dupExact(in, n);
    respParser p;
    respParserInit(&p, NULL);
    assert_int_equal(respParseCommand(&p, data, 10), RESP_PARSE_MORE);
    memset(data, '\n', 10);
    assert_int_equal(respParseCommand(&p, data, n), RESP_PARSE_DONE);
    assert_int_equal(p.consumed, n);
    respParserFree(&p);
    free(data);
}

/* ---- Request parser: malformed numbers and framing ---- */

static void test_oversized_and_noncanonical_numbers_are_rejected(void **state) {
    (void)state;
    assertParseError(NULL, LIT("*1000000000000000000\r\n"), "invalid multibulk length");
    assertParseError(NULL, LIT("*99999999999999999999999\r\n"), "invalid multibulk length");
    assertParseError(NULL, LIT("*1\r\n$1000000000000000000\r\n"), "invalid bulk length");
    assertParseError(NULL, LIT("*1\r\n$999999999999999999\r\n"), "invalid bulk length");
    assertParseError(NULL, LIT("*01\r\n"), "invalid multibulk length");
    assertParseError(NULL, LIT("*+1\r\n"), "invalid multibulk length");
    assertParseError(NULL, LIT("*1 \r\n"), "invalid multibulk length");
    assertParseError(NULL, LIT("*\r\n"), "invalid multibulk length");
    assertParseError(NULL, LIT("*x\r\n"), "invalid multibulk length");
    assertParseError(NULL, LIT("*-0\r\n"), "invalid multibulk length");
    assertParseError(NULL, LIT("*1\n"), "invalid multibulk length");
    assertParseError(NULL, LIT("*1\r\n$03\r\nfoo\r\n"), "invalid bulk length");
    assertParseError(NULL, LIT("*1\r\n$ 3\r\nfoo\r\n"), "invalid bulk length");
    assertParseError(NULL, LIT("*1\r\n$\r\n"), "invalid bulk length");
    assertParseError(NULL, LIT("*1\r\n$3\n"), "invalid bulk length");
}

static void test_number_digit_cap_holds_even_without_a_bulk_limit(void **state) {
    (void)state;
    respLimits lim = {.max_bulk_bytes = SIZE_MAX};
    respParser p;
    respParserInit(&p, &lim);
    assert_int_equal(parseOnce(&p, LIT("*1\r\n$999999999999999999\r\n")), RESP_PARSE_MORE);
    assert_true(p.need == 4 + 21 + 999999999999999999ull + 2);
    respParserFree(&p);
    assertParseError(&lim, LIT("*1\r\n$1000000000000000000\r\n"), "invalid bulk length");
    assertParseError(&lim, LIT("*1\r\n$99999999999999999999\r\n"), "invalid bulk length");
}

static void test_negative_bulk_length_is_rejected(void **state) {
    (void)state;
    assertParseError(NULL, LIT("*1\r\n$-1\r\n"), "invalid bulk length");
    assertParseError(NULL, LIT("*2\r\n$1\r\na\r\n$-5\r\n"), "invalid bulk length");
}

static void test_zero_or_negative_multibulk_count_is_an_empty_command(void **state) {
    (void)state;
    assertEmptyCommand(LIT("*0\r\n"));
    assertEmptyCommand(LIT("*-1\r\n"));
    assertEmptyCommand(LIT("*-100\r\n"));
}

static void test_bulk_header_without_dollar_names_the_byte(void **state) {
    (void)state;
    assertParseError(NULL, LIT("*1\r\n:3\r\n"), "expected '$', got ':'");
    assertParseError(NULL, LIT("*2\r\n$1\r\na\r\nGET"), "expected '$', got 'G'");
    /* Control bytes are escaped so the error reply stays one line. */
    assertParseError(NULL, LIT("*1\r\n\r\n"), "expected '$', got '\\x0d'");
    assertParseError(NULL, LIT("*1\r\n\xff"), "expected '$', got '\\xff'");
    assertParseError(NULL, LIT("*1\r\n\0"), "expected '$', got '\\x00'");
}

static void test_bulk_data_must_end_in_crlf(void **state) {
    (void)state;
    assertParseError(NULL, LIT("*1\r\n$3\r\nfooXY"), "expected CRLF after bulk data");
    assertParseError(NULL, LIT("*1\r\n$3\r\nfoo\rX"), "expected CRLF after bulk data");
    assertParseError(NULL, LIT("*1\r\n$3\r\nfoo\n\r"), "expected CRLF after bulk data");
    assertParseError(NULL, LIT("*1\r\n$3\r\nfooX\n"), "expected CRLF after bulk data");
}

static void test_errors_are_sticky_until_reset(void **state) {
    (void)state;
    respParser p;
    respParserInit(&p, NULL);
    assert_int_equal(parseOnce(&p, LIT("*x\r\n")), RESP_PARSE_ERROR);
    assert_int_equal(parseOnce(&p, LIT("*x\r\n$1\r\n")), RESP_PARSE_ERROR);
    respParserReset(&p);
    assert_null(p.error);
    assert_int_equal(parseOnce(&p, LIT("PING\r\n")), RESP_PARSE_DONE);
    respParserFree(&p);
}

/* ---- Request parser: big bulks ---- */

static void test_one_mib_bulk_fed_a_byte_at_a_time_completes_with_exact_need(void **state) {
    (void)state;
    enum { BULK = 1 << 20 };
    static const char head[] = "*2\r\n$3\r\nSET\r\n$1048576\r\n";
    size_t hlen = sizeof head - 1, total = hlen + BULK + 2;
    char *in = xmalloc(total);
    memcpy(in, head, hlen);
    for (size_t i = 0; i < BULK; i++) in[hlen + i] = (char)(i % 251);
    in[hlen + BULK] = '\r';
    in[hlen + BULK + 1] = '\n';

    respParser p;
    respParserInit(&p, NULL);
    for (size_t len = 0; len < total; len++) {
        assert_int_equal(respParseCommand(&p, in, len), RESP_PARSE_MORE);
        if (len >= hlen)
            assert_int_equal(p.need, total);
        else
            assert_true(p.need > len);
    }
    assert_int_equal(respParseCommand(&p, in, total), RESP_PARSE_DONE);
    assert_int_equal(p.consumed, total);
    assert_int_equal(p.argc, 2);
    assert_int_equal(p.argv[1].off, hlen);
    assert_int_equal(p.argv[1].len, BULK);
    respParserFree(&p);
    free(in);
}

/* ---- Request parser: random input ---- */

/* Parses a whole buffer as a pipeline and records every outcome in `out`.
 * Bytewise mode grows each command one byte at a time, copying into an
 * exactly sized buffer for each call so out-of-bounds reads are caught. */
static void parseSequence(const char *in, size_t n, const respLimits *lim, int bytewise, buf *out) {
    respParser p;
    respParserInit(&p, lim);
    size_t off = 0;
    for (;;) {
        size_t rem = n - off;
        int rc = RESP_PARSE_MORE;
        char *data = NULL;
        if (bytewise) {
            for (size_t k = 0; k <= rem && rc == RESP_PARSE_MORE; k++) {
                free(data);
                data = dupExact(in + off, k);
                rc = respParseCommand(&p, data, k);
            }
        } else {
            data = dupExact(in + off, rem);
            rc = respParseCommand(&p, data, rem);
        }
        assert_true(rc == RESP_PARSE_DONE || rc == RESP_PARSE_MORE || rc == RESP_PARSE_ERROR);
        bufPrintf(out, "rc=%d ", rc);
        if (rc == RESP_PARSE_DONE) {
            assert_true(p.consumed > 0 && p.consumed <= rem);
            bufPrintf(out, "argc=%zu consumed=%zu ", p.argc, p.consumed);
            for (size_t i = 0; i < p.argc; i++) {
                assert_true(p.argv[i].off + p.argv[i].len <= p.consumed);
                bufPrintf(out, "[%zu]", p.argv[i].len);
                bufAppend(out, data + p.argv[i].off, p.argv[i].len);
            }
            off += p.consumed;
            respParserReset(&p);
            free(data);
            continue;
        }
        if (rc == RESP_PARSE_ERROR) bufPrintf(out, "error=%s", p.error);
        free(data);
        break;
    }
    respParserFree(&p);
}

/* Half the inputs are pure noise over protocol characters; the other half
 * are valid pipelines with a byte or two changed, which reach the states
 * deep inside a multibulk that noise almost never does. */
static void randomRequestInput(buf *in) {
    static const char alphabet[] = "*$\r\n\r\n0123456789-\"'\\x ab\t";
    bufClear(in);
    if (prngNext() & 1) {
        size_t n = (size_t)(prngNext() % 96);
        for (size_t i = 0; i < n; i++) {
            uint64_t r = prngNext();
            bufAppendChar(in, (r & 3) == 0 ? (char)(r >> 8)
                                           : alphabet[(r >> 8) % (sizeof alphabet - 1)]);
        }
        return;
    }
    size_t commands = 1 + prngNext() % 3;
    for (size_t c = 0; c < commands; c++) {
        if (prngNext() % 3 == 0) {
            bufAppendStr(in, prngNext() & 1 ? "SET k \"v \\x41\"\r\n" : "GET 'k'\n");
            continue;
        }
        char storage[4][12];
        const char *argv[4];
        size_t lens[4], argc = 1 + prngNext() % 4;
        for (size_t i = 0; i < argc; i++) {
            lens[i] = prngNext() % sizeof storage[i];
            for (size_t j = 0; j < lens[i]; j++)
                storage[i][j] = alphabet[prngNext() % (sizeof alphabet - 1)];
            argv[i] = storage[i];
        }
        respAddCommand(in, argc, argv, lens);
    }
    for (size_t m = prngNext() % 3; m > 0 && in->len > 0; m--)
        in->data[prngNext() % in->len] = alphabet[prngNext() % (sizeof alphabet - 1)];
}

/* Returns how many commands parsed fully, to show the inputs got deep. */
static int fuzzRequests(uint64_t seed, const respLimits *lim, int iterations) {
    prngSeed(seed);
    int done = 0;
    buf in;
    bufInit(&in);
    for (int it = 0; it < iterations; it++) {
        randomRequestInput(&in);
        buf whole, bytewise;
        bufInit(&whole);
        bufInit(&bytewise);
        parseSequence(in.data, in.len, lim, 0, &whole);
        parseSequence(in.data, in.len, lim, 1, &bytewise);
        assert_int_equal(whole.len, bytewise.len);
        assert_memory_equal(whole.data, bytewise.data, whole.len);
        for (const char *q = whole.data; (q = memmem(q, whole.data + whole.len - q, "rc=0 ", 5));
             q += 5)
            done++;
        bufFree(&whole);
        bufFree(&bytewise);
    }
    bufFree(&in);
    return done;
}

static void test_random_input_is_handled_the_same_however_it_is_split(void **state) {
    (void)state;
    respLimits tight = {.max_inline_bytes = 16, .max_bulk_bytes = 8, .max_args = 4};
    assert_true(fuzzRequests(0x5eed1234u, NULL, 4000) > 2000);
    assert_true(fuzzRequests(0xc0ffeeu, &tight, 4000) > 1000);
}

static void test_random_valid_commands_round_trip_through_writer_and_parser(void **state) {
    (void)state;
    prngSeed(42);
    for (int it = 0; it < 500; it++) {
        size_t argc = 1 + prngNext() % 6;
        char storage[6][40];
        const char *argv[6];
        size_t lens[6];
        for (size_t i = 0; i < argc; i++) {
            lens[i] = prngNext() % sizeof storage[i];
            for (size_t j = 0; j < lens[i]; j++) storage[i][j] = (char)prngNext();
            argv[i] = storage[i];
        }
        buf b;
        bufInit(&b);
        respAddCommand(&b, argc, argv, lens);
        respParser p;
        respParserInit(&p, NULL);
        char *data = dupExact(b.data, b.len);
        assert_int_equal(respParseCommand(&p, data, b.len), RESP_PARSE_DONE);
        assert_int_equal(p.consumed, b.len);
        assert_int_equal(p.argc, argc);
        for (size_t i = 0; i < argc; i++) {
            assert_int_equal(p.argv[i].len, lens[i]);
            if (lens[i]) assert_memory_equal(data + p.argv[i].off, argv[i], lens[i]);
        }
        free(data);
        respParserFree(&p);
        bufFree(&b);
    }
}

/* ---- Writer ---- */

#define assertWrites(call, expected)                                                               \
    do {                                                                                           \
        buf b_;                                                                                    \
        bufInit(&b_);                                                                              \
        call;                                                                                      \
        assert_int_equal(b_.len, sizeof(expected) - 1);                                            \
        assert_memory_equal(b_.data, expected, sizeof(expected) - 1);                              \
        bufFree(&b_);                                                                              \
    } while (0)

static void test_writer_output_is_byte_exact_for_each_reply_type(void **state) {
    (void)state;
    assertWrites(respAddSimple(&b_, "OK"), "+OK\r\n");
    assertWrites(respAddSimple(&b_, ""), "+\r\n");
    assertWrites(respAddError(&b_, "ERR unknown command"), "-ERR unknown command\r\n");
    assertWrites(respAddInt(&b_, 0), ":0\r\n");
    assertWrites(respAddInt(&b_, -1), ":-1\r\n");
    assertWrites(respAddInt(&b_, 1234567890), ":1234567890\r\n");
    assertWrites(respAddInt(&b_, LLONG_MAX), ":9223372036854775807\r\n");
    assertWrites(respAddInt(&b_, LLONG_MIN), ":-9223372036854775808\r\n");
    assertWrites(respAddBulk(&b_, "a\r\n\0b", 5), "$5\r\na\r\n\0b\r\n");
    assertWrites(respAddBulk(&b_, "", 0), "$0\r\n\r\n");
    assertWrites(respAddBulkStr(&b_, "hello"), "$5\r\nhello\r\n");
    assertWrites(respAddBulkStr(&b_, NULL), "$-1\r\n");
    assertWrites(respAddBulkInt(&b_, -42), "$3\r\n-42\r\n");
    assertWrites(respAddBulkInt(&b_, LLONG_MIN), "$20\r\n-9223372036854775808\r\n");
    assertWrites(respAddNil(&b_), "$-1\r\n");
    assertWrites(respAddArrayLen(&b_, 3), "*3\r\n");
    assertWrites(respAddArrayLen(&b_, 0), "*0\r\n");
    assertWrites(respAddNilArray(&b_), "*-1\r\n");
}

static void test_writer_keeps_single_line_replies_on_one_line(void **state) {
    (void)state;
    assertWrites(respAddSimple(&b_, "a\r\nb\nc\r"), "+a  b c \r\n");
    assertWrites(respAddError(&b_, "ERR bad\r\n+OK"), "-ERR bad  +OK\r\n");
    assertWrites(respAddErrorFmt(&b_, "ERR bad key '%s' (%d)", "x\r\ny", 7),
                 "-ERR bad key 'x  y' (7)\r\n");
}

static void test_writer_formats_long_error_messages_whole(void **state) {
    (void)state;
    char arg[1001];
    memset(arg, 'z', 1000);
    arg[1000] = '\0';
    arg[500] = '\n';
    buf b;
    bufInit(&b);
    respAddErrorFmt(&b, "ERR %s!", arg);
    assert_int_equal(b.len, 1 + 4 + 1000 + 1 + 2);
    assert_memory_equal(b.data, "-ERR zz", 7);
    assert_int_equal(b.data[5 + 500], ' ');
    assert_memory_equal(b.data + b.len - 4, "z!\r\n", 4);
    assert_null(memchr(b.data, '\n', b.len - 1));
    bufFree(&b);
}

static void test_writer_encodes_commands_as_arrays_of_bulks(void **state) {
    (void)state;
    const char *argv[] = {"SET", "k", "v v"};
    assertWrites(respAddCommand(&b_, 3, argv, NULL), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv v\r\n");
    const char *bin[] = {"GET", "a\0b"};
    size_t lens[] = {3, 3};
    assertWrites(respAddCommand(&b_, 2, bin, lens), "*2\r\n$3\r\nGET\r\n$3\r\na\0b\r\n");
    assertWrites(respAddCommand(&b_, 0, NULL, NULL), "*0\r\n");
}

static void test_writer_appends_after_existing_content(void **state) {
    (void)state;
    buf b;
    bufInit(&b);
    for (int i = 0; i < 1000; i++) {
        respAddInt(&b, i);
        respAddBulkStr(&b, "x");
    }
    char expect[64];
    int n = snprintf(expect, sizeof expect, ":999\r\n$1\r\nx\r\n");
    assert_memory_equal(b.data + b.len - (size_t)n, expect, (size_t)n);
    assert_memory_equal(b.data, ":0\r\n$1\r\nx\r\n:1\r\n", 15);
    bufFree(&b);
}

/* ---- Reply parser ---- */

static int replyParseExact(const char *in, size_t n, const respReplyLimits *lim, respReply **out,
                           size_t *consumed, const char **error) {
    char *copy = dupExact(in, n);
    int rc = respReplyParse(copy, n, lim, out, consumed, error);
    free(copy);
    return rc;
}

static void assertReplyError(const respReplyLimits *lim, const char *in, size_t n,
                             const char *msg) {
    respReply *r = (respReply *)1;
    size_t consumed = 0;
    const char *err = NULL;
    assert_int_equal(replyParseExact(in, n, lim, &r, &consumed, &err), RESP_PARSE_ERROR);
    assert_null(r);
    assert_non_null(err);
    assert_string_equal(err, msg);
}

static void buildNestedReply(buf *b) {
    respAddArrayLen(b, 6);
    respAddSimple(b, "OK");
    respAddError(b, "ERR nope");
    respAddInt(b, LLONG_MIN);
    respAddArrayLen(b, 4);
    respAddBulk(b, "a\r\n\0b", 5);
    respAddNil(b);
    respAddNilArray(b);
    respAddArrayLen(b, 0);
    respAddBulk(b, "", 0);
    respAddArrayLen(b, 1);
    respAddArrayLen(b, 1);
    respAddInt(b, 7);
}

static void assertNestedReply(const respReply *r) {
    assert_int_equal(r->type, RESP_ARRAY);
    assert_int_equal(r->elements, 6);
    assert_int_equal(r->integer, 6);
    assert_int_equal(r->element[0]->type, RESP_STRING);
    assert_string_equal(r->element[0]->str, "OK");
    assert_int_equal(r->element[0]->len, 2);
    assert_int_equal(r->element[1]->type, RESP_ERROR);
    assert_string_equal(r->element[1]->str, "ERR nope");
    assert_int_equal(r->element[2]->type, RESP_INTEGER);
    assert_true(r->element[2]->integer == LLONG_MIN);
    const respReply *inner = r->element[3];
    assert_int_equal(inner->type, RESP_ARRAY);
    assert_int_equal(inner->elements, 4);
    assert_int_equal(inner->element[0]->type, RESP_BULK);
    assert_int_equal(inner->element[0]->len, 5);
    assert_memory_equal(inner->element[0]->str, "a\r\n\0b", 6);
    assert_int_equal(inner->element[1]->type, RESP_NIL);
    assert_null(inner->element[1]->str);
    assert_int_equal(inner->element[2]->type, RESP_NIL_ARRAY);
    assert_int_equal(inner->element[3]->type, RESP_ARRAY);
    assert_int_equal(inner->element[3]->elements, 0);
    assert_int_equal(r->element[4]->type, RESP_BULK);
    assert_int_equal(r->element[4]->len, 0);
    assert_string_equal(r->element[4]->str, "");
    assert_int_equal(r->element[5]->element[0]->element[0]->integer, 7);
}

static void test_reply_parser_round_trips_nested_arrays_nils_and_errors(void **state) {
    (void)state;
    buf b;
    bufInit(&b);
    buildNestedReply(&b);
    size_t first = b.len;
    respAddSimple(&b, "PONG"); /* a pipelined second reply */
    respReply *r = NULL;
    size_t consumed = 0;
    assert_int_equal(replyParseExact(b.data, b.len, NULL, &r, &consumed, NULL), RESP_PARSE_DONE);
    assert_int_equal(consumed, first);
    assertNestedReply(r);
    respReplyFree(r);

    assert_int_equal(replyParseExact(b.data + first, b.len - first, NULL, &r, &consumed, NULL),
                     RESP_PARSE_DONE);
    assert_int_equal(r->type, RESP_STRING);
    assert_string_equal(r->str, "PONG");
    assert_int_equal(consumed, b.len - first);
    respReplyFree(r);
    bufFree(&b);
}

static void test_reply_parser_asks_for_more_at_every_truncation(void **state) {
    (void)state;
    buf b;
    bufInit(&b);
    buildNestedReply(&b);
    for (size_t k = 0; k < b.len; k++) {
        respReply *r = (respReply *)1;
        size_t consumed = 12345;
        assert_int_equal(replyParseExact(b.data, k, NULL, &r, &consumed, NULL), RESP_PARSE_MORE);
        assert_null(r);
    }
    bufFree(&b);

    static const char *const small[] = {"+OK\r\n", ":-12\r\n",   "$3\r\nfoo\r\n", "$-1\r\n",
                                        "*-1\r\n", "-ERR x\r\n", "*0\r\n"};
    for (size_t i = 0; i < NELEM(small); i++) {
        size_t n = strlen(small[i]), consumed = 0;
        respReply *r = NULL;
        for (size_t k = 0; k < n; k++)
            assert_int_equal(replyParseExact(small[i], k, NULL, &r, &consumed, NULL),
                             RESP_PARSE_MORE);
        assert_int_equal(replyParseExact(small[i], n, NULL, &r, &consumed, NULL), RESP_PARSE_DONE);
        assert_int_equal(consumed, n);
        respReplyFree(r);
    }
}

static void test_reply_parser_rejects_malformed_input(void **state) {
    (void)state;
    assertReplyError(NULL, LIT("?x\r\n"), "unknown reply type");
    assertReplyError(NULL, LIT(":abc\r\n"), "invalid integer reply");
    assertReplyError(NULL, LIT(":\r\n"), "invalid integer reply");
    assertReplyError(NULL, LIT(":01\r\n"), "invalid integer reply");
    assertReplyError(NULL, LIT(":9223372036854775808\r\n"), "invalid integer reply");
    assertReplyError(NULL, LIT(":-9223372036854775809\r\n"), "invalid integer reply");
    assertReplyError(NULL, LIT(":12345678901234567890123456789012345"), "invalid integer reply");
    assertReplyError(NULL, LIT("$-2\r\n"), "invalid bulk length");
    assertReplyError(NULL, LIT("$x\r\n"), "invalid bulk length");
    assertReplyError(NULL, LIT("$3\r\nabcd\r\n"), "expected CRLF after bulk data");
    assertReplyError(NULL, LIT("$3\r\nabcX\n"), "expected CRLF after bulk data");
    assertReplyError(NULL, LIT("$3\r\nabc\rX"), "expected CRLF after bulk data");
    assertReplyError(NULL, LIT("*-2\r\n"), "invalid array length");
    assertReplyError(NULL, LIT("*2\r\n:1\r\n!\r\n"), "unknown reply type");
    assertReplyError(NULL, LIT("+OK\n"), "reply line not terminated by CRLF");
    assertReplyError(NULL, LIT("\n"), "unknown reply type");

    respReply *r = NULL;
    size_t consumed;
    assert_int_equal(replyParseExact(LIT(":-9223372036854775808\r\n"), NULL, &r, &consumed, NULL),
                     RESP_PARSE_DONE);
    assert_true(r->integer == LLONG_MIN);
    respReplyFree(r);
}

static void test_reply_parser_enforces_limits_at_the_boundary(void **state) {
    (void)state;
    respReplyLimits lim = {.max_bulk_bytes = 4, .max_elements = 2, .max_depth = 2};
    respReply *r = NULL;
    size_t consumed;

    assert_int_equal(replyParseExact(LIT("$4\r\nabcd\r\n"), &lim, &r, &consumed, NULL),
                     RESP_PARSE_DONE);
    respReplyFree(r);
    assertReplyError(&lim, LIT("$5\r\n"), "bulk reply too large");

    assert_int_equal(replyParseExact(LIT("+abcd\r\n"), &lim, &r, &consumed, NULL), RESP_PARSE_DONE);
    respReplyFree(r);
    assertReplyError(&lim, LIT("+abcde\r\n"), "reply line too long");
    assertReplyError(&lim, LIT("-abcdef"), "reply line too long");

    assert_int_equal(replyParseExact(LIT("*2\r\n:1\r\n:2\r\n"), &lim, &r, &consumed, NULL),
                     RESP_PARSE_DONE);
    respReplyFree(r);
    assertReplyError(&lim, LIT("*3\r\n"), "array reply has too many elements");

    assert_int_equal(replyParseExact(LIT("*1\r\n*1\r\n:1\r\n"), &lim, &r, &consumed, NULL),
                     RESP_PARSE_DONE);
    respReplyFree(r);
    assertReplyError(&lim, LIT("*1\r\n*1\r\n*1\r\n:1\r\n"), "reply nested too deeply");
}

static void test_reply_parser_survives_random_input(void **state) {
    (void)state;
    static const char alphabet[] = "+-:$*\r\n\r\n0123456789-x";
    respReplyLimits lim = {.max_bulk_bytes = 16, .max_elements = 4, .max_depth = 3};
    prngSeed(7);
    char in[80];
    int done = 0;
    for (int it = 0; it < 20000; it++) {
        size_t n = (size_t)(prngNext() % sizeof in);
        for (size_t i = 0; i < n; i++) {
            uint64_t x = prngNext();
            in[i] = (x & 7) == 0 ? (char)(x >> 8) : alphabet[(x >> 8) % (sizeof alphabet - 1)];
        }
        respReply *r = NULL;
        size_t consumed = 0;
        const char *err = NULL;
        int rc = replyParseExact(in, n, &lim, &r, &consumed, &err);
        if (rc == RESP_PARSE_DONE) {
            done++;
            assert_non_null(r);
            assert_true(consumed > 0 && consumed <= n);
            /* The reply must end exactly at consumed: any shorter prefix is incomplete. */
            respReply *r2 = NULL;
            assert_int_equal(replyParseExact(in, consumed - 1, &lim, &r2, &consumed, &err),
                             RESP_PARSE_MORE);
        } else if (rc == RESP_PARSE_ERROR) {
            assert_non_null(err);
        } else {
            assert_int_equal(rc, RESP_PARSE_MORE);
        }
        respReplyFree(r);
    }
    assert_true(done > 100);
}

static void test_reply_free_accepts_null(void **state) {
    (void)state;
    respReplyFree(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multibulk_with_binary_bulks_parses_identically_at_every_split),
        cmocka_unit_test(test_multibulk_with_multidigit_lengths_parses_at_every_split),
        cmocka_unit_test(test_inline_with_quotes_and_escapes_parses_identically_at_every_split),
        cmocka_unit_test(test_inline_with_bare_lf_and_empty_quoted_arg_parses_at_every_split),
        cmocka_unit_test(test_inline_splits_like_redis),
        cmocka_unit_test(test_inline_rejects_unbalanced_quotes),
        cmocka_unit_test(test_inline_nul_byte_is_ordinary_text),
        cmocka_unit_test(test_pipelined_mixed_batch_parses_in_sequence),
        cmocka_unit_test(test_reset_keeps_argv_and_huge_command_does_not_break_next),
        cmocka_unit_test(test_inline_line_limit_accepts_64k_and_rejects_one_more),
        cmocka_unit_test(test_multibulk_count_line_limit_is_64k),
        cmocka_unit_test(test_bulk_count_line_limit_is_64k),
        cmocka_unit_test(test_bulk_length_limit_at_and_past_configured_max),
        cmocka_unit_test(test_max_args_at_and_past_boundary),
        cmocka_unit_test(test_multibulk_count_is_not_trusted_for_allocation),
        cmocka_unit_test(test_line_search_resumes_without_rereading_seen_bytes),
        cmocka_unit_test(test_oversized_and_noncanonical_numbers_are_rejected),
        cmocka_unit_test(test_number_digit_cap_holds_even_without_a_bulk_limit),
        cmocka_unit_test(test_negative_bulk_length_is_rejected),
        cmocka_unit_test(test_zero_or_negative_multibulk_count_is_an_empty_command),
        cmocka_unit_test(test_bulk_header_without_dollar_names_the_byte),
        cmocka_unit_test(test_bulk_data_must_end_in_crlf),
        cmocka_unit_test(test_errors_are_sticky_until_reset),
        cmocka_unit_test(test_one_mib_bulk_fed_a_byte_at_a_time_completes_with_exact_need),
        cmocka_unit_test(test_random_input_is_handled_the_same_however_it_is_split),
        cmocka_unit_test(test_random_valid_commands_round_trip_through_writer_and_parser),
        cmocka_unit_test(test_writer_output_is_byte_exact_for_each_reply_type),
        cmocka_unit_test(test_writer_keeps_single_line_replies_on_one_line),
        cmocka_unit_test(test_writer_formats_long_error_messages_whole),
        cmocka_unit_test(test_writer_encodes_commands_as_arrays_of_bulks),
        cmocka_unit_test(test_writer_appends_after_existing_content),
        cmocka_unit_test(test_reply_parser_round_trips_nested_arrays_nils_and_errors),
        cmocka_unit_test(test_reply_parser_asks_for_more_at_every_truncation),
        cmocka_unit_test(test_reply_parser_rejects_malformed_input),
        cmocka_unit_test(test_reply_parser_enforces_limits_at_the_boundary),
        cmocka_unit_test(test_reply_parser_survives_random_input),
        cmocka_unit_test(test_reply_free_accepts_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
