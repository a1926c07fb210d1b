/* Unit tests of the growable buffer and the time sources. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/buf.h"
#include "util/log.h"

static void test_appends_grow_and_keep_every_byte(void **state) {
    (void)state;
    buf b;
    bufInit(&b);
    for (int i = 0; i < 10000; i++) bufAppendChar(&b, (char)(i % 251));
    assert_int_equal(b.len, 10000);
    assert_true(b.cap >= b.len);
    for (int i = 0; i < 10000; i++) assert_int_equal((unsigned char)b.data[i], i % 251);
    bufFree(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_printf_handles_long_output(void **state) {
    (void)state;
    buf b;
    bufInit(&b);
    bufAppendStr(&b, "x=");
    char big[1000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    bufPrintf(&b, "%d:%s", 42, big);
    assert_int_equal(b.len, 2 + 3 + 999);
    assert_memory_equal(b.data, "x=42:aaa", 8);
    assert_int_equal(b.data[b.len - 1], 'a');
    bufFree(&b);
}

static void test_consume_moves_the_rest_to_the_front(void **state) {
    (void)state;
    buf b;
    bufInit(&b);
    bufAppendStr(&b, "hello world");
    bufConsume(&b, 6);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "world", 5);
    bufConsume(&b, 100);
    assert_int_equal(b.len, 0);
    bufFree(&b);
}

static void test_shrink_releases_only_empty_large_buffers(void **state) {
    (void)state;
    buf b;
    bufInit(&b);
    bufReserve(&b, 1 << 20);
    bufAppendStr(&b, "keep");
    bufShrink(&b, 1024);
    assert_non_null(b.data);
    assert_int_equal(b.len, 4);
    bufClear(&b);
    bufShrink(&b, 1024);
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
    bufAppendStr(&b, "again");
    assert_memory_equal(b.data, "again", 5);
    bufFree(&b);
}

static void test_clocks_move_forward(void **state) {
    (void)state;
    uint64_t us1 = timeNowUs(), ms1 = timeMonoMs();
    uint64_t us2 = timeNowUs(), ms2 = timeMonoMs();
    assert_true(us2 >= us1);
    assert_true(ms2 >= ms1);
    assert_true(us1 > 1600000000ull * 1000000ull); /* after 2020 */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appends_grow_and_keep_every_byte),
        cmocka_unit_test(test_printf_handles_long_output),
        cmocka_unit_test(test_consume_moves_the_rest_to_the_front),
        cmocka_unit_test(test_shrink_releases_only_empty_large_buffers),
        cmocka_unit_test(test_clocks_move_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
