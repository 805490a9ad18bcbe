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
#include "_wc.h"

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
int
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

static PyMethodDef module_methods[] = {
    {"add_counts", (PyCFunction)(void (*)(void))add_counts, METH_FASTCALL,
     "add_counts(into, part, /)\n--\n\nAdd every count of the dict part to the dict into."},
    {"move_counts", (PyCFunction)(void (*)(void))move_counts, METH_FASTCALL,
     "move_counts(into, part, limit, /)\n--\n\nMove up to limit counts from part into into; the number moved."},
    {"fold_sum", (PyCFunction)(void (*)(void))fold_sum, METH_FASTCALL,
     "fold_sum(into, pairs, /)\n--\n\nfor key, value in pairs: into[key] = into.get(key, 0) + value."},
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
    .m_doc = "The native word-count kernel (see actors/jobs/wordcount/kernel.py).",
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
