/* libFuzzer target for what the agent and the client verbs parse from
 * their command line, their environment and the files they read.
 *
 * Each input is used five ways:
 *  - split at newlines into the arguments of `dmkv agent`
 *    (serverParseArgs): whatever they are, the parse returns 0, 1 (help)
 *    or -1, and a configuration it accepts is consistent (ports in range
 *    and distinct from the Raft port, an address to advertise, a query
 *    buffer that holds the largest argument, --peers entries that parse);
 *  - as one --peers entry (serverParsePeer) and as a size (parseBytes);
 *  - as the contents of a --cluster-key-file (keyringLoadFile, through a
 *    memfd): it must accept exactly what keyringParse accepts of the same
 *    text when the file is text within the size limit, and refuse it
 *    otherwise, with a one-line reason;
 *  - as the client verbs' --nodes / $DMKV_NODES list (cliParseNodes), the
 *    line `dmkv cmd` splits (cliSplitCommand), and the `dmkv dev` state
 *    file that every client verb reads for its default nodes
 *    (cliDevDefault, through $DMKV_DEV_STATE).
 * The agent's error messages go to stderr; they are silenced while it
 * parses unless FUZZ_VERBOSE is set (the sanitizers' reports too, so
 * reproduce a crash with FUZZ_VERBOSE=1). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli/cli.h"
#include "crypt/crypt.h"
#include "server/server.h"

#define FUZZ_MAX_ARGS 64

static int fuzzMemfd = -1, fuzzDevNull = -1, fuzzStderr = -1;
static char fuzzMemfdPath[64];
static bool fuzzVerbose;

static void fuzzFail(const char *what) {
    if (fuzzStderr >= 0) dup2(fuzzStderr, 2);
    fprintf(stderr, "fuzz_config: %s\n", what);
    abort();
}

static void fuzzSetup(void) {
    if (fuzzMemfd >= 0) return;
    if (cryptInit() != 0) fuzzFail("cryptInit failed");
    fuzzMemfd = memfd_create("fuzz_config", 0);
    fuzzDevNull = open("/dev/null", O_WRONLY);
    fuzzStderr = dup(2);
    if (fuzzMemfd < 0 || fuzzDevNull < 0 || fuzzStderr < 0) fuzzFail("setup failed");
    snprintf(fuzzMemfdPath, sizeof fuzzMemfdPath, "/proc/self/fd/%d", fuzzMemfd);
    setenv("DMKV_DEV_STATE", fuzzMemfdPath, 1);
    fuzzVerbose = getenv("FUZZ_VERBOSE") != NULL;
    /* --help prints the usage to stdout on every such input. */
    if (!fuzzVerbose && !freopen("/dev/null", "w", stdout)) fuzzFail("cannot silence stdout");
}

static void quiet(bool on) {
    if (fuzzVerbose) return;
    fflush(stderr);
    dup2(on ? fuzzDevNull : fuzzStderr, 2);
}

/* The memfd holds exactly data[0..size). */
static void fuzzWriteFile(const uint8_t *data, size_t size) {
    if (ftruncate(fuzzMemfd, 0) != 0 || (size && pwrite(fuzzMemfd, data, size, 0) != (ssize_t)size))
        fuzzFail("cannot fill the memfd");
}

