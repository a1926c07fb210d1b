/* A blocking RESP client for the CLI verbs.
 *
 * The CLI talks to one node at a time and waits for each answer, so plain
 * blocking sockets with a poll()-based timeout are the simplest correct
 * tool; the agent's own node-to-node links use the libuv loop instead. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#include "cli/cli.h"

#define CLI_REPLY_MAX_BULK     (1ull << 30)
#define CLI_REPLY_MAX_ELEMENTS (1u << 24)
#define CLI_REPLY_MAX_DEPTH    16

int cliParseNodes(const char *list, cliNode *out, int max, char *err, size_t errlen) {
    int n = 0;
    const char *p = list;
    if (!*p) {
        snprintf(err, errlen, "the node list is empty (expected host:port,host:port)");
        return -1;
    }
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char entry[300];
        if (len == 0 || len >= sizeof entry) {
            snprintf(err, errlen, "bad node entry in '%s' (expected host:port)", list);
            return -1;
        }
        memcpy(entry, p, len);
        entry[len] = '\0';
        char *eq = strchr(entry, '=');
        if (eq) *eq = '\0';
        /* host:tcp or host:tcp:udp (the prototype's peer syntax) */
        char *colon = strchr(entry, ':');
        if (entry[0] == '[') { /* [ipv6]:port */
            char *close = strchr(entry, ']');
            colon = close && close[1] == ':' ? close + 1 : NULL;
        }
        if (!colon || colon == entry) {
            snprintf(err, errlen, "bad node '%s' (expected host:port)", entry);
            return -1;
        }
        *colon = '\0';
        char *portstr = colon + 1;
        char *udp = strchr(portstr, ':');
        if (udp) *udp = '\0';
        char *pend;
        long port = strtol(portstr, &pend, 10);
        if (*pend || port < 1 || port > 65535) {
            snprintf(err, errlen, "bad port '%s' in node list (expected 1..65535)", portstr);
            return -1;
        }
        if (n >= max) {
            snprintf(err, errlen, "too many nodes (at most %d)", max);
            return -1;
        }
        char *host = entry;
        if (host[0] == '[') {
            host++;
            host[strlen(host) - 1] = '\0';
        }
        snprintf(out[n].host, sizeof out[n].host, "%s", host);
        out[n].port = (int)port;
        n++;
        p += len;
        if (*p == ',') p++;
    }
    return n;
}

static int waitFd(int fd, short events, int timeout_ms) {
    struct pollfd pfd = {.fd = fd, .events = events};
    int rc;
    do rc = poll(&pfd, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    return rc;
}

int cliConnect(cliConn *c, const char *host, int port, int timeout_ms, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->timeout_ms = timeout_ms;
    bufInit(&c->in);
    snprintf(c->addr, sizeof c->addr, "%s:%d", host, port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int last_errno = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int fl = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc < 0 && errno == EINPROGRESS) {
            if (waitFd(fd, POLLOUT, timeout_ms) <= 0) {
                errno = ETIMEDOUT;
                rc = -1;
            } else {
                int so = 0;
                socklen_t sl = sizeof so;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl);
                errno = so;
                rc = so ? -1 : 0;
            }
        }
        if (rc == 0) {
            fcntl(fd, F_SETFL, fl);
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            c->fd = fd;
            break;
        }
        last_errno = errno;
        close(fd);
    }
    freeaddrinfo(res);
    if (c->fd < 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", c->addr, strerror(last_errno));
        return -1;
    }
    return 0;
}

void cliClose(cliConn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    bufFree(&c->in);
}

static int fail(cliConn *c, char *err, size_t errlen, const char *what) {
    snprintf(err, errlen, "%s: %s", c->addr, what);
    cliClose(c);
    return -1;
}

int cliSendRaw(cliConn *c, const char *data, size_t len, char *err, size_t errlen) {
    if (c->fd < 0) return fail(c, err, errlen, "not connected");
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail(c, err, errlen, strerror(errno));
        off += (size_t)n;
    }
    return 0;
}

