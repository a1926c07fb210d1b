/* `dmkv dev`: a whole local cluster with one command.
 *
 * Starts a logger and N agents on loopback, each on ports that were free a
 * moment before (a start that loses a port race is retried on new ports),
 * with their data in a temporary directory unless --data-dir says where.
 * It waits until every node sees every other as alive and the lock
 * coordinator (Raft) has a leader every node knows and can use, prints how
 * to reach the cluster, and writes the node list to a small file the client
 * verbs read when $DMKV_NODES is not set, so `dmkv put color red` just works
 * (the file is /tmp/dmkv-dev-<uid>.env, or $DMKV_DEV_STATE).
 * Ctrl-C or SIGTERM stops every process it started, by pid, and removes
 * what it created. Logs go to files, so the terminal stays readable.
 *
 * Each agent's Raft port is chosen with its client port (client port +
 * DEV_RAFT_PORT_OFFSET, free too) and passed explicitly, so every node
 * computes its peers' Raft ports the same way. Raft remembers its peers'
 * addresses in the data directory, so with --data-dir the ports are saved
 * (DIR/dev-ports) and a later run on that directory uses them again. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

#define DEV_MAX_NODES        9
#define DEV_READY_TIMEOUT_MS 20000 /* every node sees every node alive */
#define DEV_COORD_TIMEOUT_MS 20000 /* then: a Raft leader, every coordinator usable */
#define DEV_STOP_TIMEOUT_MS  5000
#define DEV_START_ATTEMPTS   5
/* The agents' default distance of the Raft port from the client port
 * (docs/LOCKS.md); dev passes --raft-port itself, so this is a choice,
 * the same for every node. */
#define DEV_RAFT_PORT_OFFSET 2000
#define DEV_PORTS_FILE       "dev-ports"

typedef struct devProc {
    pid_t pid;
    char name[16];
    int tcp, udp, http, raft;
    char log[PATH_MAX];
    bool exited;
} devProc;

/* What a wait for the cluster ended with. */
enum devWait { DEV_WAIT_READY, DEV_WAIT_RETRY, DEV_WAIT_FAIL };

static volatile sig_atomic_t dev_stop;
static bool dev_stopping; /* exits are expected now: do not report them */

static void devOnSignal(int sig) {
    (void)sig;
    dev_stop = 1;
}

