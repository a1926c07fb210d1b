/* dmkv getall: one key read from every node, and whether the nodes agree.
 *
 * Replication promises that every replica ends with the same value and the
 * same version (vector clock, Lamport time, origin), so this is the
 * operator's check of that promise: each node is asked GET and VERSION,
 * pipelined on one connection so both answers come from the same moment
 * of that node, and the answers are grouped by equality. The largest group
 * is the reference (on a tie, the one holding the lowest-numbered node)
 * and every other node is named as differing, with its own line above
 * showing what it holds. A node that cannot be reached, or that answers
 * with an error, makes the verdict fail too: agreement cannot be shown
 * without it.
 *
 * The same reading (cliGetAll) serves dmkv race, which reads values only,
 * and the report (cliGetAllReport) serves the repl's getall command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* VERSION key -> [vclock text, lamport, origin, token, tombstone 0|1] */
#define VERSION_FIELDS 5

static void readFail(cliNodeRead *r, int status, const char *err) {
    r->status = status;
    snprintf(r->err, sizeof r->err, "%s", err);
}

static bool versionWellFormed(const respReply *v) {
    if (v->type == RESP_NIL_ARRAY || v->type == RESP_NIL) return true;
    if (v->type != RESP_ARRAY || v->elements != VERSION_FIELDS) return false;
    if (v->element[0]->type != RESP_BULK) return false;
    for (size_t i = 1; i < VERSION_FIELDS; i++)
        if (v->element[i]->type != RESP_INTEGER) return false;
    return true;
}

/* One node: connect (and AUTH), send GET (and VERSION) at once, read both. */
static void readNode(const cliVerbOpts *o, int i, const char *key, size_t keylen, bool with_version,
                     cliNodeRead *r) {
    memset(r, 0, sizeof *r);
    cliConn c;
    char err[sizeof r->err];
    int rc = cliConnectNode(&c, &o->nodes[i], o->timeout_ms, o->password, err, sizeof err);
    if (rc != CLI_OK) {
        readFail(r, rc, err);
        return;
    }
    buf req;
    bufInit(&req);
    const char *get[2] = {"GET", key}, *ver[2] = {"VERSION", key};
    size_t getl[2] = {3, keylen}, verl[2] = {7, keylen};
    respAddCommand(&req, 2, get, getl);
    if (with_version) respAddCommand(&req, 2, ver, verl);
    rc = cliSendRaw(&c, req.data, req.len, err, sizeof err);
    bufFree(&req);
    if (rc != 0 || cliReadReply(&c, &r->value, err, sizeof err) != 0 ||
        (with_version && cliReadReply(&c, &r->version, err, sizeof err) != 0)) {
        /* cliSendRaw and cliReadReply close the connection on failure. */
        readFail(r, CLI_UNREACHABLE, err);
        return;
    }
    cliClose(&c);
    r->status = CLI_OK;
    if (r->value->type == RESP_ERROR) {
        readFail(r, CLI_SERVER_ERROR, r->value->str);
    } else if (r->value->type != RESP_BULK && r->value->type != RESP_NIL) {
        readFail(r, CLI_SERVER_ERROR, "GET answered something other than a value");
    } else if (with_version && r->version->type == RESP_ERROR) {
        readFail(r, CLI_SERVER_ERROR, r->version->str);
    } else if (with_version && !versionWellFormed(r->version)) {
        readFail(r, CLI_SERVER_ERROR, "VERSION answered something other than a version");
    }
}

void cliGetAll(const cliVerbOpts *o, const char *key, size_t keylen, bool with_version,
               cliNodeRead *reads) {
    for (int i = 0; i < o->nnodes; i++) readNode(o, i, key, keylen, with_version, &reads[i]);
}

void cliNodeReadsFree(cliNodeRead *reads, int n) {
    for (int i = 0; i < n; i++) {
        respReplyFree(reads[i].value);
        respReplyFree(reads[i].version);
        reads[i].value = reads[i].version = NULL;
    }
}

