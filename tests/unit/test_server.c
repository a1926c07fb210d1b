/* Unit tests of the agent's flag parsing and argument helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "server/internal.h"
#include "server/server.h"

static int parse(serverConfig *cfg, const char *const *args) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"agent";
    for (; args[argc - 1]; argc++) argv[argc] = (char *)args[argc - 1];
    FILE *saved = stderr;
    stderr = fopen("/dev/null", "w");
    int rc = serverParseArgs(cfg, argc, argv);
    fclose(stderr);
    stderr = saved;
    return rc;
}

static void test_defaults_follow_the_node_id(void **state) {
    (void)state;
    serverConfig cfg;
    const char *args[] = {"--id", "3", NULL};
    assert_int_equal(parse(&cfg, args), 0);
    assert_int_equal(cfg.id, 3);
    assert_int_equal(cfg.tcp_port, 5003);
    assert_int_equal(cfg.udp_port, 6003);
    assert_string_equal(cfg.host, "127.0.0.1");
    assert_string_equal(cfg.data_dir, "./dmkv-data/node-3");
    assert_int_equal(cfg.fsync, STORE_FSYNC_EVERYSEC);
    assert_true(cfg.max_bulk_bytes == 512ull << 20);
}

static void test_prototype_flags_are_accepted(void **state) {
    (void)state;
    serverConfig cfg;
    const char *args[] = {"--id", "1", "--tcp", "5001", "--udp", "6001", "--host", "127.0.0.1",
                          "--peers", "127.0.0.1:5002=2,127.0.0.1:5003:6003=3",
                          "--logger-addr", "127.0.0.1:5000", "--use-mutex", "1", "--numnodes", "3", NULL};
    assert_int_equal(parse(&cfg, args), 0);
    assert_int_equal(cfg.use_mutex, 1);
    assert_int_equal(cfg.numnodes, 3);
    assert_string_equal(cfg.peers, "127.0.0.1:5002=2,127.0.0.1:5003:6003=3");
    assert_string_equal(cfg.logger_addr, "127.0.0.1:5000");
}

static void test_bad_flags_are_rejected(void **state) {
    (void)state;
    serverConfig cfg;
    const char *bad[][4] = {
        {"--id", "0", NULL},          {"--id", "x", NULL},          {"--tcp", "70000", NULL},
        {"--fsync", "sometimes", NULL}, {"--use-mutex", "2", NULL}, {"--peers", "nohost", NULL},
        {"--peers", "h:1:2:3=1", NULL}, {"--peers", "h:99999=1", NULL}, {"--max-bulk-len", "12zz", NULL},
        {"--max-bulk-len", "10", NULL}, {"--bogus", NULL},          {"--tcp", NULL},
        {"stray", NULL},              {"--logger-addr", "noport", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(parse(&cfg, bad[i]), -1);
}

static void test_sizes_accept_redis_units(void **state) {
    (void)state;
    uint64_t v;
    assert_int_equal(parseBytes("512mb", &v), 0);
    assert_true(v == 512ull << 20);
    assert_int_equal(parseBytes("64k", &v), 0);
    assert_true(v == 64ull << 10);
    assert_int_equal(parseBytes("1GB", &v), 0);
    assert_true(v == 1ull << 30);
    assert_int_equal(parseBytes("1000", &v), 0);
    assert_true(v == 1000);
    assert_int_equal(parseBytes("-1", &v), -1);
    assert_int_equal(parseBytes("mb", &v), -1);
    assert_int_equal(parseBytes("99999999999999999999gb", &v), -1);
}

static void test_integer_arguments_are_strict(void **state) {
    (void)state;
    struct {
        const char *s;
        bool ok;
        long long v;
    } cases[] = {
        {"0", true, 0},
        {"-1", true, -1},
        {"9223372036854775807", true, INT64_MAX},
        {"-9223372036854775808", true, INT64_MIN},
        {"9223372036854775808", false, 0},
        {"-9223372036854775809", false, 0},
        {"01", false, 0},
        {"-0", false, 0},
        {"+1", false, 0},
        {" 1", false, 0},
        {"1 ", false, 0},
        {"", false, 0},
        {"-", false, 0},
        {"12a", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cmdArg a = {cases[i].s, strlen(cases[i].s)};
        long long v = 42;
        assert_int_equal(argToLongLong(&a, &v), cases[i].ok);
        if (cases[i].ok) assert_true(v == cases[i].v);
    }
}

static void test_every_command_is_found_case_insensitively(void **state) {
    (void)state;
    size_t n;
    const command *table = serverCommandTable(&n);
    assert_true(n > 30);
    for (size_t i = 0; i < n; i++) {
        char upper[40];
        size_t len = strlen(table[i].name);
        for (size_t j = 0; j < len; j++) {
            char ch = table[i].name[j];
            upper[j] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
        }
        assert_ptr_equal(serverLookupCommand(table[i].name, len), &table[i]);
        assert_ptr_equal(serverLookupCommand(upper, len), &table[i]);
    }
    assert_null(serverLookupCommand("nosuch", 6));
    assert_null(serverLookupCommand("", 0));
    assert_null(serverLookupCommand("ge", 2));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_follow_the_node_id),
        cmocka_unit_test(test_prototype_flags_are_accepted),
        cmocka_unit_test(test_bad_flags_are_rejected),
        cmocka_unit_test(test_sizes_accept_redis_units),
        cmocka_unit_test(test_integer_arguments_are_strict),
        cmocka_unit_test(test_every_command_is_found_case_insensitively),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
