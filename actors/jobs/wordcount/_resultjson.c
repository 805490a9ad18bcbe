/* The native result encoder: a word-count result as the JSON object the master holds, entries in top order.
 *
 * Three functions (see actors/jobs/resultjson.py for how they are used):
 *   - ordered_counts_json(result): a whole str -> int dict ordered and encoded at once (described below);
 *   - ordered_columns(result): a reducer's partition as COLUMNS (keys, ends, counts) already in top order, so the
 *     sorting happens on every reducer at once instead of on the master;
 *   - merge_columns_json(runs): the master merges those ordered runs (one per reducer, checked: offsets, counts,
 *     strict UTF-8 as Python decodes it, strictly increasing top order) straight into the same JSON bytes, never
 *     making a Python object per key. UTF-8 byte order is code point order, so the merge orders as str does.
 *
 * ordered_counts_json(result) returns exactly
 *     json.dumps(dict(sorted(result.items(), key=lambda kv: (-kv[1], kv[0]))),
 *                separators=(",", ":"), ensure_ascii=True).encode("ascii")
 * for a dict whose keys are all str and whose values are all int (exactly, not bool) in the C long long range.
 * Anything else raises TypeError or OverflowError, and the caller uses the Python path (actors/jobs/resultjson.py).
 *
 * Why: the master orders and encodes a finished result once. For a million keys, sorting with a Python key
 * function and json.dumps of the ordered dict take seconds; here it is one qsort and one pass of byte copies.
 *
 * Exactness: keys compare as Python compares str (code point order: PyUnicode_Compare, or memcmp when both are
 * ASCII, which orders the same). Keys of one byte per character carry their first 8 characters packed big-endian
 * so most comparisons read no string: unequal prefixes order exactly as the strings do, equal ones fall through. Strings are escaped as CPython's _json.c escapes them with ensure_ascii: printable
 * ASCII except '"' and '\\' as is; '"', '\\', \b \f \n \r \t by their short escapes; every other code point as
 * \uXXXX in lowercase hex, above U+FFFF as a UTF-16 surrogate pair. tests/test_resultjson.py compares both ways
 * byte for byte under hypothesis, lone surrogates and every code point class included.
 *
 * The dict is only read: keys are borrowed for the length of the call, during which no Python code runs (the GIL
 * is held and nothing here calls back into Python except PyUnicode_Compare on exact str, which runs none).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_mix.h"
#include "_utf8.h"

typedef struct {
    long long count;
    uint64_t prefix; /* a 1-byte-kind key's first 8 characters, big-endian, zero-padded (0 otherwise) */
    int has_prefix;
    PyObject *key; /* borrowed from the dict */
} Entry;

static const char hexdigits[] = "0123456789abcdef";

static int
compare_entries(const void *left, const void *right)
{
    const Entry *a = (const Entry *)left, *b = (const Entry *)right;
    if (a->count != b->count) {
        return a->count > b->count ? -1 : 1; /* the largest count first */
    }
    /* Zero padding orders a shorter key first, as str does; equal prefixes may still differ (or end in NULs). */
    if (a->has_prefix && b->has_prefix && a->prefix != b->prefix) {
        return a->prefix < b->prefix ? -1 : 1;
    }
    if (PyUnicode_IS_ASCII(a->key) && PyUnicode_IS_ASCII(b->key)) {
        Py_ssize_t la = PyUnicode_GET_LENGTH(a->key), lb = PyUnicode_GET_LENGTH(b->key);
        int c = memcmp(PyUnicode_1BYTE_DATA(a->key), PyUnicode_1BYTE_DATA(b->key), (size_t)(la < lb ? la : lb));
        if (c != 0) {
            return c;
        }
        return la < lb ? -1 : (la > lb ? 1 : 0);
    }
    /* Exact str on both sides: cannot fail, runs no Python code. */
    return PyUnicode_Compare(a->key, b->key);
}

/* The bytes one code point takes when escaped as _json.c's ensure_ascii does. */
static inline Py_ssize_t
escaped_width(Py_UCS4 c)
{
    if (c >= ' ' && c <= '~' && c != '\\' && c != '"') {
        return 1;
    }
    switch (c) {
    case '\\': case '"': case '\b': case '\f': case '\n': case '\r': case '\t':
        return 2;
    default:
        return c >= 0x10000 ? 12 : 6;
    }
}

