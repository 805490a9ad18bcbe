/* The native word-count kernel: counts str.split() tokens of whole lines, exactly like
 * Counter(data.decode("utf-8", "replace").split()), and groups the counts by partition.
 *
 * How it stays exact:
 *   - A line with no byte >= 0x80 and none in \x1c-\x1f ("clean") decodes to the same ASCII characters, and on
 *     ASCII str.split() separates only at \t \n \x0b \x0c \r, space and \x1c-\x1f. So a clean line is split on
 *     the six ASCII whitespace bytes here, in C.
 *   - Any other line ("dirty") is decoded with errors="replace" and split by Python's own str.split(), and its
 *     tokens are counted into the same table.
 *   - Decoding line by line equals decoding the whole chunk: an ASCII byte (the '\n' between lines) never
 *     belongs to a multi-byte UTF-8 sequence, so the decoder ends any sequence or invalid run before it; and
 *     '\n' is whitespace for str.split() too. tests/test_kernel.py checks this on invalid UTF-8 cut at '\n'.
 *
 * Clean lines make no Python objects: strings are made once per distinct key, in take(). The table is our own:
 * keys are stored as UTF-8 bytes in one arena, entries in first-seen order (like a dict), and an open-addressing
 * index of (hash tag, entry number) slots points into the entries. Everything grows as needed; allocation failures
 * raise MemoryError. The GIL is held throughout, so a table is never touched by two threads at once; Python code
 * that feed() runs indirectly (a GC callback or finalizer, during str.split()) cannot re-enter it either.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "_utf8.h"

/* --------------------------------------------------------------------------------------- byte classes */

/* The ASCII whitespace str.split() and bytes.split() agree on; \x1c-\x1f never reach the C tokenizer. */
static unsigned char is_space[256];

static void
init_byte_classes(void)
{
    static const char spaces[] = "\t\n\x0b\x0c\r ";
    for (const char *s = spaces; *s; s++) {
        is_space[(unsigned char)*s] = 1;
    }
}

static inline int
is_special(unsigned char b)
{
    return b >= 0x80 || (b >= 0x1c && b <= 0x1f);
}

static inline uint64_t
load64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8); /* unaligned-safe and alias-safe; compiles to one load */
    return w;
}

/* Nonzero when any of the 8 bytes is >= 0x80 or in \x1c-\x1f (a zero byte of (w & 0xfc..) ^ 0x1c..). */
static inline int
word_has_special(uint64_t w)
{
    const uint64_t high = 0x8080808080808080ULL, ones = 0x0101010101010101ULL;
    uint64_t x = (w & 0xfcfcfcfcfcfcfcfcULL) ^ 0x1c1c1c1c1c1c1c1cULL;
    return ((w & high) | ((x - ones) & ~x & high)) != 0;
}

/* The first byte in [p, end) that needs Unicode rules, or end. */
static const unsigned char *
find_special(const unsigned char *p, const unsigned char *end)
{
    while (end - p >= 8 && !word_has_special(load64(p))) {
        p += 8;
    }
    while (p < end && !is_special(*p)) {
        p++;
    }
    return p;
}

/* ------------------------------------------------------------------------------------------ crc32 */

static uint32_t crc_table[256];

static void
init_crc_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? 0xedb88320U ^ (c >> 1) : c >> 1;
        }
        crc_table[i] = c;
    }
}

/* zlib.crc32(key), the rule of actors/core/partition.py. */
static uint32_t
crc32_of(const unsigned char *p, Py_ssize_t n)
{
    uint32_t c = 0xffffffffU;
    for (Py_ssize_t i = 0; i < n; i++) {
        c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    }
    return c ^ 0xffffffffU;
}

/* ------------------------------------------------------------------------------------------- hashing */

/* Seeded once per process from os.urandom, so input cannot be crafted to collide in the table. */
static uint64_t hash_seed;

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

/* Grow a PyMem buffer to hold at least `need` items of `size` bytes, doubling; -1 with MemoryError set. */
static int
grow_buffer(void **buffer, Py_ssize_t *capacity, Py_ssize_t need, size_t size)
{
    if (need <= *capacity) {
        return 0;
    }
    Py_ssize_t wanted = *capacity > 0 ? *capacity : 64;
    while (wanted < need) {
        if (wanted > PY_SSIZE_T_MAX / 2) {
            wanted = need;
            break;
        }
        wanted *= 2;
    }
    if ((size_t)wanted > (size_t)PY_SSIZE_T_MAX / size) {
        PyErr_NoMemory();
        return -1;
    }
    void *bigger = PyMem_Realloc(*buffer, (size_t)wanted * size);
    if (bigger == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *buffer = bigger;
    *capacity = wanted;
    return 0;
}

static void
place(uint64_t *slots, size_t capacity, uint64_t hash, uint64_t slot)
{
    size_t mask = capacity - 1;
    size_t i = (size_t)hash & mask;
    while (slots[i] != 0) {
        i = (i + 1) & mask;
    }
    slots[i] = slot;
}

/* Double the index (or create it) and re-place every entry; -1 with MemoryError set. */
static int
grow_slots(CountTable *t)
{
    size_t capacity = t->capacity ? t->capacity * 2 : MIN_SLOTS;
    if (capacity > SIZE_MAX / 2 / sizeof(uint64_t)) {
        PyErr_NoMemory();
        return -1;
    }
    uint64_t *slots = PyMem_Calloc(capacity, sizeof(uint64_t));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t n = 0; n < t->used; n++) {
        uint64_t hash = t->entries[n].hash;
        place(slots, capacity, hash, (TAG_OF(hash) << INDEX_BITS) | (uint64_t)(n + 1));
    }
    PyMem_Free(t->slots);
    t->slots = slots;
    t->capacity = capacity;
    return 0;
}

