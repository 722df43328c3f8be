/* JSON text and ids as the Python encoder (orjson) writes them: the helpers both C
 * extensions share (_speedups.c, _logging_speedups.c). Each includes this header once
 * and calls cjson_init() when its module is made. Functions are static: every extension
 * has its own copy, and may leave some unused. */
#ifndef LOGXPY_OTEL_CJSON_H
#define LOGXPY_OTEL_CJSON_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define MAYBE_UNUSED __attribute__((unused))
#else
#define ALWAYS_INLINE inline
#define MAYBE_UNUSED
#endif

/* The raised exception, taken out of the error indicator (PyErr_GetRaisedException on
 * 3.12+; from PyErr_Fetch before). An error must be set. */
static MAYBE_UNUSED PyObject *
take_error(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value != NULL ? value : Py_NewRef(Py_None);
#endif
}

/* The error set, handed to ``fault(exc)`` (which counts a line lost to it) and cleared:
 * 0; -1 for what goes on (KeyboardInterrupt and the like, as from Python code, or an
 * error of the same kind from ``fault``; or ``exc`` itself, which ``fault`` raises on when
 * it is the application's own, from its signal handler), still set. Never an Exception of
 * ours into the application. */
static MAYBE_UNUSED int
count_fault(PyObject *fault);

