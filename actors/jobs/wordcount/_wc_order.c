/* Ordering: a table's counts as one COLUMNS run in top order (largest count first, ties by key). */
#include "_wc.h"

/* ------------------------------------------------------------------------------- ordered_columns() */

/* What the top-order sort compares: most keys differ in their count or first 8 bytes, read here in order. Each
 * item carries its key, so the comparator needs no context: no global, and sorts of two tables never share state
 * (qsort has no portable context argument). Keys and entries are below 2**32: the arena is checked first. */
typedef struct {
    long long count;
    uint64_t prefix; /* the key's first 8 bytes, big-endian, zero-padded: compares as the bytes do */
    const unsigned char *key; /* in the table's arena */
    uint32_t length;
    uint32_t entry;
} Ranked;

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
    uint32_t shorter = a->length < b->length ? a->length : b->length;
    int c = shorter > 8 ? memcmp(a->key + 8, b->key + 8, (size_t)(shorter - 8)) : 0;
    if (c != 0) {
        return c;
    }
    return a->length < b->length ? -1 : (a->length > b->length ? 1 : 0);
}

/* ordered_columns() -> (keys, ends, counts): every count as one COLUMNS run in top order (largest count first,
 * ties by key: UTF-8 byte order is code point order), the table unchanged. OverflowError past 4 GiB of keys. */
PyObject *
CountTable_ordered_columns(CountTable *self, PyObject *Py_UNUSED(ignored))
{
    if (self->arena_used > (Py_ssize_t)UINT32_MAX || self->used > (Py_ssize_t)UINT32_MAX) {
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
        const Entry *e = &self->entries[n];
        ranked[n] = (Ranked){e->count, big_endian(e->head), self->arena + e->offset, (uint32_t)e->length,
                             (uint32_t)n};
    }
    qsort(ranked, (size_t)used, sizeof(Ranked), compare_ranked);
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
