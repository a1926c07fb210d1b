/* Event tracing: what a node records about itself, and what the logger
 * makes of it.
 *
 * This module owns the event record (traceEvent) and its JSON Lines form,
 * which is both what a node streams to the logger and what the logger
 * serves back; the logger's bounded history of received events; the three
 * orderings the logger shows (physical time, Lamport time, and causal
 * layers computed from the vector clocks) together with the detection of
 * concurrent writes to one key; and the views of a history: plain text,
 * JSON, a ShiViz log, and the HTML space-time page.
 *
 * Everything here is a pure function of the events it is given: no
 * sockets, files, clock reads or threads. The node's emitter, the logger's
 * server and the HTTP endpoint that serves the page live with their
 * callers.
 *
 * What the orderings assume. dmkv's nodeClock ticks a node's own vector
 * entry once for every event it records and merges the sender's clock on
 * every receive, so an event e of node i and an event f of node j != i
 * satisfy: f happened before e exactly when f.vc[j] <= e.vc[j]. The
 * causal layers and the concurrent-write detection rely on this (it is
 * what makes them O(n·k) instead of comparing all pairs), and they are
 * exact for every history whose clocks follow those rules, including a
 * window of it (events dropped by a node's queue, by the history ring, or
 * never logged). For clocks built some other way they still terminate and
 * return a well-formed result, which may differ from a pairwise
 * vclockCompare. */
#ifndef DMKV_TRACE_TRACE_H
#define DMKV_TRACE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock/clock.h"
#include "util/buf.h"

/* ---- Events ----------------------------------------------------------- */

/* Bounds every decoded event must respect; traceEventToJson truncates
 * key, detail and msg to them so that what a node writes always decodes. */
#define TRACE_KEY_MAX_BYTES    512
#define TRACE_DETAIL_MAX_BYTES 4096
#define TRACE_MSG_MAX_BYTES    64
#define TRACE_KIND_MAX_BYTES   23          /* fits traceEvent.kind with its NUL */
#define TRACE_LINE_MAX_BYTES   (64 * 1024) /* one JSON line, without its "\n" */
#define TRACE_BATCH_MAX_EVENTS 100000
/* Largest integer a JSON number may carry: 2^53 - 1. JSON readers (cJSON
 * here, JavaScript in the page) hold numbers as doubles, and above this a
 * double no longer tells which integer was written. Lamport times,
 * counters and microsecond timestamps stay far below it (2^53 us is 285
 * years). */
#define TRACE_JSON_MAX_INTEGER 9007199254740991ull

typedef enum traceKind {
    TRACE_KIND_GET,
    TRACE_KIND_PUT,
    TRACE_KIND_DEL,
    TRACE_KIND_INCR,
    TRACE_KIND_APPLY_LOCAL, /* a write applied to the local store */
    TRACE_KIND_REPL_SEND,   /* a replication message leaves */
    TRACE_KIND_REPL_RECV,   /* a replication message arrives */
    TRACE_KIND_MUTEX_REQ,
    TRACE_KIND_MUTEX_GOT,
    TRACE_KIND_MUTEX_REL,
    TRACE_KIND_MEMBER,   /* a membership change */
    TRACE_KIND_CONFLICT, /* concurrent versions detected */
    TRACE_KIND_COUNT
} traceKind;

/* One recorded event. seq numbers a node's events 1, 2, 3... The strings
 * are owned by the event (heap, freed by traceEventFree) and may be NULL.
 * msg pairs a message's send with its receive(s): the REPL_SEND and every
 * REPL_RECV of one message carry the same msg (a broadcast has several
 * receives). An all-zero traceEvent is a valid empty event. */
typedef struct traceEvent {
    uint32_t node;
    uint64_t seq;
    uint64_t wall_us; /* "ts_us" in JSON: the node's wall clock, microseconds */
    uint64_t lamport;
    vclock vc;
    char kind[24]; /* one of the kind names, NUL-terminated */
    char *key;
    char *detail;
    char *msg;
} traceEvent;