/* Raise ``exc`` (from take_error) again; steals the reference. */
static MAYBE_UNUSED void
put_error(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

/* The application's interrupt landed in its own code while an entry point of ours encoded
 * (_diagnostics.NOTED_INTERRUPTS, ``noted``), as the Python entry points keep it. At the
 * start, the note of an outer call of ours is taken aside (``noted_aside()``: a list, or
 * None); 0, or -1 with an error set (nothing taken then). */
static MAYBE_UNUSED int
noted_enter(PyObject *noted, PyObject *aside, PyObject **outer)
{
    *outer = NULL;
    if (PyList_GET_SIZE(noted) == 0)
        return 0;
    PyObject *taken = PyObject_CallNoArgs(aside);
    if (taken == NULL)
        return -1;
    if (taken == Py_None)
        Py_DECREF(taken);
    else
        *outer = taken;
    return 0;
}

/* At the end: ``result`` (a new reference, or NULL with an error set), after
 * ``settle_noted(outer)`` put the outer call's note back and raised this call's own (the
 * raised one takes the place of an error already set, as a Python ``finally`` that raises
 * does). Steals ``outer`` and ``result``. */
static MAYBE_UNUSED PyObject *
noted_leave(PyObject *noted, PyObject *settle, PyObject *outer, PyObject *result)
{
    if (PyList_GET_SIZE(noted) == 0 && outer == NULL)
        return result;
    PyObject *before = PyErr_Occurred() ? take_error() : NULL;
    PyObject *settled = PyObject_CallOneArg(settle, outer != NULL ? outer : Py_None);
    Py_XDECREF(outer);
    if (settled == NULL) {
        Py_XDECREF(before);
        Py_XDECREF(result);
        return NULL;
    }
    Py_DECREF(settled); /* (nothing raised: another thread, or nothing of this call's noted) */
    if (before != NULL)
        put_error(before);
    return result;
}

static PyObject *fmt_span, *fmt_trace;

/* A str of ``n`` ASCII characters (hex digits): made as one, without the UTF-8 decoding
 * of PyUnicode_FromStringAndSize. */
static MAYBE_UNUSED PyObject *
ascii_str(const char *text, Py_ssize_t n)
{
    PyObject *s = PyUnicode_New(n, 127);
    if (s != NULL)
        memcpy(PyUnicode_DATA(s), text, (size_t)n);
    return s;
}

/* A positive exact int below 2**128 as 16 little-endian bytes: 0; 1 for a wider one
 * (no error set). One pass over its digits, where shifting it out would make an int. */
static MAYBE_UNUSED int
long_bytes16(PyObject *id, unsigned char bytes[16])
{
#if PY_VERSION_HEX >= 0x030D0000
    Py_ssize_t n = PyLong_AsNativeBytes(id, bytes, 16,
                                        Py_ASNATIVEBYTES_LITTLE_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER |
                                            Py_ASNATIVEBYTES_REJECT_NEGATIVE);
    if (n < 0)
        PyErr_Clear();
    return n < 0 || n > 16;
#else
    if (_PyLong_AsByteArray((PyLongObject *)id, bytes, 16, 1, 0) == 0)
        return 0;
    PyErr_Clear(); /* (OverflowError) */
    return 1;
#endif
}

/* format(id, spec) for spec "016x" or "032x": an exact int that fits in 64 or 128 bits
 * written here (int.__format__ parses its spec and builds the text through Python's
 * machinery, several times the cost); anything else by format() itself. */
static MAYBE_UNUSED PyObject *
hex_text(PyObject *id, PyObject *spec)
{
    static const char digits[] = "0123456789abcdef";
    int wide = spec == fmt_trace;
    if (!PyLong_CheckExact(id) || (!wide && spec != fmt_span))
        return PyObject_Format(id, spec);
    unsigned long long high = 0, low;
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(id, &overflow);
    if (value == -1 && PyErr_Occurred())
        return NULL;
    if (overflow == 0 && value >= 0) {
        low = (unsigned long long)value;
    }
    else if (overflow > 0 && !wide) {
        low = PyLong_AsUnsignedLongLong(id);
        if (low == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return PyObject_Format(id, spec); /* wider than 16 digits: as format() writes it */
        }
    }
    else if (overflow > 0) {
        unsigned char bytes[16]; /* (little-endian) */
        if (long_bytes16(id, bytes) != 0)
            return PyObject_Format(id, spec); /* beyond 128 bits */
        for (int i = 15; i >= 8; i--)
            high = high << 8 | bytes[i];
        low = 0;
        for (int i = 7; i >= 0; i--)
            low = low << 8 | bytes[i];
    }
    else {
        return PyObject_Format(id, spec); /* negative */
    }
    char text[32];
    int n = wide ? 32 : 16;
    for (int i = n - 1; i >= 0; i--) {
        unsigned long long *part = i >= 16 || !wide ? &low : &high;
        text[i] = digits[*part & 0xf];
        *part >>= 4;
    }
    return ascii_str(text, n);
}

/* The hex text of an id, from a one-entry cache (records of one span come in runs). */
static MAYBE_UNUSED PyObject *
id_hex(PyObject **key, PyObject **hex, PyObject *id, PyObject *spec)
{
    if (*key != NULL) {
        int same = *key == id ? 1 : PyObject_RichCompareBool(*key, id, Py_EQ);
        if (same < 0)
            return NULL;
        if (same)
            return Py_NewRef(*hex);
    }
    PyObject *text = hex_text(id, spec);
    if (text == NULL)
        return NULL;
    PyObject *old_key = *key, *old_hex = *hex; /* both set before either old one goes */
    *key = Py_NewRef(id);
    *hex = Py_NewRef(text);
    Py_XDECREF(old_key);
    Py_XDECREF(old_hex);
    return text;
}

/* Whether an id's hex text is an id OTel can carry: exactly ``digits`` hex digits (a
 * negative id or a wider one is not; the Python encoder tags those). */
static MAYBE_UNUSED int
id_fits(PyObject *hex, Py_ssize_t digits)
{
    return PyUnicode_CheckExact(hex) && PyUnicode_GET_LENGTH(hex) == digits && PyUnicode_READ_CHAR(hex, 0) != '-';
}

/* An output buffer: on the stack for a line, on the heap past that; or, for a whole
 * batch, the bytes object that is handed on (no copy at the end). */
typedef struct {
    char *data;
    Py_ssize_t len, cap;
    PyObject *bytes; /* the bytes object written into, or NULL */
    char stack[2048];
} Buf;

static MAYBE_UNUSED void
buf_init(Buf *b)
{
    b->data = b->stack;
    b->len = 0;
    b->cap = (Py_ssize_t)sizeof(b->stack);
    b->bytes = NULL;
}

static MAYBE_UNUSED int
buf_init_bytes(Buf *b, Py_ssize_t cap)
{
    buf_init(b);
    b->bytes = PyBytes_FromStringAndSize(NULL, cap);
    if (b->bytes == NULL)
        return -1;
    b->data = PyBytes_AS_STRING(b->bytes);
    b->cap = cap;
    return 0;
}

static MAYBE_UNUSED void
buf_free(Buf *b)
{
    if (b->bytes != NULL)
        Py_CLEAR(b->bytes);
    else if (b->data != b->stack)
        PyMem_Free(b->data);
}

/* The bytes written, as the bytes object itself (the buffer gives it up). */
static MAYBE_UNUSED PyObject *
buf_take_bytes(Buf *b)
{
    PyObject *bytes = b->bytes;
    b->bytes = NULL;
    b->data = b->stack;
    if (_PyBytes_Resize(&bytes, b->len) < 0)
        return NULL;
    return bytes;
}

static int buf_grow(Buf *b, Py_ssize_t more);

static ALWAYS_INLINE int
buf_reserve(Buf *b, Py_ssize_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    return buf_grow(b, more);
}

static MAYBE_UNUSED int
buf_grow(Buf *b, Py_ssize_t more)
{
    Py_ssize_t cap = b->cap;
    while (cap < b->len + more) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    if (b->bytes != NULL) {
        if (_PyBytes_Resize(&b->bytes, cap) < 0) { /* b->bytes is NULL now */
            b->data = b->stack; /* an empty stack buffer again */
            b->len = 0;
            b->cap = (Py_ssize_t)sizeof(b->stack);
            return -1;
        }
        b->data = PyBytes_AS_STRING(b->bytes);
        b->cap = cap;
        return 0;
    }
    char *data = b->data == b->stack ? PyMem_Malloc((size_t)cap) : PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (b->data == b->stack)
        memcpy(data, b->stack, (size_t)b->len);
    b->data = data;
    b->cap = cap;
    return 0;
}

static ALWAYS_INLINE int
buf_put(Buf *b, const char *text, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, text, (size_t)n);
    b->len += n;
    return 0;
}

