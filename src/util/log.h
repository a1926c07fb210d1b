/* Process-wide logging to stderr, one line per message.
 *
 * Lines carry a UTC timestamp, the node id once known, and a level, so the
 * interleaved output of a local cluster (dmkv dev) stays readable. */
#ifndef DMKV_UTIL_LOG_H
#define DMKV_UTIL_LOG_H

#include <stdint.h>

enum logLevel { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

void logSetup(const char *role, uint32_t node_id, enum logLevel min_level);
void logMsg(enum logLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define logDebug(...) logMsg(LOG_DEBUG, __VA_ARGS__)
#define logInfo(...) logMsg(LOG_INFO, __VA_ARGS__)
#define logWarn(...) logMsg(LOG_WARN, __VA_ARGS__)
#define logError(...) logMsg(LOG_ERROR, __VA_ARGS__)

/* Wall-clock time in microseconds since the epoch, and a monotonic clock in
 * milliseconds; the I/O layers read time here and pass it to logic. */
uint64_t timeNowUs(void);
uint64_t timeMonoMs(void);

#endif
