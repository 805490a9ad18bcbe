/* The native result encoder: a word-count result as the JSON object the master holds, entries in top order.
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

static PyObject *
ordered_counts_json(PyObject *module, PyObject *result)
{
    (void)module;
    if (!PyDict_CheckExact(result)) {
        PyErr_SetString(PyExc_TypeError, "ordered_counts_json() takes a dict");
        return NULL;
    }
    Py_ssize_t n = PyDict_GET_SIZE(result);
    Entry *entries = PyMem_Malloc(sizeof(Entry) * (size_t)(n > 0 ? n : 1));
    if (entries == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *bytes = NULL;
    Py_ssize_t pos = 0, i = 0;
    PyObject *key, *value;
    /* Size: braces, and per entry two quotes, a colon, a comma and at most 20 digits of a long long. */
    Py_ssize_t total = 2;
    while (PyDict_Next(result, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            PyErr_SetString(PyExc_TypeError, "ordered_counts_json() keys must be str");
            goto done;
        }
        if (!PyLong_CheckExact(value)) {
            PyErr_SetString(PyExc_TypeError, "ordered_counts_json() values must be int");
            goto done;
        }
        long long count = PyLong_AsLongLong(value); /* OverflowError past the range: the caller's Python path */
        if (count == -1 && PyErr_Occurred()) {
            goto done;
        }
        int plain;
        Py_ssize_t width = key_width(key, &plain);
        if (width < 0) {
            goto done;
        }
        if (total > PY_SSIZE_T_MAX / 2 - width - 24) {
            PyErr_SetString(PyExc_OverflowError, "result too large to encode");
            goto done;
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

    char *buffer = PyMem_Malloc((size_t)total);
    if (buffer == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    char *out = buffer;
    *out++ = '{';
    for (i = 0; i < n; i++) {
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
        /* %lld: the same digits as int.__repr__ for any long long, sign included. */
        out += snprintf(out, 21, "%lld", entries[i].count);
    }
    *out++ = '}';
    bytes = PyBytes_FromStringAndSize(buffer, out - buffer);
    PyMem_Free(buffer);
done:
    PyMem_Free(entries);
    return bytes;
}

static PyMethodDef module_methods[] = {
    {"ordered_counts_json", (PyCFunction)ordered_counts_json, METH_O,
     "ordered_counts_json(result, /)\n--\n\nA str -> int dict as compact ASCII JSON, largest count first, ties by "
     "key; TypeError or OverflowError for anything else."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef resultjson_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "actors.jobs._resultjson",
    .m_doc = "The native result encoder (see actors/jobs/resultjson.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__resultjson(void)
{
    return PyModule_Create(&resultjson_module);
}