#define PUT_LITERAL(b, text) buf_put((b), (text), (Py_ssize_t)(sizeof(text) - 1))

/* Bytes that need a look in a JSON string: controls, '"', '\\', and the first bytes of
 * U+0085 (C2 85) and U+2028/U+2029 (E2 80 A8/A9). */
static unsigned char needs_care[256];

static MAYBE_UNUSED void
init_needs_care(void)
{
    for (int c = 0; c < 0x20; c++)
        needs_care[c] = 1;
    needs_care['"'] = needs_care['\\'] = needs_care[0xc2] = needs_care[0xe2] = 1;
}

/* ``n`` bytes that need no escaping, between quotes. */
static MAYBE_UNUSED int
put_quoted(Buf *b, const char *text, Py_ssize_t n)
{
    if (buf_reserve(b, n + 2) < 0)
        return -1;
    char *out = b->data + b->len;
    *out++ = '"';
    memcpy(out, text, (size_t)n);
    out[n] = '"';
    b->len += n + 2;
    return 0;
}

/* The UTF-8 text of a str: 0, or 1 when it has a lone surrogate (which UTF-8 cannot
 * hold: the Python encoder replaces it), or -1 with an error. */
static ALWAYS_INLINE int
utf8_of(PyObject *s, const char **p, Py_ssize_t *n)
{
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(s) < 0)
        return -1;
#endif
    if (PyUnicode_IS_ASCII(s)) {
        *p = (const char *)PyUnicode_DATA(s);
        *n = PyUnicode_GET_LENGTH(s);
        return 0;
    }
    *p = PyUnicode_AsUTF8AndSize(s, n);
    if (*p == NULL) {
        PyErr_Clear();
        return 1;
    }
    return 0;
}

