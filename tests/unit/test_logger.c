/* Unit tests for src/logger's query reader (logger/query.h): every
 * accepted form of ORDER, FORMAT, KEY and LAST, every refusal with its
 * message, the query left untouched by a refusal, and the view of a
 * small history that an accepted query renders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logger/query.h"

/* ---- Helpers ---------------------------------------------------------- */

/* name and value with explicit lengths (a value may hold a NUL byte). */
static int setN(loggerQuery *q, const char *name, const char *val, size_t vlen, char *err) {
    err[0] = '\0';
    return loggerQuerySet(q, name, strlen(name), val, vlen, err, 200);
}

static int set(loggerQuery *q, const char *name, const char *val, char *err) {
    return setN(q, name, val, strlen(val), err);
}

/* A fresh query with one pair applied, which must be accepted. */
static loggerQuery accepted(const char *name, const char *val) {
    loggerQuery q;
    loggerQueryInit(&q);
    char err[200];
    if (set(&q, name, val, err) != LOGGER_QUERY_OK) fail_msg("%s=%s refused: %s", name, val, err);
    return q;
}

/* Field by field: struct padding is not part of a query. */
static void assertSameQuery(const loggerQuery *a, const loggerQuery *b) {
    assert_int_equal(a->view, b->view);
    assert_int_equal(a->format, b->format);
    assert_int_equal(a->has_key, b->has_key);
    assert_int_equal(a->key_len, b->key_len);
    assert_memory_equal(a->key, b->key, a->key_len + 1);
    assert_int_equal(a->last_n, b->last_n);
    assert_int_equal(a->given, b->given);
}

/* One pair on a fresh query must be refused as a bad value, with exactly
 * that message, leaving the query as it was. */
static void assertRefusedN(const char *name, const char *val, size_t vlen, const char *message) {
    loggerQuery q, before;
    loggerQueryInit(&q);
    before = q;
    char err[200];
    assert_int_equal(setN(&q, name, val, vlen, err), LOGGER_QUERY_ERR_VALUE);
    assert_string_equal(err, message);
    assertSameQuery(&q, &before);
}

static void assertRefused(const char *name, const char *val, const char *message) {
    assertRefusedN(name, val, strlen(val), message);
}

/* The buffer holds needle (a buffer is not NUL-terminated). */
static bool bufHas(const buf *b, const char *needle) {
    return b->len > 0 && memmem(b->data, b->len, needle, strlen(needle)) != NULL;
}

static char *repeat(char c, size_t n) {
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ---- Defaults and names ----------------------------------------------- */

static void test_defaults_are_every_event_in_lamport_order_as_text(void **state) {
    (void)state;
    loggerQuery q;
    loggerQueryInit(&q);
    assert_int_equal(q.view, TRACE_VIEW_LAMPORT);
    assert_int_equal(q.format, LOGGER_FORMAT_TEXT);
    assert_false(q.has_key);
    assert_int_equal(q.last_n, 0);
    assert_int_equal(q.given, 0);
    traceFilter f = loggerQueryFilter(&q);
    assert_null(f.key);
    assert_int_equal(f.last_n, 0);
}

static void test_names_are_matched_without_regard_to_case(void **state) {
    (void)state;
    static const char *const spellings[][2] = {
        {"order", "vector"}, {"ORDER", "vector"}, {"OrDeR", "vector"}, {"format", "json"},
        {"FORMAT", "json"},  {"key", "x"},        {"KEY", "x"},        {"Last", "4"},
    };
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        loggerQuery q = accepted(spellings[i][0], spellings[i][1]);
        assert_int_equal(__builtin_popcount(q.given), 1);
    }
    assert_int_equal(accepted("ORDER", "vector").given, LOGGER_QUERY_GIVEN_ORDER);
    assert_int_equal(accepted("Format", "json").given, LOGGER_QUERY_GIVEN_FORMAT);
    assert_int_equal(accepted("kEy", "x").given, LOGGER_QUERY_GIVEN_KEY);
    assert_int_equal(accepted("LAST", "4").given, LOGGER_QUERY_GIVEN_LAST);
}

