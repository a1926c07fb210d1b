/* `dmkv logger`: the process that collects every node's events.
 *
 * Nodes push batches of JSON-lines events over the Redis protocol
 * (LOG.EVENTS); the logger validates each batch as a whole, keeps the
 * most recent events in memory, appends them to a JSON-lines file so a
 * restart keeps the history, prints the three orderings every --interval
 * seconds, answers TRACE queries (dmkv trace) and serves the space-time
 * diagram over HTTP (--http). How a query (TRACE's arguments, the HTTP
 * query parameters) is read is in logger/query.h. */
#ifndef DMKV_LOGGER_LOGGER_H
#define DMKV_LOGGER_LOGGER_H

int loggerMain(int argc, char **argv);

#endif
