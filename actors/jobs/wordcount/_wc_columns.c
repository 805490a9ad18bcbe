/* The COLUMNS codec: a table's counts cut into frames (take_columns), and frames checked, unpacked or added to a
 * table (unpack_columns, check_columns, add_columns); every offset is checked before it is read. */
#include "_wc.h"

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
PyObject *
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
PyObject *
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
PyObject *
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
        /* Before reading: a lying peer's middle offset may point past the blob while its last one is right. */
        if (end > size) {
            PyErr_Format(PyExc_ValueError, "key %zd ends at %zd, past the end of %zd key bytes", i, end, size);
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
PyObject *
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
PyObject *
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
