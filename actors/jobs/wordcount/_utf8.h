/* Strict UTF-8, shared by the native extensions (actors/jobs/_wordcount.c, _resultjson.c): one code point decoded
 * exactly as Python's strict decoder accepts it. Included, not linked: each extension is its own module. */
#ifndef ACTORS_JOBS_UTF8_H
#define ACTORS_JOBS_UTF8_H

#include <Python.h>

/* Decode one UTF-8 code point strictly as Python's decoder does (no overlongs, surrogates or values past
 * U+10FFFF); its length in bytes, or 0 when the bytes at `in` are not one. */
static inline int
utf8_point(const unsigned char *in, Py_ssize_t left, Py_UCS4 *point)
{
    unsigned char b0 = in[0];
    if (b0 < 0x80) {
        *point = b0;
        return 1;
    }
    int length;
    Py_UCS4 v, least;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        length = 2, v = b0 & 0x1f, least = 0x80;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        length = 3, v = b0 & 0x0f, least = 0x800;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        length = 4, v = b0 & 0x07, least = 0x10000;
    } else {
        return 0;
    }
    if (left < length) {
        return 0;
    }
    for (int j = 1; j < length; j++) {
        if ((in[j] & 0xc0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (in[j] & 0x3f);
    }
    if (v < least || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }
    *point = v;
    return length;
}

#endif