static inline char *
put_u4(char *out, Py_UCS4 v)
{
    *out++ = '\\';
    *out++ = 'u';
    *out++ = hexdigits[(v >> 12) & 0xf];
    *out++ = hexdigits[(v >> 8) & 0xf];
    *out++ = hexdigits[(v >> 4) & 0xf];
    *out++ = hexdigits[v & 0xf];
    return out;
}

static inline char *
put_escaped(char *out, Py_UCS4 c)
{
    if (c >= ' ' && c <= '~' && c != '\\' && c != '"') {
        *out++ = (char)c;
        return out;
    }
    switch (c) {
    case '\\': *out++ = '\\'; *out++ = '\\'; return out;
    case '"': *out++ = '\\'; *out++ = '"'; return out;
    case '\b': *out++ = '\\'; *out++ = 'b'; return out;
    case '\f': *out++ = '\\'; *out++ = 'f'; return out;
    case '\n': *out++ = '\\'; *out++ = 'n'; return out;
    case '\r': *out++ = '\\'; *out++ = 'r'; return out;
    case '\t': *out++ = '\\'; *out++ = 't'; return out;
    default:
        break;
    }
    if (c >= 0x10000) {
        Py_UCS4 v = c - 0x10000;
        out = put_u4(out, 0xd800 | ((v >> 10) & 0x3ff));
        return put_u4(out, 0xdc00 | (v & 0x3ff));
    }
    return put_u4(out, c);
}

/* Whether every character of an ASCII key is written as itself (the common case: one memcpy). */
static inline int
ascii_plain(const Py_UCS1 *data, Py_ssize_t length)
{
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS1 c = data[i];
        if (c < ' ' || c > '~' || c == '\\' || c == '"') {
            return 0;
        }
    }
    return 1;
}

/* The escaped length of a key (quotes excluded), or -1 with OverflowError set past PY_SSIZE_T_MAX / 2. */
static Py_ssize_t
key_width(PyObject *key, int *plain)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(key);
    if (PyUnicode_IS_ASCII(key) && ascii_plain(PyUnicode_1BYTE_DATA(key), length)) {
        *plain = 1;
        return length;
    }
    *plain = 0;
    int kind = PyUnicode_KIND(key);
    const void *data = PyUnicode_DATA(key);
    Py_ssize_t width = 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        width += escaped_width(PyUnicode_READ(kind, data, i));
        if (width > PY_SSIZE_T_MAX / 4) {
            PyErr_SetString(PyExc_OverflowError, "result too large to encode");
            return -1;
        }
    }
    return width;
}

/* The entries of a str -> int dict, sorted in top order, in *n; with *json_total the bytes of its JSON form
 * (an upper bound: 20 digits a count). NULL with an exception set when a key is not an exact str or a value not an
 * exact int within a long long. The keys are borrowed from the dict. */