static int devFreePort(int type) {
    int fd = socket(AF_INET, type, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* True when port can be bound on loopback right now. TCP checks use
 * SO_REUSEADDR like libuv's listeners, so a port whose last connection is
 * in TIME_WAIT counts as free, as it is for the agent. */
static bool devPortIsFree(int type, int port) {
    if (port < 1 || port > 65535) return false;
    int fd = socket(AF_INET, type, 0);
    if (fd < 0) return false;
    int one = 1;
    if (type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static uint64_t devNowMs(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void devSleepMs(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static pid_t devSpawn(const char *self, char *const argv[], const char *log) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    /* Children stop when dmkv dev tells them to, not on the terminal's ^C. */
    setpgid(0, 0);
    execv(self, argv);
    _exit(127);
}

/* One command to the node on port; returns the reply or NULL. */
static respReply *devCall(int port, size_t argc, const char *const *argv) {
    cliConn c;
    char err[256];
    if (cliConnect(&c, "127.0.0.1", port, 500, err, sizeof err) != 0) return NULL;
    respReply *r = NULL;
    if (cliCall(&c, argc, argv, NULL, &r, err, sizeof err) != 0) r = NULL;
    cliClose(&c);
    return r;
}

static respReply *devCall1(int port, const char *cmd) {
    const char *av[1] = {cmd};
    return devCall(port, 1, av);
}

/* True when the node on port sees `want` members, all alive. */
static bool devAllAlive(int port, int want) {
    respReply *r = devCall1(port, "MEMBERS");
    if (!r) return false;
    int alive = 0;
    if (r->type == RESP_ARRAY)
        for (size_t i = 0; i < r->elements; i++) {
            const respReply *m = r->element[i];
            if (m->type == RESP_ARRAY && m->elements >= 5 && m->element[4]->str &&
                !strcmp(m->element[4]->str, "alive"))
                alive++;
        }
    respReplyFree(r);
    return alive == want;
}

/* The value of field in an INFO reply, copied to out ("" when absent). */
static void devInfoField(const respReply *r, const char *field, char *out, size_t cap) {
    out[0] = '\0';
    if (!r || (r->type != RESP_BULK && r->type != RESP_STRING) || !r->str) return;
    size_t flen = strlen(field);
    for (const char *line = r->str; line && *line;) {
        const char *eol = strpbrk(line, "\r\n");
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        if (len > flen && !strncmp(line, field, flen) && line[flen] == ':') {
            size_t vlen = len - flen - 1;
            if (vlen >= cap) vlen = cap - 1;
            memcpy(out, line + flen + 1, vlen);
            out[vlen] = '\0';
            return;
        }
        line = eol ? eol + strspn(eol, "\r\n") : NULL;
    }
}

/* The lock coordinator as one node sees it (INFO coordinator). */
typedef struct devCoord {
    bool ready;  /* coordinator_ready:1 */
    long leader; /* raft_leader, 0 when none is known */
    char leader_addr[64];
    char term[24];
} devCoord;

static bool devCoordinator(int port, devCoord *out) {
    const char *av[2] = {"INFO", "coordinator"};
    respReply *r = devCall(port, 2, av);
    memset(out, 0, sizeof *out);
    if (!r) return false;
    char v[64];
    devInfoField(r, "coordinator_ready", v, sizeof v);
    out->ready = !strcmp(v, "1");
    devInfoField(r, "raft_leader", v, sizeof v);
    out->leader = strtol(v, NULL, 10);
    devInfoField(r, "raft_leader_addr", out->leader_addr, sizeof out->leader_addr);
    devInfoField(r, "raft_term", out->term, sizeof out->term);
    respReplyFree(r);
    return true;
}

static bool devExited(devProc *p) {
    if (p->exited || p->pid <= 0) return true;
    int status;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == p->pid) {
        p->exited = true;
        if (dev_stopping) return true;
        if (WIFSIGNALED(status))
            fprintf(stderr, "dmkv dev: %s (pid %d) was killed by signal %d\n", p->name, (int)p->pid,
                    WTERMSIG(status));
        else
            fprintf(stderr, "dmkv dev: %s (pid %d) exited with status %d (log: %s)\n", p->name,
                    (int)p->pid, WEXITSTATUS(status), p->log);
    }
    return p->exited;
}

static void devStopAll(devProc *procs, int n) {
    bool was_stopping = dev_stopping;
    dev_stopping = true;
    for (int i = n - 1; i >= 0; i--)
        if (!devExited(&procs[i])) kill(procs[i].pid, SIGTERM);
    uint64_t deadline = devNowMs() + DEV_STOP_TIMEOUT_MS;
    for (;;) {
        bool all = true;
        for (int i = 0; i < n; i++) all = devExited(&procs[i]) && all;
        if (all) break;
        if (devNowMs() > deadline) break;
        devSleepMs(20);
    }
    for (int i = 0; i < n; i++)
        if (!devExited(&procs[i])) {
            kill(procs[i].pid, SIGKILL);
            waitpid(procs[i].pid, NULL, 0);
            procs[i].exited = true;
        }
    dev_stopping = was_stopping;
}

static int devRemoveEntry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Removes a directory this run created (the temporary one, or a node's
 * directory that did not exist before), without following symlinks. */
static void devRemoveTree(const char *dir) {
    nftw(dir, devRemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
}

void cliDevStatePath(char *out, size_t cap) {
    const char *override = getenv("DMKV_DEV_STATE");
    if (override && *override)
        snprintf(out, cap, "%s", override);
    else
        snprintf(out, cap, "/tmp/dmkv-dev-%u.env", (unsigned)getuid());
}

bool cliDevDefault(const char *field, char *out, size_t cap) {
    char path[PATH_MAX];
    cliDevStatePath(path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[4096];
    bool found = false;
    size_t flen = strlen(field);
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, field, flen) == 0 && line[flen] == '=') {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, cap, "%s", line + flen + 1);
            found = out[0] != '\0';
        }
    }
    fclose(f);
    return found;
}

/* True when port is one of the TCP ports already given out. */
static bool devTcpTaken(const devProc *procs, int n, int port) {
    for (int i = 0; i < n; i++)
        if (procs[i].tcp == port || procs[i].http == port || procs[i].raft == port) return true;
    return false;
}

static bool devUdpTaken(const devProc *procs, int n, int port) {
    for (int i = 0; i < n; i++)
        if (procs[i].udp == port || procs[i].raft == port) return true;
    return false;
}

/* Picks procs[first..first+n)'s client, gossip and Raft ports: free right
 * now, and no port given twice (procs[0..first) are taken already). */
static int devPickAgentPorts(devProc *procs, int first, int n) {
    for (int i = first; i < first + n; i++) {
        devProc *p = &procs[i];
        p->tcp = p->udp = p->raft = 0;
        for (int tries = 0; tries < 200 && !p->raft; tries++) {
            int tcp = devFreePort(SOCK_STREAM);
            int raft = tcp + DEV_RAFT_PORT_OFFSET;
            if (tcp <= 0 || raft > 65535 || devTcpTaken(procs, i, tcp) ||
                devTcpTaken(procs, i, raft) || !devPortIsFree(SOCK_STREAM, raft))
                continue;
            p->tcp = tcp;
            p->raft = raft;
        }
        for (int tries = 0; tries < 200 && p->raft && !p->udp; tries++) {
            int udp = devFreePort(SOCK_DGRAM);
            if (udp > 0 && udp != p->raft && !devUdpTaken(procs, i, udp)) p->udp = udp;
        }
        if (!p->raft || !p->udp) return -1;
    }
    return 0;
}

/* With --data-dir: the ports a previous run saved. Returns 1 when loaded,
 * 0 when there is no file, -1 (after a message) when it cannot be used. */
static int devLoadPorts(const char *dir, devProc *nodes, int n) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, DEV_PORTS_FILE);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int count = 0, id, tcp, udp, raft;
    bool bad = false;
    char line[256];
    while (!bad && fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        bad = sscanf(line, "node=%d tcp=%d udp=%d raft=%d", &id, &tcp, &udp, &raft) != 4 ||
              id != count + 1 || id > DEV_MAX_NODES;
        if (!bad && count < n) {
            nodes[count].tcp = tcp;
            nodes[count].udp = udp;
            nodes[count].raft = raft;
        }
        count += !bad;
    }
    fclose(f);
    if (bad) {
        fprintf(stderr,
                "dmkv dev: cannot read %s (lines of node=N tcp=P udp=P raft=P); remove it "
                "or use another --data-dir\n",
                path);
        return -1;
    }
    if (count == 0) return 0;
    if (count != n) {
        fprintf(stderr,
                "dmkv dev: %s holds a cluster of %d node%s (see %s), not %d; give --nodes %d "
                "or another --data-dir\n",
                dir, count, count == 1 ? "" : "s", path, n, count);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const struct {
            const char *what;
            int type, port;
        } checks[] = {{"client", SOCK_STREAM, nodes[i].tcp},
                      {"Raft", SOCK_STREAM, nodes[i].raft},
                      {"gossip", SOCK_DGRAM, nodes[i].udp}};
        for (size_t k = 0; k < sizeof checks / sizeof checks[0]; k++) {
            if (devPortIsFree(checks[k].type, checks[k].port)) continue;
            fprintf(stderr,
                    "dmkv dev: port %d, node %d's %s port, is in use; this cluster's lock "
                    "coordinator keeps its members' addresses, so the nodes must come back on the "
                    "ports in %s: stop what uses it, or use a new --data-dir\n",
                    checks[k].port, i + 1, checks[k].what, path);
            return -1;
        }
    }
    return 1;
}