/* "PUT", "REPL_SEND"...; NULL for a value out of range. */
const char *traceKindName(traceKind k);
/* The kind with that exact name, or -1. */
int traceKindFromName(const char *name);
/* A write to a key: PUT, DEL, INCR or APPLY_LOCAL (with the event's key).
 * REPL_RECV is not one: it installs a write made elsewhere, which the
 * concurrent-write detection already sees at its origin, and counting it
 * too would report every replica of a conflict once more. */
bool traceKindIsWrite(const char *kind);
/* The sending and the receiving side of a message: REPL_SEND, REPL_RECV. */
bool traceKindIsSend(const char *kind);
bool traceKindIsReceive(const char *kind);

void traceEventInit(traceEvent *e);
void traceEventFree(traceEvent *e);
/* dst must be initialized; its old contents are released. */
void traceEventCopy(traceEvent *dst, const traceEvent *src);
void traceEventSetKind(traceEvent *e, traceKind k);
/* The event's own vector entry, vc[node] (0 when the clock lacks it). */
uint64_t traceEventOwnCounter(const traceEvent *e);
/* An array of pointers to events[0..n), for the functions below that take
 * pointer arrays. Free with free(). */
const traceEvent **traceEventPointers(const traceEvent *events, size_t n);

/* ---- JSON Lines form ---------------------------------------------------

   {"node":1,"seq":5,"ts_us":1732430000123456,"lamport":7,"vc":{"1":3,"2":1},
    "kind":"PUT","key":"color","detail":"red","msg":"1:17"}

   One object per line. key, detail and msg are left out when NULL. */

/* Appends the event as one JSON line ending in "\n". Strings are escaped
 * as JSON requires; bytes that are not valid UTF-8 become U+FFFD (keys
 * are binary-safe in dmkv, JSON text is not); key, detail and msg are cut
 * at a character boundary to their maximum sizes. Built for the node's
 * hot path: no allocation beyond out's growth. */
void traceEventToJson(const traceEvent *e, buf *out);

/* Decodes one line (without its "\n"). out must be initialized; on
 * success its old contents are released and replaced and 0 is returned.
 * On failure -1 is returned, out is untouched and err (if not NULL) says
 * what was wrong. Rejected: a line over TRACE_LINE_MAX_BYTES or holding a
 * NUL byte; anything but one JSON object; a missing, repeated or mistyped
 * field; node outside 1..UINT32_MAX; seq 0; an integer field that is
 * negative, fractional or above TRACE_JSON_MAX_INTEGER; a vc key that is
 * not a decimal node id (no sign, no leading zero) or is repeated, a vc
 * counter that is not a positive integer, a vc with more than
 * VCLOCK_MAX_ENTRIES entries or without the event's own node; an unknown
 * kind; key, detail or msg over their maximum sizes, not valid UTF-8, or
 * holding U+0000. Unknown fields are ignored, so nodes may add some. */
int traceEventFromJson(const char *line, size_t len, traceEvent *out, char *err, size_t errlen);

/* Decodes a batch of JSON lines ("\n" or "\r\n" separated; blank lines
 * skipped). All or nothing: on success returns 0 with *events a new array
 * of *n events (NULL when n is 0; free with traceBatchFree); on the first
 * bad line returns -1, allocates nothing and err names the line number
 * (1-based). A batch may hold at most TRACE_BATCH_MAX_EVENTS events. */
int traceBatchDecode(const char *data, size_t len, traceEvent **events, size_t *n, char *err,
                     size_t errlen);
void traceBatchFree(traceEvent *events, size_t n);

/* ---- History (the logger's memory) ------------------------------------ */

/* Returned by traceHistoryAdd. */
#define TRACE_OK            0
#define TRACE_ERR_DUPLICATE (-1) /* this (node, seq) was already added */
#define TRACE_ERR_INVALID   (-2) /* node 0 or seq 0 */

/* How many gaps in one node's seq numbers the duplicate check remembers.
 * Gaps appear when a node drops events; past this many, the oldest gap is
 * forgotten (treated as seen), so a straggler older than that is rejected
 * as a duplicate rather than letting the memory grow without bound. */
