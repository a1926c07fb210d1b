/* Unit tests for src/crypt: parsing cluster keys from flags and key files,
 * the errors an operator sees for a bad key, sealing and opening messages,
 * key rotation through a multi-key ring, and the guarantee that no
 * tampered, truncated, misdirected or foreign message ever opens. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "crypt/crypt.h"

/* ---- Helpers ---------------------------------------------------------- */

#define AD_GOSSIP ((const uint8_t *)"gossip")
#define AD_PEER   ((const uint8_t *)"peer")

/* Base64 of `n` bytes, each (seed + 7 * i) mod 256, so keys built from
 * different seeds differ in every byte. */
static void keyText(char *out, size_t cap, uint8_t seed, size_t n, int variant) {
    uint8_t bin[64];
    assert_true(n <= sizeof bin);
    for (size_t i = 0; i < n; i++) bin[i] = (uint8_t)(seed + 7 * i);
    assert_true(cap >= sodium_base64_ENCODED_LEN(n, variant));
    sodium_bin2base64(out, cap, bin, n, variant);
}

/* A standard padded base64 32-byte key; returns a static buffer, one of a
 * few in rotation so several can appear in one expression. */
static const char *key(uint8_t seed) {
    static char texts[8][KEYRING_KEY_B64_SIZE];
    static int next;
    char *t = texts[next++ % 8];
    keyText(t, KEYRING_KEY_B64_SIZE, seed, CRYPT_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL);
    return t;
}

static keyring *ringOf(const char *text) {
    keyring *k = NULL;
    char err[256] = "";
    if (keyringParse(&k, text, err, sizeof err) != 0) fail_msg("parse failed: %s", err);
    assert_non_null(k);
    return k;
}

static void assertParseFails(const char *text, const char *want) {
    keyring *k = NULL;
    char err[256] = "";
    assert_int_equal(keyringParse(&k, text, err, sizeof err), -1);
    assert_null(k);
    assert_string_equal(err, want);
}

static void seal(const keyring *k, const uint8_t *ad, const void *plain, size_t len, buf *out) {
    size_t before = out->len;
    cryptSeal(k, ad, ad ? strlen((const char *)ad) : 0, plain, len, out);
    assert_int_equal(out->len, before + len + CRYPT_OVERHEAD);
}

/* Opens sealed into a fresh buffer and, on success, checks that the
 * plaintext is `want`. Returns the cryptOpen result. */
static int openAs(const keyring *k, const uint8_t *ad, const void *sealed, size_t len,
                  const void *want, size_t want_len, int *key_index) {
    buf out;
    bufInit(&out);
    int rc = cryptOpen(k, ad, ad ? strlen((const char *)ad) : 0, sealed, len, &out, key_index);
    if (rc == CRYPT_OK) {
        assert_int_equal(out.len, want_len);
        if (want_len) assert_memory_equal(out.data, want, want_len);
    } else {
        assert_int_equal(out.len, 0);
    }
    bufFree(&out);
    return rc;
}

/* Seals "hello" with `sender` and opens it with `receiver`. */
static int sendHello(const keyring *sender, const keyring *receiver, int *key_index) {
    buf sealed;
    bufInit(&sealed);
    seal(sender, AD_GOSSIP, "hello", 5, &sealed);
    int rc = openAs(receiver, AD_GOSSIP, sealed.data, sealed.len, "hello", 5, key_index);
    bufFree(&sealed);
    return rc;
}

static void formatKeys(char *out, size_t cap, const char *sep, int first_seed, int count) {
    out[0] = '\0';
    for (int i = 0; i < count; i++) {
        size_t used = strlen(out);
        snprintf(out + used, cap - used, "%s%s", i ? sep : "", key((uint8_t)(first_seed + i)));
    }
}

/* ---- Parsing ---------------------------------------------------------- */

static void test_parse_accepts_one_standard_base64_key(void **state) {
    keyring *k = ringOf(key(1));
    assert_int_equal(keyringCount(k), 1);
    keyringFree(k);
}

