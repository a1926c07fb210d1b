/* dmkv lock: run a command while holding a named lock, like `consul lock`.
 *
 * The lock belongs to this process's connection: the node releases it
 * when the connection closes, so if dmkv lock dies the lock goes with it.
 * With --ttl the lock is also a lease that the coordinator ends unless it
 * is renewed, which covers what a closed connection cannot: a dmkv lock
 * that is stopped or cut off from the cluster while its node lives on.
 *
 * One thread, one poll() over two descriptors: the node's socket (the
 * LOCK, RENEW and UNLOCK replies, or its loss) and a self-pipe that the
 * signal handlers write to (SIGCHLD when the command ends, SIGINT/SIGTERM
 * to forward). Replies are read without blocking, so a slow node never
 * delays noticing the command's exit, and the poll timeout is always the
 * next thing due (a renewal, the lease's end, the kill deadline).
 *
 * The lease is judged from this side too: it is counted from the moment
 * the last confirmed RENEW was *sent*, which is no later than the
 * coordinator started it, so when dmkv lock believes it still holds the
 * lock, the coordinator believes so too. When the lease runs out before a
 * renewal is confirmed, or RENEW answers 0, or the connection breaks, the
 * lock is lost: the command gets SIGTERM (SIGKILL 2 s later) and dmkv lock
 * exits 3. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

/* The server's bounds (LOCK_NAME_MAX, LOCK_TTL_MAX_MS), checked before
 * anything is sent so a typo gets a usage error, not a node's. */
#define LOCK_CLI_NAME_MAX    512
#define LOCK_CLI_MS_MAX      86400000LL
#define LOCK_KILL_GRACE_MS   2000
#define LOCK_REPLY_MAX_BYTES (1u << 20)
#define LOCK_EXIT_LOST       3
#define LOCK_MAX_OUTSTANDING 4

enum { LOCK_OPT_TTL = 256, LOCK_OPT_WAIT };

typedef struct lockCliOpts {
    long long ttl_ms;  /* 0: no lease */
    long long wait_ms; /* 0: wait as long as it takes */
} lockCliOpts;

/* Which request each reply still owed answers, oldest first. */
typedef enum { LOCK_REQ_LOCK, LOCK_REQ_RENEW, LOCK_REQ_UNLOCK } lockReqKind;

typedef struct lockSession {
    cliConn conn;
    int node; /* 1-based, for messages */
    const char *name;
    char token[32];
    char ttl[24];
    lockReqKind owed[LOCK_MAX_OUTSTANDING];
    uint64_t owed_sent_ms[LOCK_MAX_OUTSTANDING];
    int nowed;
    char err[512];
} lockSession;

static int lock_sigpipe[2] = {-1, -1};

static void lockOnSignal(int sig, siginfo_t *si, void *uctx) {
    (void)uctx;
    int saved = errno;
    /* A signal the terminal sent went to the command as well (it is in
     * the same foreground process group); forwarding it would deliver it
     * twice. The kernel marks those SI_KERNEL. */
    unsigned char b = (unsigned char)sig;
    if ((sig == SIGINT || sig == SIGTERM) && si && si->si_code == SI_KERNEL) b |= 0x80;
    ssize_t n = write(lock_sigpipe[1], &b, 1);
    (void)n; /* a full pipe already holds a wake-up */
    errno = saved;
}