/* How many bytes from the start of ``p`` need no escaping. */
static ALWAYS_INLINE Py_ssize_t
clean_prefix(const char *p, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    /* Eight bytes at a time while none can need care (a byte below 0x20, '"', '\\', or
     * any non-ASCII byte, which the byte loop below then looks at). */
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
        uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
        /* the high bit of a byte marks it: x - 1 borrows out of a zero byte, w - 0x20 out of a byte below 0x20 */
        uint64_t care = ((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | w;
        if ((care & highs) != 0)
            break;
    }
    while (i < n && !needs_care[(unsigned char)p[i]])
        i++;
    return i;
}

/* Bytes ``i`` to ``n`` of ``p`` escaped as orjson escapes them, with U+0085, U+2028 and
 * U+2029 escaped too (as the encoder's _escape_separators does), written at ``out``
 * (room for 6 bytes out for each byte in); returns the end of what was written. */
static MAYBE_UNUSED char *
escape_into(char *out, const char *p, Py_ssize_t i, Py_ssize_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!needs_care[c]) {
            *out++ = (char)c;
            continue;
        }
        switch (c) {
        case '"': *out++ = '\\'; *out++ = '"'; continue;
        case '\\': *out++ = '\\'; *out++ = '\\'; continue;
        case '\b': *out++ = '\\'; *out++ = 'b'; continue;
        case '\t': *out++ = '\\'; *out++ = 't'; continue;
        case '\n': *out++ = '\\'; *out++ = 'n'; continue;
        case '\f': *out++ = '\\'; *out++ = 'f'; continue;
        case '\r': *out++ = '\\'; *out++ = 'r'; continue;
        default: break;
        }
        if (c == 0xc2 && i + 1 < n && (unsigned char)p[i + 1] == 0x85) {
            memcpy(out, "\\u0085", 6);
            out += 6;
            i += 1;
        }
        else if (c == 0xe2 && i + 2 < n && (unsigned char)p[i + 1] == 0x80 &&
                 ((unsigned char)p[i + 2] == 0xa8 || (unsigned char)p[i + 2] == 0xa9)) {
            memcpy(out, (unsigned char)p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
            out += 6;
            i += 2;
        }
        else if (c >= 0x20) {
            *out++ = (char)c; /* another sequence starting with C2 or E2 */
        }
        else {
            memcpy(out, "\\u00", 4);
            out[4] = hex[c >> 4];
            out[5] = hex[c & 0xf];
            out += 6;
        }
    }
    return out;
}

/* ``n`` bytes of UTF-8 as the inside of a JSON string (no quotes), escaped. */
static MAYBE_UNUSED int
put_escaped(Buf *b, const char *p, Py_ssize_t n)
{
    Py_ssize_t i = clean_prefix(p, n);
    if (i == n) /* the usual case: nothing to escape */
        return buf_put(b, p, n);
    if (n > PY_SSIZE_T_MAX / 6) {
        PyErr_NoMemory();
        return -1;
    }
    if (buf_reserve(b, n * 6) < 0)
        return -1;
    char *out = b->data + b->len;
    memcpy(out, p, (size_t)i);
    b->len = escape_into(out + i, p, i, n) - b->data;
    return 0;
}

/* A str as a JSON string, escaped. 0: done; -1: error; 1: not for this path (a lone
 * surrogate, which UTF-8 cannot hold). */
static MAYBE_UNUSED int
put_str(Buf *b, PyObject *s)
{
    const char *p;
    Py_ssize_t n;
    int rc = utf8_of(s, &p, &n);
    if (rc != 0)
        return rc;
    Py_ssize_t i = clean_prefix(p, n);
    if (i == n) /* the usual case: nothing to escape */
        return put_quoted(b, p, n);
    if (n > (PY_SSIZE_T_MAX - 2) / 6) {
        PyErr_NoMemory();
        return -1;
    }
    if (buf_reserve(b, n * 6 + 2) < 0)
        return -1;
    char *out = b->data + b->len;
    *out++ = '"';
    memcpy(out, p, (size_t)i);
    out = escape_into(out + i, p, i, n);
    *out++ = '"';
    b->len = out - b->data;
    return 0;
}

static const char digit_pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                  "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                  "8081828384858687888990919293949596979899";

/* The decimal digits of ``value``, written backwards ending at ``end``; returns their start.
 * Eight digits at a time in 32-bit arithmetic, two by two from a table: a time in
 * nanoseconds (19 digits) costs about a third of a digit-pair loop on 64-bit values. */
static MAYBE_UNUSED inline char *
put_digits(char *end, unsigned long long value)
{
    char *p = end;
    while (value >= 100000000ULL) {
        uint32_t low = (uint32_t)(value % 100000000ULL), high = low / 10000, rest = low % 10000;
        value /= 100000000ULL;
        p -= 8;
        memcpy(p + 6, digit_pairs + (rest % 100) * 2, 2);
        memcpy(p + 4, digit_pairs + (rest / 100) * 2, 2);
        memcpy(p + 2, digit_pairs + (high % 100) * 2, 2);
        memcpy(p, digit_pairs + (high / 100) * 2, 2);
    }
    uint32_t small = (uint32_t)value;
    while (small >= 100) {
        uint32_t pair = (small % 100) * 2;
        small /= 100;
        *--p = digit_pairs[pair + 1];
        *--p = digit_pairs[pair];
    }
    if (small >= 10) {
        uint32_t pair = small * 2;
        *--p = digit_pairs[pair + 1];
        *--p = digit_pairs[pair];
    }
    else {
        *--p = (char)('0' + small);
    }
    return p;
}