static void test_unknown_names_are_their_own_error_and_quoted_on_one_line(void **state) {
    (void)state;
    loggerQuery q, before;
    loggerQueryInit(&q);
    before = q;
    char err[200];
    assert_int_equal(set(&q, "limit", "3", err), LOGGER_QUERY_ERR_NAME);
    assert_string_equal(err, "unknown argument 'limit'");
    /* Prefixes, suffixes and a NUL inside a name are not names. */
    static const char *const near[] = {"ord", "orders", "", "lastt", "k"};
    for (size_t i = 0; i < sizeof near / sizeof near[0]; i++)
        assert_int_equal(set(&q, near[i], "1", err), LOGGER_QUERY_ERR_NAME);
    assert_int_equal(loggerQuerySet(&q, "key\0x", 5, "a", 1, err, sizeof err),
                     LOGGER_QUERY_ERR_NAME);
    /* Control bytes and quotes become '?'; a long name is cut with "...". */
    assert_int_equal(set(&q, "a\r\nb'c", "1", err), LOGGER_QUERY_ERR_NAME);
    assert_string_equal(err, "unknown argument 'a??b?c'");
    char *longname = repeat('n', 100);
    assert_int_equal(set(&q, longname, "1", err), LOGGER_QUERY_ERR_NAME);
    assert_string_equal(err, "unknown argument 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...'");
    free(longname);
    assertSameQuery(&q, &before);
}

static void test_a_name_given_twice_is_refused(void **state) {
    (void)state;
    loggerQuery q = accepted("order", "vector");
    char err[200];
    assert_int_equal(set(&q, "ORDER", "vector", err), LOGGER_QUERY_ERR_VALUE);
    assert_string_equal(err, "ORDER given twice");
    assert_int_equal(q.view, TRACE_VIEW_VECTOR);
    /* Different names combine. */
    assert_int_equal(set(&q, "format", "json", err), LOGGER_QUERY_OK);
    assert_int_equal(set(&q, "key", "x", err), LOGGER_QUERY_OK);
    assert_int_equal(set(&q, "last", "2", err), LOGGER_QUERY_OK);
    assert_int_equal(q.given, LOGGER_QUERY_GIVEN_ORDER | LOGGER_QUERY_GIVEN_FORMAT |
                                  LOGGER_QUERY_GIVEN_KEY | LOGGER_QUERY_GIVEN_LAST);
    assert_int_equal(set(&q, "KEY", "y", err), LOGGER_QUERY_ERR_VALUE);
    assert_string_equal(err, "KEY given twice");
    assert_string_equal(q.key, "x");
}

static void test_a_missing_value_is_refused(void **state) {
    (void)state;
    loggerQuery q;
    loggerQueryInit(&q);
    char err[200];
    assert_int_equal(loggerQuerySet(&q, "key", 3, NULL, 0, err, sizeof err),
                     LOGGER_QUERY_ERR_VALUE);
    assert_string_equal(err, "KEY needs a value");
    assert_false(q.has_key);
    assert_int_equal(q.given, 0);
}

/* ---- ORDER and FORMAT --------------------------------------------------- */

static void test_order_accepts_each_view_in_any_case(void **state) {
    (void)state;
    assert_int_equal(accepted("order", "physical").view, TRACE_VIEW_PHYSICAL);
    assert_int_equal(accepted("order", "lamport").view, TRACE_VIEW_LAMPORT);
    assert_int_equal(accepted("order", "vector").view, TRACE_VIEW_VECTOR);
    assert_int_equal(accepted("order", "VECTOR").view, TRACE_VIEW_VECTOR);
    assert_int_equal(accepted("order", "Physical").view, TRACE_VIEW_PHYSICAL);
    assert_int_equal(accepted("order", "all").view, TRACE_VIEW_ALL);
}