static uint64_t lockNowMs(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void lockUsage(void) {
    printf("Usage: dmkv lock NAME [--ttl MS] [--wait MS] [--node I] [--nodes LIST] -- COMMAND "
           "ARGS...\n\n"
           "Takes the distributed lock NAME on node I (waiting in line behind its holder),\n"
           "runs COMMAND while holding it, and releases it when COMMAND exits. COMMAND\n"
           "inherits stdin, stdout and stderr, and finds the lock in its environment:\n"
           "DMKV_LOCK_NAME, and DMKV_LOCK_TOKEN, the fencing token (a number larger than\n"
           "every earlier holder's; pass it to whatever the lock protects so it can refuse\n"
           "a late writer). SIGINT and SIGTERM sent to dmkv lock are passed on to COMMAND.\n\n"
           "The lock is held by dmkv lock's connection: it is released when dmkv lock dies.\n"
           "  --ttl MS   also make it a lease of MS milliseconds, renewed every MS/3; if a\n"
           "             renewal fails or comes too late, or the node cannot be reached,\n"
           "             the lock is lost: COMMAND gets SIGTERM (SIGKILL after 2 s) and\n"
           "             dmkv lock exits 3. COMMAND starts once a first renewal is\n"
           "             confirmed. [0: no lease]\n"
           "  --wait MS  give up when the lock is not granted within MS milliseconds\n"
           "             [0: wait as long as it takes]\n");
    cliVerbUsageOptions();
    printf("\nExit codes: COMMAND's exit status (128+N when signal N ended it), 1 the lock\n"
           "was not granted within --wait or the node answered with an error, 2 bad usage,\n"
           "3 the node could not be reached or the lock was lost while COMMAND ran,\n"
           "127 COMMAND could not be started.\n");
}

static int lockParseMs(const char *flag, const char *arg, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (!*arg || *end || errno || v < 0 || v > LOCK_CLI_MS_MAX) {
        fprintf(stderr, "dmkv lock: %s must be milliseconds from 0 to %lld, got '%s'\n", flag,
                LOCK_CLI_MS_MAX, arg);
        return CLI_USAGE;
    }
    *out = v;
    return -1;
}

static int lockOption(void *ctx, int code, const char *arg) {
    lockCliOpts *lo = ctx;
    if (code == LOCK_OPT_TTL) return lockParseMs("--ttl", arg, &lo->ttl_ms);
    if (code == LOCK_OPT_WAIT) return lockParseMs("--wait", arg, &lo->wait_ms);
    return -1;
}

/* Options that take a value, so the split below knows to skip it. */
static int lockOptionTakesValue(const char *a) {
    static const char *const with_value[] = {"--ttl",     "--wait",     "--node", "--nodes",
                                             "--timeout", "--password", "-a"};
    if (strchr(a, '=')) return 0;
    for (size_t i = 0; i < sizeof with_value / sizeof with_value[0]; i++)
        if (!strcmp(a, with_value[i])) return 1;
    return 0;
}

/* Splits argv into options, NAME and COMMAND. Options may come before
 * and after NAME; COMMAND follows "--", or, without one, starts at the
 * first word after NAME that is not an option (consul lock's form).
 * opts receives argv[0] and the options, NULL-terminated. */
static void lockSplitArgs(int argc, char **argv, char **opts, int *nopts, const char **name,
                          char ***cmd, int *ncmd) {
    *nopts = 0;
    opts[(*nopts)++] = argv[0];
    *name = NULL;
    *cmd = NULL;
    *ncmd = 0;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (a[0] == '-' && a[1]) {
            opts[(*nopts)++] = argv[i];
            if (lockOptionTakesValue(a) && i + 1 < argc) opts[(*nopts)++] = argv[++i];
            continue;
        }
        if (*name) break; /* the command, without "--" */
        *name = a;
    }
    if (i < argc) {
        *cmd = &argv[i];
        *ncmd = argc - i;
    }
    opts[*nopts] = NULL;
}

/* ---- replies, read without blocking ---- */

static int lockSend(lockSession *s, lockReqKind kind, size_t argc, const char *const *argv) {
    if (s->nowed == LOCK_MAX_OUTSTANDING) {
        snprintf(s->err, sizeof s->err, "node %d sent no reply to %d requests", s->node, s->nowed);
        return -1;
    }
    buf req;
    bufInit(&req);
    respAddCommand(&req, argc, argv, NULL);
    int rc = cliSendRaw(&s->conn, req.data, req.len, s->err, sizeof s->err);
    bufFree(&req);
    if (rc != 0) return -1;
    s->owed[s->nowed] = kind;
    s->owed_sent_ms[s->nowed] = lockNowMs();
    s->nowed++;
    return 0;
}

