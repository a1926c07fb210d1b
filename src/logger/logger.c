/* The logger process; see logger.h.
 *
 * Everything runs on one libuv loop except the HTTP server, which
 * libmicrohttpd runs on its own thread; the history is shared between the
 * two under one mutex, held only to copy or add events, never for I/O. */
#include "logger/logger.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "logger/query.h"
#include "net/net.h"
#include "resp/resp.h"
#include "trace/trace.h"
#include "util/buf.h"
#include "util/log.h"

#define LOGGER_DEFAULT_PORT       5000
#define LOGGER_DEFAULT_INTERVAL_S 3
#define LOGGER_DEFAULT_MAX_EVENTS 1000000
#define LOGGER_MAX_BATCH_BYTES    (16u << 20)
#define LOGGER_PRINT_LAST         40
#define LOGGER_HTTP_MAX_EVENTS    5000

typedef struct loggerConfig {
    char host[256];
    int port;
    int http_port; /* 0: no HTTP */
    int interval_s;
    size_t max_events;
    char log_file[1024];
    int numnodes;
} loggerConfig;

typedef struct loggerClient {
    respParser parser;
} loggerClient;

typedef struct logger {
    loggerConfig cfg;
    uv_loop_t loop;
    netServer *net;
    uv_signal_t sigint, sigterm;
    uv_timer_t print_timer;
    pthread_mutex_t lock;
    traceHistory *hist;
    FILE *file;
    struct MHD_Daemon *http;
    uint64_t batches, batches_rejected, events_in, loaded, load_skipped;
    uint64_t printed_at_count;
    buf scratch;
} logger;

/* ---- ingest ---- */

static int loggerAdd(logger *lg, traceEvent *events, size_t n, bool write_file) {
    int added = 0;
    buf line;
    bufInit(&line);
    pthread_mutex_lock(&lg->lock);
    for (size_t i = 0; i < n; i++) {
        if (write_file && lg->file) {
            bufClear(&line);
            traceEventToJson(&events[i], &line);
        }
        if (traceHistoryAdd(lg->hist, &events[i]) == TRACE_OK) {
            added++;
            if (write_file && lg->file) fwrite(line.data, 1, line.len, lg->file);
        }
    }
    pthread_mutex_unlock(&lg->lock);
    if (write_file && lg->file) fflush(lg->file);
    bufFree(&line);
    return added;
}

static void loggerLoadFile(logger *lg) {
    FILE *f = fopen(lg->cfg.log_file, "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (len > 0 && line[len - 1] == '\n') len--;
        if (len == 0) continue;
        traceEvent e;
        traceEventInit(&e);
        char err[200];
        if (len > TRACE_LINE_MAX_BYTES ||
            traceEventFromJson(line, (size_t)len, &e, err, sizeof err) != 0) {
            lg->load_skipped++;
            traceEventFree(&e);
            continue;
        }
        lg->loaded += (uint64_t)loggerAdd(lg, &e, 1, false);
        traceEventFree(&e);
    }
    free(line);
    fclose(f);
}

/* ---- queries ---- */

static void loggerRender(logger *lg, const loggerQuery *q, buf *out) {
    pthread_mutex_lock(&lg->lock);
    loggerQueryRender(q, lg->hist, out);
    pthread_mutex_unlock(&lg->lock);
}

static bool argEq(const char *p, size_t len, const char *lit) {
    return strlen(lit) == len && strncasecmp(p, lit, len) == 0;
}

#define LOGGER_TRACE_SYNTAX "TRACE [ORDER o] [FORMAT f] [KEY k] [LAST n]"

/* TRACE [ORDER physical|lamport|vector] [FORMAT text|json|shiviz] [KEY k] [LAST n] */
static void cmdTrace(logger *lg, char *data, const respArg *av, size_t ac, buf *out) {
    loggerQuery q;
    loggerQueryInit(&q);
    for (size_t i = 1; i < ac; i += 2) {
        if (i + 1 >= ac) {
            respAddError(out, "ERR syntax: " LOGGER_TRACE_SYNTAX);
            return;
        }
        char err[200];
        int r = loggerQuerySet(&q, data + av[i].off, av[i].len, data + av[i + 1].off, av[i + 1].len,
                               err, sizeof err);
        if (r == LOGGER_QUERY_ERR_NAME) {
            respAddErrorFmt(out, "ERR syntax: %s; use " LOGGER_TRACE_SYNTAX, err);
            return;
        }
        if (r != LOGGER_QUERY_OK) {
            respAddErrorFmt(out, "ERR %s", err);
            return;
        }
    }
    buf text;
    bufInit(&text);
    loggerRender(lg, &q, &text);
    respAddBulk(out, text.data, text.len);
    bufFree(&text);
}

