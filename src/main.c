/* dmkv: one binary, Consul-style subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "crypt/crypt.h"
#include "logger/logger.h"
#include "server/server.h"

static void usage(FILE *f) {
    fprintf(f, "Usage: dmkv <command> [flags]\n"
               "\n"
               "Server:\n"
               "  agent     run a node (dmkv agent --help for every flag)\n"
               "  logger    collect the nodes' events; orderings, ShiViz, diagram\n"
               "  dev       a whole local cluster (logger + 3 agents) in one command\n"
               "\n"
               "Client (all take --nodes host:port,... or $DMKV_NODES):\n"
               "  cmd       send any command: dmkv cmd \"SET color red\"\n"
               "  get       dmkv get KEY\n"
               "  put       dmkv put KEY VALUE\n"
               "  del       dmkv del KEY...\n"
               "  incr      dmkv incr KEY [BY]: add to an integer, print the new value\n"
               "  getall    KEY's value and version on every node, and whether they agree\n"
               "  members   the cluster as one node sees it, and who leads the locks\n"
               "  force-leave  dmkv force-leave ID: a dead member has left for good\n"
               "  leader    which node leads the lock coordinator (Raft), and its term\n"
               "  lock      dmkv lock NAME [--ttl MS] -- CMD...: run CMD holding a lock\n"
               "  race      send commands to several nodes at the same instant\n"
               "  bench     measure throughput and latency percentiles\n"
               "  repl      an interactive shell with history\n"
               "  trace     events from the logger in physical, Lamport or causal order\n"
               "\n"
               "  keygen    print a new random cluster key (for --cluster-key)\n"
               "  version   print the version\n"
               "\n"
               "Run 'dmkv <command> --help' for a command's flags.\n");
}

static int keygenMain(void) {
    if (cryptInit() != 0) {
        fprintf(stderr, "dmkv keygen: cannot initialise libsodium\n");
        return 1;
    }
    char key[128];
    keyringGenerate(key, sizeof key);
    printf("%s\n", key);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *verb = argv[1];
    if (!strcmp(verb, "-h") || !strcmp(verb, "--help") || !strcmp(verb, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(verb, "version") || !strcmp(verb, "--version")) {
        printf("dmkv %s\n", DMKV_VERSION);
        return 0;
    }
    if (!strcmp(verb, "agent")) return agentMain(argc - 1, argv + 1);
    if (!strcmp(verb, "logger")) return loggerMain(argc - 1, argv + 1);
    if (!strcmp(verb, "dev")) return cliMainDev(argc - 1, argv + 1);
    if (!strcmp(verb, "trace")) return cliMainTrace(argc - 1, argv + 1);
    if (!strcmp(verb, "cmd")) return cliMainCmd(argc - 1, argv + 1);
    if (!strcmp(verb, "get")) return cliMainGet(argc - 1, argv + 1);
    if (!strcmp(verb, "put")) return cliMainPut(argc - 1, argv + 1);
    if (!strcmp(verb, "del")) return cliMainDel(argc - 1, argv + 1);
    if (!strcmp(verb, "incr")) return cliMainIncr(argc - 1, argv + 1);
    if (!strcmp(verb, "getall")) return cliMainGetall(argc - 1, argv + 1);
    if (!strcmp(verb, "members")) return cliMainMembers(argc - 1, argv + 1);
    if (!strcmp(verb, "force-leave")) return cliMainForceLeave(argc - 1, argv + 1);
    if (!strcmp(verb, "leader")) return cliMainLeader(argc - 1, argv + 1);
    if (!strcmp(verb, "lock")) return cliMainLock(argc - 1, argv + 1);
    if (!strcmp(verb, "race")) return cliMainRace(argc - 1, argv + 1);
    if (!strcmp(verb, "bench")) return cliMainBench(argc - 1, argv + 1);
    if (!strcmp(verb, "repl")) return cliMainRepl(argc - 1, argv + 1);
    if (!strcmp(verb, "keygen")) return keygenMain();
    fprintf(stderr, "dmkv: unknown command '%s' (see dmkv --help)\n", verb);
    return 2;
}
