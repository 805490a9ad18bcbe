/* The word-count kernel's shared declarations, internal to the one extension its _wc_*.c sources build: the count
 * table's layout, its inline hot path (hashing, finding and counting a token), and what one source calls in
 * another. Overview of the kernel and how it stays exact: _wc_module.c. */
#ifndef ACTORS_JOBS_WORDCOUNT_WC_H
#define ACTORS_JOBS_WORDCOUNT_WC_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "_mix.h"
#include "_utf8.h"

#if defined(__GNUC__) || defined(__clang__)
#define WC_INTERNAL __attribute__((visibility("hidden"))) /* shared between the sources, not exported by the .so */
#else
#define WC_INTERNAL
#endif

/* -------------------------------------------------------------------------------------------- table */

typedef struct {
    uint64_t hash;
    uint64_t head; /* head_word of the key: most keys compare without touching the arena */
    Py_ssize_t offset; /* of the key's UTF-8 bytes in the arena */
    Py_ssize_t length;
    long long count; /* fed text: at most its bytes; add_columns refuses a sum past 2**63 - 1 */
} Entry;

/* A slot is 0 (empty) or (tag << INDEX_BITS) | (entry number + 1): the tag (high hash bits) rejects most
 * mismatches without touching the entry. 2**40 entries would need terabytes, so the index never runs out
 * before memory does; table_insert still checks. */
#define INDEX_BITS 40
#define INDEX_MASK ((1ULL << INDEX_BITS) - 1)
#define TAG_OF(hash) ((hash) >> INDEX_BITS)
#define MIN_SLOTS 1024

typedef struct {
    PyObject_HEAD
    Py_ssize_t partitions;
    uint64_t *slots; /* PyMem; capacity is a power of two, at most 2/3 full */
    size_t capacity;
    Entry *entries; /* PyMem; first-seen order */
    Py_ssize_t used, entries_capacity;
    unsigned char *arena; /* PyMem; every key's bytes, back to back */
    Py_ssize_t arena_used, arena_capacity;
    int busy; /* inside feed() or take(): Python code they call (a GC finalizer, say) must not re-enter them */
} CountTable;

#define BATCH 16 /* tokens hashed and prefetched before any is counted (the tokenizer, add_columns) */

/* A token of a clean stretch, hashed, waiting in a batch (see count_clean). */
typedef struct {
    const unsigned char *key;
    Py_ssize_t length;
    uint64_t head, hash;
} Token;

/* The parts of a COLUMNS frame, its offsets checked against its key bytes; -1 with ValueError set. */
typedef struct {
    const unsigned char *blob, *ends, *counts;
    Py_ssize_t size, n;
} Frame;

/* Byte classes (_wc_tokenize.c), crc32 and the hash seed (_wc_table.c), set once at module init. */
WC_INTERNAL extern unsigned char is_space[256];
WC_INTERNAL extern uint32_t crc_table[256];
WC_INTERNAL extern uint64_t hash_seed;

WC_INTERNAL void init_byte_classes(void);
WC_INTERNAL int count_chunk(CountTable *t, const unsigned char *p, const unsigned char *end);
WC_INTERNAL void init_crc_table(void);
WC_INTERNAL uint32_t crc32_of(const unsigned char *p, Py_ssize_t n);
WC_INTERNAL int grow_buffer(void **buffer, Py_ssize_t *capacity, Py_ssize_t need, size_t size);
WC_INTERNAL int grow_slots(CountTable *t);
WC_INTERNAL int table_count(CountTable *t, const unsigned char *key, Py_ssize_t length, const unsigned char *limit);
WC_INTERNAL void table_clear(CountTable *t);
WC_INTERNAL int emit_entry(CountTable *t, PyObject *parts, const Entry *e);
WC_INTERNAL PyObject *empty_parts(Py_ssize_t n);
WC_INTERNAL PyObject *columns_frame(const CountTable *t, const Py_ssize_t *order, Py_ssize_t n, Py_ssize_t key_bytes);
WC_INTERNAL PyObject *table_emit_columns(CountTable *self, Py_ssize_t frame_keys, Py_ssize_t frame_bytes);
WC_INTERNAL PyObject *unpack_columns(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs);
WC_INTERNAL PyObject *check_columns(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs);
WC_INTERNAL PyObject *CountTable_add_columns(CountTable *self, PyObject *const *args, Py_ssize_t nargs);
WC_INTERNAL PyObject *CountTable_ordered_columns(CountTable *self, PyObject *Py_UNUSED(ignored));
WC_INTERNAL PyObject *add_counts(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs);
WC_INTERNAL PyObject *move_counts(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs);
WC_INTERNAL PyObject *fold_sum(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs);
WC_INTERNAL int enter(CountTable *self);
WC_INTERNAL int table_insert(CountTable *t, size_t i, uint64_t hash, uint64_t head, const unsigned char *key,
                             Py_ssize_t length, long long count);