static void cmdInfo(logger *lg, buf *out) {
    traceHistoryStats st;
    pthread_mutex_lock(&lg->lock);
    traceHistoryGetStats(lg->hist, &st);
    size_t count = traceHistoryCount(lg->hist);
    pthread_mutex_unlock(&lg->lock);
    buf b;
    bufInit(&b);
    bufPrintf(&b,
              "# Logger\r\nevents:%zu\r\nevents_added:%" PRIu64 "\r\nevents_dropped_old:%" PRIu64
              "\r\nduplicates:%" PRIu64 "\r\nbatches:%" PRIu64 "\r\nbatches_rejected:%" PRIu64
              "\r\nloaded_from_file:%" PRIu64 "\r\nfile_lines_skipped:%" PRIu64
              "\r\nlog_file:%s\r\nhttp_port:%d\r\n",
              count, st.added, st.dropped, st.duplicates, lg->batches, lg->batches_rejected,
              lg->loaded, lg->load_skipped, lg->cfg.log_file, lg->cfg.http_port);
    respAddBulk(out, b.data, b.len);
    bufFree(&b);
}

static void onOpen(void *ctx, netConn *c) {
    (void)ctx;
    loggerClient *lc = xcalloc(1, sizeof *lc);
    respLimits lim = {RESP_DEFAULT_MAX_INLINE, LOGGER_MAX_BATCH_BYTES, 64};
    respParserInit(&lc->parser, &lim);
    netConnSetData(c, lc);
}

static void onClose(void *ctx, netConn *c) {
    (void)ctx;
    loggerClient *lc = netConnGetData(c);
    respParserFree(&lc->parser);
    free(lc);
}

static void onData(void *ctx, netConn *c) {
    logger *lg = ctx;
    loggerClient *lc = netConnGetData(c);
    buf *in = netConnInput(c);
    buf *out = netConnOutput(c);
    size_t pos = 0;
    while (pos < in->len && !netConnClosing(c)) {
        char *data = in->data + pos;
        int r = respParseCommand(&lc->parser, data, in->len - pos);
        if (r == RESP_PARSE_MORE) break;
        if (r == RESP_PARSE_ERROR) {
            respAddErrorFmt(out, "ERR Protocol error: %s", lc->parser.error);
            netConnClose(c);
            pos = in->len;
            break;
        }
        const respArg *av = lc->parser.argv;
        size_t ac = lc->parser.argc;
        if (ac == 0) {
        } else if (argEq(data + av[0].off, av[0].len, "log.events") && ac != 2) {
            respAddError(out, "ERR wrong number of arguments for 'log.events' command");
        } else if (argEq(data + av[0].off, av[0].len, "log.events")) {
            traceEvent *evs = NULL;
            size_t n = 0;
            char err[256];
            lg->batches++;
            if (traceBatchDecode(data + av[1].off, av[1].len, &evs, &n, err, sizeof err) != 0) {
                lg->batches_rejected++;
                logWarn("rejected a batch from %s: %s", netConnPeer(c), err);
                respAddErrorFmt(out, "ERR malformed batch: %s", err);
                netConnClose(c);
            } else {
                lg->events_in += n;
                loggerAdd(lg, evs, n, true);
                traceBatchFree(evs, n);
                respAddSimple(out, "OK");
            }
        } else if (argEq(data + av[0].off, av[0].len, "trace")) {
            cmdTrace(lg, data, av, ac, out);
        } else if (argEq(data + av[0].off, av[0].len, "ping")) {
            respAddSimple(out, "PONG");
        } else if (argEq(data + av[0].off, av[0].len, "info")) {
            cmdInfo(lg, out);
        } else if (argEq(data + av[0].off, av[0].len, "quit")) {
            respAddSimple(out, "OK");
            netConnClose(c);
        } else {
            respAddErrorFmt(out, "ERR unknown logger command '%.*s' (try TRACE, INFO, PING)",
                            (int)(av[0].len > 64 ? 64 : av[0].len), data + av[0].off);
        }
        pos += lc->parser.consumed;
        respParserReset(&lc->parser);
    }
    if (pos) bufConsume(in, pos);
    if (lc->parser.need > in->len) netConnReserveInput(c, lc->parser.need - in->len);
    netConnWantFlush(c);
}

/* ---- periodic printout, like the prototype's ---- */