static Entry *
sorted_entries(PyObject *result, Py_ssize_t *n_out, Py_ssize_t *json_total)
{
    if (!PyDict_CheckExact(result)) {
        PyErr_SetString(PyExc_TypeError, "expected a dict");
        return NULL;
    }
    Py_ssize_t n = PyDict_GET_SIZE(result);
    Entry *entries = PyMem_Malloc(sizeof(Entry) * (size_t)(n > 0 ? n : 1));
    if (entries == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    Py_ssize_t pos = 0, i = 0;
    PyObject *key, *value;
    /* Size: braces, and per entry two quotes, a colon, a comma and at most 20 digits of a long long. */
    Py_ssize_t total = 2;
    while (PyDict_Next(result, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            PyErr_SetString(PyExc_TypeError, "keys must be str");
            goto fail;
        }
        if (!PyLong_CheckExact(value)) {
            PyErr_SetString(PyExc_TypeError, "values must be int");
            goto fail;
        }
        long long count = PyLong_AsLongLong(value); /* OverflowError past the range: the caller's Python path */
        if (count == -1 && PyErr_Occurred()) {
            goto fail;
        }
        int plain;
        Py_ssize_t width = key_width(key, &plain);
        if (width < 0) {
            goto fail;
        }
        if (total > PY_SSIZE_T_MAX / 2 - width - 24) {
            PyErr_SetString(PyExc_OverflowError, "result too large to encode");
            goto fail;
        }
        total += width + 24;
        entries[i].count = count;
        entries[i].key = key;
        entries[i].has_prefix = PyUnicode_KIND(key) == PyUnicode_1BYTE_KIND;
        entries[i].prefix = 0;
        if (entries[i].has_prefix) {
            const Py_UCS1 *data = PyUnicode_1BYTE_DATA(key);
            Py_ssize_t length = PyUnicode_GET_LENGTH(key);
            for (int b = 0; b < 8; b++) {
                entries[i].prefix = (entries[i].prefix << 8) | (b < length ? data[b] : 0);
            }
        }
        i++;
    }
    qsort(entries, (size_t)n, sizeof(Entry), compare_entries);
    *n_out = n;
    *json_total = total;
    return entries;
fail:
    PyMem_Free(entries);
    return NULL;
}

/* Decimal digits of v (no sign) into out; returns the count. */
static inline int
put_decimal(char *out, unsigned long long v)
{
    char digits[20];
    int count = 0;
    do {
        digits[count++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int j = 0; j < count; j++) {
        out[j] = digits[count - 1 - j];
    }
    return count;
}

static PyObject *
ordered_counts_json(PyObject *module, PyObject *result)
{
    (void)module;
    Py_ssize_t n, total;
    Entry *entries = sorted_entries(result, &n, &total);
    if (entries == NULL) {
        return NULL;
    }
    PyObject *bytes = NULL;
    char *buffer = PyMem_Malloc((size_t)total);
    if (buffer == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    char *out = buffer;
    *out++ = '{';
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i > 0) {
            *out++ = ',';
        }
        *out++ = '"';
        PyObject *k = entries[i].key;
        Py_ssize_t length = PyUnicode_GET_LENGTH(k);
        if (PyUnicode_IS_ASCII(k) && ascii_plain(PyUnicode_1BYTE_DATA(k), length)) {
            memcpy(out, PyUnicode_1BYTE_DATA(k), (size_t)length);
            out += length;
        } else {
            int kind = PyUnicode_KIND(k);
            const void *data = PyUnicode_DATA(k);
            for (Py_ssize_t j = 0; j < length; j++) {
                out = put_escaped(out, PyUnicode_READ(kind, data, j));
            }
        }
        *out++ = '"';
        *out++ = ':';
        long long count = entries[i].count;
        if (count < 0) {
            *out++ = '-';
            out += put_decimal(out, 0ULL - (unsigned long long)count); /* well defined for LLONG_MIN too */
        } else {
            out += put_decimal(out, (unsigned long long)count);
        }
    }
    *out++ = '}';
    bytes = PyBytes_FromStringAndSize(buffer, out - buffer);
    PyMem_Free(buffer);
done:
    PyMem_Free(entries);
    return bytes;
}

/* ------------------------------------------------------------------------------ ordered columns */

static inline void
put_le32(unsigned char *out, uint32_t v)
{
    for (int b = 0; b < 4; b++) {
        out[b] = (unsigned char)(v >> (8 * b));
    }
}

static inline void
put_le64(unsigned char *out, uint64_t v)
{
    for (int b = 0; b < 8; b++) {
        out[b] = (unsigned char)(v >> (8 * b));
    }
}

static inline uint32_t
get_le32(const unsigned char *in)
{
    return (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 24;
}

static inline uint64_t
get_le64(const unsigned char *in)
{
    uint64_t v = 0;
    for (int b = 7; b >= 0; b--) {
        v = (v << 8) | in[b];
    }
    return v;
}

/* ordered_columns(result) -> (keys, ends, counts): the COLUMNS layout of a str -> int dict, entries in top order.
 * ValueError for a count below 1; UnicodeEncodeError for a key strict UTF-8 cannot carry (a lone surrogate). */
static PyObject *
ordered_columns(PyObject *module, PyObject *result)
{
    (void)module;
    Py_ssize_t n, json_total;
    Entry *entries = sorted_entries(result, &n, &json_total);
    if (entries == NULL) {
        return NULL;
    }
    PyObject *keys = NULL, *ends = NULL, *counts = NULL, *answer = NULL;
    Py_ssize_t blob = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t size;
        if (entries[i].count < 1) {
            PyErr_SetString(PyExc_ValueError, "columns carry counts of at least 1");
            goto done;
        }
        /* ASCII: the str's own bytes; otherwise its UTF-8, cached in the str (strict: no lone surrogates). */
        if (PyUnicode_AsUTF8AndSize(entries[i].key, &size) == NULL) {
            goto done;
        }
        blob += size;
        if (blob > (Py_ssize_t)UINT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "more key bytes than 32-bit offsets reach");
            goto done;
        }
    }
    keys = PyBytes_FromStringAndSize(NULL, blob);
    ends = PyBytes_FromStringAndSize(NULL, 4 * n);
    counts = PyBytes_FromStringAndSize(NULL, 8 * n);
    if (keys == NULL || ends == NULL || counts == NULL) {
        goto done;
    }
    char *k = PyBytes_AS_STRING(keys);
    unsigned char *e = (unsigned char *)PyBytes_AS_STRING(ends), *c = (unsigned char *)PyBytes_AS_STRING(counts);
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t size;
        const char *utf8 = PyUnicode_AsUTF8AndSize(entries[i].key, &size); /* cached above: cannot fail now */
        memcpy(k + at, utf8, (size_t)size);
        at += size;
        put_le32(e + 4 * i, (uint32_t)at);
        put_le64(c + 8 * i, (uint64_t)entries[i].count);
    }
    answer = PyTuple_Pack(3, keys, ends, counts);