static void test_order_refuses_other_words_nul_bytes_and_long_values(void **state) {
    (void)state;
    const char *msg = "ORDER must be physical, lamport or vector";
    assertRefused("order", "causal", msg);
    assertRefused("order", "", msg);
    assertRefused("order", "lamport ", msg);
    assertRefused("order", "lampor", msg);
    assertRefusedN("order", "lamport\0junk", 12, "ORDER holds a NUL byte");
    assertRefusedN("order", "lamport\0", 8, "ORDER holds a NUL byte");
    /* Longer than any view name: refused, not cut down to "lamport". */
    char *lamport_and_more = repeat('x', 80);
    memcpy(lamport_and_more, "lamport", 7);
    assertRefused("order", lamport_and_more, msg);
    free(lamport_and_more);
}

static void test_format_accepts_text_json_shiviz_in_any_case(void **state) {
    (void)state;
    assert_int_equal(accepted("format", "text").format, LOGGER_FORMAT_TEXT);
    assert_int_equal(accepted("format", "json").format, LOGGER_FORMAT_JSON);
    assert_int_equal(accepted("format", "JSON").format, LOGGER_FORMAT_JSON);
    assert_int_equal(accepted("format", "shiviz").format, LOGGER_FORMAT_SHIVIZ);
    assert_int_equal(accepted("format", "ShiViz").format, LOGGER_FORMAT_SHIVIZ);
}

static void test_format_refuses_other_words_and_nul_bytes(void **state) {
    (void)state;
    const char *msg = "FORMAT must be text, json or shiviz";
    assertRefused("format", "xml", msg);
    assertRefused("format", "", msg);
    assertRefused("format", "jsonl", msg);
    assertRefusedN("format", "json\0", 5, "FORMAT holds a NUL byte");
}

/* ---- KEY ---------------------------------------------------------------- */

static void test_key_is_taken_byte_for_byte_up_to_the_maximum(void **state) {
    (void)state;
    loggerQuery q = accepted("key", "Color");
    assert_true(q.has_key);
    assert_string_equal(q.key, "Color");
    assert_int_equal(q.key_len, 5);
    assert_string_equal(loggerQueryFilter(&q).key, "Color");

    q = accepted("key", "");
    assert_true(q.has_key);
    assert_int_equal(q.key_len, 0);
    assert_string_equal(loggerQueryFilter(&q).key, "");

    q = accepted("key", "\xff\x01 =&?");
    assert_string_equal(q.key, "\xff\x01 =&?");

    char *max = repeat('k', TRACE_KEY_MAX_BYTES);
    q = accepted("key", max);
    assert_int_equal(q.key_len, TRACE_KEY_MAX_BYTES);
    assert_string_equal(q.key, max);
    free(max);
}

static void test_key_refuses_oversized_values_and_nul_bytes(void **state) {
    (void)state;
    char *over = repeat('k', TRACE_KEY_MAX_BYTES + 1);
    assertRefused("key", over, "key too long (513 bytes; KEY is at most 512 bytes)");
    free(over);
    char *huge = repeat('k', 100000);
    assertRefused("key", huge, "key too long (100000 bytes; KEY is at most 512 bytes)");
    free(huge);
    assertRefusedN("key", "a\0b", 3, "KEY holds a NUL byte");
    assertRefusedN("key", "\0", 1, "KEY holds a NUL byte");
}

/* ---- LAST --------------------------------------------------------------- */

static void test_last_accepts_plain_decimals_up_to_the_cap(void **state) {
    (void)state;
    assert_int_equal(accepted("last", "0").last_n, 0);
    assert_int_equal(accepted("last", "3").last_n, 3);
    assert_int_equal(accepted("last", "007").last_n, 7);
    assert_int_equal(accepted("last", "5000").last_n, 5000);
    assert_int_equal(accepted("last", "100000000").last_n, LOGGER_QUERY_MAX_LAST);
    assert_int_equal(accepted("last", "0000000000000000000000000000000000000000100000000").last_n,
                     LOGGER_QUERY_MAX_LAST);
    loggerQuery q = accepted("last", "3");
    assert_int_equal(loggerQueryFilter(&q).last_n, 3);
}

