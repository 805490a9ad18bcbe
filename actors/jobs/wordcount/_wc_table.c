/* The count table: crc32 partitioning, the seeded key hash, the open-addressing index and the key arena, and
 * take()'s dicts per partition. */
#include "_wc.h"

/* ------------------------------------------------------------------------------------------ crc32 */

uint32_t crc_table[256];

void
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
uint32_t
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
uint64_t hash_seed;




/* -------------------------------------------------------------------------------------------- table */




/* Grow a PyMem buffer to hold at least `need` items of `size` bytes, doubling; -1 with MemoryError set. */
int
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
int
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
int
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





/* Count one occurrence of key[0:length], which lies in a buffer ending at `limit`; -1 with MemoryError set. */
int
table_count(CountTable *t, const unsigned char *key, Py_ssize_t length, const unsigned char *limit)
{
    Token k = make_token(key, length, limit);
    return table_count_token(t, &k);
}

void
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

/* --------------------------------------------------------------------------------------- take() */

/* Add entry e to its partition's dict in `parts`. Borrows `parts`; the key and value are ours until set. */
int
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
PyObject *
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