static void onPrintTimer(uv_timer_t *t) {
    logger *lg = t->data;
    pthread_mutex_lock(&lg->lock);
    traceHistoryStats st;
    traceHistoryGetStats(lg->hist, &st);
    pthread_mutex_unlock(&lg->lock);
    if (st.added == lg->printed_at_count) return;
    lg->printed_at_count = st.added;
    static const traceView views[] = {TRACE_VIEW_PHYSICAL, TRACE_VIEW_LAMPORT, TRACE_VIEW_VECTOR};
    buf b;
    bufInit(&b);
    for (size_t i = 0; i < 3; i++) {
        loggerQuery q;
        loggerQueryInit(&q);
        q.view = views[i];
        q.last_n = LOGGER_PRINT_LAST;
        loggerRender(lg, &q, &b);
        bufAppendChar(&b, '\n');
    }
    fwrite(b.data, 1, b.len, stdout);
    fflush(stdout);
    bufFree(&b);
}

/* ---- HTTP ---- */

/* The query parameters of /events.json and /shiviz.log, read with the
 * rules of TRACE (loggerQuerySet). The path fixes the format, so a
 * "format" parameter is refused; "last" is capped, and defaults, to
 * LOGGER_HTTP_MAX_EVENTS (the page asks for /events.json without any). */
typedef struct loggerHttpQuery {
    loggerQuery q;
    bool failed;
    char err[200];
} loggerHttpQuery;

/* MHD_KeyValueIteratorN: with lengths, so "%00" in a value is seen. */
static enum MHD_Result onHttpArgument(void *cls, enum MHD_ValueKind kind, const char *name,
                                      size_t nlen, const char *val, size_t vlen) {
    (void)kind;
    loggerHttpQuery *hq = cls;
    int r = loggerQuerySet(&hq->q, name, nlen, val, vlen, hq->err, sizeof hq->err);
    if (r == LOGGER_QUERY_OK && (hq->q.given & LOGGER_QUERY_GIVEN_FORMAT)) {
        snprintf(hq->err, sizeof hq->err,
                 "format is set by the path: /events.json is JSON, /shiviz.log is ShiViz");
        r = LOGGER_QUERY_ERR_VALUE;
    } else if (r == LOGGER_QUERY_ERR_NAME) {
        size_t used = strlen(hq->err);
        snprintf(hq->err + used, sizeof hq->err - used, " (parameters: key, order, last)");
    }
    hq->failed = r != LOGGER_QUERY_OK;
    return hq->failed ? MHD_NO : MHD_YES;
}

static struct MHD_Response *httpText(const char *text, bool persistent) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        strlen(text), (void *)text, persistent ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
    return resp;
}

static enum MHD_Result onHttp(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **state) {
    (void)version;
    (void)upload;
    (void)upload_len;
    (void)state;
    logger *lg = cls;
    struct MHD_Response *resp;
    unsigned code = MHD_HTTP_OK;
    if (strcmp(method, "GET") != 0) {
        resp = httpText("only GET\n", true);
        code = MHD_HTTP_METHOD_NOT_ALLOWED;
    } else if (!strcmp(url, "/") || !strcmp(url, "/index.html")) {
        const char *page = tracePageHtml();
        resp = MHD_create_response_from_buffer(strlen(page), (void *)page, MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(resp, "Content-Type", "text/html; charset=utf-8");
    } else if (!strcmp(url, "/events.json") || !strcmp(url, "/shiviz.log")) {
        bool shiviz = !strcmp(url, "/shiviz.log");
        loggerHttpQuery hq = {.failed = false};
        loggerQueryInit(&hq.q);
        MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, onHttpArgument, &hq);
        if (hq.failed) {
            char line[sizeof hq.err + 16];
            snprintf(line, sizeof line, "bad query: %s\n", hq.err);
            resp = httpText(line, false);
            code = MHD_HTTP_BAD_REQUEST;
        } else {
            hq.q.format = shiviz ? LOGGER_FORMAT_SHIVIZ : LOGGER_FORMAT_JSON;
            if (hq.q.last_n == 0 || hq.q.last_n > LOGGER_HTTP_MAX_EVENTS)
                hq.q.last_n = LOGGER_HTTP_MAX_EVENTS;
            buf b;
            bufInit(&b);
            loggerRender(lg, &hq.q, &b);
            resp = MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_COPY);
            bufFree(&b);
            MHD_add_response_header(resp, "Content-Type",
                                    shiviz ? "text/plain; charset=utf-8" : "application/json");
        }
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    } else {
        resp = httpText("not found: try / , /events.json or /shiviz.log\n", true);
        code = MHD_HTTP_NOT_FOUND;
    }
    enum MHD_Result r = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return r;
}

/* ---- life cycle ---- */