done:
    Py_XDECREF(keys);
    Py_XDECREF(ends);
    Py_XDECREF(counts);
    PyMem_Free(entries);
    return answer;
}

/* ------------------------------------------------------------------------ merging ordered runs */

typedef struct {
    const unsigned char *keys, *ends, *counts;
    Py_ssize_t n, next;
} Run;

/* The escaped width of a UTF-8 key, or -1 if it is not valid UTF-8. */
static Py_ssize_t
utf8_key_width(const unsigned char *key, Py_ssize_t size)
{
    Py_ssize_t width = 0;
    for (Py_ssize_t at = 0; at < size;) {
        Py_UCS4 point;
        int used = utf8_point(key + at, size - at, &point);
        if (used == 0) {
            return -1;
        }
        width += escaped_width(point);
        at += used;
    }
    return width;
}

static inline Py_ssize_t
run_start(const Run *run, Py_ssize_t i)
{
    return i == 0 ? 0 : (Py_ssize_t)get_le32(run->ends + 4 * (i - 1));
}

/* <0 when entry i of run a comes before entry j of run b in top order, >0 after, 0 when equal. */
static inline int
compare_run_entries(const Run *a, Py_ssize_t i, const Run *b, Py_ssize_t j)
{
    uint64_t ca = get_le64(a->counts + 8 * i), cb = get_le64(b->counts + 8 * j);
    if (ca != cb) {
        return ca > cb ? -1 : 1;
    }
    Py_ssize_t sa = run_start(a, i), la = (Py_ssize_t)get_le32(a->ends + 4 * i) - sa;
    Py_ssize_t sb = run_start(b, j), lb = (Py_ssize_t)get_le32(b->ends + 4 * j) - sb;
    int c = memcmp(a->keys + sa, b->keys + sb, (size_t)(la < lb ? la : lb));
    if (c != 0) {
        return c;
    }
    return la < lb ? -1 : (la > lb ? 1 : 0);
}

/* Seeded once per process from os.urandom (as the kernel's table is), so a reducer cannot craft keys that collide
 * in the repeat check below and make the master's merge quadratic. */
static uint64_t hash_seed;

/* Whether any key stands twice in the runs (in one run, or in two): an open-addressing set of (run, entry) pairs
 * keyed by a seeded FNV-1a hash of the key's bytes. 1 if one repeats, 0 if none, -1 with MemoryError set. */
