/* RESP request parser: turns the bytes a client sent into an argv.
 *
 * This is the server's hot path, so it allocates nothing per argument
 * (arguments are offsets into the caller's buffer and the argv array is
 * reused from one command to the next) and it scans each byte once: a
 * command that arrives over many reads resumes exactly where the previous
 * call stopped, inside the line it was searching or the bulk it was
 * waiting for. Input is untrusted, so every count, length and line is
 * checked against respLimits before it is used, and the error texts are
 * Redis's own so clients see messages they already know.
 *
 * Resume state lives in the private fields of respParser: `kind` says
 * which grammar the command uses, `pos` is the next byte to look at,
 * `multibulk_left` the bulks still expected and `bulk_len` the size of the
 * bulk whose data starts at `pos` (or -1 while its "$<len>" header is
 * being read). */
#include "resp/resp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Eighteen decimal digits always fit a long long, so a count or length can
 * be accumulated without overflow checks; nothing legitimate is longer. */
#define PARSER_MAX_DIGITS 18
/* argv entries allocated before the first command, and the most kept
 * across commands: one request with a million arguments should not pin
 * 16 MB for the rest of the connection's life. */
#define PARSER_ARGV_INITIAL 16
#define PARSER_ARGV_KEEP    1024

/* Values of respParser.kind beyond the header's 0, '*' and 'i'. */
#define PARSER_KIND_MULTIBULK '*'
#define PARSER_KIND_INLINE    'i'
#define PARSER_KIND_DONE      'd'
#define PARSER_KIND_FAILED    'e'

enum parserLine { PARSER_LINE_FOUND, PARSER_LINE_MORE, PARSER_LINE_TOO_LONG };

/* Redis reports a bulk header that does not start with '$' as
 * "expected '$', got 'X'". The message must be static text, so all 256
 * variants are built at compile time; bytes that would break a one-line
 * error reply (CR, LF, NUL, other controls, non-ASCII) are shown as \xHH. */
/* clang-format off */
#define EXPECTED_SHOWN(c) ((c) >= 0x20 && (c) < 0x7f)
#define EXPECTED_HEX(d) ((d) < 10 ? '0' + (d) : 'a' + (d) - 10)
#define EXPECTED_MSG(c) {                                                   \
    'e', 'x', 'p', 'e', 'c', 't', 'e', 'd', ' ', '\'', '$', '\'', ',', ' ', \
    'g', 'o', 't', ' ', '\'',                                               \
    EXPECTED_SHOWN(c) ? (char)((c) & 0x7f) : '\\',                          \
    EXPECTED_SHOWN(c) ? '\'' : 'x',                                         \
    EXPECTED_SHOWN(c) ? '\0' : EXPECTED_HEX((c) >> 4),                      \
    EXPECTED_HEX((c) & 0xf), '\'', '\0'}
#define EXPECTED_4(c) \
    EXPECTED_MSG(c), EXPECTED_MSG((c) + 1), EXPECTED_MSG((c) + 2), EXPECTED_MSG((c) + 3)
#define EXPECTED_16(c) EXPECTED_4(c), EXPECTED_4((c) + 4), EXPECTED_4((c) + 8), EXPECTED_4((c) + 12)
#define EXPECTED_64(c) \
    EXPECTED_16(c), EXPECTED_16((c) + 16), EXPECTED_16((c) + 32), EXPECTED_16((c) + 48)

static const char parserExpectedDollar[256][26] = {
    EXPECTED_64(0), EXPECTED_64(64), EXPECTED_64(128), EXPECTED_64(192)};
/* clang-format on */

static int parserFail(respParser *p, const char *msg) {
    p->error = msg;
    p->kind = PARSER_KIND_FAILED;
    return RESP_PARSE_ERROR;
}

static int parserDone(respParser *p, size_t consumed) {
    p->consumed = consumed;
    p->need = 0;
    p->kind = PARSER_KIND_DONE;
    return RESP_PARSE_DONE;
}

static void parserPushArg(respParser *p, size_t off, size_t len) {
    if (p->argc == p->argv_cap) {
        size_t cap = p->argv_cap ? p->argv_cap * 2 : PARSER_ARGV_INITIAL;
        p->argv = xrealloc(p->argv, cap * sizeof *p->argv);
        p->argv_cap = cap;
    }
    p->argv[p->argc].off = off;
    p->argv[p->argc].len = len;
    p->argc++;
}

/* Strict decimal as Redis's string2ll takes it: an optional '-', then
 * digits without a leading zero ("0" alone is fine), nothing else. */
static int parserNumber(const char *s, size_t n, long long *out) {
    int negative = 0;
    if (n > 0 && s[0] == '-') {
        negative = 1;
        s++;
        n--;
    }
    if (n == 0 || n > PARSER_MAX_DIGITS) return 0;
    if (s[0] == '0') {
        if (n != 1 || negative) return 0;
        *out = 0;
        return 1;
    }
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9) return 0;
        v = v * 10 + (long long)d;
    }
    *out = negative ? -v : v;
    return 1;
}