/* Append a new key with `count` and index it at slot i; -1 with MemoryError set (the table is unchanged). */
static int
table_insert(CountTable *t, size_t i, uint64_t hash, uint64_t head, const unsigned char *key, Py_ssize_t length,
             long long count)
{
    if ((uint64_t)t->used + 1 >= INDEX_MASK || t->arena_used > PY_SSIZE_T_MAX - length) {
        PyErr_NoMemory();
        return -1;
    }
    if (grow_buffer((void **)&t->entries, &t->entries_capacity, t->used + 1, sizeof(Entry)) < 0 ||
        grow_buffer((void **)&t->arena, &t->arena_capacity, t->arena_used + length, 1) < 0) {
        return -1;
    }
    if (length > 0) {
        memcpy(t->arena + t->arena_used, key, (size_t)length);
    }
    t->entries[t->used] = (Entry){hash, head, t->arena_used, length, count};
    t->arena_used += length;
    t->used++;
    t->slots[i] = (TAG_OF(hash) << INDEX_BITS) | (uint64_t)t->used;
    return 0;
}

/* A token of a clean stretch, hashed, waiting in a batch (see count_clean). */
typedef struct {
    const unsigned char *key;
    Py_ssize_t length;
    uint64_t head, hash;
} Token;

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

/* Count one occurrence of key[0:length], which lies in a buffer ending at `limit`; -1 with MemoryError set. */
static int
table_count(CountTable *t, const unsigned char *key, Py_ssize_t length, const unsigned char *limit)
{
    Token k = make_token(key, length, limit);
    return table_count_token(t, &k);
}

static void
table_clear(CountTable *t)
{
    PyMem_Free(t->slots);
    PyMem_Free(t->entries);
    PyMem_Free(t->arena);
    t->slots = NULL;
    t->entries = NULL;
    t->arena = NULL;
    t->capacity = 0;
    t->used = t->entries_capacity = 0;
    t->arena_used = t->arena_capacity = 0;
}

/* ------------------------------------------------------------------------------------------ counting */

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

#define BATCH 16

/* Tokens found but not yet counted: hashed and prefetched as found, counted BATCH at a time. */
typedef struct {
    Token tokens[BATCH];
    int n;
} Batch;

static int
batch_flush(CountTable *t, Batch *b)
{
    for (int k = 0; k < b->n; k++) {
        if (table_count_token(t, &b->tokens[k]) < 0) {
            return -1;
        }
    }
    b->n = 0;
    return 0;
}

/* Add the token key[0:length] (in a buffer ending at `limit`); -1 with MemoryError set. */
static inline int
batch_push(CountTable *t, Batch *b, const unsigned char *key, Py_ssize_t length, const unsigned char *limit)
{
    b->tokens[b->n] = make_token(key, length, limit);
    prefetch_slot(t, &b->tokens[b->n]);
    return ++b->n == BATCH ? batch_flush(t, b) : 0;
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* Bit i set when p[i] is one of the six ASCII whitespace bytes, for i < 64. */
static inline uint64_t
space_mask64(const unsigned char *p)
{
    const __m128i space = _mm_set1_epi8(' '), tab = _mm_set1_epi8('\t'), four = _mm_set1_epi8(4);
    uint64_t mask = 0;
    for (int k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + 16 * k));
        __m128i d = _mm_sub_epi8(v, tab); /* \t..\r become 0..4 */
        __m128i ws = _mm_or_si128(_mm_cmpeq_epi8(v, space), _mm_cmpeq_epi8(_mm_min_epu8(d, four), d));
        mask |= (uint64_t)(uint16_t)_mm_movemask_epi8(ws) << (16 * k);
    }
    return mask;
}

/* Tokens of whole 64-byte blocks of [*pp, end), found from whitespace bit masks: the boundaries between words
 * come from bit arithmetic instead of a mispredicted branch per word. Leaves *pp at the first byte not
 * scanned and *open at the start of a token still running there (or NULL). */
static int
scan_blocks(CountTable *t, Batch *b, const unsigned char **pp, const unsigned char **open,
            const unsigned char *end)
{
    const unsigned char *p = *pp, *start = *open;
    uint64_t before_is_space = start == NULL; /* the byte before the block */
    while (end - p >= 64) {
        uint64_t ws = space_mask64(p);
        uint64_t words = ~ws;
        /* A token starts on a non-space after a space, and ends on a space after a non-space. */
        uint64_t edges = (words & ((ws << 1) | before_is_space)) | (ws & ((words << 1) | !before_is_space));
        before_is_space = ws >> 63;
        while (edges) {
            const unsigned char *at = p + __builtin_ctzll(edges);
            edges &= edges - 1;
            if (start == NULL) {
                start = at;
            }
            else {
                if (batch_push(t, b, start, at - start, end) < 0) {
                    return -1;
                }
                start = NULL;
            }
        }
        p += 64;
    }
    *pp = p;
    *open = start;
    return 0;
}
#endif

/* Count the tokens of clean bytes [p, end): split on the six ASCII whitespace bytes only. */
static int
count_clean(CountTable *t, const unsigned char *p, const unsigned char *end)
{
    Batch b = {.n = 0};
    const unsigned char *start = NULL; /* of the token being read, if any */
#if defined(__SSE2__)
    if (scan_blocks(t, &b, &p, &start, end) < 0) {
        return -1;
    }
#endif
    for (; p < end; p++) {
        if (is_space[*p]) {
            if (start != NULL && batch_push(t, &b, start, p - start, end) < 0) {
                return -1;
            }
            start = NULL;
        }
        else if (start == NULL) {
            start = p;
        }
    }
    if (start != NULL && batch_push(t, &b, start, end - start, end) < 0) {
        return -1;
    }
    return batch_flush(t, &b);
}

/* Count the tokens of the str `text` as str.split() makes them. Borrows `text`. */
static int
count_split(CountTable *t, PyObject *text)
{
    PyObject *tokens = PyUnicode_Split(text, NULL, -1); /* new reference: a list of str */
    if (tokens == NULL) {
        return -1;
    }
    int rc = 0;
    for (Py_ssize_t n = 0; n < PyList_GET_SIZE(tokens) && rc == 0; n++) {
        Py_ssize_t length;
        /* The UTF-8 buffer is owned (cached) by the token, which `tokens` keeps alive while we copy it. */
        const char *utf8 = PyUnicode_AsUTF8AndSize(PyList_GET_ITEM(tokens, n), &length);
        const unsigned char *key = (const unsigned char *)utf8;
        rc = key == NULL ? -1 : table_count(t, key, length, key + length);
    }
    Py_DECREF(tokens);
    return rc;
}

