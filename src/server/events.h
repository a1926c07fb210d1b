/* The node side of event tracing: every client operation, replication
 * message, lock step and membership change is an event stamped with the
 * node's Lamport time and vector clock, queued in memory and pushed in
 * batches to the logger (--logger-addr). Private to the server module.
 *
 * The queue is bounded and the push is asynchronous: a slow, absent or
 * black-holed logger costs events (dropped and counted in INFO), never a
 * client's time. Without --logger-addr an event costs one counter. */
#ifndef DMKV_SERVER_EVENTS_H
#define DMKV_SERVER_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef struct server server;
typedef struct uv_loop_s uv_loop_t;

/* Starts the pusher when cfg.logger_addr is set. Returns 0 or -1. */
int eventsStart(server *s, uv_loop_t *loop, char *err, size_t errlen);
/* Sends what is queued (bounded wait), then closes. */
void eventsStop(server *s);
bool eventsEnabled(const server *s);

/* A local event: ticks the node clock, then records it. */
void eventsLocal(server *s, const char *kind, const char *key, size_t key_len, const char *detail,
                 size_t detail_len);
/* Records an event at the clock's current value, for an operation that
 * has just ticked it (a write's new version). */
void eventsAtCurrentClock(server *s, const char *kind, const char *key, size_t key_len,
                          const char *detail, size_t detail_len, const char *msg);

void eventsInfo(const server *s, buf *out);

#endif