static size_t parserDigits(long long v) {
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* Finds the '\n' ending the line that begins at `start`, continuing the
 * search at p->pos so a line that trickles in is not rescanned. A line
 * may hold at most `max` bytes before its '\n'. */
static enum parserLine parserFindLine(respParser *p, const char *data, size_t len, size_t start,
                                      size_t max, size_t *nl) {
    size_t end = len - start > max ? start + max + 1 : len;
    if (p->pos < end) {
        const char *hit = memchr(data + p->pos, '\n', end - p->pos);
        if (hit) {
            *nl = (size_t)(hit - data);
            return PARSER_LINE_FOUND;
        }
    }
    if (len - start > max) return PARSER_LINE_TOO_LONG;
    p->pos = len;
    p->need = len + 1;
    return PARSER_LINE_MORE;
}

/* Where the current "$<len>" header begins. p->pos cannot tell once it has
 * run ahead through a header that is still incomplete, but the layout can:
 * right after the previous bulk's CRLF, or for the first bulk right after
 * "*<n>\r\n", whose digits parserNumber accepted only in canonical form. */
static size_t parserBulkHeaderStart(const respParser *p) {
    if (p->argc > 0) {
        const respArg *last = &p->argv[p->argc - 1];
        return last->off + last->len + 2;
    }
    return 1 + parserDigits(p->multibulk_left) + 2;
}

static int parserMultibulk(respParser *p, char *data, size_t len) {
    const respLimits *lim = &p->limits;
    size_t nl;

    if (p->multibulk_left < 0) {
        switch (parserFindLine(p, data, len, 0, lim->max_inline_bytes, &nl)) {
        case PARSER_LINE_MORE:
            return RESP_PARSE_MORE;
        case PARSER_LINE_TOO_LONG:
            return parserFail(p, "too big mbulk count string");
        case PARSER_LINE_FOUND:
            break;
        }
        long long n;
        if (nl < 2 || data[nl - 1] != '\r' || !parserNumber(data + 1, nl - 2, &n) ||
            (n > 0 && (unsigned long long)n > lim->max_args))
            return parserFail(p, "invalid multibulk length");
        p->pos = nl + 1;
        /* Redis skips "*0" and "*-1" silently; so do we. */
        if (n <= 0) return parserDone(p, p->pos);
        p->multibulk_left = n;
        p->bulk_len = -1;
    }

    while (p->multibulk_left > 0) {
        if (p->bulk_len < 0) {
            size_t start = parserBulkHeaderStart(p);
            if (start >= len) {
                p->need = start + 1;
                return RESP_PARSE_MORE;
            }
            unsigned char first = (unsigned char)data[start];
            if (first != '$') return parserFail(p, parserExpectedDollar[first]);
            switch (parserFindLine(p, data, len, start, lim->max_inline_bytes, &nl)) {
            case PARSER_LINE_MORE:
                return RESP_PARSE_MORE;
            case PARSER_LINE_TOO_LONG:
                return parserFail(p, "too big bulk count string");
            case PARSER_LINE_FOUND:
                break;
            }
            long long blen;
            if (data[nl - 1] != '\r' || !parserNumber(data + start + 1, nl - start - 2, &blen) ||
                blen < 0 || (unsigned long long)blen > lim->max_bulk_bytes)
                return parserFail(p, "invalid bulk length");
            p->pos = nl + 1;
            p->bulk_len = blen;
        }

        /* Waiting for a bulk costs one comparison per call, however
         * small the pieces it arrives in. */
        size_t blen = (size_t)p->bulk_len;
        if (len - p->pos < blen + 2) {
            p->need = p->pos + blen + 2;
            return RESP_PARSE_MORE;
        }
        if (data[p->pos + blen] != '\r' || data[p->pos + blen + 1] != '\n')
            return parserFail(p, "expected CRLF after bulk data");
        parserPushArg(p, p->pos, blen);
        p->pos += blen + 2;
        p->bulk_len = -1;
        p->multibulk_left--;
    }
    return parserDone(p, p->pos);
}

/* isspace() in the C locale, without the locale lookup. */
static int parserIsSpace(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static int parserHexValue(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Splits data[0..end) into arguments the way redis-cli and Redis's
 * sdssplitargs do, unescaping quoted text in place. Every output byte
 * consumes at least one input byte, so the write cursor never passes the
 * read cursor. Unlike sdssplitargs, a NUL byte is ordinary text rather
 * than the end of the line. */
static int parserSplitInline(respParser *p, char *data, size_t end) {
    size_t r = 0;
    for (;;) {
        while (r < end && parserIsSpace((unsigned char)data[r])) r++;
        if (r == end) return RESP_PARSE_DONE;
        if (p->argc == p->limits.max_args)
            return parserFail(p, "too many arguments in inline request");

        size_t start = r, w = r;
        int quote = 0; /* '"', '\'' or 0 */
        for (;;) {
            if (quote == 0) {
                /* Unquoted text needs no rewriting until a quote shows up. */
                while (r < end) {
                    char c = data[r];
                    if (c == ' ' || c == '\t' || c == '\r' || c == '"' || c == '\'') break;
                    data[w++] = c;
                    r++;
                }
                if (r == end || data[r] == ' ' || data[r] == '\t' || data[r] == '\r') break;
                quote = data[r++];
                continue;
            }
            if (r == end) return parserFail(p, "unbalanced quotes in request");
            char c = data[r];
            if (c == quote) {
                /* A closing quote must end the argument. */
                if (r + 1 < end && !parserIsSpace((unsigned char)data[r + 1]))
                    return parserFail(p, "unbalanced quotes in request");
                r++;
                break;
            }
            if (c == '\\' && quote == '\'') {
                if (r + 1 < end && data[r + 1] == '\'') {
                    data[w++] = '\'';
                    r += 2;
                } else {
                    data[w++] = data[r++];
                }
                continue;
            }
            if (c == '\\' && r + 1 < end) {
                int hi, lo;
                if (data[r + 1] == 'x' && r + 3 < end &&
                    (hi = parserHexValue((unsigned char)data[r + 2])) >= 0 &&
                    (lo = parserHexValue((unsigned char)data[r + 3])) >= 0) {
                    data[w++] = (char)(hi * 16 + lo);
                    r += 4;
                    continue;
                }
                switch (data[r + 1]) {
                case 'n':
                    c = '\n';
                    break;
                case 'r':
                    c = '\r';
                    break;
                case 't':
                    c = '\t';
                    break;
                case 'b':
                    c = '\b';
                    break;
                case 'a':
                    c = '\a';
                    break;
                default:
                    c = data[r + 1];
                    break;
                }
                data[w++] = c;
                r += 2;
                continue;
            }
            data[w++] = c;
            r++;
        }
        parserPushArg(p, start, w - start);
    }
}

static int parserInline(respParser *p, char *data, size_t len) {
    size_t nl;
    switch (parserFindLine(p, data, len, 0, p->limits.max_inline_bytes, &nl)) {
    case PARSER_LINE_MORE:
        return RESP_PARSE_MORE;
    case PARSER_LINE_TOO_LONG:
        return parserFail(p, "too big inline request");
    case PARSER_LINE_FOUND:
        break;
    }
    size_t end = nl;
    if (end > 0 && data[end - 1] == '\r') end--;
    if (parserSplitInline(p, data, end) != RESP_PARSE_DONE) return RESP_PARSE_ERROR;
    return parserDone(p, nl + 1);
}

void respParserInit(respParser *p, const respLimits *limits) {
    memset(p, 0, sizeof *p);
    /* A zero limit means "the default", so callers set only what they change. */
    p->limits.max_inline_bytes = RESP_DEFAULT_MAX_INLINE;
    p->limits.max_bulk_bytes = RESP_DEFAULT_MAX_BULK;
    p->limits.max_args = RESP_DEFAULT_MAX_ARGS;
    if (limits) {
        if (limits->max_inline_bytes) p->limits.max_inline_bytes = limits->max_inline_bytes;
        if (limits->max_bulk_bytes) p->limits.max_bulk_bytes = limits->max_bulk_bytes;
        if (limits->max_args) p->limits.max_args = limits->max_args;
    }
    /* Keeps "offset + limit + 1" arithmetic from wrapping around. */
    if (p->limits.max_inline_bytes > SIZE_MAX / 2) p->limits.max_inline_bytes = SIZE_MAX / 2;
    if (p->limits.max_bulk_bytes > SIZE_MAX / 2) p->limits.max_bulk_bytes = SIZE_MAX / 2;
    p->argv = xmalloc(PARSER_ARGV_INITIAL * sizeof *p->argv);
    p->argv_cap = PARSER_ARGV_INITIAL;
    respParserReset(p);
}

void respParserFree(respParser *p) {
    free(p->argv);
    p->argv = NULL;
    p->argv_cap = 0;
    p->argc = 0;
}

void respParserReset(respParser *p) {
    if (p->argv_cap > PARSER_ARGV_KEEP) {
        p->argv = xrealloc(p->argv, PARSER_ARGV_KEEP * sizeof *p->argv);
        p->argv_cap = PARSER_ARGV_KEEP;
    }
    p->argc = 0;
    p->consumed = 0;
    p->error = NULL;
    p->need = 0;
    p->pos = 0;
    p->multibulk_left = -1;
    p->bulk_len = -1;
    p->kind = 0;
}

int respParseCommand(respParser *p, char *data, size_t len) {
    switch (p->kind) {
    case PARSER_KIND_DONE:
        return RESP_PARSE_DONE;
    case PARSER_KIND_FAILED:
        return RESP_PARSE_ERROR;
    case 0:
        if (len == 0) {
            p->need = 1;
            return RESP_PARSE_MORE;
        }
        p->kind = data[0] == '*' ? PARSER_KIND_MULTIBULK : PARSER_KIND_INLINE;
        break;
    default:
        break;
    }
    /* The caller promised len only grows; if it shrank, wait rather than
     * read past it. */
    if (len < p->pos) {
        p->need = p->pos;
        return RESP_PARSE_MORE;
    }
    if (p->kind == PARSER_KIND_INLINE) return parserInline(p, data, len);
    return parserMultibulk(p, data, len);
}