/* Takes one complete reply from what was received. Returns 1 with *out
 * (and the request it answers in *kind, *sent_ms), 0 when none is
 * complete yet, -1 on a malformed reply. */
static int lockNextReply(lockSession *s, respReply **out, lockReqKind *kind, uint64_t *sent_ms) {
    *out = NULL;
    if (!s->conn.in.len) return 0;
    respReplyLimits lim = {LOCK_REPLY_MAX_BYTES, 1024, 8};
    size_t used = 0;
    const char *perr = NULL;
    int r = respReplyParse(s->conn.in.data, s->conn.in.len, &lim, out, &used, &perr);
    if (r == RESP_PARSE_MORE) return 0;
    if (r != RESP_PARSE_DONE || s->nowed == 0) {
        snprintf(s->err, sizeof s->err, "node %d sent %s", s->node,
                 r == RESP_PARSE_DONE ? "a reply to nothing it was asked" : "a malformed reply");
        if (*out) respReplyFree(*out);
        *out = NULL;
        return -1;
    }
    bufConsume(&s->conn.in, used);
    *kind = s->owed[0];
    *sent_ms = s->owed_sent_ms[0];
    memmove(s->owed, s->owed + 1, (size_t)(s->nowed - 1) * sizeof s->owed[0]);
    memmove(s->owed_sent_ms, s->owed_sent_ms + 1,
            (size_t)(s->nowed - 1) * sizeof s->owed_sent_ms[0]);
    s->nowed--;
    return 1;
}