/* An int as orjson writes it: a number in [-2**63, 2**64 - 1]. 0: done; -1: error;
 * 1: not for this path (a bigger int, which the format tags). Works on int subclasses. */
static MAYBE_UNUSED int
put_int(Buf *b, PyObject *v)
{
    char text[24], *end = text + sizeof(text), *p = end;
    int overflow = 0, negative = 0;
    unsigned long long digits;
    long long value = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow == 0) {
        if (value == -1 && PyErr_Occurred())
            return -1;
        negative = value < 0;
        digits = negative ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    }
    else if (overflow > 0) {
        digits = PyLong_AsUnsignedLongLong(v);
        if (digits == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 1;
        }
    }
    else {
        return 1;
    }
    p = put_digits(end, digits);
    if (negative)
        *--p = '-';
    return buf_put(b, p, end - p);
}

static MAYBE_UNUSED int
put_decimal(Buf *b, long long value)
{
    char text[24], *end = text + sizeof(text);
    char *p = put_digits(end, value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value);
    if (value < 0)
        *--p = '-';
    return buf_put(b, p, end - p);
}

/* Where |near * 2**s - m * 10**k| (``*gap``) puts round(m * 10**k / 2**s) (``*near``):
 * 0 inside d's rounding interval, 1 outside it, -1 on its edge or at a tie (where the
 * text depends on rounding rules this path does not take up). */
#if defined(__SIZEOF_INT128__)
/* 10**k for k in [0, 17]. */
static MAYBE_UNUSED const uint64_t powers_of_ten[18] = {
    1ULL,           10ULL,           100ULL,           1000ULL,           10000ULL,           100000ULL,
    1000000ULL,     10000000ULL,     100000000ULL,     1000000000ULL,     10000000000ULL,     100000000000ULL,
    1000000000000ULL, 10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL};

static ALWAYS_INLINE int
float_candidate(uint64_t m, int s, int k, uint64_t *near)
{
    typedef unsigned __int128 u128;
    u128 scaled = (u128)m * powers_of_ten[k], half = (u128)1 << (s - 1);
    u128 whole = scaled >> s, rest = scaled - (whole << s);
    int above = rest > half;
    u128 gap = above ? ((whole + 1) << s) - scaled : rest;
    *near = (uint64_t)whole + (uint64_t)above;
    if (2 * gap > powers_of_ten[k])
        return 1;
    return 2 * gap == powers_of_ten[k] || rest == half ? -1 : 0;
}
#endif

/* The most characters float_chars writes (it writes backwards from the end of a buffer). */
#define FLOAT_CHARS_MAX 48

/* orjson's text of a float d with 1 <= |d| < 2**52 (a time in seconds, most values),
 * written backwards to end just before ``end`` (FLOAT_CHARS_MAX bytes at most): where it
 * starts, or NULL where this path declines d (another magnitude, an edge or a tie, or no
 * 128-bit ints: the caller asks orjson). No Python API: safe without the GIL.
 * It is the shortest decimal that reads back as d, the nearest to d of those, in plain
 * notation ("1732890622.1234567", "2.0"). Exact integer arithmetic: d = m / 2**s; with
 * k digits after the point the nearest decimal is round(d * 10**k) / 10**k, and the
 * fewest k whose decimal lies inside d's rounding interval gives the text. Past the
 * first k with 10**k > 2**s every k has one; below it, whether k has one does not
 * grow as k falls: the search walks down from there.
 * About 200 instructions for a time in seconds, against ~650 for an orjson call. */