bool cliReplyEqual(const respReply *a, const respReply *b) {
    if (!a || !b) return a == b;
    if (a->type != b->type) return false;
    switch (a->type) {
    case RESP_INTEGER:
        return a->integer == b->integer;
    case RESP_ARRAY:
        if (a->elements != b->elements) return false;
        for (size_t i = 0; i < a->elements; i++)
            if (!cliReplyEqual(a->element[i], b->element[i])) return false;
        return true;
    case RESP_NIL:
    case RESP_NIL_ARRAY:
        return true;
    default:
        return a->len == b->len && (a->len == 0 || memcmp(a->str, b->str, a->len) == 0);
    }
}

/* Both answered, with the same value and (when read) the same version. */
static bool readsSame(const cliNodeRead *a, const cliNodeRead *b) {
    return a->status == CLI_OK && b->status == CLI_OK && cliReplyEqual(a->value, b->value) &&
           cliReplyEqual(a->version, b->version);
}

bool cliReadsAgree(const cliNodeRead *reads, int n) {
    for (int i = 0; i < n; i++)
        if (!readsSame(&reads[0], &reads[i])) return false;
    return n > 0;
}

/* ---- Text and JSON forms ---- */

/* Length of the UTF-8 sequence at s (at most n bytes), or 0 when it is not
 * a valid one: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8SequenceLen(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    unsigned int min;
    unsigned int cp;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0)
        len = 2, min = 0x80, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
        len = 3, min = 0x800, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
        len = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

static bool utf8Valid(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t l = utf8SequenceLen((const unsigned char *)s + i, n - i);
        if (!l) return false;
        i += l;
    }
    return true;
}

/* s between double quotes with JSON escapes; s must be valid UTF-8 when
 * json is set. Without json, bytes that are not UTF-8 become \xNN, so a
 * line of text output stays one line whatever the value holds. */