static void onNetClosed(void *ctx) {
    logger *lg = ctx;
    uv_close((uv_handle_t *)&lg->sigint, NULL);
    uv_close((uv_handle_t *)&lg->sigterm, NULL);
    uv_close((uv_handle_t *)&lg->print_timer, NULL);
}

static void onSignal(uv_signal_t *h, int signum) {
    logger *lg = h->data;
    (void)signum;
    logInfo("shutting down");
    uv_signal_stop(&lg->sigint);
    uv_signal_stop(&lg->sigterm);
    uv_timer_stop(&lg->print_timer);
    netServerShutdown(lg->net, onNetClosed);
}

static void loggerUsage(void) {
    printf("Usage: dmkv logger [flags]\n\n"
           "Collects the events of every node (agents started with --logger-addr)\n"
           "and shows them in physical, Lamport and causal order.\n\n"
           "Flags (default in brackets):\n"
           "  --logger-tcp PORT   port nodes and dmkv trace connect to [%d]\n"
           "  --host ADDR         address to listen on [127.0.0.1]\n"
           "  --http PORT         serve the space-time diagram on this port [off]\n"
           "  --interval S        print the orderings every S seconds, 0 = never [%d]\n"
           "  --log-file PATH     JSON-lines file; kept across restarts "
           "[./dmkv-data/logger/events.jsonl]\n"
           "  --max-events N      events kept in memory [%d]\n"
           "  --numnodes N        expected nodes (informational) [0]\n"
           "  -h, --help          this help\n",
           LOGGER_DEFAULT_PORT, LOGGER_DEFAULT_INTERVAL_S, LOGGER_DEFAULT_MAX_EVENTS);
}

static int parsePort(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0 || v > 65535) return -1;
    *out = (int)v;
    return 0;
}

static int mkdirParents(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    char *slash = strrchr(tmp, '/');
    if (!slash) return 0;
    *slash = '\0';
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    }
    if (tmp[0] && mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

/* The HTTP port binds the same address as the RESP port (--host), never
 * every interface, which is what libmicrohttpd does when given only a
 * port. Returns 0 with the address in ss (and MHD_USE_IPv6 added to flags
 * for an IPv6 one), -1 when host does not resolve. */
static int loggerHttpAddress(const char *host, int port, struct sockaddr_storage *ss,
                             unsigned *flags) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res) return -1;
    memset(ss, 0, sizeof *ss);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    if (res->ai_family == AF_INET6) *flags |= MHD_USE_IPv6;
    freeaddrinfo(res);
    return 0;
}

