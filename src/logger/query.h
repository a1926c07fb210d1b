/* What a reader may ask the logger for, and how one question is read.
 *
 * Two doors lead to the logger's history: the RESP command
 *   TRACE [ORDER physical|lamport|vector] [FORMAT text|json|shiviz] [KEY k] [LAST n]
 * and the HTTP endpoints /events.json and /shiviz.log with query
 * parameters (?key=k&order=o&last=n). Both hand each name/value pair, as
 * they received it, to loggerQuerySet, so a value is checked by one set of
 * rules whichever door it came through, and the fuzzer reaches those rules
 * without a socket. This file is pure: no libuv, no libmicrohttpd, no
 * locks; the caller holds the history's lock around loggerQueryRender. */
#ifndef DMKV_LOGGER_QUERY_H
#define DMKV_LOGGER_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "trace/trace.h"
#include "util/buf.h"

/* The most events a logger keeps (the upper bound of --max-events), and
 * so the largest LAST accepted: a larger one could not mean more events,
 * and is refused rather than read as "all". */
#define LOGGER_QUERY_MAX_LAST 100000000u

/* Bits of loggerQuery.given: the names a query has set. */
#define LOGGER_QUERY_GIVEN_ORDER  (1u << 0)
#define LOGGER_QUERY_GIVEN_FORMAT (1u << 1)
#define LOGGER_QUERY_GIVEN_KEY    (1u << 2)
#define LOGGER_QUERY_GIVEN_LAST   (1u << 3)

/* Returned by loggerQuerySet. */
#define LOGGER_QUERY_OK        0
#define LOGGER_QUERY_ERR_NAME  (-1) /* not order, format, key or last */
#define LOGGER_QUERY_ERR_VALUE (-2) /* a known name with a value it refuses */

typedef enum loggerFormat {
    LOGGER_FORMAT_TEXT,
    LOGGER_FORMAT_JSON,
    LOGGER_FORMAT_SHIVIZ,
} loggerFormat;

typedef struct loggerQuery {
    traceView view;      /* ORDER; Lamport by default */
    loggerFormat format; /* FORMAT; text by default */
    char key[TRACE_KEY_MAX_BYTES + 1];
    size_t key_len; /* == strlen(key): a KEY holding a NUL byte is refused */
    bool has_key;
    size_t last_n;  /* LAST: the latest last_n in physical time; 0 = all */
    unsigned given; /* LOGGER_QUERY_GIVEN_* of the names set; none may come twice */
} loggerQuery;

/* The defaults: every event, Lamport order, text. */
void loggerQueryInit(loggerQuery *q);

/* Applies one name/value pair. name is matched without regard to case
 * (order, format, key, last); so are the values of ORDER (physical,
 * lamport, vector, and "all", the text view with every section) and
 * FORMAT (text, json, shiviz); KEY is taken byte for byte. val may be
 * NULL (an HTTP parameter without "="), which is refused like any
 * missing value. Refused: an unknown name (LOGGER_QUERY_ERR_NAME); a name
 * given twice; a value holding a NUL byte or longer than its longest
 * accepted form (nothing is truncated); a KEY over TRACE_KEY_MAX_BYTES; a
 * LAST that is not a plain decimal (no sign, no spaces) or exceeds
 * LOGGER_QUERY_MAX_LAST. On refusal q is untouched and err (when errlen
 * > 0) holds one line saying what was wrong, without "ERR". */
int loggerQuerySet(loggerQuery *q, const char *name, size_t nlen, const char *val, size_t vlen,
                   char *err, size_t errlen);

/* The history filter the query asks for (pointing into q). */
traceFilter loggerQueryFilter(const loggerQuery *q);

/* Appends the query's view of the history to out and returns how many
 * events it shows. */
size_t loggerQueryRender(const loggerQuery *q, const traceHistory *h, buf *out);

#endif