#define TRACE_HISTORY_MAX_GAPS 1024

typedef struct traceHistory traceHistory;

typedef struct traceHistoryStats {
    uint64_t added;      /* accepted events, ever */
    uint64_t dropped;    /* accepted, then pushed out by newer ones */
    uint64_t duplicates; /* rejected as already seen */
    uint64_t invalid;    /* rejected as malformed */
} traceHistoryStats;

/* Keeps the most recent max_events (>= 1) accepted events, in arrival
 * order; storage grows as events arrive. */
traceHistory *traceHistoryCreate(size_t max_events);
void traceHistoryFree(traceHistory *h);
/* Takes the event's contents: on TRACE_OK *e is left empty (initialized);
 * on an error *e is untouched and still the caller's. Events of different
 * nodes may arrive in any order, and so may one node's, as long as each
 * (node, seq) comes once. */
int traceHistoryAdd(traceHistory *h, traceEvent *e);
size_t traceHistoryCount(const traceHistory *h);
/* i-th event held, 0 = oldest arrival; i < traceHistoryCount(h). */
const traceEvent *traceHistoryAt(const traceHistory *h, size_t i);
void traceHistoryGetStats(const traceHistory *h, traceHistoryStats *out);

/* Which events a view shows; applied before ordering. */
typedef struct traceFilter {
    const char *key; /* only events with this key; NULL for all */
    size_t last_n;   /* only the last_n latest in physical order; 0 for all */
} traceFilter;

/* Writes to out (room for n) the events of in[0..n) that pass f, in their
 * input order, and returns how many. f may be NULL. */
size_t traceFilterApply(const traceEvent *const *in, size_t n, const traceFilter *f,
                        const traceEvent **out);
/* The history's events that pass f (NULL for all), oldest arrival first,
 * as a new array of pointers into the history (free() it; valid until
 * the history next changes). Returns the count. */
size_t traceHistorySelect(const traceHistory *h, const traceFilter *f, const traceEvent ***out);

/* ---- Orderings ---------------------------------------------------------
 *
 * All take an array of n event pointers and refer to events by their
 * index in it. */

/* Indices in physical order: by wall_us, ties by (node, seq). New array
 * of n, free(). */
size_t *traceOrderPhysical(const traceEvent *const *ev, size_t n);
/* Indices in Lamport order: by (lamport, node), then seq. This total order
 * extends happened-before. New array of n, free(). */
size_t *traceOrderLamport(const traceEvent *const *ev, size_t n);

/* Causal layers. layer(e) = 1 + the highest layer among the events given
 * that happened before e (1 when there are none): the length of the
 * longest causal chain of given events ending at e. Two events of one
 * layer are therefore never causally ordered, and each event's layer
 * exceeds that of every event before it. Predecessors that are not among
 * the events given (dropped, outside the window) count as layer 0.
 *
 * Computed from each event's immediate predecessors only: the latest
 * given event of its own node with a lower own counter, and for every
 * other node j in its clock the latest given event of j whose own counter
 * is <= vc[j] (an O(1) lookup when j's given events have consecutive own
 * counters, a binary search otherwise; seq is not used, so nodes whose
 * clock ticks without logging are handled too). Events are visited in
 * increasing sum of their vector clocks, an order in which predecessors
 * come first, by merging the nodes' own orders (a node's sums only grow):
 * O(n·k + n log m) for n events, k clock entries and m nodes, when each
 * node's events come in their own order (a history's arrival order);
 * a node whose events do not costs a sort of them. */
typedef struct traceLayers {
    size_t n;        /* events */
    size_t nlayers;  /* the highest layer */
    size_t *layer;   /* layer[i] of event i, 1..nlayers */
    size_t *start;   /* layer L is members[start[L-1] .. start[L]) */
    size_t *members; /* event indices by layer; within one, by (node, own counter) */
} traceLayers;

void traceOrderLayers(const traceEvent *const *ev, size_t n, traceLayers *out);
void traceLayersFree(traceLayers *l);