static void devSavePorts(const char *dir, const devProc *nodes, int n) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, DEV_PORTS_FILE);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "dmkv dev: cannot write %s: %s\n", path, strerror(errno));
        return;
    }
    fprintf(f, "# dmkv dev: the nodes' ports, used again by the next run on this directory\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "node=%d tcp=%d udp=%d raft=%d\n", i + 1, nodes[i].tcp, nodes[i].udp,
                nodes[i].raft);
    fclose(f);
}

/* True when the log's text after offset says a port was taken. */
static bool devLostPortRace(const char *log, long offset) {
    FILE *f = fopen(log, "r");
    if (!f) return false;
    bool lost = false;
    char line[1024];
    if (fseek(f, offset, SEEK_SET) == 0)
        while (!lost && fgets(line, sizeof line, f))
            lost = strstr(line, "address already in use") || strstr(line, "raft start in");
    fclose(f);
    return lost;
}

static long devLogSize(const char *log) {
    struct stat st;
    return stat(log, &st) == 0 ? (long)st.st_size : 0;
}

/* Waits until every agent sees all n alive, then until every coordinator
 * is ready and all name the same leader (copied to leader). */
static int devWaitReady(devProc *agents, int n, const long *log_offsets, const char *logs,
                        devCoord *leader) {
    uint64_t deadline = devNowMs() + DEV_READY_TIMEOUT_MS;
    bool members_ok = false;
    for (;;) {
        int ready = 0;
        for (int i = 0; i < n; i++) {
            if (devExited(&agents[i])) {
                if (devLostPortRace(agents[i].log, log_offsets[i])) return DEV_WAIT_RETRY;
                fprintf(stderr, "dmkv dev: %s did not start; see %s\n", agents[i].name,
                        agents[i].log);
                return DEV_WAIT_FAIL;
            }
            if (!members_ok) {
                ready += devAllAlive(agents[i].tcp, n);
                continue;
            }
            devCoord c;
            if (devCoordinator(agents[i].tcp, &c) && c.ready && c.leader > 0 &&
                (i == 0 || c.leader == leader->leader)) {
                if (i == 0) *leader = c;
                ready++;
            }
        }
        if (ready == n && members_ok) return DEV_WAIT_READY;
        if (ready == n) {
            members_ok = true;
            deadline = devNowMs() + DEV_COORD_TIMEOUT_MS;
            continue;
        }
        if (dev_stop) return DEV_WAIT_FAIL;
        if (devNowMs() > deadline) {
            if (!members_ok)
                fprintf(stderr,
                        "dmkv dev: the nodes did not all see each other within %d s; logs in %s\n",
                        DEV_READY_TIMEOUT_MS / 1000, logs);
            else
                fprintf(stderr,
                        "dmkv dev: the lock coordinator (Raft) had no leader that every node "
                        "knows and can use within %d s (INFO coordinator on each node says "
                        "why); logs in %s\n",
                        DEV_COORD_TIMEOUT_MS / 1000, logs);
            return DEV_WAIT_FAIL;
        }
        devSleepMs(50);
    }
}