static int
runs_repeat_a_key(const Run *runs, Py_ssize_t k)
{
    Py_ssize_t total = 0;
    for (Py_ssize_t r = 0; r < k; r++) {
        total += runs[r].n;
    }
    size_t capacity = 16;
    while (capacity < (size_t)total * 2) {
        capacity *= 2;
    }
    uint64_t *slots = PyMem_Calloc(capacity, sizeof(uint64_t)); /* (run << 40) | (entry + 1); 0 is empty */
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int repeats = 0;
    for (Py_ssize_t r = 0; r < k && !repeats; r++) {
        for (Py_ssize_t i = 0; i < runs[r].n && !repeats; i++) {
            Py_ssize_t start = run_start(&runs[r], i), length = (Py_ssize_t)get_le32(runs[r].ends + 4 * i) - start;
            const unsigned char *key = runs[r].keys + start;
            uint64_t hash = 0xcbf29ce484222325ULL ^ hash_seed;
            for (Py_ssize_t b = 0; b < length; b++) {
                hash = (hash ^ key[b]) * 0x100000001b3ULL;
            }
            hash = mix(hash ^ hash_seed);
            for (size_t at = (size_t)hash & (capacity - 1);; at = (at + 1) & (capacity - 1)) {
                uint64_t slot = slots[at];
                if (slot == 0) {
                    slots[at] = ((uint64_t)r << 40) | (uint64_t)(i + 1);
                    break;
                }
                const Run *other = &runs[slot >> 40];
                Py_ssize_t j = (Py_ssize_t)(slot & ((1ULL << 40) - 1)) - 1, other_start = run_start(other, j);
                if ((Py_ssize_t)get_le32(other->ends + 4 * j) - other_start == length &&
                    memcmp(other->keys + other_start, key, (size_t)length) == 0) {
                    repeats = 1;
                    break;
                }
            }
        }
    }
    PyMem_Free(slots);
    return repeats;
}

/* merge_columns_json(runs) -> bytes: runs of COLUMNS (keys, ends, counts), each strictly in top order, merged into
 * the held JSON object. ValueError for anything malformed, out of order or repeating a key (the caller then takes the
 * general path, which names the problem). */