static void test_last_refuses_signs_spaces_other_bytes_and_overflow(void **state) {
    (void)state;
    const char *nan = "LAST must be a number of events";
    static const char *const not_numbers[] = {"-1",  "+1",   " 1",  "1 ", "",
                                              "1e3", "0x10", "3.0", "ten"};
    for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; i++)
        assertRefused("last", not_numbers[i], nan);
    /* A number after the bad byte does not matter: the value is checked whole. */
    assertRefused("last", "99999999999999999999x", nan);
    assertRefusedN("last", "3\0junk", 6, "LAST holds a NUL byte");

    const char *big = "LAST must be at most 100000000 events";
    assertRefused("last", "100000001", big);
    assertRefused("last", "18446744073709551616", big); /* 2^64: wraps a size_t */
    assertRefused("last", "18446744073709551615", big);
    char *seventy = repeat('9', 70);
    assertRefused("last", seventy, big);
    free(seventy);
}

/* ---- Errors ------------------------------------------------------------- */

static void test_errors_fit_the_callers_buffer_or_none(void **state) {
    (void)state;
    loggerQuery q;
    loggerQueryInit(&q);
    char small[8];
    assert_int_equal(loggerQuerySet(&q, "last", 4, "-1", 2, small, sizeof small),
                     LOGGER_QUERY_ERR_VALUE);
    assert_string_equal(small, "LAST mu");
    assert_int_equal(loggerQuerySet(&q, "nope", 4, "1", 1, small, sizeof small),
                     LOGGER_QUERY_ERR_NAME);
    assert_string_equal(small, "unknown");
    assert_int_equal(loggerQuerySet(&q, "order", 5, "x", 1, NULL, 0), LOGGER_QUERY_ERR_VALUE);
    assert_int_equal(loggerQuerySet(&q, "x", 1, "x", 1, NULL, 0), LOGGER_QUERY_ERR_NAME);
    assert_int_equal(loggerQuerySet(&q, "order", 5, "vector", 6, NULL, 0), LOGGER_QUERY_OK);
}

/* ---- Rendering ---------------------------------------------------------- */

/* Five events of two nodes; keys x, y, x, x, y; wall clocks 1..5 ms. */
static const char history_lines[] =
    "{\"node\":1,\"seq\":1,\"ts_us\":1000,\"lamport\":1,\"vc\":{\"1\":1},\"kind\":\"PUT\","
    "\"key\":\"x\",\"detail\":\"a\"}\n"
    "{\"node\":2,\"seq\":1,\"ts_us\":2000,\"lamport\":1,\"vc\":{\"2\":1},\"kind\":\"PUT\","
    "\"key\":\"y\",\"detail\":\"b\"}\n"
    "{\"node\":1,\"seq\":2,\"ts_us\":3000,\"lamport\":2,\"vc\":{\"1\":2},\"kind\":\"GET\","
    "\"key\":\"x\"}\n"
    "{\"node\":2,\"seq\":2,\"ts_us\":4000,\"lamport\":2,\"vc\":{\"2\":2},\"kind\":\"PUT\","
    "\"key\":\"x\",\"detail\":\"c\"}\n"
    "{\"node\":1,\"seq\":3,\"ts_us\":5000,\"lamport\":3,\"vc\":{\"1\":3},\"kind\":\"DEL\","
    "\"key\":\"y\"}\n";

static traceHistory *historyMake(void) {
    traceEvent *ev;
    size_t n;
    char err[200];
    if (traceBatchDecode(history_lines, strlen(history_lines), &ev, &n, err, sizeof err) != 0)
        fail_msg("%s", err);
    traceHistory *h = traceHistoryCreate(100);
    for (size_t i = 0; i < n; i++) assert_int_equal(traceHistoryAdd(h, &ev[i]), TRACE_OK);
    traceBatchFree(ev, n);
    return h;
}