/* Count the tokens of dirty lines [p, end) the way Python does: decode with errors="replace", str.split(). */
static int
count_dirty(CountTable *t, const unsigned char *p, const unsigned char *end)
{
    PyObject *text = PyUnicode_DecodeUTF8((const char *)p, end - p, "replace"); /* new reference */
    if (text == NULL) {
        return -1;
    }
    int rc = count_split(t, text);
    Py_DECREF(text);
    return rc;
}

/* Where the line holding `p` starts, not before `floor`. */
static const unsigned char *
line_start(const unsigned char *floor, const unsigned char *p)
{
    while (p > floor && p[-1] != '\n') {
        p--;
    }
    return p;
}

/* Where the line holding `p` ends (its '\n'), or end. */
static const unsigned char *
line_end(const unsigned char *p, const unsigned char *end)
{
    const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? nl : end;
}

/* Count a chunk of whole lines: clean stretches in C, each run of consecutive dirty lines through Python. */
static int
count_chunk(CountTable *t, const unsigned char *p, const unsigned char *end)
{
    const unsigned char *special = find_special(p, end);
    while (special < end) {
        const unsigned char *dirty = line_start(p, special);
        if (count_clean(t, p, dirty) < 0) {
            return -1;
        }
        const unsigned char *dirty_end = line_end(special, end);
        /* Extend over the following lines while each is dirty too: one decode and split per run. */
        for (;;) {
            if (dirty_end == end) {
                special = end;
                break;
            }
            special = find_special(dirty_end + 1, end);
            if (special == end || memchr(dirty_end + 1, '\n', (size_t)(special - dirty_end - 1)) != NULL) {
                break;
            }
            dirty_end = line_end(special, end);
        }
        if (count_dirty(t, dirty, dirty_end) < 0) {
            return -1;
        }
        p = dirty_end;
    }
    return count_clean(t, p, end);
}

/* --------------------------------------------------------------------------------------- take() */

/* Add entry e to its partition's dict in `parts`. Borrows `parts`; the key and value are ours until set. */
static int
emit_entry(CountTable *t, PyObject *parts, const Entry *e)
{
    const unsigned char *bytes = t->arena + e->offset;
    Py_ssize_t part = 0;
    if (t->partitions > 1) {
        part = (Py_ssize_t)(crc32_of(bytes, e->length) % (uint64_t)t->partitions);
    }
    /* Every key is valid UTF-8 (ASCII, or re-encoded from a decoded str), so strict decoding cannot fail. */
    PyObject *key = PyUnicode_DecodeUTF8((const char *)bytes, e->length, NULL); /* new reference */
    if (key == NULL) {
        return -1;
    }
    PyObject *value = PyLong_FromLongLong(e->count); /* new reference */
    if (value == NULL) {
        Py_DECREF(key);
        return -1;
    }
    int rc = PyDict_SetItem(PyList_GET_ITEM(parts, part), key, value); /* does not steal */
    Py_DECREF(key);
    Py_DECREF(value);
    return rc;
}

/* A new list of `n` new empty dicts. */
static PyObject *
empty_parts(Py_ssize_t n)
{
    PyObject *parts = PyList_New(n); /* new reference; the items are NULL until set */
    if (parts == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PyDict_New();
        if (d == NULL) {
            Py_DECREF(parts); /* list dealloc skips the NULL items */
            return NULL;
        }
        PyList_SET_ITEM(parts, i, d); /* steals d */
    }
    return parts;
}

/* ------------------------------------------------------------------------------------------- type */

static PyObject *
CountTable_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"partitions", NULL};
    Py_ssize_t partitions;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "n:CountTable", keywords, &partitions)) {
        return NULL;
    }
    if (partitions < 1) {
        PyErr_Format(PyExc_ValueError, "partitions must be at least 1, not %zd", partitions);
        return NULL;
    }
    CountTable *self = (CountTable *)type->tp_alloc(type, 0); /* zeroed: an empty table */
    if (self != NULL) {
        self->partitions = partitions;
    }
    return (PyObject *)self;
}

static void
CountTable_dealloc(CountTable *self)
{
    table_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Mark the table busy; -1 with RuntimeError set if it already was. */
static int
enter(CountTable *self)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "CountTable re-entered: feed() or take() called during another");
        return -1;
    }
    self->busy = 1;
    return 0;
}

