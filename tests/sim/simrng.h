/* The simulators' seeded generator (splitmix64): every run of a seed
 * makes the same choices, so a failing seed is a reproducible test. */
#ifndef DMKV_TESTS_SIM_SIMRNG_H
#define DMKV_TESTS_SIM_SIMRNG_H

#include <stdint.h>

typedef struct simRng {
    uint64_t s;
} simRng;

static inline uint64_t simRand(simRng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t simBelow(simRng *r, uint64_t n) {
    return simRand(r) % n;
}

#endif