/* Reads what the socket has (it polled readable). -1 when it closed. */
static int lockReceive(lockSession *s) {
    bufReserve(&s->conn.in, 16 * 1024);
    ssize_t n = recv(s->conn.fd, s->conn.in.data + s->conn.in.len, s->conn.in.cap - s->conn.in.len,
                     MSG_DONTWAIT);
    if (n > 0) {
        s->conn.in.len += (size_t)n;
        return 0;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    snprintf(s->err, sizeof s->err, "the connection to node %d (%s) %s", s->node, s->conn.addr,
             n == 0 ? "was closed" : strerror(errno));
    return -1;
}

static int lockDrainSignals(int *forward) {
    unsigned char b[64];
    int child = 0;
    ssize_t n;
    while ((n = read(lock_sigpipe[0], b, sizeof b)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            int sig = b[i] & 0x7f;
            if (sig == SIGCHLD)
                child = 1;
            else if (forward)
                *forward = (b[i] & 0x80) ? -sig : sig;
        }
    }
    return child;
}

static int lockExitStatus(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

/* ---- phases ---- */

/* Sends LOCK and waits for the grant. Returns -1 once granted (token set),
 * or an exit code. */
static int lockAcquire(lockSession *s, const lockCliOpts *lo, int timeout_ms) {
    char ttl[24], wait[24];
    snprintf(ttl, sizeof ttl, "%lld", lo->ttl_ms);
    snprintf(wait, sizeof wait, "%lld", lo->wait_ms);
    const char *av[4] = {"LOCK", s->name, ttl, wait};
    if (lockSend(s, LOCK_REQ_LOCK, 4, av) != 0) {
        fprintf(stderr, "dmkv lock: node %d: %s\n", s->node, s->err);
        return CLI_UNREACHABLE;
    }
    /* The node answers nil when --wait runs out; past that (and a reply
     * timeout more) it is not answering at all. */
    uint64_t give_up = lo->wait_ms ? lockNowMs() + (uint64_t)lo->wait_ms + (uint64_t)timeout_ms : 0;
    for (;;) {
        respReply *r = NULL;
        lockReqKind kind;
        uint64_t sent;
        int got = lockNextReply(s, &r, &kind, &sent);
        if (got < 0) {
            fprintf(stderr, "dmkv lock: %s\n", s->err);
            return CLI_UNREACHABLE;
        }
        if (got > 0) {
            int rc = -1;
            if (r->type == RESP_INTEGER && r->integer > 0) {
                snprintf(s->token, sizeof s->token, "%lld", r->integer);
            } else if (r->type == RESP_NIL || r->type == RESP_NIL_ARRAY) {
                fprintf(stderr, "dmkv lock: %s not acquired within %lld ms\n", s->name,
                        lo->wait_ms);
                rc = CLI_SERVER_ERROR;
            } else {
                buf b;
                bufInit(&b);
                cliFormatReply(r, &b);
                fprintf(stderr, "dmkv lock: node %d answered LOCK with %.*s\n", s->node, (int)b.len,
                        b.data);
                bufFree(&b);
                rc = CLI_SERVER_ERROR;
            }
            respReplyFree(r);
            return rc;
        }
        int wait_ms = -1;
        if (give_up) {
            uint64_t now = lockNowMs();
            if (now >= give_up) {
                fprintf(stderr,
                        "dmkv lock: %s not acquired within %lld ms (node %d did not answer)\n",
                        s->name, lo->wait_ms, s->node);
                return CLI_SERVER_ERROR;
            }
            wait_ms = (int)(give_up - now);
        }
        struct pollfd pfd[2] = {{.fd = s->conn.fd, .events = POLLIN},
                                {.fd = lock_sigpipe[0], .events = POLLIN}};
        int pr = poll(pfd, 2, wait_ms);
        if (pr < 0 && errno != EINTR) {
            fprintf(stderr, "dmkv lock: poll: %s\n", strerror(errno));
            return CLI_UNREACHABLE;
        }
        if (pr > 0 && pfd[1].revents) {
            int sig = 0;
            lockDrainSignals(&sig);
            if (sig) {
                sig = sig < 0 ? -sig : sig;
                /* Closing the connection takes us out of the line. */
                fprintf(stderr, "dmkv lock: interrupted while waiting for %s\n", s->name);
                return 128 + sig;
            }
        }
        if (pr > 0 && pfd[0].revents && lockReceive(s) != 0) {
            fprintf(stderr, "dmkv lock: %s while waiting for %s\n", s->err, s->name);
            return CLI_UNREACHABLE;
        }
    }
}

static pid_t lockSpawn(const lockSession *s, char **cmd) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* The child: the lock in its environment, default signal handling. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &dfl, NULL);
    sigaction(SIGINT, &dfl, NULL);
    sigaction(SIGTERM, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (setenv("DMKV_LOCK_TOKEN", s->token, 1) != 0 || setenv("DMKV_LOCK_NAME", s->name, 1) != 0) {
        fprintf(stderr, "dmkv lock: cannot set the environment of %s\n", cmd[0]);
        _exit(127);
    }
    execvp(cmd[0], cmd);
    fprintf(stderr, "dmkv lock: cannot run %s: %s\n", cmd[0], strerror(errno));
    _exit(127);
}

/* Stops the command after the lock was lost: SIGTERM, SIGKILL after the
 * grace period. */
static void lockStopChild(pid_t pid) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) return;
    kill(pid, SIGTERM);
    uint64_t deadline = lockNowMs() + LOCK_KILL_GRACE_MS;
    for (;;) {
        if (waitpid(pid, &status, WNOHANG) == pid) return;
        uint64_t now = lockNowMs();
        if (now >= deadline) break;
        struct pollfd pfd = {.fd = lock_sigpipe[0], .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) > 0) lockDrainSignals(NULL);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

/* Runs the command while holding the lock. Returns the exit code.
 *
 * With a lease, the command starts only once a first RENEW is confirmed:
 * the grant alone does not say when the coordinator started counting
 * (the LOCK may have waited in line for longer than the ttl), a confirmed
 * RENEW does. */
