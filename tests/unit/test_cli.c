/* Unit tests of the client's node list parsing and reply formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli/cli.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_lists_in_every_accepted_form),
        cmocka_unit_test(test_bad_node_lists_are_rejected),
        cmocka_unit_test(test_replies_print_like_redis_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