int loggerMain(int argc, char **argv) {
    static const struct option opts[] = {
        {"logger-tcp", required_argument, 0, 'p'},
        {"port", required_argument, 0, 'p'},
        {"host", required_argument, 0, 'H'},
        {"bind", required_argument, 0, 'H'},
        {"http", required_argument, 0, 'w'},
        {"interval", required_argument, 0, 'i'},
        {"log-file", required_argument, 0, 'f'},
        {"max-events", required_argument, 0, 'm'},
        {"numnodes", required_argument, 0, 'n'},
        {"logger", no_argument, 0, 'L'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    logger *lg = xcalloc(1, sizeof *lg);
    loggerConfig *cfg = &lg->cfg;
    snprintf(cfg->host, sizeof cfg->host, "127.0.0.1");
    cfg->port = LOGGER_DEFAULT_PORT;
    cfg->interval_s = LOGGER_DEFAULT_INTERVAL_S;
    cfg->max_events = LOGGER_DEFAULT_MAX_EVENTS;
    snprintf(cfg->log_file, sizeof cfg->log_file, "./dmkv-data/logger/events.jsonl");
    optind = 1;
    opterr = 0;
    int o, code = 2;
    char *end;
    while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (o) {
        case 'p':
            if (parsePort(optarg, &cfg->port) || cfg->port == 0) goto bad_value;
            break;
        case 'H':
            snprintf(cfg->host, sizeof cfg->host, "%s", optarg);
            break;
        case 'w':
            if (parsePort(optarg, &cfg->http_port)) goto bad_value;
            break;
        case 'i':
            cfg->interval_s = (int)strtol(optarg, &end, 10);
            if (*end || cfg->interval_s < 0 || cfg->interval_s > 86400) goto bad_value;
            break;
        case 'f':
            snprintf(cfg->log_file, sizeof cfg->log_file, "%s", optarg);
            break;
        case 'm': {
            long long m = strtoll(optarg, &end, 10);
            if (*end || m < 1000 || m > LOGGER_QUERY_MAX_LAST) goto bad_value;
            cfg->max_events = (size_t)m;
            break;
        }
        case 'n':
            cfg->numnodes = atoi(optarg);
            break;
        case 'L':
            break; /* the prototype's `--logger` switch */
        case 'h':
            loggerUsage();
            free(lg);
            return 0;
        case ':':
            fprintf(stderr, "dmkv logger: %s needs a value\n", argv[optind - 1]);
            goto out;
        default:
            fprintf(stderr, "dmkv logger: unknown flag %s (see dmkv logger --help)\n",
                    argv[optind - 1]);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dmkv logger: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }
    logSetup("logger", 0, LOG_INFO);
    signal(SIGPIPE, SIG_IGN);
    code = 1;
    pthread_mutex_init(&lg->lock, NULL);
    bufInit(&lg->scratch);
    lg->hist = traceHistoryCreate(cfg->max_events);
    if (cfg->log_file[0]) {
        if (mkdirParents(cfg->log_file) != 0) {
            fprintf(stderr, "dmkv logger: cannot create the directory of %s: %s\n", cfg->log_file,
                    strerror(errno));
            goto out_hist;
        }
        loggerLoadFile(lg);
        lg->file = fopen(cfg->log_file, "a+");
        if (!lg->file) {
            fprintf(stderr, "dmkv logger: cannot open %s: %s\n", cfg->log_file, strerror(errno));
            goto out_hist;
        }
        /* A crash may have left half a line: end it, so the next event
         * starts a line of its own (the torn one is skipped at load). */
        if (fseek(lg->file, -1, SEEK_END) == 0) {
            int last = fgetc(lg->file);
            fseek(lg->file, 0, SEEK_END);
            if (last != '\n' && last != EOF) fputc('\n', lg->file);
        }
    }
    uv_loop_init(&lg->loop);
    netHandlers h = {.ctx = lg, .on_open = onOpen, .on_data = onData, .on_close = onClose};
    lg->net = netServerCreate(&lg->loop, &h);
    char err[300];
    if (netServerListen(lg->net, cfg->host, cfg->port, err, sizeof err) != 0) {
        fprintf(stderr, "dmkv logger: %s\n", err);
        netServerShutdown(lg->net, NULL);
        uv_run(&lg->loop, UV_RUN_DEFAULT);
        goto out_loop;
    }
    if (cfg->http_port) {
        struct sockaddr_storage http_addr;
        unsigned http_flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
        if (loggerHttpAddress(cfg->host, cfg->http_port, &http_addr, &http_flags) == 0)
            lg->http = MHD_start_daemon(http_flags, (uint16_t)cfg->http_port, NULL, NULL, onHttp,
                                        lg, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&http_addr,
                                        MHD_OPTION_CONNECTION_LIMIT, 64u,
                                        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
        if (!lg->http) {
            fprintf(stderr, "dmkv logger: cannot serve HTTP on %s port %d (in use?)\n", cfg->host,
                    cfg->http_port);
            netServerShutdown(lg->net, NULL);
            uv_run(&lg->loop, UV_RUN_DEFAULT);
            goto out_loop;
        }
    }
    uv_signal_init(&lg->loop, &lg->sigint);
    uv_signal_init(&lg->loop, &lg->sigterm);
    lg->sigint.data = lg->sigterm.data = lg;
    uv_signal_start(&lg->sigint, onSignal, SIGINT);
    uv_signal_start(&lg->sigterm, onSignal, SIGTERM);
    uv_timer_init(&lg->loop, &lg->print_timer);
    lg->print_timer.data = lg;
    if (cfg->interval_s > 0)
        uv_timer_start(&lg->print_timer, onPrintTimer, (uint64_t)cfg->interval_s * 1000,
                       (uint64_t)cfg->interval_s * 1000);
    logInfo("logger ready: nodes send to %s:%d, %" PRIu64 " events loaded from %s", cfg->host,
            cfg->port, lg->loaded, cfg->log_file);
    if (cfg->http_port) logInfo("space-time diagram: http://%s:%d/", cfg->host, cfg->http_port);
    uv_run(&lg->loop, UV_RUN_DEFAULT);
    code = 0;
out_loop:
    if (lg->http) MHD_stop_daemon(lg->http);
    netServerFree(lg->net);
    uv_loop_close(&lg->loop);
out_hist:
    if (lg->file) fclose(lg->file);
    traceHistoryFree(lg->hist);
    bufFree(&lg->scratch);
    pthread_mutex_destroy(&lg->lock);
out:
    free(lg);
    return code;
bad_value:
    fprintf(stderr, "dmkv logger: bad value '%s' for %s (see dmkv logger --help)\n", optarg,
            argv[optind - 1]);
    free(lg);
    return 2;
}
