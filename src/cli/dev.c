/* `dmkv dev`: a whole local cluster with one command.
 *
 * Starts a logger and N agents on loopback, each on ports that were free a
 * moment before (a start that loses a port race is retried on new ports),
 * with their data in a temporary directory unless --data-dir says where.
 * It waits until every node sees every other as alive, prints how to reach
 * the cluster, and writes the node list to a small file the client verbs
 * read when $DMKV_NODES is not set, so `dmkv put color red` just works
 * (the file is /tmp/dmkv-dev-<uid>.env, or $DMKV_DEV_STATE).
 * Ctrl-C or SIGTERM stops every process it started, by pid, and removes
 * what it created. Logs go to files, so the terminal stays readable. */
#include <errno.h>
#include <fcntl.h>
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

#define DEV_MAX_NODES 9
#define DEV_READY_TIMEOUT_MS 20000
#define DEV_STOP_TIMEOUT_MS 5000

typedef struct devProc {
    pid_t pid;
    char name[16];
    int tcp, udp, http;
    char log[PATH_MAX];
    bool exited;
} devProc;

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
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
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

/* One PING or MEMBERS call; returns the reply or NULL. */
static respReply *devCall(int port, const char *cmd) {
    cliConn c;
    char err[256];
    if (cliConnect(&c, "127.0.0.1", port, 500, err, sizeof err) != 0) return NULL;
    const char *av[1] = {cmd};
    respReply *r = NULL;
    if (cliCall(&c, 1, av, NULL, &r, err, sizeof err) != 0) r = NULL;
    cliClose(&c);
    return r;
}

/* True when the node on port sees `want` members, all alive. */
static bool devAllAlive(int port, int want) {
    respReply *r = devCall(port, "MEMBERS");
    if (!r) return false;
    int alive = 0;
    if (r->type == RESP_ARRAY)
        for (size_t i = 0; i < r->elements; i++) {
            const respReply *m = r->element[i];
            if (m->type == RESP_ARRAY && m->elements >= 5 && m->element[4]->str && !strcmp(m->element[4]->str, "alive"))
                alive++;
        }
    respReplyFree(r);
    return alive == want;
}

static bool devExited(devProc *p) {
    if (p->exited || p->pid <= 0) return true;
    int status;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == p->pid) {
        p->exited = true;
        if (dev_stopping) return true;
        if (WIFSIGNALED(status))
            fprintf(stderr, "dmkv dev: %s (pid %d) was killed by signal %d\n", p->name, (int)p->pid, WTERMSIG(status));
        else
            fprintf(stderr, "dmkv dev: %s (pid %d) exited with status %d (log: %s)\n", p->name, (int)p->pid,
                    WEXITSTATUS(status), p->log);
    }
    return p->exited;
}

static void devStopAll(devProc *procs, int n) {
    dev_stopping = true;
    for (int i = n - 1; i >= 0; i--)
        if (!devExited(&procs[i])) kill(procs[i].pid, SIGTERM);
    uint64_t deadline = devNowMs() + DEV_STOP_TIMEOUT_MS;
    for (;;) {
        bool all = true;
        for (int i = 0; i < n; i++) all = devExited(&procs[i]) && all;
        if (all) return;
        if (devNowMs() > deadline) break;
        devSleepMs(20);
    }
    for (int i = 0; i < n; i++)
        if (!devExited(&procs[i])) {
            kill(procs[i].pid, SIGKILL);
            waitpid(procs[i].pid, NULL, 0);
            procs[i].exited = true;
        }
}

