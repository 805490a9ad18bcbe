/* The 64-bit hash finalizer shared by the native extensions (the word-count kernel's table, _resultjson.c's repeat
 * check). Included, not linked: each extension is its own module. */
#ifndef ACTORS_JOBS_MIX_H
#define ACTORS_JOBS_MIX_H

#include <stdint.h>

/* MurmurHash3's fmix64: every input bit moves every output bit. */
static inline uint64_t
mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

#endif