static PyObject *
CountTable_feed(CountTable *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (enter(self) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    /* The view pins the buffer: a bytearray cannot be resized while we scan it. */
    const unsigned char *data = view.buf;
    int rc = count_chunk(self, data, data + view.len);
    self->busy = 0;
    PyBuffer_Release(&view);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The counts as a new list of `partitions` dicts; the table is unchanged. */
static PyObject *
table_emit(CountTable *self)
{
    PyObject *parts = empty_parts(self->partitions);
    if (parts == NULL) {
        return NULL;
    }
    for (Py_ssize_t n = 0; n < self->used; n++) {
        if (emit_entry(self, parts, &self->entries[n]) < 0) {
            Py_DECREF(parts);
            return NULL;
        }
    }
    return parts;
}

static PyObject *
CountTable_take(CountTable *self, PyObject *Py_UNUSED(ignored))
{
    if (enter(self) < 0) {
        return NULL;
    }
    PyObject *parts = table_emit(self);
    if (parts != NULL) {
        table_clear(self); /* only on success: after a MemoryError the table keeps its counts */
    }
    self->busy = 0;
    return parts;
}

/* --------------------------------------------------------------------------------- take_columns() */

/* Bytes of a COLUMNS frame besides its keys and the 12 bytes a key adds to the two arrays: the length prefix, the
 * message map with its field names and type name, three byte-string heads. 80 is generous (measured: 55). */
#define COLUMNS_OVERHEAD 80

static inline void
store_le(unsigned char *p, uint64_t v, int width)
{
    for (int i = 0; i < width; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

/* One COLUMNS frame of the entries order[0:n] as a new (keys, ends, counts, checksum) tuple. */
static PyObject *
columns_frame(const CountTable *t, const Py_ssize_t *order, Py_ssize_t n, Py_ssize_t key_bytes)
{
    PyObject *keys = PyBytes_FromStringAndSize(NULL, key_bytes);
    PyObject *ends = PyBytes_FromStringAndSize(NULL, 4 * n);
    PyObject *counts = PyBytes_FromStringAndSize(NULL, 8 * n);
    if (keys == NULL || ends == NULL || counts == NULL) {
        goto fail;
    }
    unsigned char *k = (unsigned char *)PyBytes_AS_STRING(keys);
    unsigned char *e = (unsigned char *)PyBytes_AS_STRING(ends);
    unsigned char *c = (unsigned char *)PyBytes_AS_STRING(counts);
    Py_ssize_t at = 0;
    unsigned long long total = 0; /* a mapper's table: at most the bytes fed (ordered_columns drops it) */
    for (Py_ssize_t i = 0; i < n; i++) {
        const Entry *entry = &t->entries[order[i]];
        if (entry->length > 0) {
            memcpy(k + at, t->arena + entry->offset, (size_t)entry->length);
        }
        at += entry->length;
        store_le(e + 4 * i, (uint64_t)at, 4);
        store_le(c + 8 * i, (uint64_t)entry->count, 8);
        total += (unsigned long long)entry->count;
    }
    PyObject *checksum = PyLong_FromUnsignedLongLong(total);
    if (checksum == NULL) {
        goto fail;
    }
    return Py_BuildValue("(NNNN)", keys, ends, counts, checksum); /* steals all four, even on failure */
fail:
    Py_XDECREF(keys);
    Py_XDECREF(ends);
    Py_XDECREF(counts);
    return NULL;
}

/* The frames of one partition's entries order[0:n], cut at frame_keys keys and about frame_bytes bytes, appended
 * to the list `frames`. A key too long for any frame gets a frame of its own (the caller sends it in pieces). */
static int
partition_frames(const CountTable *t, const Py_ssize_t *order, Py_ssize_t n, Py_ssize_t frame_keys,
                 Py_ssize_t frame_bytes, PyObject *frames)
{
    Py_ssize_t start = 0, key_bytes = 0;
    for (Py_ssize_t i = 0; i <= n; i++) {
        Py_ssize_t length = i < n ? t->entries[order[i]].length : 0;
        Py_ssize_t keys = i - start;
        int full = keys == frame_keys ||
                   (keys > 0 && COLUMNS_OVERHEAD + key_bytes + length + 12 * (keys + 1) > frame_bytes) ||
                   key_bytes + length > (Py_ssize_t)UINT32_MAX;
        if (keys > 0 && (i == n || full)) {
            PyObject *frame = columns_frame(t, order + start, keys, key_bytes);
            if (frame == NULL || PyList_Append(frames, frame) < 0) {
                Py_XDECREF(frame);
                return -1;
            }
            Py_DECREF(frame);
            start = i;
            key_bytes = 0;
        }
        key_bytes += length;
    }
    return 0;
}

/* The counts as COLUMNS frames, a new list of one list per partition; the table is unchanged. */
static PyObject *
table_emit_columns(CountTable *self, Py_ssize_t frame_keys, Py_ssize_t frame_bytes)
{
    Py_ssize_t parts = self->partitions, used = self->used;
    Py_ssize_t *order = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(used > 0 ? used : 1));
    Py_ssize_t *starts = PyMem_Calloc((size_t)parts + 1, sizeof(Py_ssize_t));
    uint32_t *part_of = PyMem_Malloc(sizeof(uint32_t) * (size_t)(used > 0 ? used : 1));
    PyObject *result = NULL;
    if (order == NULL || starts == NULL || part_of == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* A counting sort by partition keeps each partition's keys in first-seen order. */
    for (Py_ssize_t n = 0; n < used; n++) {
        const Entry *e = &self->entries[n];
        part_of[n] = parts > 1 ? (uint32_t)(crc32_of(self->arena + e->offset, e->length) % (uint64_t)parts) : 0;
        starts[part_of[n] + 1]++;
    }
    for (Py_ssize_t p = 0; p < parts; p++) {
        starts[p + 1] += starts[p];
    }
    for (Py_ssize_t n = 0; n < used; n++) {
        order[starts[part_of[n]]++] = n; /* starts[p] ends at the start of p + 1 */
    }
    result = PyList_New(parts);
    if (result == NULL) {
        goto done;
    }
    for (Py_ssize_t p = 0; p < parts; p++) {
        Py_ssize_t begin = p > 0 ? starts[p - 1] : 0;
        PyObject *frames = PyList_New(0);
        if (frames == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, p, frames); /* steals frames */
        if (partition_frames(self, order + begin, starts[p] - begin, frame_keys, frame_bytes, frames) < 0) {
            Py_CLEAR(result);
            goto done;
        }
    }
done:
    PyMem_Free(order);
    PyMem_Free(starts);
    PyMem_Free(part_of);
    return result;
}

/* ------------------------------------------------------------------------------- ordered_columns() */

/* What the top-order sort compares: most keys differ in their count or first 8 bytes, read here in order. */
typedef struct {
    long long count;
    uint64_t prefix; /* the key's first 8 bytes, big-endian, zero-padded: compares as the bytes do */
    Py_ssize_t entry;
} Ranked;

/* The table being sorted, for the comparator (qsort takes no context). Only set and read while the GIL is held,
 * and ordered_columns runs no Python code, so no other sort can interleave. */
static const CountTable *ranking;

static inline uint64_t
big_endian(uint64_t little)
{
    uint64_t v = 0;
    for (int b = 0; b < 8; b++) {
        v = (v << 8) | ((little >> (8 * b)) & 0xff);
    }
    return v;
}

static int
compare_ranked(const void *left, const void *right)
{
    const Ranked *a = left, *b = right;
    if (a->count != b->count) {
        return a->count > b->count ? -1 : 1; /* the largest count first */
    }
    if (a->prefix != b->prefix) {
        return a->prefix < b->prefix ? -1 : 1;
    }
    const Entry *x = &ranking->entries[a->entry], *y = &ranking->entries[b->entry];
    Py_ssize_t shorter = x->length < y->length ? x->length : y->length;
    int c = shorter > 8 ? memcmp(ranking->arena + x->offset + 8, ranking->arena + y->offset + 8,
                                 (size_t)(shorter - 8)) : 0;
    if (c != 0) {
        return c;
    }
    return x->length < y->length ? -1 : (x->length > y->length ? 1 : 0);
}

/* ordered_columns() -> (keys, ends, counts): every count as one COLUMNS run in top order (largest count first,
 * ties by key: UTF-8 byte order is code point order), the table unchanged. OverflowError past 4 GiB of keys. */
static PyObject *
CountTable_ordered_columns(CountTable *self, PyObject *Py_UNUSED(ignored))
{
    if (self->arena_used > (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "more key bytes than 32-bit offsets reach");
        return NULL;
    }
    if (enter(self) < 0) {
        return NULL;
    }
    Py_ssize_t used = self->used;
    Ranked *ranked = PyMem_Malloc(sizeof(Ranked) * (size_t)(used > 0 ? used : 1));
    Py_ssize_t *order = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(used > 0 ? used : 1));
    PyObject *frame = NULL, *result = NULL;
    if (ranked == NULL || order == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t n = 0; n < used; n++) {
        ranked[n] = (Ranked){self->entries[n].count, big_endian(self->entries[n].head), n};
    }
    ranking = self;
    qsort(ranked, (size_t)used, sizeof(Ranked), compare_ranked);
    ranking = NULL;
    for (Py_ssize_t n = 0; n < used; n++) {
        order[n] = ranked[n].entry;
    }
    frame = columns_frame(self, order, used, self->arena_used); /* (keys, ends, counts, checksum) */
    if (frame != NULL) {
        result = PyTuple_GetSlice(frame, 0, 3);
    }
done:
    Py_XDECREF(frame);
    PyMem_Free(ranked);
    PyMem_Free(order);
    self->busy = 0;
    return result;
}

static PyObject *
CountTable_take_columns(CountTable *self, PyObject *args)
{
    Py_ssize_t frame_keys, frame_bytes;
    if (!PyArg_ParseTuple(args, "nn:take_columns", &frame_keys, &frame_bytes)) {
        return NULL;
    }
    if (frame_keys < 1 || frame_bytes < 1) {
        PyErr_SetString(PyExc_ValueError, "frame_keys and frame_bytes must be at least 1");
        return NULL;
    }
    if (enter(self) < 0) {
        return NULL;
    }
    PyObject *parts = table_emit_columns(self, frame_keys, frame_bytes);
    if (parts != NULL) {
        table_clear(self); /* only on success: after a MemoryError the table keeps its counts */
    }
    self->busy = 0;
    return parts;
}

static Py_ssize_t
CountTable_len(CountTable *self)
{
    return self->used;
}

static PyObject *
CountTable_get_partitions(CountTable *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->partitions);
}

static PyObject *CountTable_add_columns(CountTable *self, PyObject *const *args, Py_ssize_t nargs);
static PyObject *CountTable_ordered_columns(CountTable *self, PyObject *Py_UNUSED(ignored));

static PyMethodDef CountTable_methods[] = {
    {"add_columns", (PyCFunction)(void (*)(void))CountTable_add_columns, METH_FASTCALL,
     "add_columns(keys, ends, counts, /)\n--\n\nAdd a COLUMNS frame check_columns accepted to the counts."},
    {"ordered_columns", (PyCFunction)CountTable_ordered_columns, METH_NOARGS,
     "ordered_columns()\n--\n\nEvery count as one COLUMNS run (keys, ends, counts) in top order; the table unchanged."},
    {"feed", (PyCFunction)CountTable_feed, METH_O,
     "feed(data, /)\n--\n\nCount every whitespace-separated token of a chunk of whole lines (any bytes-like)."},
    {"take_columns", (PyCFunction)CountTable_take_columns, METH_VARARGS,
     "take_columns(frame_keys, frame_bytes, /)\n--\n\nThe counts as COLUMNS frames (keys, ends, counts, checksum), "
     "a list per partition, cut at frame_keys keys and about frame_bytes bytes; empties the table."},
    {"take", (PyCFunction)CountTable_take, METH_NOARGS,
     "take()\n--\n\nThe counts as one dict per partition (crc32 of the key's UTF-8 % partitions); empties the table."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef CountTable_getset[] = {
    {"partitions", (getter)CountTable_get_partitions, NULL, "number of partitions take() groups by", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods CountTable_as_sequence = {
    .sq_length = (lenfunc)CountTable_len,
};

static PyTypeObject CountTableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "actors.jobs.wordcount._wordcount.CountTable",
    .tp_doc = "CountTable(partitions)\n--\n\n"
              "Exact str.split() token counts of fed UTF-8 lines, grouped by partition on take().",
    .tp_basicsize = sizeof(CountTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = CountTable_new,
    .tp_dealloc = (destructor)CountTable_dealloc,
    .tp_methods = CountTable_methods,
    .tp_getset = CountTable_getset,
    .tp_as_sequence = &CountTable_as_sequence,
};

/* ----------------------------------------------------------------------------------- unpack_columns */

static inline uint64_t
load_le(const unsigned char *p, int width)
{
    uint64_t v = 0;
    for (int i = width - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* A new str of p[0:n], strictly decoded (ASCII copied directly); NULL with an exception set. */
static PyObject *
key_of(const unsigned char *p, Py_ssize_t n)
{
    const unsigned char *end = p + n, *q = p;
    while (end - q >= 8 && (load64(q) & 0x8080808080808080ULL) == 0) {
        q += 8;
    }
    while (q < end && *q < 0x80) {
        q++;
    }
    if (q == end) {
        PyObject *key = PyUnicode_New(n, 127); /* new reference */
        if (key != NULL && n > 0) {
            memcpy(PyUnicode_DATA(key), p, (size_t)n);
        }
        return key;
    }
    return PyUnicode_DecodeUTF8((const char *)p, n, NULL);
}

/* unpack_columns(keys, ends, counts) -> dict: the layout of actors.core.messages.Columns, every part checked;
 * ValueError names what is malformed. */
static PyObject *
unpack_columns(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "unpack_columns(keys, ends, counts) takes three bytes objects");
        return NULL;
    }
    const unsigned char *blob = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    const unsigned char *ends = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    const unsigned char *counts = (const unsigned char *)PyBytes_AS_STRING(args[2]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]), n = PyBytes_GET_SIZE(args[1]) / 4;
    if (PyBytes_GET_SIZE(args[1]) % 4 != 0 || n == 0) {
        return PyErr_Format(PyExc_ValueError, "ends must be 1 or more 4-byte offsets, not %zd bytes",
                            PyBytes_GET_SIZE(args[1]));
    }
    if (PyBytes_GET_SIZE(args[2]) != 8 * n) {
        return PyErr_Format(PyExc_ValueError, "%zd keys need %zd bytes of counts, not %zd", n, 8 * n,
                            PyBytes_GET_SIZE(args[2]));
    }
    if ((Py_ssize_t)load_le(ends + 4 * (n - 1), 4) != size) {
        return PyErr_Format(PyExc_ValueError, "the last key ends at %zd, not at the end of %zd key bytes",
                            (Py_ssize_t)load_le(ends + 4 * (n - 1), 4), size);
    }
    PyObject *items = PyDict_New(); /* new reference */
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t end = (Py_ssize_t)load_le(ends + 4 * i, 4);
        uint64_t count = load_le(counts + 8 * i, 8);
        if (end < start) {
            PyErr_SetString(PyExc_ValueError, "key offsets must not decrease");
            goto fail;
        }
        if (count == 0) {
            PyErr_SetString(PyExc_ValueError, "counts must be positive");
            goto fail;
        }
        PyObject *key = key_of(blob + start, end - start); /* new reference */
        if (key == NULL) {
            if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                PyErr_Clear();
                PyErr_SetString(PyExc_ValueError, "a key is not valid UTF-8");
            }
            goto fail;
        }
        PyObject *value = PyLong_FromUnsignedLongLong(count); /* new reference */
        if (value == NULL) {
            Py_DECREF(key);
            goto fail;
        }
        int rc = PyDict_SetItem(items, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc < 0) {
            goto fail;
        }
        start = end;
    }
    if (PyDict_GET_SIZE(items) != n) {
        PyErr_Format(PyExc_ValueError, "%zd duplicate keys", n - PyDict_GET_SIZE(items));
        goto fail;
    }
    return items;
fail:
    Py_DECREF(items);
    return NULL;
}

/* ----------------------------------------------------------------------- check_columns, add_columns */

/* Whether p[0:n] is UTF-8 as Python's strict decoder accepts it: no overlong forms, no surrogates, nothing past
 * U+10FFFF, no truncated sequence. */
static int
utf8_valid(const unsigned char *p, Py_ssize_t n)
{
    const unsigned char *end = p + n;
    while (p < end) {
        if (end - p >= 8 && (load64(p) & 0x8080808080808080ULL) == 0) {
            p += 8; /* eight ASCII bytes at once: most keys are all ASCII */
            continue;
        }
        Py_UCS4 point;
        int used = utf8_point(p, end - p, &point);
        if (used == 0) {
            return 0;
        }
        p += used;
    }
    return 1;
}

/* The parts of a COLUMNS frame, its offsets checked against its key bytes; -1 with ValueError set. */
typedef struct {
    const unsigned char *blob, *ends, *counts;
    Py_ssize_t size, n;
} Frame;

static int
frame_of(PyObject *const *args, Py_ssize_t nargs, Frame *f)
{
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "takes three bytes objects: keys, ends, counts");
        return -1;
    }
    f->blob = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    f->ends = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    f->counts = (const unsigned char *)PyBytes_AS_STRING(args[2]);
    f->size = PyBytes_GET_SIZE(args[0]);
    f->n = PyBytes_GET_SIZE(args[1]) / 4;
    if (PyBytes_GET_SIZE(args[1]) % 4 != 0 || f->n == 0) {
        PyErr_Format(PyExc_ValueError, "ends must be 1 or more 4-byte offsets, not %zd bytes", PyBytes_GET_SIZE(args[1]));
        return -1;
    }
    if (PyBytes_GET_SIZE(args[2]) != 8 * f->n) {
        PyErr_Format(PyExc_ValueError, "%zd keys need %zd bytes of counts, not %zd", f->n, 8 * f->n,
                     PyBytes_GET_SIZE(args[2]));
        return -1;
    }
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < f->n; i++) {
        Py_ssize_t end = (Py_ssize_t)load_le(f->ends + 4 * i, 4);
        if (end < start) {
            PyErr_SetString(PyExc_ValueError, "key offsets must not decrease");
            return -1;
        }
        start = end;
    }
    if (start != f->size) {
        PyErr_Format(PyExc_ValueError, "the last key ends at %zd, not at the end of %zd key bytes", start, f->size);
        return -1;
    }
    return 0;
}