static void test_parse_accepts_keys_separated_by_commas_whitespace_and_newlines(void **state) {
    char text[512];
    snprintf(text, sizeof text, "%s,%s\n%s %s\t%s\r\n, ,%s", key(1), key(2), key(3), key(4), key(5),
             key(6));
    keyring *k = ringOf(text);
    assert_int_equal(keyringCount(k), 6);
    keyringFree(k);
}

static void test_parse_reads_a_key_file_with_comments_and_blank_lines(void **state) {
    char text[512];
    snprintf(text, sizeof text,
             "# dmkv cluster keys: the first one encrypts\n"
             "\n"
             "   # rotated in from the new vault entry\n"
             "%s # primary\n"
             "\n"
             "#%s\n" /* a commented-out key is not a key */
             "%s\n",
             key(1), key(9), key(2));
    keyring *k = ringOf(text);
    assert_int_equal(keyringCount(k), 2);

    keyring *k1 = ringOf(key(1)), *k9 = ringOf(key(9));
    assert_int_equal(sendHello(k, k1, NULL), CRYPT_OK);
    assert_int_equal(sendHello(k, k9, NULL), CRYPT_ERR_AUTH);
    keyringFree(k);
    keyringFree(k1);
    keyringFree(k9);
}

static void test_first_key_in_text_is_the_one_that_seals(void **state) {
    char text[256];
    snprintf(text, sizeof text, "%s,%s", key(1), key(2));
    keyring *both = ringOf(text), *k1 = ringOf(key(1)), *k2 = ringOf(key(2));
    assert_int_equal(sendHello(both, k1, NULL), CRYPT_OK);
    assert_int_equal(sendHello(both, k2, NULL), CRYPT_ERR_AUTH);
    keyringFree(both);
    keyringFree(k1);
    keyringFree(k2);
}