static void devUsage(void) {
    printf("Usage: dmkv dev [--nodes N] [--use-mutex 0|1] [--data-dir DIR]\n\n"
           "Starts a logger and N agents on loopback (free ports), waits until every\n"
           "node sees every other alive and the lock coordinator has a leader, prints\n"
           "the --nodes string and the logger's browser URL, and stops everything on\n"
           "Ctrl-C or SIGTERM. The client verbs use this cluster when $DMKV_NODES is\n"
           "not set.\n\n"
           "  --nodes N        agents to start, 1..%d [3]\n"
           "  --use-mutex 0|1  passed to every agent [0]\n"
           "  --data-dir DIR   keep data, logs and the nodes' ports here; a later run on\n"
           "                   DIR uses the same ports (default: a temporary directory,\n"
           "                   removed on exit)\n"
           "  -h, --help       this help\n",
           DEV_MAX_NODES);
}

int cliMainDev(int argc, char **argv) {
    static const struct option opts[] = {
        {"nodes", required_argument, 0, 'n'},
        {"use-mutex", required_argument, 0, 'm'},
        {"data-dir", required_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int nnodes = 3, mutex = 0;
    const char *data_dir = NULL;
    optind = 1;
    opterr = 0;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            nnodes = (int)strtol(optarg, &end, 10);
            if (*end || nnodes < 1 || nnodes > DEV_MAX_NODES) {
                fprintf(stderr, "dmkv dev: --nodes must be 1..%d, got '%s'\n", DEV_MAX_NODES,
                        optarg);
                return CLI_USAGE;
            }
            break;
        case 'm':
            if (strcmp(optarg, "0") && strcmp(optarg, "1")) {
                fprintf(stderr, "dmkv dev: --use-mutex must be 0 or 1, got '%s'\n", optarg);
                return CLI_USAGE;
            }
            mutex = atoi(optarg);
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 'h':
            devUsage();
            return CLI_OK;
        case ':':
            fprintf(stderr, "dmkv dev: %s needs a value\n", argv[optind - 1]);
            return CLI_USAGE;
        default:
            fprintf(stderr, "dmkv dev: unknown flag %s (see dmkv dev --help)\n", argv[optind - 1]);
            return CLI_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dmkv dev: unexpected argument '%s'\n", argv[optind]);
        return CLI_USAGE;
    }
    char self[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) {
        fprintf(stderr, "dmkv dev: cannot find the dmkv binary: %s\n", strerror(errno));
        return 1;
    }
    self[sl] = '\0';
    char dir[PATH_MAX];
    bool temp = data_dir == NULL;
    if (temp) {
        snprintf(dir, sizeof dir, "/tmp/dmkv-dev.XXXXXX");
        if (!mkdtemp(dir)) {
            fprintf(stderr, "dmkv dev: cannot create a temporary directory: %s\n", strerror(errno));
            return 1;
        }
    } else {
        snprintf(dir, sizeof dir, "%s", data_dir);
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "dmkv dev: cannot create %s: %s\n", dir, strerror(errno));
            return 1;
        }
    }
    char logs[PATH_MAX];
    snprintf(logs, sizeof logs, "%s/logs", dir);
    mkdir(logs, 0755);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = devOnSignal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    devProc procs[DEV_MAX_NODES + 1];
    memset(procs, 0, sizeof procs);
    int nprocs = 0, code = 1;
    char state[PATH_MAX] = "";

    /* The logger. */
    devProc *lg = &procs[nprocs++];
    snprintf(lg->name, sizeof lg->name, "logger");
    snprintf(lg->log, sizeof lg->log, "%s/logger.log", logs);
    for (int attempt = 0; attempt < DEV_START_ATTEMPTS && !lg->pid; attempt++) {
        lg->tcp = devFreePort(SOCK_STREAM);
        lg->http = devFreePort(SOCK_STREAM);
        char tcp[16], http[16], file[PATH_MAX];
        snprintf(tcp, sizeof tcp, "%d", lg->tcp);
        snprintf(http, sizeof http, "%d", lg->http);
        snprintf(file, sizeof file, "%s/logger/events.jsonl", dir);
        /* clang-format off */
        char *av[] = {self, "logger", "--logger-tcp", tcp, "--http", http,
                      "--interval", "0", "--log-file", file, NULL};
        /* clang-format on */
        lg->pid = devSpawn(self, av, lg->log);
        uint64_t deadline = devNowMs() + 5000;
        respReply *r = NULL;
        while (!r && !devExited(lg) && devNowMs() < deadline) {
            r = devCall1(lg->tcp, "PING");
            if (!r) devSleepMs(20);
        }
        if (!r) {
            if (!devExited(lg)) {
                kill(lg->pid, SIGKILL);
                waitpid(lg->pid, NULL, 0);
            }
            lg->pid = 0;
            lg->exited = false;
        }
        respReplyFree(r);
    }
    if (!lg->pid) {
        fprintf(stderr, "dmkv dev: the logger did not start; see %s\n", lg->log);
        goto out;
    }
    char logger_addr[64];
    snprintf(logger_addr, sizeof logger_addr, "127.0.0.1:%d", lg->tcp);

    /* The agents. Ports first, so every --peers list is complete; a start
     * that loses a port race starts every agent again on new ports, from
     * empty directories, since Raft has already written the old ones. */
    devProc *agents = &procs[nprocs];
    bool fresh[DEV_MAX_NODES];
    for (int i = 0; i < nnodes; i++) {
        devProc *p = &agents[i];
        snprintf(p->name, sizeof p->name, "node %d", i + 1);
        snprintf(p->log, sizeof p->log, "%s/node-%d.log", logs, i + 1);
        char data[PATH_MAX];
        struct stat st;
        snprintf(data, sizeof data, "%s/node-%d", dir, i + 1);
        fresh[i] = stat(data, &st) != 0;
    }
    int saved = temp ? 0 : devLoadPorts(dir, agents, nnodes);
    if (saved < 0) goto out;
    char nodes[2048] = "";
    devCoord leader;
    memset(&leader, 0, sizeof leader);
    int wait = DEV_WAIT_RETRY;
    for (int attempt = 0; attempt < DEV_START_ATTEMPTS && wait == DEV_WAIT_RETRY; attempt++) {
        if (attempt > 0) {
            devStopAll(agents, nnodes);
            for (int i = 0; i < nnodes; i++) {
                char data[PATH_MAX];
                snprintf(data, sizeof data, "%s/node-%d", dir, i + 1);
                if (!fresh[i]) {
                    fprintf(stderr,
                            "dmkv dev: %s did not start (see %s); %s holds data from an earlier "
                            "run, so it is not moved to new ports\n",
                            agents[i].name, agents[i].log, data);
                    goto out;
                }
                devRemoveTree(data);
                agents[i].pid = 0;
                agents[i].exited = false;
            }
            fprintf(stderr, "dmkv dev: a port was taken while the nodes started; new ports\n");
        }
        if ((saved == 0 || attempt > 0) && devPickAgentPorts(procs, nprocs, nnodes) != 0) {
            fprintf(stderr, "dmkv dev: found no free ports for the nodes\n");
            goto out;
        }
        if (!temp) devSavePorts(dir, agents, nnodes);
        char peers[2048] = "";
        nodes[0] = '\0';
        for (int i = 0; i < nnodes; i++) {
            size_t pl = strlen(peers), nl = strlen(nodes);
            snprintf(peers + pl, sizeof peers - pl, "%s127.0.0.1:%d:%d=%d", i ? "," : "",
                     agents[i].tcp, agents[i].udp, i + 1);
            snprintf(nodes + nl, sizeof nodes - nl, "%s127.0.0.1:%d", i ? "," : "", agents[i].tcp);
        }
        long offsets[DEV_MAX_NODES];
        for (int i = 0; i < nnodes; i++) {
            devProc *p = &agents[i];
            char id[16], tcp[16], udp[16], raft[16], data[PATH_MAX], mx[4];
            snprintf(id, sizeof id, "%d", i + 1);
            snprintf(tcp, sizeof tcp, "%d", p->tcp);
            snprintf(udp, sizeof udp, "%d", p->udp);
            snprintf(raft, sizeof raft, "%d", p->raft);
            snprintf(data, sizeof data, "%s/node-%d", dir, i + 1);
            snprintf(mx, sizeof mx, "%d", mutex);
            /* clang-format off */
            char *av[] = {self, "agent", "--id", id, "--tcp", tcp, "--udp", udp,
                          "--raft-port", raft, "--peers", peers, "--logger-addr", logger_addr,
                          "--use-mutex", mx, "--data-dir", data, NULL};
            /* clang-format on */
            offsets[i] = devLogSize(p->log);
            p->pid = devSpawn(self, av, p->log);
        }
        wait = devWaitReady(agents, nnodes, offsets, logs, &leader);
    }
    nprocs += nnodes;
    if (wait != DEV_WAIT_READY) {
        if (wait == DEV_WAIT_RETRY)
            fprintf(stderr, "dmkv dev: the nodes lost a port race %d times; logs in %s\n",
                    DEV_START_ATTEMPTS, logs);
        goto out;
    }

    cliDevStatePath(state, sizeof state);
    FILE *sf = fopen(state, "w");
    if (sf) {
        fprintf(sf, "nodes=%s\nlogger=%s\nhttp=http://127.0.0.1:%d/\npid=%d\nlogger_pid=%d\n",
                nodes, logger_addr, lg->http, (int)getpid(), (int)lg->pid);
        fprintf(sf, "node_pids=");
        for (int i = 0; i < nnodes; i++) fprintf(sf, "%s%d", i ? "," : "", (int)agents[i].pid);
        fprintf(sf, "\nleader=%ld\ndata=%s\n", leader.leader, dir);
        fclose(sf);
    }
    printf("dmkv dev: %d node%s and a logger are running (data in %s%s).\n\n", nnodes,
           nnodes == 1 ? "" : "s", dir, temp ? ", removed on exit" : "");
    printf("  export DMKV_NODES=%s\n  export DMKV_LOGGER=%s\n\n", nodes, logger_addr);
    printf("  lock coordinator:    node %ld (%s), Raft term %s%s\n", leader.leader,
           leader.leader_addr, leader.term, mutex ? "; writes take its locks (--use-mutex 1)" : "");
    printf("  space-time diagram:  http://127.0.0.1:%d/\n", lg->http);
    printf("  logs:                %s\n", logs);
    printf("  processes:           logger %d", (int)lg->pid);
    for (int i = 0; i < nnodes; i++) printf(", node %d %d", i + 1, (int)agents[i].pid);
    printf("\n\n");
    printf("  try:  dmkv put color red\n        dmkv get --node 2 color\n        dmkv members\n"
           "        dmkv trace --order vector\n        redis-cli -p %d\n\n",
           agents[0].tcp);
    printf("Press Ctrl-C to stop.\n");
    fflush(stdout);
    while (!dev_stop) {
        for (int i = 0; i < nprocs; i++) devExited(&procs[i]);
        devSleepMs(100);
    }
    printf("\ndmkv dev: stopping\n");
    fflush(stdout);
    code = 0;
out:
    devStopAll(procs, 1 + nnodes); /* a slot never started has pid 0 */
    if (state[0]) unlink(state);
    if (temp && !strncmp(dir, "/tmp/dmkv-dev.", 14)) devRemoveTree(dir);
    return code;
}