static void fuzzAgentArgs(const char *text) {
    char *copy = xstrdup(text);
    char *argv[FUZZ_MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "agent";
    for (char *s = copy; argc <= FUZZ_MAX_ARGS;) {
        argv[argc++] = s;
        char *nl = strchr(s, '\n');
        if (!nl) break;
        *nl = '\0';
        s = nl + 1;
    }
    argv[argc] = NULL;
    static serverConfig cfg;
    quiet(true);
    int rc = serverParseArgs(&cfg, argc, argv);
    quiet(false);
    if (rc != 0 && rc != 1 && rc != -1) fuzzFail("serverParseArgs returned something else");
    if (rc == 0) {
        if (cfg.id == 0) fuzzFail("id 0 accepted");
        if (cfg.tcp_port < 1 || cfg.tcp_port > 65535 || cfg.udp_port < 1 || cfg.udp_port > 65535 ||
            cfg.raft_port < 1 || cfg.raft_port > 65535)
            fuzzFail("port out of range accepted");
        if (cfg.raft_port == cfg.tcp_port || cfg.raft_port == cfg.udp_port)
            fuzzFail("Raft port equal to the client or gossip port");
        if (!cfg.advertise[0]) fuzzFail("nothing to advertise");
        if (cfg.max_query_bytes < cfg.max_bulk_bytes + 1024)
            fuzzFail("query buffer smaller than the largest argument");
        if (cfg.cluster_key[0] && cfg.cluster_key_file[0]) fuzzFail("two key sources accepted");
        char *peers = xstrdup(cfg.peers), *save = NULL;
        for (char *e = strtok_r(peers, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
            serverPeer p;
            char why[300];
            if (serverParsePeer(e, &p, why, sizeof why) != 0) fuzzFail("bad --peers accepted");
        }
        free(peers);
    }
    free(copy);
}

static void fuzzPeer(const char *text) {
    char *entry = xstrdup(text);
    serverPeer p;
    char why[300];
    why[0] = '\0';
    if (serverParsePeer(entry, &p, why, sizeof why) == 0) {
        if (p.id == 0 || p.tcp_port < 1 || p.tcp_port > 65535 || p.udp_port < 0 ||
            p.udp_port > 65535 || !p.host[0] || strnlen(p.host, sizeof p.host) == sizeof p.host)
            fuzzFail("peer entry out of range accepted");
    } else if (!why[0] || strchr(why, '\n')) {
        if (!strchr(text, '\n')) fuzzFail("peer refused without a one-line reason");
    }
    free(entry);
    uint64_t bytes = 0;
    if (parseBytes(text, &bytes) == 0 && (text[0] < '0' || text[0] > '9'))
        fuzzFail("size without leading digit accepted");
}

static void checkReason(const char *err, size_t cap) {
    size_t len = strnlen(err, cap);
    if (len == cap || len == 0 || memchr(err, '\n', len)) fuzzFail("reason is not one line");
}

static void fuzzKeyFile(const uint8_t *data, size_t size, const char *text) {
    fuzzWriteFile(data, size);
    keyring *fromFile = NULL, *fromText = NULL;
    char err[512];
    int rf = keyringLoadFile(&fromFile, fuzzMemfdPath, err, sizeof err);
    if (rf != 0) checkReason(err, sizeof err);
    bool text_like = size <= KEYRING_MAX_FILE_BYTES && !memchr(data, '\0', size);
    int rt = keyringParse(&fromText, text, err, sizeof err);
    if (!text_like && rf == 0) fuzzFail("a binary or oversized key file was accepted");
    if (text_like && (rf == 0) != (rt == 0)) fuzzFail("key file and key text disagree");
    if (rf == 0 && rt == 0 && keyringCount(fromFile) != keyringCount(fromText))
        fuzzFail("key file and key text give other key counts");
    if ((rf == 0) != (fromFile != NULL)) fuzzFail("keyringLoadFile result and ring disagree");
    keyringFree(fromFile);
    keyringFree(fromText);
}

static void fuzzClientInputs(const char *text) {
    cliNode nodes[8];
    char err[300];
    int n = cliParseNodes(text, nodes, 8, err, sizeof err);
    if (n > 8) fuzzFail("more nodes than room");
    for (int i = 0; i < n; i++) {
        if (nodes[i].port < 1 || nodes[i].port > 65535 ||
            strnlen(nodes[i].host, sizeof nodes[i].host) == sizeof nodes[i].host)
            fuzzFail("node out of range accepted");
    }
    cliArgs a;
    memset(&a, 0, sizeof a);
    if (cliSplitCommand(text, &a, err, sizeof err) == 0) {
        if (a.argc == 0) fuzzFail("empty command accepted");
        for (size_t i = 0; i < a.argc; i++)
            if (a.lens[i] > strlen(text)) fuzzFail("argument longer than the line");
        cliArgsFree(&a);
    }
    char out[64];
    if (cliDevDefault("NODES", out, sizeof out) &&
        (!out[0] || strnlen(out, sizeof out) == sizeof out))
        fuzzFail("dev state default empty or unterminated");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzzSetup();
    char *text = xmalloc(size + 1);
    if (size) memcpy(text, data, size);
    text[size] = '\0'; /* a NUL inside ends the text early, as in argv */
    fuzzAgentArgs(text);
    fuzzPeer(text);
    fuzzKeyFile(data, size, text);
    fuzzWriteFile(data, size); /* the dev state file */
    fuzzClientInputs(text);
    free(text);
    return 0;
}