static PyObject *
merge_columns_json(PyObject *module, PyObject *runs_list)
{
    (void)module;
    if (!PyList_CheckExact(runs_list)) {
        PyErr_SetString(PyExc_TypeError, "merge_columns_json() takes a list of (keys, ends, counts)");
        return NULL;
    }
    Py_ssize_t k = PyList_GET_SIZE(runs_list);
    Run *runs = PyMem_Malloc(sizeof(Run) * (size_t)(k > 0 ? k : 1));
    if (runs == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *bytes = NULL;
    char *buffer = NULL;
    Py_ssize_t total = 2;
    for (Py_ssize_t r = 0; r < k; r++) {
        PyObject *item = PyList_GET_ITEM(runs_list, r);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 3 || !PyBytes_CheckExact(PyTuple_GET_ITEM(item, 0))
            || !PyBytes_CheckExact(PyTuple_GET_ITEM(item, 1)) || !PyBytes_CheckExact(PyTuple_GET_ITEM(item, 2))) {
            PyErr_SetString(PyExc_TypeError, "each run is a tuple of three bytes: keys, ends, counts");
            goto done;
        }
        Run *run = &runs[r];
        PyObject *keys = PyTuple_GET_ITEM(item, 0), *ends = PyTuple_GET_ITEM(item, 1);
        PyObject *counts = PyTuple_GET_ITEM(item, 2);
        Py_ssize_t blob = PyBytes_GET_SIZE(keys), n = PyBytes_GET_SIZE(ends) / 4;
        if (PyBytes_GET_SIZE(ends) % 4 != 0 || PyBytes_GET_SIZE(counts) != 8 * n) {
            PyErr_Format(PyExc_ValueError, "run %zd: %zd end bytes and %zd count bytes do not make whole entries", r,
                         PyBytes_GET_SIZE(ends), PyBytes_GET_SIZE(counts));
            goto done;
        }
        run->keys = (const unsigned char *)PyBytes_AS_STRING(keys);
        run->ends = (const unsigned char *)PyBytes_AS_STRING(ends);
        run->counts = (const unsigned char *)PyBytes_AS_STRING(counts);
        run->n = n;
        run->next = 0;
        Py_ssize_t previous = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t end = (Py_ssize_t)get_le32(run->ends + 4 * i);
            if (end < previous || end > blob || (i == n - 1 && end != blob)) {
                PyErr_Format(PyExc_ValueError, "run %zd: key %zd ends at %zd, outside its %zd key bytes", r, i, end,
                             blob);
                goto done;
            }
            uint64_t count = get_le64(run->counts + 8 * i);
            if (count == 0) {
                PyErr_Format(PyExc_ValueError, "run %zd: key %zd has a count of 0", r, i);
                goto done;
            }
            if (i > 0 && compare_run_entries(run, i - 1, run, i) >= 0) {
                PyErr_Format(PyExc_ValueError, "run %zd: key %zd is out of top order (or repeats a key)", r, i);
                goto done;
            }
            Py_ssize_t width = utf8_key_width(run->keys + previous, end - previous);
            if (width < 0) {
                PyErr_Format(PyExc_ValueError, "run %zd: key %zd is not valid UTF-8", r, i);
                goto done;
            }
            if (total > PY_SSIZE_T_MAX / 2 - width - 24) {
                PyErr_SetString(PyExc_OverflowError, "result too large to encode");
                goto done;
            }
            total += width + 24;
            previous = end;
        }
        if (n == 0 && blob != 0) {
            PyErr_Format(PyExc_ValueError, "run %zd: key bytes without keys", r);
            goto done;
        }
    }
    int repeats = runs_repeat_a_key(runs, k);
    if (repeats != 0) {
        if (repeats > 0) {
            PyErr_SetString(PyExc_ValueError, "a key stands twice in the runs");
        }
        goto done;
    }
    buffer = PyMem_Malloc((size_t)total);
    if (buffer == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    char *out = buffer;
    *out++ = '{';
    int first = 1;
    for (;;) {
        Run *best = NULL;
        for (Py_ssize_t r = 0; r < k; r++) { /* a linear scan: there are as many runs as reducers */
            Run *run = &runs[r];
            if (run->next < run->n && (best == NULL || compare_run_entries(run, run->next, best, best->next) < 0)) {
                best = run;
            }
        }
        if (best == NULL) {
            break;
        }
        Py_ssize_t i = best->next++;
        if (!first) {
            *out++ = ',';
        }
        first = 0;
        *out++ = '"';
        Py_ssize_t start = run_start(best, i), end = (Py_ssize_t)get_le32(best->ends + 4 * i);
        for (Py_ssize_t at = start; at < end;) {
            Py_UCS4 point;
            at += utf8_point(best->keys + at, end - at, &point); /* validated above */
            out = put_escaped(out, point);
        }
        *out++ = '"';
        *out++ = ':';
        out += put_decimal(out, get_le64(best->counts + 8 * i));
    }
    *out++ = '}';
    bytes = PyBytes_FromStringAndSize(buffer, out - buffer);
done:
    PyMem_Free(buffer);
    PyMem_Free(runs);
    return bytes;
}

static PyMethodDef module_methods[] = {
    {"ordered_counts_json", (PyCFunction)ordered_counts_json, METH_O,
     "ordered_counts_json(result, /)\n--\n\nA str -> int dict as compact ASCII JSON, largest count first, ties by "
     "key; TypeError or OverflowError for anything else."},
    {"ordered_columns", (PyCFunction)ordered_columns, METH_O,
     "ordered_columns(result, /)\n--\n\nA str -> int dict as COLUMNS (keys, ends, counts), in top order."},
    {"merge_columns_json", (PyCFunction)merge_columns_json, METH_O,
     "merge_columns_json(runs, /)\n--\n\nRuns of COLUMNS in top order merged into the held JSON object."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef resultjson_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "actors.jobs.wordcount._resultjson",
    .m_doc = "The native result encoder (see actors/jobs/wordcount/encode.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

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

PyMODINIT_FUNC
PyInit__resultjson(void)
{
    if (seed_hash() < 0) {
        return NULL;
    }
    return PyModule_Create(&resultjson_module);
}