static MAYBE_UNUSED char *
float_chars(double d, char *end)
{
#if defined(__SIZEOF_INT128__)
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    int biased = (int)((bits >> 52) & 0x7ff);
    if (biased < 1023 || biased > 1074)
        return NULL; /* |d| < 1, |d| >= 2**52, inf or NaN */
    uint64_t m = (bits & (((uint64_t)1 << 52) - 1)) | ((uint64_t)1 << 52);
    int s = 1075 - biased; /* |d| = m / 2**s, s in [1, 52] */
    /* (Only just below a power of two is the interval narrower on one side; in this
     * range powers of two are integers, written exactly at k = 0.) */
    int k = (s * 1233 >> 12) + 1; /* the first k with 10**k > 2**s: floor(s * log10(2)) + 1 */
    uint64_t near, shorter;
    if (float_candidate(m, s, k, &near) != 0)
        return NULL;
    for (; k > 0; k--) {
        int rc = float_candidate(m, s, k - 1, &shorter);
        if (rc < 0)
            return NULL;
        if (rc > 0)
            break;
        near = shorter;
    }
    char *p = end;
    uint64_t unit = powers_of_ten[k];
    if (k == 0) {
        *--p = '0';
    }
    else {
        uint64_t fraction = near % unit;
        for (int i = 0; i < k; i++, fraction /= 10)
            *--p = (char)('0' + fraction % 10);
    }
    *--p = '.';
    p = put_digits(p, near / unit);
    if (bits >> 63)
        *--p = '-';
    return p;
#else
    (void)d;
    (void)end;
    return NULL;
#endif
}

/* float_chars's text of ``d`` into ``b``. 0: written; 1: not for this path (the caller
 * asks orjson); -1: no memory. */
static MAYBE_UNUSED int
put_float_text(Buf *b, double d)
{
    char text[FLOAT_CHARS_MAX], *end = text + sizeof(text);
    char *p = float_chars(d, end);
    if (p == NULL)
        return 1;
    return buf_put(b, p, end - p);
}

/* The text of ``n`` floats (exact floats) as "a,b,c", each by put_float_text, into
 * ``b``. 0: done; 1: one of them is not for that path (orjson writes them all); -1: an
 * error (out of memory). */
static MAYBE_UNUSED int
floats_text(Buf *b, PyObject *const *floats, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i > 0 && PUT_LITERAL(b, ",") < 0)
            return -1;
        int rc = put_float_text(b, PyFloat_AS_DOUBLE(floats[i]));
        if (rc != 0)
            return rc;
    }
    return 0;
}

static MAYBE_UNUSED int
count_fault(PyObject *fault)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception))
        return -1;
    PyObject *exc = take_error();
    PyObject *counted = PyObject_CallOneArg(fault, exc);
    if (counted == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            Py_DECREF(exc);
            return -1; /* only errors stop here */
        }
        PyObject *raised = take_error();
        if (raised == exc) { /* raised on by ``fault``: the application's own, not ours */
            Py_DECREF(exc);
            put_error(raised);
            return -1;
        }
        Py_DECREF(raised); /* never into the application */
    }
    Py_DECREF(exc);
    Py_XDECREF(counted);
    return 0;
}

/* A filter before a set of keys: bit n of lengths[c] is set when a key of n characters
 * in the set starts with c (ASCII, n < 64); every key is looked up when ``unfiltered``
 * (the set has a key the table cannot describe). Most keys are ruled out without a hash
 * and a set lookup. */
typedef struct {
    uint64_t lengths[128];
    int unfiltered;
} Filter;

/* Fills ``filter`` from the set ``keys``: 0, or -1 with an error. */
static MAYBE_UNUSED int
filter_fill(Filter *filter, PyObject *keys)
{
    memset(filter->lengths, 0, sizeof(filter->lengths));
    filter->unfiltered = 0;
    PyObject *iter = PyObject_GetIter(keys), *key;
    if (iter == NULL)
        return -1;
    while ((key = PyIter_Next(iter)) != NULL) {
        if (!PyUnicode_Check(key)) {
            Py_DECREF(key);
            filter->unfiltered = 1; /* (whatever it equals, the set lookup finds it) */
            continue;
        }
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(key) < 0) {
            Py_DECREF(key);
            Py_DECREF(iter);
            return -1;
        }
#endif
        Py_ssize_t n = PyUnicode_GET_LENGTH(key);
        Py_UCS4 first = n > 0 ? PyUnicode_READ_CHAR(key, 0) : 0;
        if (n == 0 || n >= 64 || first >= 128)
            filter->unfiltered = 1;
        else
            filter->lengths[first] |= (uint64_t)1 << n;
        Py_DECREF(key);
    }
    Py_DECREF(iter);
    return PyErr_Occurred() ? -1 : 0;
}