/* Concurrent writes: pairs of write events (traceKindIsWrite) to the same
 * key whose vector clocks are concurrent. Listed in order of key (bytes),
 * then node of a < node of b, then a's and b's own counters; at most
 * max_pairs are listed, all are counted. For each pair of nodes writing a
 * key, the writes of one node concurrent with a write of the other form
 * a contiguous run of that node's writes, found with two pointers, so the
 * count costs O(w log w + w·m) for w writes by m nodes, whatever the number of
 * pairs. */
typedef struct tracePair {
    size_t a, b;
} tracePair;

typedef struct traceConcurrent {
    tracePair *pairs; /* npairs listed pairs (NULL when none) */
    size_t npairs;
    uint64_t total; /* all concurrent pairs, listed or not */
} traceConcurrent;

/* Pairs listed by the views. */
#define TRACE_MAX_LISTED_PAIRS 1000

void traceOrderConcurrentWrites(const traceEvent *const *ev, size_t n, size_t max_pairs,
                                traceConcurrent *out);
void traceConcurrentFree(traceConcurrent *c);

/* ---- Views ------------------------------------------------------------ */

typedef enum traceView {
    TRACE_VIEW_ALL, /* text: every section; JSON: as LAMPORT */
    TRACE_VIEW_PHYSICAL,
    TRACE_VIEW_LAMPORT,
    TRACE_VIEW_VECTOR
} traceView;

/* "all", "physical", "lamport", "vector". */
const char *traceViewName(traceView v);
/* Parses those names; -1 for anything else. */
int traceViewParse(const char *name, traceView *out);

/* Appends the text view: for ALL, the sections "== physical order ==",
 * "== Lamport order ==" (one line per event:
 *   [2024-11-24 06:33:20.123456] node1 #5 L=7 vc={1:3,2:1} PUT color red (msg 1:17)
 * with the time in UTC), "== causal layers ==" (one line per layer:
 *   layer 3: node1#5 PUT color | node2#4 PUT color
 * ), then "concurrent writes: N" and one line per listed pair:
 *   node1#5 PUT color=red || node2#4 PUT color=blue
 * Other views print their own section and the concurrent writes. Control
 * characters in strings are escaped, so one event is one line. */
void traceRenderText(const traceEvent *const *ev, size_t n, traceView view, buf *out);

/* Appends the JSON view, the document the HTML page reads:
 *   {"order":"lamport","count":N,
 *    "events":[{...event fields as on the wire...,"layer":L},...],
 *    "layers":[[0,1,2],[3],...],
 *    "concurrent":[[0,1],...],"concurrent_total":T}
 * events come in the view's order (VECTOR: by layer); layers[L-1] lists
 * the events of layer L, and concurrent the listed pairs (at most
 * TRACE_MAX_LISTED_PAIRS), both as indices into events. */
void traceRenderJson(const traceEvent *const *ev, size_t n, traceView view, buf *out);

/* Appends a ShiViz log file: first line the parsing regex
 *   (?<event>.*)\n(?<host>\S*) (?<clock>{.*})
 * second line the (empty) multiple-executions delimiter, then per event a
 * description line and a line `nodeN {"nodeN":c,...}`, in Lamport order.
 *
 * ShiViz wants each host's own counter to run 1, 2, 3... and every entry
 * for another host to name an event that host logged. A history is a
 * window (a node's queue drops events, the ring forgets old ones, some
 * ticks are never logged), so the clocks are renumbered over the events
 * given: each node's events, in own-counter order, get own counters
 * 1, 2, 3...; an entry for another node j becomes the new counter of the
 * latest given event of j whose original own counter is <= the original
 * vc[j] (the entry is left out when there is none). Under the clock rules
 * above, two given events are ordered by the new clocks exactly when they
 * were by the original ones. */
void traceShivizExport(const traceEvent *const *ev, size_t n, buf *out);

/* The self-contained HTML space-time page (inline CSS and JavaScript); it
 * fetches /events.json from its own origin, which must be the JSON view
 * above (see page.c for what it reads). A static string. */
const char *tracePageHtml(void);

#endif