/* Renders q as JSON and returns the (node, seq) pairs in the document. */
static size_t renderJson(loggerQuery *q, const traceHistory *h, int *ids) {
    q->format = LOGGER_FORMAT_JSON;
    buf b;
    bufInit(&b);
    size_t n = loggerQueryRender(q, h, &b);
    cJSON *doc = cJSON_ParseWithLength(b.data, b.len);
    assert_non_null(doc);
    assert_int_equal(cJSON_GetObjectItem(doc, "count")->valueint, (int)n);
    const cJSON *e;
    size_t k = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(doc, "events")) {
        ids[k++] =
            cJSON_GetObjectItem(e, "node")->valueint * 10 + cJSON_GetObjectItem(e, "seq")->valueint;
    }
    assert_int_equal(k, n);
    cJSON_Delete(doc);
    bufFree(&b);
    return n;
}

static void test_render_applies_key_last_order_and_format(void **state) {
    (void)state;
    traceHistory *h = historyMake();
    int ids[8];
    char err[200];

    loggerQuery q;
    loggerQueryInit(&q);
    assert_int_equal(renderJson(&q, h, ids), 5);

    loggerQueryInit(&q);
    assert_int_equal(set(&q, "key", "x", err), LOGGER_QUERY_OK);
    assert_int_equal(set(&q, "order", "physical", err), LOGGER_QUERY_OK);
    assert_int_equal(renderJson(&q, h, ids), 3);
    assert_int_equal(ids[0], 11);
    assert_int_equal(ids[1], 12);
    assert_int_equal(ids[2], 22);

    /* The last 2 of key x in physical time. */
    assert_int_equal(set(&q, "last", "2", err), LOGGER_QUERY_OK);
    assert_int_equal(renderJson(&q, h, ids), 2);
    assert_int_equal(ids[0], 12);
    assert_int_equal(ids[1], 22);

    loggerQueryInit(&q);
    assert_int_equal(set(&q, "key", "nothing", err), LOGGER_QUERY_OK);
    assert_int_equal(renderJson(&q, h, ids), 0);

    loggerQueryInit(&q);
    assert_int_equal(set(&q, "last", "100000000", err), LOGGER_QUERY_OK);
    assert_int_equal(renderJson(&q, h, ids), 5);

    /* Text and ShiViz show the same selection. */
    buf b;
    bufInit(&b);
    loggerQueryInit(&q);
    assert_int_equal(set(&q, "last", "1", err), LOGGER_QUERY_OK);
    assert_int_equal(loggerQueryRender(&q, h, &b), 1);
    assert_true(bufHas(&b, "== Lamport order =="));
    assert_true(bufHas(&b, "node1 #3 L=3 vc={1:3} DEL y"));
    assert_false(bufHas(&b, "node2 #2"));
    bufClear(&b);
    assert_int_equal(set(&q, "format", "shiviz", err), LOGGER_QUERY_OK);
    assert_int_equal(loggerQueryRender(&q, h, &b), 1);
    assert_true(bufHas(&b, "\nnode1 {\"node1\":1}\n"));
    assert_false(bufHas(&b, "node2"));
    bufFree(&b);
    traceHistoryFree(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_every_event_in_lamport_order_as_text),
        cmocka_unit_test(test_names_are_matched_without_regard_to_case),
        cmocka_unit_test(test_unknown_names_are_their_own_error_and_quoted_on_one_line),
        cmocka_unit_test(test_a_name_given_twice_is_refused),
        cmocka_unit_test(test_a_missing_value_is_refused),
        cmocka_unit_test(test_order_accepts_each_view_in_any_case),
        cmocka_unit_test(test_order_refuses_other_words_nul_bytes_and_long_values),
        cmocka_unit_test(test_format_accepts_text_json_shiviz_in_any_case),
        cmocka_unit_test(test_format_refuses_other_words_and_nul_bytes),
        cmocka_unit_test(test_key_is_taken_byte_for_byte_up_to_the_maximum),
        cmocka_unit_test(test_key_refuses_oversized_values_and_nul_bytes),
        cmocka_unit_test(test_last_accepts_plain_decimals_up_to_the_cap),
        cmocka_unit_test(test_last_refuses_signs_spaces_other_bytes_and_overflow),
        cmocka_unit_test(test_errors_fit_the_callers_buffer_or_none),
        cmocka_unit_test(test_render_applies_key_last_order_and_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