/* Whether ``key`` (an exact str) can be in the filter's set. */
static ALWAYS_INLINE int
filter_may_hold(const Filter *filter, PyObject *key)
{
    if (filter->unfiltered)
        return 1;
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(key) < 0) {
        PyErr_Clear();
        return 1; /* the set lookup reports it */
    }
#endif
    Py_ssize_t n = PyUnicode_GET_LENGTH(key);
    if (n == 0 || n >= 64)
        return 0;
    Py_UCS4 first = PyUnicode_READ_CHAR(key, 0);
    return first < 128 && (filter->lengths[first] >> n) & 1;
}

/* A writer's item, (tid, ts, failed, data, tail), or with (span, role) after it when
 * ``n`` is 7: new references to each, without PyTuple_Pack's varargs. Its fields (str,
 * float, bool, bytes, a role of such slots) are never part of a cycle: untracked, the
 * items waiting in the queue cost the collector nothing. */
static MAYBE_UNUSED PyObject *
line_item(Py_ssize_t n, PyObject *tid, PyObject *ts, int failed, PyObject *data, PyObject *tail, PyObject *span,
          PyObject *role)
{
    PyObject *item = PyTuple_New(n);
    if (item == NULL)
        return NULL;
    PyTuple_SET_ITEM(item, 0, Py_NewRef(tid));
    PyTuple_SET_ITEM(item, 1, Py_NewRef(ts));
    PyTuple_SET_ITEM(item, 2, Py_NewRef(failed ? Py_True : Py_False));
    PyTuple_SET_ITEM(item, 3, Py_NewRef(data));
    PyTuple_SET_ITEM(item, 4, Py_NewRef(tail));
    if (n == 7) {
        PyTuple_SET_ITEM(item, 5, Py_NewRef(span));
        PyTuple_SET_ITEM(item, 6, Py_NewRef(role));
    }
    PyObject_GC_UnTrack(item);
    return item;
}

/* The last (scope, resource) a line was made for, and its tail: lines come in runs. */
typedef struct {
    PyObject *scope, *resource, *tail;
} LastTail;

/* The tail remembered for (scope, resource) (new reference), or NULL. */
static MAYBE_UNUSED PyObject *
last_tail_get(const LastTail *last, PyObject *scope, PyObject *resource)
{
    return scope == last->scope && resource == last->resource ? Py_NewRef(last->tail) : NULL;
}

/* Remember ``tail`` for (scope, resource). All three are set before any old value is
 * released: a release can run Python code (a __del__) that uses this cache, and must
 * find it whole. */
static MAYBE_UNUSED void
last_tail_set(LastTail *last, PyObject *scope, PyObject *resource, PyObject *tail)
{
    PyObject *old_scope = last->scope, *old_resource = last->resource, *old_tail = last->tail;
    last->scope = Py_NewRef(scope);
    last->resource = Py_NewRef(resource);
    last->tail = Py_NewRef(tail);
    Py_XDECREF(old_scope);
    Py_XDECREF(old_resource);
    Py_XDECREF(old_tail);
}

#define LAST_TAIL_VISIT(last)       \
    do {                            \
        Py_VISIT((last).scope);     \
        Py_VISIT((last).resource);  \
        Py_VISIT((last).tail);      \
    } while (0)

#define LAST_TAIL_CLEAR(last)       \
    do {                            \
        Py_CLEAR((last).scope);     \
        Py_CLEAR((last).resource);  \
        Py_CLEAR((last).tail);      \
    } while (0)

/* Sets up this header's tables and names: 0, or -1 with an error. */
static int MAYBE_UNUSED
cjson_init(void)
{
    init_needs_care();
    fmt_span = PyUnicode_InternFromString("016x");
    fmt_trace = PyUnicode_InternFromString("032x");
    return fmt_span == NULL || fmt_trace == NULL ? -1 : 0;
}

#endif /* LOGXPY_OTEL_CJSON_H */
