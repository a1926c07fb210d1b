/* Log-linear latency histogram; see histogram.h for the bucket layout and
 * its precision. */
#include "cli/histogram.h"

#include <string.h>

void histogramInit(histogram *h) {
    memset(h, 0, sizeof *h);
}

static uint64_t histogramClamp(uint64_t ns) {
    if (ns < HISTOGRAM_MIN_NS) return HISTOGRAM_MIN_NS;
    if (ns > HISTOGRAM_MAX_NS) return HISTOGRAM_MAX_NS;
    return ns;
}

static unsigned histogramIndex(uint64_t ns) {
    unsigned octave = 63u - (unsigned)__builtin_clzll(ns);
    unsigned shift = octave - HISTOGRAM_SUB_BITS;
    unsigned sub = (unsigned)(ns >> shift) - HISTOGRAM_SUB_BUCKETS;
    return (octave - HISTOGRAM_MIN_OCTAVE) * HISTOGRAM_SUB_BUCKETS + sub;
}

/* The midpoint of bucket idx. */
static uint64_t histogramBucketValue(unsigned idx) {
    unsigned octave = idx / HISTOGRAM_SUB_BUCKETS + HISTOGRAM_MIN_OCTAVE;
    unsigned sub = idx % HISTOGRAM_SUB_BUCKETS;
    unsigned shift = octave - HISTOGRAM_SUB_BITS;
    uint64_t low = (uint64_t)(HISTOGRAM_SUB_BUCKETS + sub) << shift;
    return low + ((1ull << shift) >> 1);
}

void histogramRecord(histogram *h, uint64_t ns) {
    if (ns < HISTOGRAM_MIN_NS) h->clamped_low++;
    if (ns > HISTOGRAM_MAX_NS) h->clamped_high++;
    ns = histogramClamp(ns);
    h->counts[histogramIndex(ns)]++;
    if (h->total == 0 || ns < h->min_ns) h->min_ns = ns;
    if (ns > h->max_ns) h->max_ns = ns;
    h->total++;
}

void histogramMerge(histogram *into, const histogram *from) {
    if (from->total == 0) return;
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) into->counts[i] += from->counts[i];
    if (into->total == 0 || from->min_ns < into->min_ns) into->min_ns = from->min_ns;
    if (from->max_ns > into->max_ns) into->max_ns = from->max_ns;
    into->total += from->total;
    into->clamped_low += from->clamped_low;
    into->clamped_high += from->clamped_high;
}

uint64_t histogramPercentile(const histogram *h, double pct) {
    if (h->total == 0) return 0;
    if (pct < 0) pct = 0;
    if (pct > 100) pct = 100;
    /* The rank of the wanted value, from 1; at least the first value. */
    uint64_t rank = (uint64_t)(pct / 100.0 * (double)h->total + 0.5);
    if (rank < 1) rank = 1;
    if (rank > h->total) rank = h->total;
    /* The true extremes are kept exactly, so the ends need no bucket. */
    if (rank == 1) return h->min_ns;
    if (rank == h->total) return h->max_ns;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = histogramBucketValue(i);
            /* Never report past the true extremes. */
            if (v > h->max_ns) v = h->max_ns;
            if (v < h->min_ns) v = h->min_ns;
            return v;
        }
    }
    return h->max_ns;
}

uint64_t histogramMax(const histogram *h) {
    return h->max_ns;
}

uint64_t histogramCount(const histogram *h) {
    return h->total;
}