static int devRemoveTree(const char *dir) {
    char cmd[PATH_MAX + 32];
    /* Only a directory this process created with mkdtemp gets here. */
    if (strncmp(dir, "/tmp/dmkv-dev.", 14) != 0 || strchr(dir, '\'')) return -1;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

void cliDevStatePath(char *out, size_t cap) {
    const char *override = getenv("DMKV_DEV_STATE");
    if (override && *override) snprintf(out, cap, "%s", override);
    else snprintf(out, cap, "/tmp/dmkv-dev-%u.env", (unsigned)getuid());
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

static void devUsage(void) {
    printf("Usage: dmkv dev [--nodes N] [--use-mutex 0|1] [--data-dir DIR]\n\n"
           "Starts a logger and N agents on loopback (free ports), waits until every\n"
           "node sees every other alive, prints the --nodes string and the logger's\n"
           "browser URL, and stops everything on Ctrl-C or SIGTERM. The client verbs\n"
           "use this cluster when $DMKV_NODES is not set.\n\n"
           "  --nodes N        agents to start, 1..%d [3]\n"
           "  --use-mutex 0|1  passed to every agent [0]\n"
           "  --data-dir DIR   keep data and logs here (default: a temporary directory,\n"
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
                fprintf(stderr, "dmkv dev: --nodes must be 1..%d, got '%s'\n", DEV_MAX_NODES, optarg);
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
        case 'd': data_dir = optarg; break;
        case 'h': devUsage(); return CLI_OK;
        case ':': fprintf(stderr, "dmkv dev: %s needs a value\n", argv[optind - 1]); return CLI_USAGE;
        default: fprintf(stderr, "dmkv dev: unknown flag %s (see dmkv dev --help)\n", argv[optind - 1]); return CLI_USAGE;
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

    /* The logger. */
    devProc *lg = &procs[nprocs++];
    snprintf(lg->name, sizeof lg->name, "logger");
    snprintf(lg->log, sizeof lg->log, "%s/logger.log", logs);
    for (int attempt = 0; attempt < 5 && !lg->pid; attempt++) {
        lg->tcp = devFreePort(SOCK_STREAM);
        lg->http = devFreePort(SOCK_STREAM);
        char tcp[16], http[16], file[PATH_MAX];
        snprintf(tcp, sizeof tcp, "%d", lg->tcp);
        snprintf(http, sizeof http, "%d", lg->http);
        snprintf(file, sizeof file, "%s/logger/events.jsonl", dir);
        char *av[] = {self, "logger", "--logger-tcp", tcp, "--http", http, "--interval", "0", "--log-file", file, NULL};
        lg->pid = devSpawn(self, av, lg->log);
        uint64_t deadline = devNowMs() + 5000;
        respReply *r = NULL;
        while (!r && !devExited(lg) && devNowMs() < deadline) {
            r = devCall(lg->tcp, "PING");
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

    /* The agents: ports first, so every --peers list is complete. */
    for (int i = 0; i < nnodes; i++) {
        devProc *p = &procs[nprocs + i];
        snprintf(p->name, sizeof p->name, "node %d", i + 1);
        snprintf(p->log, sizeof p->log, "%s/node-%d.log", logs, i + 1);
        p->tcp = devFreePort(SOCK_STREAM);
        p->udp = devFreePort(SOCK_DGRAM);
    }
    char peers[2048] = "", nodes[2048] = "";
    for (int i = 0; i < nnodes; i++) {
        devProc *p = &procs[nprocs + i];
        size_t pl = strlen(peers), nl = strlen(nodes);
        snprintf(peers + pl, sizeof peers - pl, "%s127.0.0.1:%d:%d=%d", i ? "," : "", p->tcp, p->udp, i + 1);
        snprintf(nodes + nl, sizeof nodes - nl, "%s127.0.0.1:%d", i ? "," : "", p->tcp);
    }
    for (int i = 0; i < nnodes; i++) {
        devProc *p = &procs[nprocs++];
        char id[16], tcp[16], udp[16], data[PATH_MAX], mx[4];
        snprintf(id, sizeof id, "%d", i + 1);
        snprintf(tcp, sizeof tcp, "%d", p->tcp);
        snprintf(udp, sizeof udp, "%d", p->udp);
        snprintf(data, sizeof data, "%s/node-%d", dir, i + 1);
        snprintf(mx, sizeof mx, "%d", mutex);
        char *av[] = {self, "agent", "--id", id, "--tcp", tcp, "--udp", udp, "--peers", peers,
                      "--logger-addr", logger_addr, "--use-mutex", mx, "--data-dir", data, NULL};
        p->pid = devSpawn(self, av, p->log);
    }
    /* Ready when every node sees every node alive. */
    uint64_t deadline = devNowMs() + DEV_READY_TIMEOUT_MS;
    for (;;) {
        int ready = 0;
        for (int i = 1; i < nprocs; i++) {
            if (devExited(&procs[i])) {
                fprintf(stderr, "dmkv dev: %s did not start; see %s\n", procs[i].name, procs[i].log);
                goto out;
            }
            ready += devAllAlive(procs[i].tcp, nnodes);
        }
        if (ready == nnodes) break;
        if (dev_stop) goto out;
        if (devNowMs() > deadline) {
            fprintf(stderr, "dmkv dev: the nodes did not all see each other within %d s; logs in %s\n",
                    DEV_READY_TIMEOUT_MS / 1000, logs);
            goto out;
        }
        devSleepMs(50);
    }
    char state[PATH_MAX];
    cliDevStatePath(state, sizeof state);
    FILE *sf = fopen(state, "w");
    if (sf) {
        fprintf(sf, "nodes=%s\nlogger=%s\npid=%d\n", nodes, logger_addr, (int)getpid());
        fclose(sf);
    }
    printf("dmkv dev: %d node%s and a logger are running (data in %s%s).\n\n", nnodes, nnodes == 1 ? "" : "s",
           dir, temp ? ", removed on exit" : "");
    printf("  export DMKV_NODES=%s\n  export DMKV_LOGGER=%s\n\n", nodes, logger_addr);
    printf("  space-time diagram:  http://127.0.0.1:%d/\n", lg->http);
    printf("  logs:                %s\n\n", logs);
    printf("  try:  dmkv put color red\n        dmkv get --node 2 color\n        dmkv members\n"
           "        dmkv trace --order vector\n        redis-cli -p %d\n\n",
           procs[1].tcp);
    printf("Press Ctrl-C to stop.\n");
    fflush(stdout);
    while (!dev_stop) {
        for (int i = 0; i < nprocs; i++) devExited(&procs[i]);
        devSleepMs(100);
    }
    printf("\ndmkv dev: stopping\n");
    fflush(stdout);
    code = 0;
    unlink(state);
out:
    devStopAll(procs, nprocs);
    if (temp) devRemoveTree(dir);
    return code;
}
