/* dmkv race: concurrent writers on different nodes, released together.
 *
 * The point of a race is that the commands leave at the same instant, so
 * every connection (and its AUTH) is made before any command is sent, and
 * one thread per command waits on a barrier; the barrier's release is the
 * start line. Each thread times its own command with CLOCK_MONOTONIC.
 * After the race every node is asked for each key the commands touched
 * (cliGetAll, the reading dmkv getall makes, values only), which shows
 * whether the nodes ended up agreeing. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

typedef struct raceRunner {
    cliConn conn;
    const cliArgs *cmd;
    pthread_barrier_t *start;
    respReply *reply;
    char err[512];
    int failed;
    double latency_ms;
} raceRunner;

static double raceNowMs(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *raceRunnerMain(void *arg) {
    raceRunner *r = arg;
    pthread_barrier_wait(r->start);
    double t0 = raceNowMs();
    r->failed = cliCall(&r->conn, r->cmd->argc, r->cmd->argv, r->cmd->lens, &r->reply, r->err,
                        sizeof r->err);
    r->latency_ms = raceNowMs() - t0;
    return NULL;
}

/* One line per key: "key color: node1=red node2=blue DIFFER". Returns
 * true when a node could not be asked. */
static bool racePrintKey(const cliVerbOpts *o, const char *key, size_t keylen, FILE *out) {
    cliNodeRead *reads = xcalloc((size_t)o->nnodes, sizeof *reads);
    cliGetAll(o, key, keylen, false, reads);
    bool unreachable = false;
    buf line;
    bufInit(&line);
    bufAppend(&line, "key ", 4);
    bufAppend(&line, key, keylen);
    bufAppendChar(&line, ':');
    for (int i = 0; i < o->nnodes; i++) {
        bufPrintf(&line, " node%d=", i + 1);
        if (reads[i].value) {
            cliFormatReply(reads[i].value, &line);
        } else {
            bufPrintf(&line, "(unreachable)");
            unreachable = true;
        }
    }
    bufPrintf(&line, "  %s\n", cliReadsAgree(reads, o->nnodes) ? "agree" : "DIFFER");
    fwrite(line.data, 1, line.len, out);
    bufFree(&line);
    cliNodeReadsFree(reads, o->nnodes);
    free(reads);
    return unreachable;
}

int cliRaceRun(const cliVerbOpts *o, size_t ncmds, const cliArgs *cmds, const char *const *raw,
               FILE *out) {
    if (ncmds < 2) {
        fprintf(stderr, "dmkv race: needs at least 2 commands, got %zu\n", ncmds);
        return CLI_USAGE;
    }
    if ((size_t)o->nnodes < ncmds) {
        fprintf(stderr,
                "dmkv race: %zu commands need %zu nodes, but --nodes lists %d (command i goes to "
                "node i)\n",
                ncmds, ncmds, o->nnodes);
        return CLI_USAGE;
    }
    raceRunner *runners = xcalloc(ncmds, sizeof *runners);
    size_t connected = 0;
    int code = CLI_OK;
    for (; connected < ncmds; connected++) {
        raceRunner *r = &runners[connected];
        r->cmd = &cmds[connected];
        int rc = cliConnectNode(&r->conn, &o->nodes[connected], o->timeout_ms, o->password, r->err,
                                sizeof r->err);
        if (rc != CLI_OK) {
            fprintf(stderr, "dmkv race: node %zu: %s\n", connected + 1, r->err);
            code = rc;
            break;
        }
    }
    if (code != CLI_OK) {
        for (size_t i = 0; i < connected; i++) cliClose(&runners[i].conn);
        free(runners);
        return code;
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)ncmds);
    pthread_t *threads = xcalloc(ncmds, sizeof *threads);
    for (size_t i = 0; i < ncmds; i++) {
        runners[i].start = &start;
        if (pthread_create(&threads[i], NULL, raceRunnerMain, &runners[i]) != 0) {
            /* Without every thread the barrier would never open. */
            fprintf(stderr, "dmkv race: cannot start a thread\n");
            abort();
        }
    }
    for (size_t i = 0; i < ncmds; i++) pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);
    free(threads);

    buf line;
    bufInit(&line);
    for (size_t i = 0; i < ncmds; i++) {
        raceRunner *r = &runners[i];
        const cliNode *n = &o->nodes[i];
        line.len = 0;
        bufPrintf(&line, "node %zu (%s:%d) %s -> ", i + 1, n->host, n->port, raw[i]);
        if (r->failed) {
            bufPrintf(&line, "(connection error) %s", r->err);
            code = CLI_UNREACHABLE;
        } else {
            cliFormatReply(r->reply, &line);
            if (r->reply->type == RESP_ERROR && code == CLI_OK) code = CLI_SERVER_ERROR;
            cliClose(&r->conn);
        }
        bufPrintf(&line, "  %.2f ms\n", r->latency_ms);
        fwrite(line.data, 1, line.len, out);
        respReplyFree(r->reply);
    }
    bufFree(&line);
    free(runners);

    /* Each distinct key (a command's second argument) once, in order. */
    for (size_t i = 0; i < ncmds; i++) {
        if (cmds[i].argc < 2) continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = cmds[j].argc >= 2 && cmds[j].lens[1] == cmds[i].lens[1] &&
                   memcmp(cmds[j].argv[1], cmds[i].argv[1], cmds[i].lens[1]) == 0;
        if (seen) continue;
        if (racePrintKey(o, cmds[i].argv[1], cmds[i].lens[1], out)) code = CLI_UNREACHABLE;
    }
    fflush(out);
    return code;
}

static void raceUsage(void) {
    printf("Usage: dmkv race [--nodes LIST] \"CMD1\" \"CMD2\" [\"CMD3\"...]\n\n"
           "Sends command i to node i (in --nodes order), all at the same instant,\n"
           "and prints each reply with its latency. Then prints, for every key the\n"
           "commands name, its value on every node and whether the nodes agree.\n"
           "Needs at least 2 commands and at least as many nodes as commands.\n");
    cliVerbUsageCommon();
}

int cliMainRace(int argc, char **argv) {
    cliVerbOpts *o = xcalloc(1, sizeof *o);
    int rc = cliVerbParse("race", argc, argv, o, NULL, NULL, NULL, raceUsage);
    if (rc >= 0) {
        free(o);
        return rc;
    }
    size_t ncmds = (size_t)(argc - optind);
    if (ncmds < 2) {
        fprintf(stderr, "dmkv race: needs at least 2 commands, got %zu (see dmkv race --help)\n",
                ncmds);
        free(o);
        return CLI_USAGE;
    }
    cliArgs *cmds = xcalloc(ncmds, sizeof *cmds);
    const char **raw = xcalloc(ncmds, sizeof *raw);
    size_t parsed = 0;
    rc = CLI_OK;
    for (; parsed < ncmds; parsed++) {
        char err[512];
        raw[parsed] = argv[optind + (int)parsed];
        if (cliSplitCommand(raw[parsed], &cmds[parsed], err, sizeof err) != 0) {
            fprintf(stderr, "dmkv race: %s\n", err);
            rc = CLI_USAGE;
            break;
        }
    }
    if (rc == CLI_OK) rc = cliRaceRun(o, ncmds, cmds, raw, stdout);
    for (size_t i = 0; i < parsed; i++) cliArgsFree(&cmds[i]);
    free(cmds);
    free(raw);
    free(o);
    return rc;
}