/* ------------------------------------------------------------------------------- inline hot path */

static inline uint64_t
load64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8); /* unaligned-safe and alias-safe; compiles to one load */
    return w;
}

/* The first min(n, 8) bytes at p as a zero-padded little-endian number. May read (never use) bytes up to
 * `limit`, the end of the caller's buffer: one load instead of a byte loop for the short words text is made of. */
static inline uint64_t
head_word(const unsigned char *p, Py_ssize_t n, const unsigned char *limit)
{
#if PY_LITTLE_ENDIAN
    if (n >= 8) {
        return load64(p);
    }
    if (limit - p >= 8) {
        return load64(p) & ((1ULL << (8 * n)) - 1); /* n < 8: the shift is defined */
    }
#endif
    uint64_t w = 0;
    for (Py_ssize_t i = 0; i < n && i < 8; i++) {
        w |= (uint64_t)p[i] << (8 * i);
    }
    return w;
}

/* The hash of key p[0:n] whose head_word is `head`. */
static inline uint64_t
hash_key(const unsigned char *p, Py_ssize_t n, uint64_t head, const unsigned char *limit)
{
    uint64_t h = (hash_seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL) ^ head) * 0xbf58476d1ce4e5b9ULL;
    for (Py_ssize_t i = 8; i < n; i += 8) {
        h ^= h >> 31;
        h = (h ^ head_word(p + i, n - i, limit)) * 0xbf58476d1ce4e5b9ULL;
    }
    return mix(h);
}

static inline Token
make_token(const unsigned char *key, Py_ssize_t length, const unsigned char *limit)
{
    uint64_t head = head_word(key, length, limit);
    return (Token){key, length, head, hash_key(key, length, head, limit)};
}

/* Add `count` occurrences of a token; -1 with MemoryError (or OverflowError) set. */
static inline int
table_add_token(CountTable *t, const Token *k, long long count)
{
    /* Keep the index at most 2/3 full, counting the key about to be added. */
    if ((size_t)(t->used + 1) * 3 > t->capacity * 2 && grow_slots(t) < 0) {
        return -1;
    }
    uint64_t tag = TAG_OF(k->hash);
    size_t mask = t->capacity - 1;
    size_t i = (size_t)k->hash & mask;
    for (;;) {
        uint64_t slot = t->slots[i];
        if (slot == 0) {
            return table_insert(t, i, k->hash, k->head, k->key, k->length, count);
        }
        if ((slot >> INDEX_BITS) == tag) {
            Entry *e = &t->entries[(slot & INDEX_MASK) - 1];
            if (e->head == k->head && e->length == k->length &&
                (k->length <= 8 || memcmp(t->arena + e->offset + 8, k->key + 8, (size_t)(k->length - 8)) == 0)) {
                if (e->count > LLONG_MAX - count) { /* a count past 2**63: more occurrences than bytes anywhere */
                    PyErr_SetString(PyExc_OverflowError, "a count passed 2**63 - 1");
                    return -1;
                }
                e->count += count;
                return 0;
            }
        }
        i = (i + 1) & mask;
    }
}

/* Count one occurrence of a token; -1 with MemoryError set. */
static inline int
table_count_token(CountTable *t, const Token *k)
{
    return table_add_token(t, k, 1);
}

/* Bring the token's first index slot into the cache while other tokens are being looked up: with a million
 * distinct keys the table is far bigger than the cache, and waiting for each miss in turn is most of the time. */
static inline void
prefetch_slot(const CountTable *t, const Token *k)
{
#if defined(__GNUC__)
    if (t->slots != NULL) {
        __builtin_prefetch(&t->slots[(size_t)k->hash & (t->capacity - 1)]);
    }
#else
    (void)t;
    (void)k;
#endif
}

#endif