static void test_url_safe_and_unpadded_forms_are_the_same_key(void **state) {
    /* Seed 0xfb gives bytes whose standard encoding contains '+' and '/'. */
    char std[64], std_nopad[64], url[64], url_nopad[64];
    keyText(std, sizeof std, 0xfb, 32, sodium_base64_VARIANT_ORIGINAL);
    keyText(std_nopad, sizeof std_nopad, 0xfb, 32, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    keyText(url, sizeof url, 0xfb, 32, sodium_base64_VARIANT_URLSAFE);
    keyText(url_nopad, sizeof url_nopad, 0xfb, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    assert_true(strchr(std, '+') && strchr(std, '/'));
    assert_true(strchr(url, '-') && strchr(url, '_'));

    keyring *ref = ringOf(std);
    const char *forms[] = {std_nopad, url, url_nopad};
    for (size_t i = 0; i < 3; i++) {
        keyring *k = ringOf(forms[i]);
        assert_int_equal(sendHello(ref, k, NULL), CRYPT_OK);
        assert_int_equal(sendHello(k, ref, NULL), CRYPT_OK);
        keyringFree(k);
    }
    keyringFree(ref);
}

static void test_parse_rejects_invalid_base64_naming_the_key(void **state) {
    char text[256];
    snprintf(text, sizeof text, "%s,not*base64", key(1));
    assertParseFails(text, "cluster key 2 is not valid base64");
    assertParseFails("%%%%", "cluster key 1 is not valid base64");
}

static void test_parse_rejects_mixed_alphabets_and_stray_characters(void **state) {
    char text[64];
    keyText(text, sizeof text, 0xfb, 32, sodium_base64_VARIANT_ORIGINAL);
    *strchr(text, '+') = '-'; /* one URL-safe character among standard ones */
    assertParseFails(text, "cluster key 1 is not valid base64");

    keyText(text, sizeof text, 1, 32, sodium_base64_VARIANT_ORIGINAL);
    text[10] = '#'; /* '#' inside a word is not a comment */
    assertParseFails(text, "cluster key 1 is not valid base64");

    keyText(text, sizeof text, 1, 32, sodium_base64_VARIANT_ORIGINAL);
    strcat(text, "=="); /* too much padding */
    assertParseFails(text, "cluster key 1 is not valid base64");
}

static void test_parse_rejects_non_canonical_trailing_bits(void **state) {
    /* 32 bytes leave 2 unused bits in the last character; setting them
     * would let two texts name one key. */
    char text[64];
    keyText(text, sizeof text, 0, 32, sodium_base64_VARIANT_ORIGINAL);
    /* The last byte is 0xd9, so the text ends "0tk=": 'k' is 36, whose two
     * low bits are the unused ones; 'l' (37) sets one of them. */
    assert_string_equal(text + 40, "0tk=");
    text[42] = 'l';
    assertParseFails(text, "cluster key 1 is not valid base64");
}

static void test_parse_rejects_16_byte_key_with_keygen_hint(void **state) {
    char text[64];
    keyText(text, sizeof text, 1, 16, sodium_base64_VARIANT_ORIGINAL);
    assertParseFails(
        text, "cluster key 1 is 16 bytes; keys must be 32 bytes (generate one with: dmkv keygen)");
}

static void test_parse_rejects_33_byte_key_naming_its_position(void **state) {
    char text[256], long_key[64];
    keyText(long_key, sizeof long_key, 1, 33, sodium_base64_VARIANT_ORIGINAL);
    snprintf(text, sizeof text, "%s\n%s\n", key(2), long_key);
    assertParseFails(
        text, "cluster key 2 is 33 bytes; keys must be 32 bytes (generate one with: dmkv keygen)");
}

static void test_parse_rejects_text_without_keys(void **state) {
    assertParseFails("", "no cluster key found");
    assertParseFails(" \n\t,,\r\n", "no cluster key found");
    assertParseFails("# keys go here\n\n   # none yet\n", "no cluster key found");
}

static void test_parse_accepts_16_keys_and_rejects_17(void **state) {
    char text[2048];
    formatKeys(text, sizeof text, "\n", 1, KEYRING_MAX_KEYS);
    keyring *k = ringOf(text);
    assert_int_equal(keyringCount(k), KEYRING_MAX_KEYS);
    keyringFree(k);

    formatKeys(text, sizeof text, ",", 1, KEYRING_MAX_KEYS + 1);
    keyring *none = NULL;
    char err[256];
    assert_int_equal(keyringParse(&none, text, err, sizeof err), -1);
    assert_null(none);
    assert_string_equal(err, "more than 16 cluster keys; a keyring holds at most 16 (remove keys "
                             "no node seals with any more)");
}

static void test_parse_failure_leaves_out_untouched(void **state) {
    keyring *before = ringOf(key(1)), *k = before;
    char err[128];
    assert_int_equal(keyringParse(&k, "bad!", err, sizeof err), -1);
    assert_ptr_equal(k, before);
    keyringFree(before);
}

static void test_parse_error_is_truncated_to_err_buffer(void **state) {
    keyring *k = NULL;
    char err[8];
    memset(err, 'x', sizeof err);
    assert_int_equal(keyringParse(&k, "", err, sizeof err), -1);
    assert_string_equal(err, "no clus");
    assert_int_equal(keyringParse(&k, "", NULL, 0), -1);
    assert_null(k);
}

/* ---- Key files -------------------------------------------------------- */

static char tmpDir[64];

static void tmpPath(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", tmpDir, name);
}

static void writeFile(const char *path, const void *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

static void test_load_file_reads_keys_one_per_line(void **state) {
    char path[128], text[256];
    tmpPath(path, sizeof path, "keys");
    snprintf(text, sizeof text, "# cluster keys\n%s\n%s\n", key(1), key(2));
    writeFile(path, text, strlen(text));

    keyring *k = NULL;
    char err[256] = "";
    assert_int_equal(keyringLoadFile(&k, path, err, sizeof err), 0);
    assert_int_equal(keyringCount(k), 2);
    keyring *k1 = ringOf(key(1));
    assert_int_equal(sendHello(k, k1, NULL), CRYPT_OK);
    keyringFree(k);
    keyringFree(k1);
    unlink(path);
}

static void test_load_file_reports_missing_file_with_path_and_reason(void **state) {
    char path[128], want[256], err[256] = "";
    tmpPath(path, sizeof path, "does-not-exist");
    keyring *k = NULL;
    assert_int_equal(keyringLoadFile(&k, path, err, sizeof err), -1);
    assert_null(k);
    snprintf(want, sizeof want, "cannot open cluster key file %s: No such file or directory", path);
    assert_string_equal(err, want);
}

static void test_load_file_reports_a_directory(void **state) {
    char want[256], err[256] = "";
    keyring *k = NULL;
    assert_int_equal(keyringLoadFile(&k, tmpDir, err, sizeof err), -1);
    assert_null(k);
    snprintf(want, sizeof want, "cannot read cluster key file %s: Is a directory", tmpDir);
    assert_string_equal(err, want);
}

/* A file of exactly `size` bytes: one key, then newlines. */
static void writePaddedKeyFile(const char *path, size_t size) {
    char *text = malloc(size);
    assert_non_null(text);
    memset(text, '\n', size);
    memcpy(text, key(1), strlen(key(1)));
    writeFile(path, text, size);
    free(text);
}

static void test_load_file_accepts_64_kib_and_rejects_one_byte_more(void **state) {
    char path[128], want[256], err[256] = "";
    tmpPath(path, sizeof path, "big");
    keyring *k = NULL;

    writePaddedKeyFile(path, KEYRING_MAX_FILE_BYTES);
    assert_int_equal(keyringLoadFile(&k, path, err, sizeof err), 0);
    assert_int_equal(keyringCount(k), 1);
    keyringFree(k);
    k = NULL;

    writePaddedKeyFile(path, KEYRING_MAX_FILE_BYTES + 1);
    assert_int_equal(keyringLoadFile(&k, path, err, sizeof err), -1);
    assert_null(k);
    snprintf(want, sizeof want,
             "cluster key file %s is larger than 64 KiB; it should hold only base64 keys, one per "
             "line",
             path);
    assert_string_equal(err, want);
    unlink(path);
}

static void test_load_file_names_the_file_in_parse_errors(void **state) {
    char path[128], text[128], want[512], err[512] = "";
    tmpPath(path, sizeof path, "short-key");
    keyText(text, sizeof text, 1, 16, sodium_base64_VARIANT_ORIGINAL);
    strcat(text, "\n");
    writeFile(path, text, strlen(text));

    keyring *k = NULL;
    assert_int_equal(keyringLoadFile(&k, path, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "cluster key file %s: cluster key 1 is 16 bytes; keys must be 32 bytes (generate one "
             "with: dmkv keygen)",
             path);
    assert_string_equal(err, want);

    writeFile(path, "# nothing\n", 10);
    assert_int_equal(keyringLoadFile(&k, path, err, sizeof err), -1);
    snprintf(want, sizeof want, "cluster key file %s: no cluster key found", path);
    assert_string_equal(err, want);
    assert_null(k);
    unlink(path);
}

static void test_load_file_rejects_nul_bytes(void **state) {
    /* Text after a NUL would otherwise be ignored without a word. */
    char path[128], text[128], err[256] = "";
    tmpPath(path, sizeof path, "nul");
    snprintf(text, sizeof text, "%s\n", key(1));
    size_t len = strlen(text);
    text[len] = '\0';
    memcpy(text + len + 1, "junk\n", 5);
    writeFile(path, text, len + 6);

    keyring *k = NULL;
    assert_int_equal(keyringLoadFile(&k, path, err, sizeof err), -1);
    assert_null(k);
    assert_non_null(strstr(err, "contains a NUL byte"));
    unlink(path);
}

/* ---- Key generation --------------------------------------------------- */

static void test_generated_key_parses_back_and_is_fresh(void **state) {
    char a[KEYRING_KEY_B64_SIZE], b[KEYRING_KEY_B64_SIZE];
    keyringGenerate(a, sizeof a);
    keyringGenerate(b, sizeof b);
    assert_int_equal(strlen(a), 44);
    assert_int_equal(a[43], '=');
    assert_string_not_equal(a, b);

    keyring *ka = ringOf(a), *kb = ringOf(b);
    assert_int_equal(keyringCount(ka), 1);
    assert_int_equal(sendHello(ka, ka, NULL), CRYPT_OK);
    assert_int_equal(sendHello(ka, kb, NULL), CRYPT_ERR_AUTH);
    keyringFree(ka);
    keyringFree(kb);
}

/* ---- Sealing and opening ---------------------------------------------- */

static void test_seal_appends_version_nonce_ciphertext_and_tag(void **state) {
    keyring *k = ringOf(key(1));
    buf out;
    bufInit(&out);
    bufAppend(&out, "hdr", 3);
    seal(k, AD_GOSSIP, "hello", 5, &out);
    assert_int_equal(out.len, 3 + 1 + 24 + 5 + 16);
    assert_memory_equal(out.data, "hdr", 3);
    assert_int_equal((uint8_t)out.data[3], CRYPT_VERSION);
    assert_null(memmem(out.data + 3, out.len - 3, "hello", 5)); /* not in the clear */
    assert_int_equal(openAs(k, AD_GOSSIP, out.data + 3, out.len - 3, "hello", 5, NULL), CRYPT_OK);
    bufFree(&out);
    keyringFree(k);
}

static void test_each_seal_uses_a_fresh_nonce(void **state) {
    keyring *k = ringOf(key(1));
    buf a, b;
    bufInit(&a);
    bufInit(&b);
    seal(k, AD_GOSSIP, "same", 4, &a);
    seal(k, AD_GOSSIP, "same", 4, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_not_equal(a.data + 1, b.data + 1, CRYPT_NONCE_BYTES);
    assert_memory_not_equal(a.data + 1 + CRYPT_NONCE_BYTES, b.data + 1 + CRYPT_NONCE_BYTES,
                            a.len - 1 - CRYPT_NONCE_BYTES);
    bufFree(&a);
    bufFree(&b);
    keyringFree(k);
}

static void test_round_trip_of_empty_plaintext(void **state) {
    keyring *k = ringOf(key(1));
    buf sealed;
    bufInit(&sealed);
    cryptSeal(k, NULL, 0, NULL, 0, &sealed);
    assert_int_equal(sealed.len, CRYPT_OVERHEAD);

    buf out;
    bufInit(&out);
    int idx = -1;
    assert_int_equal(cryptOpen(k, NULL, 0, (uint8_t *)sealed.data, sealed.len, &out, &idx),
                     CRYPT_OK);
    assert_int_equal(out.len, 0);
    assert_int_equal(idx, 0);
    bufFree(&out);
    bufFree(&sealed);
    keyringFree(k);
}

static void test_round_trip_of_64_kib_plaintext(void **state) {
    keyring *k = ringOf(key(1));
    size_t n = 64 * 1024;
    uint8_t *plain = malloc(n);
    assert_non_null(plain);
    randombytes_buf(plain, n);

    buf sealed, out;
    bufInit(&sealed);
    bufInit(&out);
    seal(k, AD_PEER, plain, n, &sealed);
    bufAppend(&out, "prefix", 6);
    assert_int_equal(cryptOpen(k, AD_PEER, 4, (uint8_t *)sealed.data, sealed.len, &out, NULL),
                     CRYPT_OK);
    assert_int_equal(out.len, 6 + n);
    assert_memory_equal(out.data, "prefix", 6);
    assert_memory_equal(out.data + 6, plain, n);
    bufFree(&sealed);
    bufFree(&out);
    free(plain);
    keyringFree(k);
}

static void test_wrong_key_fails_authentication(void **state) {
    keyring *a = ringOf(key(1)), *b = ringOf(key(2));
    int idx = -7;
    assert_int_equal(sendHello(a, b, &idx), CRYPT_ERR_AUTH);
    assert_int_equal(idx, -7); /* untouched on failure */
    keyringFree(a);
    keyringFree(b);
}

static void test_different_associated_data_fails_authentication(void **state) {
    keyring *k = ringOf(key(1));
    buf sealed;
    bufInit(&sealed);
    seal(k, AD_GOSSIP, "probe", 5, &sealed);
    assert_int_equal(openAs(k, AD_PEER, sealed.data, sealed.len, NULL, 0, NULL), CRYPT_ERR_AUTH);
    assert_int_equal(openAs(k, NULL, sealed.data, sealed.len, NULL, 0, NULL), CRYPT_ERR_AUTH);
    assert_int_equal(openAs(k, AD_GOSSIP, sealed.data, sealed.len, "probe", 5, NULL), CRYPT_OK);
    bufFree(&sealed);
    keyringFree(k);
}

static void test_long_associated_data_is_bound_in_full(void **state) {
    keyring *k = ringOf(key(1));
    uint8_t ad[300];
    for (size_t i = 0; i < sizeof ad; i++) ad[i] = (uint8_t)i;
    buf sealed, out;
    bufInit(&sealed);
    bufInit(&out);
    cryptSeal(k, ad, sizeof ad, (const uint8_t *)"x", 1, &sealed);
    assert_int_equal(cryptOpen(k, ad, sizeof ad, (uint8_t *)sealed.data, sealed.len, &out, NULL),
                     CRYPT_OK);
    ad[sizeof ad - 1] ^= 1;
    assert_int_equal(cryptOpen(k, ad, sizeof ad, (uint8_t *)sealed.data, sealed.len, &out, NULL),
                     CRYPT_ERR_AUTH);
    assert_int_equal(
        cryptOpen(k, ad, sizeof ad - 1, (uint8_t *)sealed.data, sealed.len, &out, NULL),
        CRYPT_ERR_AUTH);
    assert_int_equal(out.len, 1);
    bufFree(&sealed);
    bufFree(&out);
    keyringFree(k);
}

static void test_bad_version_byte_is_reported_as_version_error(void **state) {
    keyring *k = ringOf(key(1));
    buf sealed;
    bufInit(&sealed);
    seal(k, AD_GOSSIP, "hello", 5, &sealed);
    const uint8_t versions[] = {0, 2, 0x81, 0xff};
    for (size_t i = 0; i < sizeof versions; i++) {
        sealed.data[0] = (char)versions[i];
        assert_int_equal(openAs(k, AD_GOSSIP, sealed.data, sealed.len, NULL, 0, NULL),
                         CRYPT_ERR_VERSION);
    }
    bufFree(&sealed);
    keyringFree(k);
}

static void test_every_single_bit_flip_is_rejected(void **state) {
    char text[256];
    snprintf(text, sizeof text, "%s,%s", key(1), key(2));
    keyring *k = ringOf(text);
    uint8_t plain[100];
    for (size_t i = 0; i < sizeof plain; i++) plain[i] = (uint8_t)(i * 3);
    buf sealed;
    bufInit(&sealed);
    seal(k, AD_GOSSIP, plain, sizeof plain, &sealed);

    for (size_t bit = 0; bit < sealed.len * 8; bit++) {
        sealed.data[bit / 8] ^= (char)(1u << (bit % 8));
        int rc = openAs(k, AD_GOSSIP, sealed.data, sealed.len, NULL, 0, NULL);
        assert_int_equal(rc, bit < 8 ? CRYPT_ERR_VERSION : CRYPT_ERR_AUTH);
        sealed.data[bit / 8] ^= (char)(1u << (bit % 8));
    }
    assert_int_equal(openAs(k, AD_GOSSIP, sealed.data, sealed.len, plain, sizeof plain, NULL),
                     CRYPT_OK);
    bufFree(&sealed);
    keyringFree(k);
}

static void test_every_truncation_and_an_extension_are_rejected(void **state) {
    keyring *k = ringOf(key(1));
    buf sealed;
    bufInit(&sealed);
    seal(k, AD_GOSSIP, "some gossip", 11, &sealed);

    for (size_t len = 0; len < sealed.len; len++) {
        /* An exact-size copy, so reading past len trips AddressSanitizer. */
        uint8_t *copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, sealed.data, len);
        int rc = openAs(k, AD_GOSSIP, copy, len, NULL, 0, NULL);
        assert_int_equal(rc, len < CRYPT_OVERHEAD ? CRYPT_ERR_SHORT : CRYPT_ERR_AUTH);
        free(copy);
    }
    bufAppendChar(&sealed, 0);
    assert_int_equal(openAs(k, AD_GOSSIP, sealed.data, sealed.len, NULL, 0, NULL), CRYPT_ERR_AUTH);
    bufFree(&sealed);
    keyringFree(k);
}

static void test_open_failure_leaves_out_as_it_was(void **state) {
    keyring *a = ringOf(key(1)), *b = ringOf(key(2));
    buf sealed, out;
    bufInit(&sealed);
    bufInit(&out);
    seal(a, AD_GOSSIP, "secret", 6, &sealed);
    bufAppend(&out, "kept", 4);
    assert_int_equal(cryptOpen(b, AD_GOSSIP, 6, (uint8_t *)sealed.data, sealed.len, &out, NULL),
                     CRYPT_ERR_AUTH);
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, "kept", 4);
    bufFree(&sealed);
    bufFree(&out);
    keyringFree(a);
    keyringFree(b);
}

/* ---- Rotation --------------------------------------------------------- */

static void test_ring_new_old_opens_messages_from_old_and_from_new_old(void **state) {
    char text[256];
    snprintf(text, sizeof text, "%s,%s", key(2), key(1));
    keyring *new_old = ringOf(text), *old = ringOf(key(1));
    int idx = -1;
    assert_int_equal(sendHello(old, new_old, &idx), CRYPT_OK);
    assert_int_equal(idx, 1);
    assert_int_equal(sendHello(new_old, new_old, &idx), CRYPT_OK);
    assert_int_equal(idx, 0);
    keyringFree(new_old);
    keyringFree(old);
}

static void test_ring_old_opens_old_new_but_not_what_new_seals(void **state) {
    char text[256];
    keyring *old = ringOf(key(1));
    snprintf(text, sizeof text, "%s,%s", key(1), key(2));
    keyring *old_new = ringOf(text);
    snprintf(text, sizeof text, "%s,%s", key(2), key(1));
    keyring *new_old = ringOf(text);
    int idx = -1;
    assert_int_equal(sendHello(old_new, old, &idx), CRYPT_OK);
    assert_int_equal(idx, 0);
    assert_int_equal(sendHello(new_old, old, NULL), CRYPT_ERR_AUTH);
    keyringFree(old);
    keyringFree(old_new);
    keyringFree(new_old);
}

static void test_rotation_steps_keep_neighbouring_configurations_talking(void **state) {
    /* [old] -> [old,new] -> [new,old] -> [new]: nodes are moved one step at
     * a time, so at any moment two nodes are at most one step apart. */
    char text[256];
    keyring *steps[4];
    steps[0] = ringOf(key(1));
    snprintf(text, sizeof text, "%s,%s", key(1), key(2));
    steps[1] = ringOf(text);
    snprintf(text, sizeof text, "%s,%s", key(2), key(1));
    steps[2] = ringOf(text);
    steps[3] = ringOf(key(2));
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++) {
            int rc = sendHello(steps[i], steps[j], NULL);
            int apart = i > j ? i - j : j - i;
            if (apart <= 1) assert_int_equal(rc, CRYPT_OK);
        }
    }
    /* Skipping the middle steps is what breaks a cluster. */
    assert_int_equal(sendHello(steps[0], steps[3], NULL), CRYPT_ERR_AUTH);
    assert_int_equal(sendHello(steps[3], steps[0], NULL), CRYPT_ERR_AUTH);
    for (int i = 0; i < 4; i++) keyringFree(steps[i]);
}

/* ---- Misc ------------------------------------------------------------- */

static void test_error_names_are_distinct_phrases(void **state) {
    const int codes[] = {CRYPT_OK, CRYPT_ERR_SHORT, CRYPT_ERR_VERSION, CRYPT_ERR_AUTH, 42};
    for (size_t i = 0; i < 5; i++) {
        assert_true(strlen(cryptErrorName(codes[i])) > 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(cryptErrorName(codes[i]), cryptErrorName(codes[j]));
    }
}

static void test_init_may_be_called_again(void **state) {
    assert_int_equal(cryptInit(), 0);
    assert_int_equal(cryptInit(), 0);
}

static int setupAll(void **state) {
    if (cryptInit() != 0) return -1;
    snprintf(tmpDir, sizeof tmpDir, "/tmp/dmkv-test-crypt-XXXXXX");
    return mkdtemp(tmpDir) ? 0 : -1;
}

static int teardownAll(void **state) {
    return rmdir(tmpDir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepts_one_standard_base64_key),
        cmocka_unit_test(test_parse_accepts_keys_separated_by_commas_whitespace_and_newlines),
        cmocka_unit_test(test_parse_reads_a_key_file_with_comments_and_blank_lines),
        cmocka_unit_test(test_first_key_in_text_is_the_one_that_seals),
        cmocka_unit_test(test_url_safe_and_unpadded_forms_are_the_same_key),
        cmocka_unit_test(test_parse_rejects_invalid_base64_naming_the_key),
        cmocka_unit_test(test_parse_rejects_mixed_alphabets_and_stray_characters),
        cmocka_unit_test(test_parse_rejects_non_canonical_trailing_bits),
        cmocka_unit_test(test_parse_rejects_16_byte_key_with_keygen_hint),
        cmocka_unit_test(test_parse_rejects_33_byte_key_naming_its_position),
        cmocka_unit_test(test_parse_rejects_text_without_keys),
        cmocka_unit_test(test_parse_accepts_16_keys_and_rejects_17),
        cmocka_unit_test(test_parse_failure_leaves_out_untouched),
        cmocka_unit_test(test_parse_error_is_truncated_to_err_buffer),
        cmocka_unit_test(test_load_file_reads_keys_one_per_line),
        cmocka_unit_test(test_load_file_reports_missing_file_with_path_and_reason),
        cmocka_unit_test(test_load_file_reports_a_directory),
        cmocka_unit_test(test_load_file_accepts_64_kib_and_rejects_one_byte_more),
        cmocka_unit_test(test_load_file_names_the_file_in_parse_errors),
        cmocka_unit_test(test_load_file_rejects_nul_bytes),
        cmocka_unit_test(test_generated_key_parses_back_and_is_fresh),
        cmocka_unit_test(test_seal_appends_version_nonce_ciphertext_and_tag),
        cmocka_unit_test(test_each_seal_uses_a_fresh_nonce),
        cmocka_unit_test(test_round_trip_of_empty_plaintext),
        cmocka_unit_test(test_round_trip_of_64_kib_plaintext),
        cmocka_unit_test(test_wrong_key_fails_authentication),
        cmocka_unit_test(test_different_associated_data_fails_authentication),
        cmocka_unit_test(test_long_associated_data_is_bound_in_full),
        cmocka_unit_test(test_bad_version_byte_is_reported_as_version_error),
        cmocka_unit_test(test_every_single_bit_flip_is_rejected),
        cmocka_unit_test(test_every_truncation_and_an_extension_are_rejected),
        cmocka_unit_test(test_open_failure_leaves_out_as_it_was),
        cmocka_unit_test(test_ring_new_old_opens_messages_from_old_and_from_new_old),
        cmocka_unit_test(test_ring_old_opens_old_new_but_not_what_new_seals),
        cmocka_unit_test(test_rotation_steps_keep_neighbouring_configurations_talking),
        cmocka_unit_test(test_error_names_are_distinct_phrases),
        cmocka_unit_test(test_init_may_be_called_again),
    };
    return cmocka_run_group_tests(tests, setupAll, teardownAll);
}