int cliReadReply(cliConn *c, respReply **out, char *err, size_t errlen) {
    *out = NULL;
    if (c->fd < 0) return fail(c, err, errlen, "not connected");
    respReplyLimits lim = {CLI_REPLY_MAX_BULK, CLI_REPLY_MAX_ELEMENTS, CLI_REPLY_MAX_DEPTH};
    for (;;) {
        if (c->in.len) {
            size_t used = 0;
            const char *perr = NULL;
            int r = respReplyParse(c->in.data, c->in.len, &lim, out, &used, &perr);
            if (r == RESP_PARSE_DONE) {
                bufConsume(&c->in, used);
                return 0;
            }
            if (r == RESP_PARSE_ERROR) return fail(c, err, errlen, perr ? perr : "malformed reply");
        }
        if (c->timeout_ms > 0 && waitFd(c->fd, POLLIN, c->timeout_ms) <= 0)
            return fail(c, err, errlen, "timed out waiting for a reply");
        bufReserve(&c->in, 64 * 1024);
        ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) return fail(c, err, errlen, "connection closed by the node");
        if (n < 0) return fail(c, err, errlen, strerror(errno));
        c->in.len += (size_t)n;
    }
}

int cliCall(cliConn *c, size_t argc, const char *const *argv, const size_t *lens, respReply **out,
            char *err, size_t errlen) {
    *out = NULL;
    if (c->fd < 0) return fail(c, err, errlen, "not connected");
    buf req;
    bufInit(&req);
    respAddCommand(&req, argc, argv, lens);
    int rc = cliSendRaw(c, req.data, req.len, err, errlen);
    bufFree(&req);
    if (rc != 0) return rc;
    return cliReadReply(c, out, err, errlen);
}

static bool isPlainText(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 32 && ch != '\n' && ch != '\r' && ch != '\t') || ch == 127) return false;
    }
    return true;
}

static void appendQuoted(buf *out, const char *s, size_t len) {
    bufAppendChar(out, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '\\':
            bufAppendStr(out, "\\\\");
            break;
        case '"':
            bufAppendStr(out, "\\\"");
            break;
        case '\n':
            bufAppendStr(out, "\\n");
            break;
        case '\r':
            bufAppendStr(out, "\\r");
            break;
        case '\t':
            bufAppendStr(out, "\\t");
            break;
        default:
            if (ch < 32 || ch >= 127)
                bufPrintf(out, "\\x%02x", ch);
            else
                bufAppendChar(out, (char)ch);
        }
    }
    bufAppendChar(out, '"');
}

static void formatAt(const respReply *r, buf *out, int indent) {
    switch (r->type) {
    case RESP_STRING:
        bufAppend(out, r->str, r->len);
        break;
    case RESP_ERROR:
        bufAppendStr(out, "(error) ");
        bufAppend(out, r->str, r->len);
        break;
    case RESP_INTEGER:
        bufPrintf(out, "(integer) %lld", r->integer);
        break;
    case RESP_NIL:
    case RESP_NIL_ARRAY:
        bufAppendStr(out, "(nil)");
        break;
    case RESP_BULK:
        if (r->len > 0 && isPlainText(r->str, r->len))
            bufAppend(out, r->str, r->len);
        else
            appendQuoted(out, r->str, r->len);
        break;
    case RESP_ARRAY:
        if (r->elements == 0) {
            bufAppendStr(out, "(empty array)");
            break;
        }
        for (size_t i = 0; i < r->elements; i++) {
            if (i > 0) bufPrintf(out, "\n%*s", indent, "");
            char tmp[32];
            int pre = snprintf(tmp, sizeof tmp, "%zu) ", i + 1);
            bufAppend(out, tmp, (size_t)pre);
            formatAt(r->element[i], out, indent + pre);
        }
        break;
    default:
        bufAppendStr(out, "(unknown reply)");
    }
}

void cliFormatReply(const respReply *r, buf *out) {
    formatAt(r, out, 0);
}