static inline Py_ssize_t
frame_start(const Frame *f, Py_ssize_t i)
{
    return i == 0 ? 0 : (Py_ssize_t)load_le(f->ends + 4 * (i - 1), 4);
}

/* Whether the frame repeats a key: an open-addressing set of its key numbers. -1 with MemoryError set. */
static int
frame_repeats(const Frame *f, Py_ssize_t *repeats)
{
    size_t capacity = 16;
    while (capacity < (size_t)f->n * 2) {
        capacity *= 2;
    }
    uint32_t *slots = PyMem_Calloc(capacity, sizeof(uint32_t)); /* key number + 1; 0 is empty */
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    const unsigned char *limit = f->blob + f->size;
    *repeats = 0;
    for (Py_ssize_t i = 0; i < f->n; i++) {
        Py_ssize_t start = frame_start(f, i), length = (Py_ssize_t)load_le(f->ends + 4 * i, 4) - start;
        const unsigned char *key = f->blob + start;
        size_t at = (size_t)hash_key(key, length, head_word(key, length, limit), limit) & (capacity - 1);
        for (;;) {
            uint32_t slot = slots[at];
            if (slot == 0) {
                slots[at] = (uint32_t)(i + 1);
                break;
            }
            Py_ssize_t other = (Py_ssize_t)slot - 1, other_start = frame_start(f, other);
            if ((Py_ssize_t)load_le(f->ends + 4 * other, 4) - other_start == length &&
                memcmp(f->blob + other_start, key, (size_t)length) == 0) {
                (*repeats)++;
                break;
            }
            at = (at + 1) & (capacity - 1);
        }
    }
    PyMem_Free(slots);
    return 0;
}