static int lockHold(lockSession *s, const lockCliOpts *lo, char **cmd, int timeout_ms) {
    pid_t pid = 0;
    uint64_t ttl = (uint64_t)lo->ttl_ms;
    uint64_t interval = ttl / 3 ? ttl / 3 : 1;
    uint64_t lease_end = lockNowMs() + ttl; /* a bound for the first RENEW's answer only */
    uint64_t next_renew = 0;
    bool renewing = false, confirmed = false;
    int status = 0, exit_signal = 0;
    char lost[600] = "";
    for (;;) {
        uint64_t now = lockNowMs();
        if (ttl && !lost[0]) {
            if (now >= lease_end) {
                snprintf(lost, sizeof lost,
                         "its %llu ms lease ran out before a renewal was confirmed",
                         (unsigned long long)ttl);
            } else if (!renewing && now >= next_renew) {
                const char *av[4] = {"RENEW", s->name, s->token, s->ttl};
                if (lockSend(s, LOCK_REQ_RENEW, 4, av) != 0)
                    snprintf(lost, sizeof lost, "%s", s->err);
                renewing = true;
            }
        }
        if (lost[0]) break;
        if (!pid && (!ttl || confirmed)) {
            pid = lockSpawn(s, cmd);
            if (pid < 0) {
                fprintf(stderr, "dmkv lock: cannot start %s: %s\n", cmd[0], strerror(errno));
                return CLI_UNREACHABLE;
            }
        }
        int wait_ms = -1;
        if (ttl) {
            uint64_t due = renewing ? lease_end : (next_renew < lease_end ? next_renew : lease_end);
            wait_ms = due > now ? (int)(due - now) : 0;
        }
        struct pollfd pfd[2] = {{.fd = s->conn.fd, .events = POLLIN},
                                {.fd = lock_sigpipe[0], .events = POLLIN}};
        int pr = poll(pfd, 2, wait_ms);
        if (pr < 0 && errno != EINTR) {
            snprintf(lost, sizeof lost, "poll: %s", strerror(errno));
            break;
        }
        if (pr > 0 && pfd[1].revents) {
            int sig = 0;
            if (lockDrainSignals(&sig) && pid > 0 && waitpid(pid, &status, WNOHANG) == pid) break;
            if (sig && !pid) {
                exit_signal = sig < 0 ? -sig : sig;
                break;
            }
            if (sig > 0) kill(pid, sig);
        }
        if (pr > 0 && pfd[0].revents) {
            if (lockReceive(s) != 0) {
                snprintf(lost, sizeof lost, "%s", s->err);
                break;
            }
            respReply *r;
            lockReqKind kind;
            uint64_t sent;
            int got;
            while ((got = lockNextReply(s, &r, &kind, &sent)) > 0) {
                if (kind == LOCK_REQ_RENEW) {
                    renewing = false;
                    if (r->type == RESP_INTEGER && r->integer == 1) {
                        /* The coordinator restarted the lease after we sent. */
                        lease_end = sent + ttl;
                        next_renew = sent + interval;
                        confirmed = true;
                    } else if (r->type == RESP_INTEGER) {
                        snprintf(lost, sizeof lost,
                                 "RENEW answered 0: the lease had run out or the lock was "
                                 "taken away");
                    } else {
                        buf b;
                        bufInit(&b);
                        cliFormatReply(r, &b);
                        snprintf(lost, sizeof lost, "RENEW answered %.*s", (int)b.len, b.data);
                        bufFree(&b);
                    }
                }
                respReplyFree(r);
            }
            if (got < 0) snprintf(lost, sizeof lost, "%s", s->err);
            if (lost[0]) break;
        }
    }
    if (exit_signal) {
        fprintf(stderr, "dmkv lock: interrupted before %s started\n", cmd[0]);
        return 128 + exit_signal;
    }
    if (lost[0]) {
        fprintf(stderr, "dmkv lock: lost the lock %s (%s)\n", s->name, lost);
        if (pid > 0) lockStopChild(pid);
        return LOCK_EXIT_LOST;
    }
    /* The command is done: give the lock back. */
    int code = lockExitStatus(status);
    const char *av[3] = {"UNLOCK", s->name, s->token};
    if (lockSend(s, LOCK_REQ_UNLOCK, 3, av) != 0) return code; /* closing releases it anyway */
    uint64_t give_up = lockNowMs() + (uint64_t)timeout_ms;
    for (;;) {
        respReply *r;
        lockReqKind kind;
        uint64_t sent;
        int got;
        while ((got = lockNextReply(s, &r, &kind, &sent)) > 0) {
            bool unlocked = kind == LOCK_REQ_UNLOCK;
            if (unlocked && !(r->type == RESP_INTEGER && r->integer == 1))
                fprintf(stderr,
                        "dmkv lock: warning: %s was no longer held by token %s when %s exited\n",
                        s->name, s->token, cmd[0]);
            respReplyFree(r);
            if (unlocked) return code;
        }
        uint64_t now = lockNowMs();
        if (got < 0 || now >= give_up) return code;
        struct pollfd pfd = {.fd = s->conn.fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)(give_up - now));
        if (pr > 0 && lockReceive(s) != 0) return code;
    }
}

