/* RESP2: the Redis serialization protocol, both directions.
 *
 * The request parser is incremental and zero-copy. A connection keeps the
 * bytes of the command being parsed at the front of its input buffer and
 * calls respParseCommand(p, data, len) each time more bytes arrive, always
 * with `data` pointing at the first byte of that command. The parser
 * remembers how far it got, so bytes are scanned once however the request
 * was split, and a half-read 512 MiB bulk costs nothing to resume. A
 * finished command's arguments are (offset, length) pairs into `data`.
 * Inline commands ("SET k v\r\n", what telnet sends) are unescaped in
 * place, which is why `data` is not const.
 *
 * Every size is bounded by respLimits, and every violation is a protocol
 * error with a Redis-compatible message; the connection is then closed by
 * the caller, as Redis does.
 *
 * The writer appends replies to a buf. The reply parser is for the client
 * side (dmkv's CLI, node-to-node links) and builds a small tree. */
#ifndef DMKV_RESP_RESP_H
#define DMKV_RESP_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef struct respLimits {
    size_t max_inline_bytes; /* longest inline request line (64 KiB) */
    size_t max_bulk_bytes;   /* largest single bulk argument (512 MiB) */
    size_t max_args;         /* most arguments in one command (1,048,576) */
} respLimits;

#define RESP_DEFAULT_MAX_INLINE (64 * 1024)
#define RESP_DEFAULT_MAX_BULK (512ull * 1024 * 1024)
#define RESP_DEFAULT_MAX_ARGS (1024 * 1024)

typedef struct respArg {
    size_t off; /* from the start of the command */
    size_t len;
} respArg;

enum respParseResult {
    RESP_PARSE_DONE = 0,  /* a whole command: argc/argv/consumed are set */
    RESP_PARSE_MORE = 1,  /* need more bytes; call again with the same data start */
    RESP_PARSE_ERROR = 2, /* protocol error: p->error says what */
};

typedef struct respParser {
    respLimits limits;
    /* Result of a DONE parse. argc may be 0 for an empty inline line or
     * "*0\r\n" / "*-1\r\n", which Redis silently skips; callers skip too. */
    size_t argc;
    respArg *argv;
    size_t consumed;   /* bytes of data used by this command */
    const char *error; /* static text after RESP_PARSE_ERROR, without "ERR " */
    /* Hint after RESP_PARSE_MORE: total bytes this command needs at least
     * (lets the caller size its buffer once for a large bulk). */
    size_t need;

    /* Private resume state. */
    size_t argv_cap;
    size_t pos;       /* next byte to scan, relative to data */
    long long multibulk_left; /* -1: not in a multibulk */
    long long bulk_len;       /* -1: expecting a $ header */
    int kind;                 /* 0 unknown, '*' multibulk, 'i' inline */
} respParser;

void respParserInit(respParser *p, const respLimits *limits);
void respParserFree(respParser *p);
/* Forget the current command; call after handling a DONE before the next. */
void respParserReset(respParser *p);
int respParseCommand(respParser *p, char *data, size_t len);

/* ---- Reply writer (server side) ---- */
void respAddSimple(buf *b, const char *s);                 /* +s\r\n */
void respAddError(buf *b, const char *msg);                /* -msg\r\n; msg has its prefix ("ERR ...") */
void respAddErrorFmt(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void respAddInt(buf *b, long long v);                      /* :v\r\n */
void respAddBulk(buf *b, const void *p, size_t n);         /* $n\r\n...\r\n */
void respAddBulkStr(buf *b, const char *s);
void respAddBulkInt(buf *b, long long v);                  /* the number as a bulk string */
void respAddNil(buf *b);                                   /* $-1\r\n */
void respAddArrayLen(buf *b, long long n);                 /* *n\r\n */
void respAddNilArray(buf *b);                              /* *-1\r\n */
/* Encodes argv as a RESP array of bulk strings (a request). */
void respAddCommand(buf *b, size_t argc, const char *const *argv, const size_t *lens);

/* ---- Reply parser (client side) ---- */
enum respType {
    RESP_STRING = '+',
    RESP_ERROR = '-',
    RESP_INTEGER = ':',
    RESP_BULK = '$',
    RESP_ARRAY = '*',
    RESP_NIL = 'n',      /* $-1 */
    RESP_NIL_ARRAY = 'N' /* *-1 */
};

typedef struct respReply {
    int type;
    long long integer;       /* RESP_INTEGER; element count for arrays */
    char *str;               /* STRING, ERROR, BULK: NUL-terminated copy */
    size_t len;
    size_t elements;         /* RESP_ARRAY */
    struct respReply **element;
} respReply;

typedef struct respReplyLimits {
    size_t max_bulk_bytes;
    size_t max_elements; /* per array */
    int max_depth;
} respReplyLimits;

/* Parses one reply from data[0..len). Returns RESP_PARSE_DONE with *out
 * (free with respReplyFree) and *consumed set, RESP_PARSE_MORE when the
 * reply is not complete yet (nothing is kept: call again with more bytes),
 * or RESP_PARSE_ERROR with *error set to a static message. */
int respReplyParse(const char *data, size_t len, const respReplyLimits *limits,
                   respReply **out, size_t *consumed, const char **error);
void respReplyFree(respReply *r);

#endif