/* check_columns(keys, ends, counts) -> checksum: every rule unpack_columns checks (offsets, positive counts, strict
 * UTF-8 keys, no key twice), with no Python object made per key; the sum of the counts. ValueError as unpack's. */
static PyObject *
check_columns(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Frame f;
    if (frame_of(args, nargs, &f) < 0) {
        return NULL;
    }
    uint64_t low = 0, high = 0; /* the checksum as a 128-bit number: n counts of up to 2**64 - 1 each */
    for (Py_ssize_t i = 0; i < f.n; i++) {
        uint64_t count = load_le(f.counts + 8 * i, 8);
        if (count == 0) {
            PyErr_SetString(PyExc_ValueError, "counts must be positive");
            return NULL;
        }
        low += count;
        high += low < count;
        Py_ssize_t start = frame_start(&f, i);
        if (!utf8_valid(f.blob + start, (Py_ssize_t)load_le(f.ends + 4 * i, 4) - start)) {
            PyErr_SetString(PyExc_ValueError, "a key is not valid UTF-8");
            return NULL;
        }
    }
    Py_ssize_t repeats;
    if (frame_repeats(&f, &repeats) < 0) {
        return NULL;
    }
    if (repeats > 0) {
        return PyErr_Format(PyExc_ValueError, "%zd duplicate keys", repeats);
    }
    if (high == 0) {
        return PyLong_FromUnsignedLongLong(low);
    }
    PyObject *h = PyLong_FromUnsignedLongLong(high), *shift = PyLong_FromLong(64), *l = PyLong_FromUnsignedLongLong(low);
    PyObject *shifted = (h && shift) ? PyNumber_Lshift(h, shift) : NULL;
    PyObject *sum = (shifted && l) ? PyNumber_Add(shifted, l) : NULL;
    Py_XDECREF(h);
    Py_XDECREF(shift);
    Py_XDECREF(l);
    Py_XDECREF(shifted);
    return sum;
}

