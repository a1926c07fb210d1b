/* Unit tests of the client's node list parsing, reply formatting and
 * the bench latency histogram. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli/cli.h"
#include "cli/histogram.h"

static void test_node_lists_in_every_accepted_form(void **state) {
    (void)state;
    cliNode n[8];
    char err[256];
    int c = cliParseNodes("127.0.0.1:5001,localhost:5002=2,10.0.0.3:5003:6003=3,[::1]:5004", n, 8, err, sizeof err);
    assert_int_equal(c, 4);
    assert_string_equal(n[0].host, "127.0.0.1");
    assert_int_equal(n[0].port, 5001);
    assert_string_equal(n[1].host, "localhost");
    assert_int_equal(n[1].port, 5002);
    assert_string_equal(n[2].host, "10.0.0.3");
    assert_int_equal(n[2].port, 5003);
    assert_string_equal(n[3].host, "::1");
    assert_int_equal(n[3].port, 5004);
}

static void test_bad_node_lists_are_rejected(void **state) {
    (void)state;
    cliNode n[2];
    char err[256];
    const char *bad[] = {"", "host", ":5001", "h:0", "h:65536", "h:12x", "a:1,,b:2", "a:1,b:2,c:3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(cliParseNodes(bad[i], n, 2, err, sizeof err), -1);
        assert_true(strlen(err) > 0);
    }
}

static char *format(const char *wire) {
    respReplyLimits lim = {1 << 20, 1 << 16, 8};
    respReply *r = NULL;
    size_t used;
    const char *perr;
    assert_int_equal(respReplyParse(wire, strlen(wire), &lim, &r, &used, &perr), RESP_PARSE_DONE);
    buf b;
    bufInit(&b);
    cliFormatReply(r, &b);
    bufAppendChar(&b, '\0');
    respReplyFree(r);
    return b.data;
}

static void test_replies_print_like_redis_cli(void **state) {
    (void)state;
    struct {
        const char *wire, *want;
    } cases[] = {
        {"+OK\r\n", "OK"},
        {"$3\r\nred\r\n", "red"},
        {"$-1\r\n", "(nil)"},
        {":42\r\n", "(integer) 42"},
        {"-ERR bad\r\n", "(error) ERR bad"},
        {"$0\r\n\r\n", "\"\""},
        {"$3\r\na\x01z\r\n", "\"a\\x01z\""},
        {"*2\r\n$1\r\na\r\n$-1\r\n", "1) a\n2) (nil)"},
        {"*0\r\n", "(empty array)"},
        {"*2\r\n*1\r\n:1\r\n$1\r\nb\r\n", "1) 1) (integer) 1\n2) b"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = format(cases[i].wire);
        assert_string_equal(got, cases[i].want);
        free(got);
    }
}

/* The histogram promises ~1% relative precision (see histogram.h). */
static void assert_within_one_percent(uint64_t got, double want) {
    double rel = ((double)got - want) / want;
    if (rel < 0) rel = -rel;
    if (rel > 0.01)
        fail_msg("got %llu, want %.0f (off by %.2f%%)", (unsigned long long)got, want, rel * 100);
}

static void test_histogram_percentiles_of_a_uniform_distribution(void **state) {
    (void)state;
    histogram *h = malloc(sizeof *h);
    histogramInit(h);
    /* 1 µs .. 100 ms in 1 µs steps, shuffled order does not matter */
    for (uint64_t us = 1; us <= 100000; us++) histogramRecord(h, us * 1000);
    assert_int_equal(histogramCount(h), 100000);
    const double pcts[] = {1, 10, 50, 90, 99, 99.9};
    for (size_t i = 0; i < sizeof pcts / sizeof pcts[0]; i++)
        assert_within_one_percent(histogramPercentile(h, pcts[i]), pcts[i] / 100.0 * 100000 * 1000);
    assert_int_equal(histogramMax(h), 100000000ull);
    assert_int_equal(histogramPercentile(h, 100), 100000000ull);
    free(h);
}

static void test_histogram_percentiles_across_many_magnitudes(void **state) {
    (void)state;
    histogram *h = malloc(sizeof *h);
    histogramInit(h);
    /* 10 values at each of 2 µs, 30 µs, 700 µs, 15 ms, 0.4 s, 9 s, 50 s */
    const double values_ns[] = {2e3, 3e4, 7e5, 1.5e7, 4e8, 9e9, 5e10};
    for (size_t v = 0; v < 7; v++)
        for (int i = 0; i < 10; i++) histogramRecord(h, (uint64_t)values_ns[v]);
    for (size_t v = 0; v < 7; v++) {
        /* the 10*(v+1)-th of 70 values */
        double pct = (10.0 * (double)(v + 1) - 5) / 70.0 * 100;
        assert_within_one_percent(histogramPercentile(h, pct), values_ns[v]);
    }
    free(h);
}

static void test_histogram_merge_equals_recording_together(void **state) {
    (void)state;
    histogram *a = malloc(sizeof *a), *b = malloc(sizeof *b), *both = malloc(sizeof *both);
    histogramInit(a);
    histogramInit(b);
    histogramInit(both);
    uint64_t x = 12345;
    for (int i = 0; i < 50000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t ns = (x >> 20) % 5000000000ull;
        histogramRecord(i % 3 ? a : b, ns);
        histogramRecord(both, ns);
    }
    histogramMerge(a, b);
    assert_memory_equal(a, both, sizeof *a);
    assert_int_equal(histogramPercentile(a, 99), histogramPercentile(both, 99));
    free(a);
    free(b);
    free(both);
}

static void test_histogram_clamps_extremes_and_still_counts_them(void **state) {
    (void)state;
    histogram *h = malloc(sizeof *h);
    histogramInit(h);
    assert_int_equal(histogramPercentile(h, 50), 0);
    histogramRecord(h, 0);
    histogramRecord(h, 1);
    histogramRecord(h, 100ull * 1000000000ull); /* 100 s */
    histogramRecord(h, UINT64_MAX);
    assert_int_equal(histogramCount(h), 4);
    assert_int_equal(h->clamped_low, 2);
    assert_int_equal(h->clamped_high, 2);
    assert_int_equal(histogramMax(h), HISTOGRAM_MAX_NS);
    assert_int_equal(histogramPercentile(h, 0), HISTOGRAM_MIN_NS);
    assert_int_equal(histogramPercentile(h, 100), HISTOGRAM_MAX_NS);
    free(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_lists_in_every_accepted_form),
        cmocka_unit_test(test_bad_node_lists_are_rejected),
        cmocka_unit_test(test_replies_print_like_redis_cli),
        cmocka_unit_test(test_histogram_percentiles_of_a_uniform_distribution),
        cmocka_unit_test(test_histogram_percentiles_across_many_magnitudes),
        cmocka_unit_test(test_histogram_merge_equals_recording_together),
        cmocka_unit_test(test_histogram_clamps_extremes_and_still_counts_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