int cliMainLock(int argc, char **argv) {
    static const struct option extra[] = {
        {"ttl", required_argument, 0, LOCK_OPT_TTL},
        {"wait", required_argument, 0, LOCK_OPT_WAIT},
        {0, 0, 0, 0},
    };
    char **opts = xcalloc((size_t)argc + 1, sizeof *opts);
    int nopts;
    const char *name;
    char **cmd;
    int ncmd;
    lockSplitArgs(argc, argv, opts, &nopts, &name, &cmd, &ncmd);
    lockCliOpts lo = {0, 0};
    cliVerbOpts o;
    int rc = cliVerbParse("lock", nopts, opts, &o, extra, lockOption, &lo, lockUsage);
    if (rc < 0 && optind < nopts) {
        fprintf(stderr, "dmkv lock: unexpected argument '%s' (see dmkv lock --help)\n",
                opts[optind]);
        rc = CLI_USAGE;
    }
    free(opts);
    if (rc >= 0) return rc;
    if (!name) {
        fprintf(stderr, "dmkv lock: missing NAME (usage: dmkv lock NAME [--ttl MS] [--wait MS] "
                        "-- COMMAND ARGS...)\n");
        return CLI_USAGE;
    }
    size_t namelen = strlen(name);
    if (namelen < 1 || namelen > LOCK_CLI_NAME_MAX) {
        fprintf(stderr, "dmkv lock: NAME must be 1 to %d bytes, got %zu\n", LOCK_CLI_NAME_MAX,
                namelen);
        return CLI_USAGE;
    }
    if (ncmd == 0) {
        fprintf(stderr,
                "dmkv lock: missing COMMAND to run under the lock (dmkv lock %s -- "
                "COMMAND ARGS...)\n",
                name);
        return CLI_USAGE;
    }

    if (pipe2(lock_sigpipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        fprintf(stderr, "dmkv lock: pipe: %s\n", strerror(errno));
        return CLI_UNREACHABLE;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = lockOnSignal;
    sa.sa_flags = SA_SIGINFO | SA_NOCLDSTOP; /* no SA_RESTART: poll returns */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    lockSession s;
    memset(&s, 0, sizeof s);
    s.node = o.node + 1;
    s.name = name;
    snprintf(s.ttl, sizeof s.ttl, "%lld", lo.ttl_ms);
    rc = cliConnectNode(&s.conn, &o.nodes[o.node], o.timeout_ms, o.password, s.err, sizeof s.err);
    if (rc != CLI_OK) {
        fprintf(stderr, "dmkv lock: node %d: %s\n", s.node, s.err);
        return rc;
    }
    /* cliConnect leaves the socket blocking; every read here is after a
     * poll, with MSG_DONTWAIT. */
    rc = lockAcquire(&s, &lo, o.timeout_ms);
    if (rc < 0) rc = lockHold(&s, &lo, cmd, o.timeout_ms);
    cliClose(&s.conn);
    return rc;
}
