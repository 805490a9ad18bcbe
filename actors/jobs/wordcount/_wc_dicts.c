/* Dict helpers: add_counts and move_counts, a reducer's merges of plain str -> int dicts; fold_sum, an SDK job's SUM. */
#include "_wc.h"

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
PyObject *
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
PyObject *
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

/* ------------------------------------------------------------------------------------------------ fold_sum */

/* fold_sum(into, pairs): `for key, value in pairs: into[key] = into.get(key, 0) + value`, the same operations in
 * the same order (so the same result and the same exceptions), without a Python frame per pair: an SDK job's
 * declared SUM folded as its mapper yields (actors.jobs.partials). Keys are any hashable objects. */
PyObject *
fold_sum(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyDict_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "fold_sum(into, pairs) takes a dict and an iterable of pairs");
        return NULL;
    }
    PyObject *into = args[0];
    PyObject *iterator = PyObject_GetIter(args[1]);
    if (iterator == NULL) {
        return NULL;
    }
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) {
        Py_DECREF(iterator);
        return NULL;
    }
    PyObject *item;
    int failed = 0;
    while (!failed && (item = PyIter_Next(iterator)) != NULL) {
        PyObject *pair = item;
        if (!PyTuple_CheckExact(item)) { /* any iterable unpacks, as in Python: a list, a 2-character str */
            if (Py_TYPE(item)->tp_iter == NULL && !PySequence_Check(item)) {
                PyErr_Format(PyExc_TypeError, "cannot unpack non-iterable %.200s object", Py_TYPE(item)->tp_name);
                Py_DECREF(item);
                failed = 1;
                break;
            }
            pair = PySequence_Tuple(item);
            Py_DECREF(item);
            if (pair == NULL) {
                failed = 1;
                break;
            }
        }
        if (PyTuple_GET_SIZE(pair) != 2) {
            if (PyTuple_GET_SIZE(pair) < 2) {
                PyErr_Format(PyExc_ValueError, "not enough values to unpack (expected 2, got %zd)",
                             PyTuple_GET_SIZE(pair));
            }
            else {
                PyErr_SetString(PyExc_ValueError, "too many values to unpack (expected 2)");
            }
            Py_DECREF(pair);
            failed = 1;
            break;
        }
        PyObject *key = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1); /* borrowed from pair */
        PyObject *have = PyDict_GetItemWithError(into, key);                             /* borrowed */
        PyObject *sum;
        if (have == NULL && PyErr_Occurred()) {
            sum = NULL;
        }
        else if (have == NULL && PyLong_CheckExact(value)) {
            Py_INCREF(value); /* 0 + an int is that int */
            sum = value;
        }
        else {
            have = have == NULL ? zero : have;
            Py_INCREF(have); /* a value's __add__ may run code that changes `into` */
            sum = PyNumber_Add(have, value);
            Py_DECREF(have);
        }
        if (sum == NULL || PyDict_SetItem(into, key, sum) < 0) {
            failed = 1;
        }
        Py_XDECREF(sum);
        Py_DECREF(pair);
    }
    Py_DECREF(zero);
    Py_DECREF(iterator);
    if (failed || PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}
