/* The agent: one dmkv node serving the Redis protocol.
 *
 * This module owns the agent's configuration (flags and their defaults),
 * the client sessions, the command table and the loop-iteration batching
 * that ties replies to durable commits. Storage, parsing and sockets are
 * the store, resp and net modules. */
#ifndef DMKV_SERVER_SERVER_H
#define DMKV_SERVER_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "gossip/gossip.h"
#include "store/store.h"

typedef struct serverConfig {
    uint32_t id;
    char host[256];        /* address to bind (--host / --bind) */
    int tcp_port;          /* client port */
    int udp_port;          /* gossip port */
    int raft_port;         /* lock coordinator (Raft) port; every node uses the same offset from --tcp (default +2000) */
    bool raft_join;        /* start with no Raft configuration and wait to be added */
    char data_dir[1024];
    storeFsync fsync;
    char requirepass[512]; /* empty: no password */
    int maxclients;
    uint64_t max_bulk_bytes;
    uint64_t max_query_bytes;  /* per-client unread input */
    uint64_t max_output_bytes; /* per-client unsent output */
    uint64_t max_db_bytes;
    char peers[4096];      /* host:tcp[:udp]=id,... as given */
    char logger_addr[300];
    int use_mutex;
    int numnodes;
    int log_level;
    char advertise[64];        /* address peers use to reach us; default --host */
    char cluster_key[4096];    /* base64 keys, comma-separated (first one sends) */
    char cluster_key_file[1024];
    gossipConfig gossip;       /* membership timings (--probe-interval-ms ...) */
} serverConfig;

/* Fills defaults, then applies argv (everything after "agent"). Returns 0,
 * 1 when --help was printed, or -1 after printing a one-line error. */
int serverParseArgs(serverConfig *cfg, int argc, char **argv);
void serverPrintHelp(void);

/* Runs an agent until SIGINT/SIGTERM or SHUTDOWN. Returns an exit code. */
int serverRun(const serverConfig *cfg);

/* `dmkv agent ...` */
int agentMain(int argc, char **argv);

/* One --peers entry: host:tcp=id, host:tcp:udp=id, or [ipv6]:tcp[:udp]=id. */
typedef struct serverPeer {
    uint32_t id;
    char host[256];
    int tcp_port;
    int udp_port; /* 0 when not given */
} serverPeer;

/* Parses one entry (modified in place). Returns 0, or -1 with a reason. */
int serverParsePeer(char *entry, serverPeer *out, char *why, size_t whylen);

/* The Raft port of a node with this client port, given our own offset. */
int serverRaftPortFor(const serverConfig *cfg, int tcp_port);

/* Parses sizes like 512mb, 64k, 1gb, 1000 (bytes). Returns 0 or -1. */
int parseBytes(const char *s, uint64_t *out);

#endif
