/* A latency histogram with fixed memory and ~1% relative precision.
 *
 * Log-linear buckets in the manner of HdrHistogram: each power of two of
 * nanoseconds is split into HISTOGRAM_SUB_BUCKETS equal buckets, so a
 * bucket is at most 1/128 (0.78%) of its values wide, and a percentile
 * (reported as its bucket's midpoint) is within 0.4% of the true value.
 * The range is 1 µs to 60 s; values outside it are clamped to its ends
 * and counted, so nothing is lost from the count. Debian packages no
 * well-maintained HDR histogram library for C, hence this small one. One
 * histogram per thread, merged at the end, needs no locking. */
#ifndef DMKV_CLI_HISTOGRAM_H
#define DMKV_CLI_HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_MIN_NS      1000ull
#define HISTOGRAM_MAX_NS      60000000000ull
#define HISTOGRAM_SUB_BITS    7
#define HISTOGRAM_SUB_BUCKETS (1u << HISTOGRAM_SUB_BITS)
/* Octaves 2^9 (holds 1000 ns) to 2^35 (holds 60 s). */
#define HISTOGRAM_MIN_OCTAVE 9
#define HISTOGRAM_MAX_OCTAVE 35
#define HISTOGRAM_BUCKETS                                                                          \
    ((HISTOGRAM_MAX_OCTAVE - HISTOGRAM_MIN_OCTAVE + 1) * HISTOGRAM_SUB_BUCKETS)

typedef struct histogram {
    uint64_t counts[HISTOGRAM_BUCKETS];
    uint64_t total;
    uint64_t min_ns, max_ns; /* of the recorded (clamped) values */
    uint64_t clamped_low;    /* values below HISTOGRAM_MIN_NS */
    uint64_t clamped_high;   /* values above HISTOGRAM_MAX_NS */
} histogram;

void histogramInit(histogram *h);
void histogramRecord(histogram *h, uint64_t ns);
/* Adds every count of from into into. */
void histogramMerge(histogram *into, const histogram *from);
/* The value below which pct percent (0..100) of the recorded values lie;
 * 0 when the histogram is empty. */
uint64_t histogramPercentile(const histogram *h, double pct);
uint64_t histogramMax(const histogram *h);
uint64_t histogramCount(const histogram *h);

#endif
