/* The tokenizer: finds str.split() tokens in chunks of whole lines, clean stretches in C and dirty lines through
 * Python's own str.split(), and counts them into a table (see _wc_module.c for why this is exact). */
#include "_wc.h"

/* --------------------------------------------------------------------------------------- byte classes */

/* The ASCII whitespace str.split() and bytes.split() agree on; \x1c-\x1f never reach the C tokenizer. */
unsigned char is_space[256];

void
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

/* ------------------------------------------------------------------------------------------ counting */


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
int
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