/* The entry holding token k's key, or NULL (the table is not changed). */
static Entry *
table_find(const CountTable *t, const Token *k)
{
    if (t->capacity == 0) {
        return NULL;
    }
    uint64_t tag = TAG_OF(k->hash);
    size_t mask = t->capacity - 1;
    for (size_t i = (size_t)k->hash & mask;; i = (i + 1) & mask) {
        uint64_t slot = t->slots[i];
        if (slot == 0) {
            return NULL;
        }
        if ((slot >> INDEX_BITS) == tag) {
            Entry *e = &t->entries[(slot & INDEX_MASK) - 1];
            if (e->head == k->head && e->length == k->length &&
                (k->length <= 8 || memcmp(t->arena + e->offset + 8, k->key + 8, (size_t)(k->length - 8)) == 0)) {
                return e;
            }
        }
    }
}

/* add_columns(keys, ends, counts): add a COLUMNS frame's counts to the table, making no Python object; all or
 * nothing. A first pass finds every key and refuses (OverflowError, the table unchanged) a count past 2**63 - 1
 * or a sum that would pass it, then reserves room for the new keys (MemoryError, unchanged); the second pass then
 * cannot fail. The frame must be one check_columns accepted (its keys then decode in take(), none repeats);
 * here only its offsets are checked again, which is all reading it safely needs. */