static void appendEscaped(buf *out, const char *s, size_t n, bool json) {
    bufAppendChar(out, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t l = utf8SequenceLen((const unsigned char *)s + i, n - i);
        if (c == '"' || c == '\\') {
            bufAppendChar(out, '\\');
            bufAppendChar(out, (char)c);
        } else if (c == '\n') {
            bufAppendStr(out, "\\n");
        } else if (c == '\r') {
            bufAppendStr(out, "\\r");
        } else if (c == '\t') {
            bufAppendStr(out, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            bufPrintf(out, json ? "\\u%04x" : "\\x%02x", c);
        } else if (l == 0) {
            bufPrintf(out, "\\x%02x", c); /* text only: json input is valid */
            l = 1;
        } else {
            bufAppend(out, s + i, l);
            i += l;
            continue;
        }
        i++;
    }
    bufAppendChar(out, '"');
}

/* A value on one text line: as is when it is printable and not empty,
 * otherwise quoted with escapes (so "" and "a\nb" are unambiguous). */
static void appendTextValue(buf *out, const respReply *v) {
    if (v->type != RESP_BULK) {
        cliFormatReply(v, out);
        return;
    }
    bool plain = v->len > 0 && utf8Valid(v->str, v->len) && v->str[0] != '"' &&
                 !(v->len == 5 && !memcmp(v->str, "(nil)", 5));
    for (size_t i = 0; plain && i < v->len; i++)
        plain = (unsigned char)v->str[i] >= 0x20 && v->str[i] != 0x7f;
    if (plain)
        bufAppend(out, v->str, v->len);
    else
        appendEscaped(out, v->str, v->len, false);
}

/* "name":"text", or "name_hex":"6869" for bytes that are not UTF-8. */
static void appendJsonBytes(buf *out, const char *name, const char *s, size_t n) {
    if (utf8Valid(s, n)) {
        bufPrintf(out, "\"%s\":", name);
        appendEscaped(out, s, n, true);
        return;
    }
    bufPrintf(out, "\"%s_hex\":\"", name);
    for (size_t i = 0; i < n; i++) bufPrintf(out, "%02x", (unsigned char)s[i]);
    bufAppendChar(out, '"');
}

static void appendAddress(buf *out, const cliNode *n) {
    bufPrintf(out, strchr(n->host, ':') ? "[%s]:%d" : "%s:%d", n->host, n->port);
}

static void appendTextVersion(buf *out, const respReply *v) {
    if (v->type != RESP_ARRAY) {
        bufAppendStr(out, "none");
        return;
    }
    bufAppend(out, v->element[0]->str, v->element[0]->len);
    bufPrintf(out, " lamport %lld origin %lld", v->element[1]->integer, v->element[2]->integer);
    if (v->element[3]->integer) bufPrintf(out, " token %lld", v->element[3]->integer);
    if (v->element[4]->integer) bufAppendStr(out, " (deleted)");
}

static void appendJsonVersion(buf *out, const respReply *v) {
    if (v->type != RESP_ARRAY) {
        bufAppendStr(out, "null");
        return;
    }
    bufAppendChar(out, '{');
    appendJsonBytes(out, "vclock", v->element[0]->str, v->element[0]->len);
    bufPrintf(out, ",\"lamport\":%lld,\"origin\":%lld,\"token\":%lld,\"tombstone\":%s}",
              v->element[1]->integer, v->element[2]->integer, v->element[3]->integer,
              v->element[4]->integer ? "true" : "false");
}

/* The verdict of a report, worked out once for both forms. */
typedef struct getallVerdict {
    bool agree;
    int reference; /* a node (0-based) of the largest group of equal answers; -1 if none */
    int *group;    /* group[i]: index of the first node with the same answer, or -1 */
    int ndiffer;   /* answered, but not like the reference */
    int nfailed;   /* unreachable or answered with an error */
} getallVerdict;

static void verdictCompute(const cliNodeRead *reads, int n, getallVerdict *v) {
    memset(v, 0, sizeof *v);
    v->group = xcalloc((size_t)n, sizeof *v->group);
    v->reference = -1;
    int best = 0;
    for (int i = 0; i < n; i++) {
        v->group[i] = -1;
        if (reads[i].status != CLI_OK) {
            v->nfailed++;
            continue;
        }
        for (int j = 0; j < i && v->group[i] < 0; j++)
            if (v->group[j] == j && readsSame(&reads[i], &reads[j])) v->group[i] = j;
        if (v->group[i] < 0) v->group[i] = i;
    }
    for (int i = 0; i < n; i++) {
        if (v->group[i] != i) continue;
        int size = 0;
        for (int j = i; j < n; j++) size += v->group[j] == i;
        if (size > best) best = size, v->reference = i;
    }
    for (int i = 0; i < n; i++)
        if (v->group[i] >= 0 && v->group[i] != v->reference) v->ndiffer++;
    v->agree = n > 0 && v->nfailed == 0 && v->ndiffer == 0;
}

/* "node 2 (127.0.0.1:5002)" or "nodes 2 (...), 3 (...)" for the nodes
 * that pass `pick`; with addresses or numbers only. Returns the count. */
typedef bool (*nodePick)(const cliNodeRead *r, const getallVerdict *v, int i);

static int appendNodeList(buf *out, const cliVerbOpts *o, const cliNodeRead *reads,
                          const getallVerdict *v, nodePick pick, bool addresses) {
    int count = 0;
    for (int i = 0; i < o->nnodes; i++) count += pick(&reads[i], v, i);
    int k = 0;
    for (int i = 0; i < o->nnodes; i++) {
        if (!pick(&reads[i], v, i)) continue;
        bufPrintf(out, "%s%d", k == 0 ? (count == 1 ? "node " : "nodes ") : ", ", i + 1);
        if (addresses) {
            bufAppendStr(out, " (");
            appendAddress(out, &o->nodes[i]);
            bufAppendChar(out, ')');
        }
        k++;
    }
    return count;
}

static bool pickDiffer(const cliNodeRead *r, const getallVerdict *v, int i) {
    return v->group[i] >= 0 && v->group[i] != v->reference;
}

static bool pickReference(const cliNodeRead *r, const getallVerdict *v, int i) {
    return v->reference >= 0 && v->group[i] == v->reference;
}

static bool pickUnreachable(const cliNodeRead *r, const getallVerdict *v, int i) {
    return r->status == CLI_UNREACHABLE;
}

static bool pickError(const cliNodeRead *r, const getallVerdict *v, int i) {
    return r->status == CLI_SERVER_ERROR;
}

static void appendVerdict(buf *out, const cliVerbOpts *o, const cliNodeRead *reads,
                          const getallVerdict *v) {
    if (v->agree) {
        bufPrintf(out, "agree: all %d node%s hold the same value and version", o->nnodes,
                  o->nnodes == 1 ? "" : "s");
        return;
    }
    bufAppendStr(out, "DIFFER: ");
    bool sep = false;
    if (v->ndiffer) {
        int n = appendNodeList(out, o, reads, v, pickDiffer, true);
        bufAppendStr(out, n == 1 ? " differs from " : " differ from ");
        appendNodeList(out, o, reads, v, pickReference, false);
        sep = true;
    }
    int nfail = 0;
    for (int i = 0; i < o->nnodes; i++) nfail += reads[i].status == CLI_UNREACHABLE;
    if (nfail) {
        if (sep) bufAppendStr(out, "; ");
        appendNodeList(out, o, reads, v, pickUnreachable, true);
        bufAppendStr(out, nfail == 1 ? " is unreachable" : " are unreachable");
        sep = true;
    }
    if (v->nfailed - nfail) {
        if (sep) bufAppendStr(out, "; ");
        appendNodeList(out, o, reads, v, pickError, true);
        bufAppendStr(out,
                     v->nfailed - nfail == 1 ? " answered with an error" : " answered with errors");
    }
    /* Which of the answering nodes still agree, when some failed. */
    if (v->nfailed && !v->ndiffer && v->reference >= 0) {
        bufAppendStr(out, " (");
        int n = appendNodeList(out, o, reads, v, pickReference, false);
        bufAppendStr(out, n == 1 ? " is the only one answering)" : " agree)");
    }
}

static void reportText(buf *out, const cliVerbOpts *o, const cliNodeRead *reads,
                       const getallVerdict *v) {
    for (int i = 0; i < o->nnodes; i++) {
        const cliNodeRead *r = &reads[i];
        bufPrintf(out, "node %d (", i + 1);
        appendAddress(out, &o->nodes[i]);
        bufAppendStr(out, "): ");
        if (r->status == CLI_UNREACHABLE) {
            bufPrintf(out, "unreachable (%s)\n", r->err);
            continue;
        }
        if (r->status != CLI_OK) {
            bufPrintf(out, "(error) %s\n", r->err);
            continue;
        }
        appendTextValue(out, r->value);
        bufAppendStr(out, "  version ");
        appendTextVersion(out, r->version);
        bufAppendChar(out, '\n');
    }
    appendVerdict(out, o, reads, v);
    bufAppendChar(out, '\n');
}

static void appendJsonNodeArray(buf *out, const cliVerbOpts *o, const cliNodeRead *reads,
                                const getallVerdict *v, nodePick pick) {
    bufAppendChar(out, '[');
    for (int i = 0, k = 0; i < o->nnodes; i++)
        if (pick(&reads[i], v, i)) bufPrintf(out, "%s%d", k++ ? "," : "", i + 1);
    bufAppendChar(out, ']');
}

static void reportJson(buf *out, const cliVerbOpts *o, const char *key, size_t keylen,
                       const cliNodeRead *reads, const getallVerdict *v) {
    bufAppendChar(out, '{');
    appendJsonBytes(out, "key", key, keylen);
    bufPrintf(out, ",\"agree\":%s,\"nodes\":[", v->agree ? "true" : "false");
    for (int i = 0; i < o->nnodes; i++) {
        const cliNodeRead *r = &reads[i];
        bufPrintf(out, "%s{\"node\":%d,\"address\":", i ? "," : "", i + 1);
        buf addr;
        bufInit(&addr);
        appendAddress(&addr, &o->nodes[i]);
        appendEscaped(out, addr.data, addr.len, true);
        bufFree(&addr);
        if (r->status != CLI_OK) {
            bufPrintf(out, ",\"status\":\"%s\",\"error\":",
                      r->status == CLI_UNREACHABLE ? "unreachable" : "error");
            if (utf8Valid(r->err, strlen(r->err)))
                appendEscaped(out, r->err, strlen(r->err), true);
            else
                bufAppendStr(out, "\"(not UTF-8)\"");
            bufAppendChar(out, '}');
            continue;
        }
        bufAppendStr(out, ",\"status\":\"ok\",");
        if (r->value->type == RESP_BULK)
            appendJsonBytes(out, "value", r->value->str, r->value->len);
        else
            bufAppendStr(out, "\"value\":null");
        bufAppendStr(out, ",\"version\":");
        appendJsonVersion(out, r->version);
        bufAppendChar(out, '}');
    }
    bufAppendStr(out, "],\"differ\":");
    appendJsonNodeArray(out, o, reads, v, pickDiffer);
    bufAppendStr(out, ",\"unreachable\":");
    appendJsonNodeArray(out, o, reads, v, pickUnreachable);
    bufAppendStr(out, ",\"errors\":");
    appendJsonNodeArray(out, o, reads, v, pickError);
    bufAppendStr(out, ",\"verdict\":");
    buf text;
    bufInit(&text);
    appendVerdict(&text, o, reads, v);
    appendEscaped(out, text.data, text.len, true);
    bufFree(&text);
    bufAppendStr(out, "}\n");
}

int cliGetAllReport(const cliVerbOpts *o, const char *key, size_t keylen, bool json, buf *out) {
    cliNodeRead *reads = xcalloc((size_t)o->nnodes, sizeof *reads);
    cliGetAll(o, key, keylen, true, reads);
    getallVerdict v;
    verdictCompute(reads, o->nnodes, &v);
    if (json)
        reportJson(out, o, key, keylen, reads, &v);
    else
        reportText(out, o, reads, &v);
    free(v.group);
    cliNodeReadsFree(reads, o->nnodes);
    free(reads);
    return v.agree ? CLI_OK : CLI_DIFFER;
}

/* ---- The verb ---- */

enum { GETALL_OPT_JSON = 256 };

static void getallUsage(void) {
    printf("Usage: dmkv getall [--nodes LIST] [--json] KEY\n\n"
           "Asks every node of the list for KEY's value and version (GET and VERSION)\n"
           "and prints one line per node: its address, the value or (nil), and the\n"
           "version (vector clock, Lamport time, origin node; a fencing token when\n"
           "there is one). The last line is the verdict: \"agree: ...\" when every node\n"
           "holds the same value and version, else \"DIFFER: ...\" naming the nodes that\n"
           "differ from the largest group of equal answers, and the nodes that could\n"
           "not be reached or answered with an error.\n\n"
           "  --json           one JSON object instead of text\n");
    cliVerbUsageOptions();
    printf("\nExit codes: 0 every node holds the same value and version, 1 they\n"
           "differ or a node could not be reached or answered with an error,\n"
           "2 bad usage.\n");
}

static int getallOption(void *ctx, int code, const char *arg) {
    if (code == GETALL_OPT_JSON) *(bool *)ctx = true;
    return -1;
}

int cliMainGetall(int argc, char **argv) {
    static const struct option extra[] = {
        {"json", no_argument, 0, GETALL_OPT_JSON},
        {0, 0, 0, 0},
    };
    bool json = false;
    cliVerbOpts *o = xcalloc(1, sizeof *o);
    int rc = cliVerbParse("getall", argc, argv, o, extra, getallOption, &json, getallUsage);
    if (rc < 0 && argc - optind != 1) {
        fprintf(stderr,
                "dmkv getall: expected one KEY, got %d arguments (see dmkv getall --help)\n",
                argc - optind);
        rc = CLI_USAGE;
    }
    if (rc < 0 && cliCheckKey("getall", argv[optind]) != 0) rc = CLI_USAGE;
    if (rc >= 0) {
        free(o);
        return rc;
    }
    const char *key = argv[optind];
    buf out;
    bufInit(&out);
    rc = cliGetAllReport(o, key, strlen(key), json, &out);
    fwrite(out.data, 1, out.len, stdout);
    fflush(stdout);
    bufFree(&out);
    free(o);
    return rc;
}