static PyObject *
CountTable_add_columns(CountTable *self, PyObject *const *args, Py_ssize_t nargs)
{
    Frame f;
    if (frame_of(args, nargs, &f) < 0) {
        return NULL;
    }
    if (enter(self) < 0) {
        return NULL;
    }
    const unsigned char *limit = f.blob + f.size;
    Py_ssize_t fresh = 0;
    int rc = 0;
    for (Py_ssize_t i = 0; i < f.n; i++) {
        Py_ssize_t start = frame_start(&f, i);
        Token k = make_token(f.blob + start, (Py_ssize_t)load_le(f.ends + 4 * i, 4) - start, limit);
        uint64_t count = load_le(f.counts + 8 * i, 8);
        const Entry *e = table_find(self, &k);
        if (count > (uint64_t)LLONG_MAX || (e != NULL && e->count > LLONG_MAX - (long long)count)) {
            PyErr_SetString(PyExc_OverflowError, "a count would pass 2**63 - 1");
            rc = -1;
            break;
        }
        fresh += e == NULL;
    }
    if (rc == 0 && fresh > 0) {
        /* Room for every new key now, so that adding them below allocates nothing and cannot fail half-way. */
        while (rc == 0 && (size_t)(self->used + fresh) * 3 > self->capacity * 2) {
            rc = grow_slots(self);
        }
        if (rc == 0 && ((uint64_t)(self->used + fresh) >= INDEX_MASK || self->arena_used > PY_SSIZE_T_MAX - f.size)) {
            PyErr_NoMemory();
            rc = -1;
        }
        if (rc == 0) {
            rc = grow_buffer((void **)&self->entries, &self->entries_capacity, self->used + fresh, sizeof(Entry));
        }
        if (rc == 0) {
            rc = grow_buffer((void **)&self->arena, &self->arena_capacity, self->arena_used + f.size, 1);
        }
    }
    Token tokens[BATCH];
    long long counts[BATCH];
    for (Py_ssize_t i = 0; i < f.n && rc == 0; i += BATCH) {
        int m = (int)(f.n - i < BATCH ? f.n - i : BATCH);
        for (int j = 0; j < m; j++) {
            Py_ssize_t start = frame_start(&f, i + j);
            tokens[j] = make_token(f.blob + start, (Py_ssize_t)load_le(f.ends + 4 * (i + j), 4) - start, limit);
            counts[j] = (long long)load_le(f.counts + 8 * (i + j), 8);
            prefetch_slot(self, &tokens[j]);
        }
        for (int j = 0; j < m && rc == 0; j++) {
            rc = table_add_token(self, &tokens[j], counts[j]); /* checked and reserved above: cannot fail */
        }
    }
    self->busy = 0;
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------ add_counts, move_counts */

/* into[key] = into.get(key, 0) + value; -1 with an exception set (then `into` is unchanged for this key). */
static int
add_one(PyObject *into, PyObject *key, PyObject *value)
{
    PyObject *have = PyDict_GetItemWithError(into, key); /* borrowed */
    if (have == NULL) {
        return PyErr_Occurred() ? -1 : PyDict_SetItem(into, key, value);
    }
    PyObject *sum = PyNumber_Add(have, value); /* new reference */
    if (sum == NULL) {
        return -1;
    }
    int rc = PyDict_SetItem(into, key, sum);
    Py_DECREF(sum);
    return rc;
}

/* add_counts(into, part): add every count of the dict `part` to the dict `into` (WordCount.combine). */
static PyObject *
add_counts(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyDict_CheckExact(args[0]) || !PyDict_Check(args[1]) || args[0] == args[1]) {
        PyErr_SetString(PyExc_TypeError, "add_counts(into, part) takes two distinct dicts");
        return NULL;
    }
    PyObject *into = args[0], *part = args[1], *key, *value;
    Py_ssize_t pos = 0;
    /* `part` is not changed while we walk it (add_one touches `into` only; str keys run no Python code). */
    while (PyDict_Next(part, &pos, &key, &value)) {
        Py_INCREF(key);
        Py_INCREF(value);
        int rc = add_one(into, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

/* move_counts(into, part, limit) -> moved: move up to `limit` counts from `part` into `into`, each key deleted
 * from `part` right after it is added to `into`, so the two together always hold every count exactly once. */
static PyObject *
move_counts(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[1]) || args[0] == args[1]) {
        PyErr_SetString(PyExc_TypeError, "move_counts(into, part, limit) takes two distinct dicts and an int");
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[2]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *into = args[0], *part = args[1], *key, *value;
    Py_ssize_t n = PyDict_GET_SIZE(part) < limit ? PyDict_GET_SIZE(part) : limit;
    if (n <= 0) {
        return PyLong_FromLong(0);
    }
    PyObject *keys = PyList_New(n); /* new reference: the keys to move, taken before `part` changes */
    if (keys == NULL) {
        return NULL;
    }
    Py_ssize_t pos = 0, i = 0;
    while (i < n && PyDict_Next(part, &pos, &key, &value)) {
        Py_INCREF(key);
        PyList_SET_ITEM(keys, i++, key);
    }
    Py_ssize_t moved = 0;
    for (; moved < n; moved++) {
        key = PyList_GET_ITEM(keys, moved);
        value = PyDict_GetItemWithError(part, key); /* borrowed; `part` holds it until the delete below */
        if (value == NULL) {
            if (PyErr_Occurred()) {
                break;
            }
            continue;
        }
        Py_INCREF(value);
        int rc = add_one(into, key, value);
        Py_DECREF(value);
        if (rc < 0 || PyDict_DelItem(part, key) < 0) {
            break; /* an added key that failed to leave `part` is impossible: deleting a present key cannot fail */
        }
    }
    Py_DECREF(keys);
    if (PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromSsize_t(moved);
}

static PyMethodDef module_methods[] = {
    {"add_counts", (PyCFunction)(void (*)(void))add_counts, METH_FASTCALL,
     "add_counts(into, part, /)\n--\n\nAdd every count of the dict part to the dict into."},
    {"move_counts", (PyCFunction)(void (*)(void))move_counts, METH_FASTCALL,
     "move_counts(into, part, limit, /)\n--\n\nMove up to limit counts from part into into; the number moved."},
    {"check_columns", (PyCFunction)(void (*)(void))check_columns, METH_FASTCALL,
     "check_columns(keys, ends, counts, /)\n--\n\nCheck a COLUMNS frame as unpack_columns does; the sum of its counts."},
    {"unpack_columns", (PyCFunction)(void (*)(void))unpack_columns, METH_FASTCALL,
     "unpack_columns(keys, ends, counts, /)\n--\n\nThe dict a COLUMNS frame stands for; ValueError if malformed."},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------------------------------ module */

/* hash_seed from os.urandom(8); -1 with an exception set. */
static int
seed_hash(void)
{
    PyObject *os = PyImport_ImportModule("os"); /* new reference */
    if (os == NULL) {
        return -1;
    }
    PyObject *random = PyObject_CallMethod(os, "urandom", "i", 8); /* new reference */
    Py_DECREF(os);
    if (random == NULL) {
        return -1;
    }
    if (!PyBytes_Check(random) || PyBytes_GET_SIZE(random) != 8) {
        Py_DECREF(random);
        PyErr_SetString(PyExc_RuntimeError, "os.urandom(8) did not return 8 bytes");
        return -1;
    }
    memcpy(&hash_seed, PyBytes_AS_STRING(random), 8);
    Py_DECREF(random);
    return 0;
}

static struct PyModuleDef wordcount_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "actors.jobs.wordcount._wordcount",
    .m_doc = "The native word-count kernel (see actors/jobs/kernel.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__wordcount(void)
{
    init_byte_classes();
    init_crc_table();
    if (seed_hash() < 0 || PyType_Ready(&CountTableType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&wordcount_module); /* new reference */
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&CountTableType); /* PyModule_AddObject steals one reference on success only */
    if (PyModule_AddObject(module, "CountTable", (PyObject *)&CountTableType) < 0) {
        Py_DECREF(&CountTableType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
