/* C versions of the hot paths (optional: the package works without them; README,
 * "The C speed-up"). Each does what the Python code it stands in for does:
 *
 * - FastEncoder: the common case of LineEncoder.encode. It writes the line straight into
 *   a buffer, byte for byte as the Python encoder (whose JSON is orjson's) writes it; it
 *   takes only what it can take for sure (a str body, exact ints and strs, known
 *   severities, str/bool/int/finite-float attribute values, a cached scope/resource
 *   tail). Anything else, and any error, goes to the Python encoder (``fallback``),
 *   which never raises.
 * - Emitter: LogxpyLogRecordProcessor.on_emit (encode, queue through the writer's lane).
 * - SpanEncoder: the common case of _span_format.SpanEncoder (a span's start and end
 *   lines), read from the SDK span's instance dict; anything else goes to Python.
 * - Forest: TreeNumberer's state and numbering as C data (_forest.h), one bytes per batch.
 *
 * tests/test_speedups.py, test_speedups_spans.py, test_speedups_nesting.py, test_format.py,
 * test_trees.py and test_processor.py run the C and the Python versions side by side.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h> /* T_OBJECT_EX, READONLY */

#include "_cjson.h"
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>


#define ERROR_SEVERITY 17

static PyObject *k_time, *k_observed, *k_sev_number,
    *k_sev_text, *k_span_id, *k_trace_flags, *k_event_name, *k_trace_id, *k_dropped_count;
static PyObject *a_timestamp, *a_observed, *a_severity_number, *a_severity_text, *a_body,
    *a_attributes, *a_dict, *a_dropped;
static PyObject *s_info;

/* Enum members, each with its number and the name a line writes for it (ASCII with
 * nothing to escape: written as it is, between quotes): the severities of FastEncoder,
 * the span kinds of SpanEncoder. Found by identity. */
#define MAX_MEMBERS 64

typedef struct {
    int n;
    PyObject *member[MAX_MEMBERS], *number[MAX_MEMBERS], *name[MAX_MEMBERS];
    long value[MAX_MEMBERS]; /* number, as a C long */
} Members;

/* Fills ``t`` from ``entries``, a sequence of (member, int, str): 0, or -1 with an error
 * naming ``what``. */
static int
members_fill(Members *t, PyObject *entries, const char *what)
{
    PyObject *seq = PySequence_Fast(entries, "a sequence of (member, number, name)");
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > MAX_MEMBERS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s: too many entries", what);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *member, *number, *name;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "OO!U", &member, &PyLong_Type, &number, &name)) {
            Py_DECREF(seq);
            return -1;
        }
        int plain = PyUnicode_IS_ASCII(name);
        for (Py_ssize_t j = 0; plain && j < PyUnicode_GET_LENGTH(name); j++) {
            Py_UCS1 c = PyUnicode_1BYTE_DATA(name)[j];
            plain = c >= 0x20 && c != '"' && c != '\\';
        }
        long value = plain ? PyLong_AsLong(number) : 0;
        if (!plain || (value == -1 && PyErr_Occurred())) {
            if (!plain)
                PyErr_Format(PyExc_ValueError, "%s: a name must be ASCII with nothing to escape", what);
            Py_DECREF(seq);
            return -1;
        }
        t->member[i] = Py_NewRef(member);
        t->number[i] = Py_NewRef(number);
        t->name[i] = Py_NewRef(name);
        t->value[i] = value;
        t->n = (int)i + 1;
    }
    Py_DECREF(seq);
    return 0;
}

/* The index of ``member`` in ``t``, or -1. */
static int
members_find(const Members *t, PyObject *member)
{
    for (int i = 0; i < t->n; i++)
        if (t->member[i] == member)
            return i;
    return -1;
}

static int
members_traverse(Members *t, visitproc visit, void *arg)
{
    for (int i = 0; i < t->n; i++) {
        Py_VISIT(t->member[i]);
        Py_VISIT(t->number[i]);
        Py_VISIT(t->name[i]);
    }
    return 0;
}

static void
members_clear(Members *t)
{
    for (int i = 0; i < t->n; i++) {
        Py_CLEAR(t->member[i]);
        Py_CLEAR(t->number[i]);
        Py_CLEAR(t->name[i]);
    }
    t->n = 0;
}

typedef struct {
    PyObject_HEAD
    PyObject *tails;    /* dict shared with LineEncoder: key -> (scope, resource, tail) */
    PyObject *dumps;    /* orjson.dumps, for floats */
    PyObject *reserved; /* frozenset of attribute keys that go to _otel.attributes */
    Filter filter;      /* of those keys: most keys are ruled out before the set */
    PyObject *bounded;  /* the SDK's BoundedAttributes type */
    PyObject *record_type; /* the API's LogRecord type: fields read from its instance dict */
    PyObject *fallback; /* the Python encoder: (record, resource, scope, dropped) -> item */
    PyObject *span_key, *span_hex, *trace_key, *trace_hex; /* last id and its hex text */
    LastTail last;      /* the last tail used */
    int flat;
    Members severities; /* SeverityNumber members, each with its number and its mt */
} FastEncoder;

static PyTypeObject FastEncoderType;

/* The floats of a line (ts first, then each float attribute), written by one
 * orjson.dumps of them all: a Python float's shortest repr costs far more in C-Python's
 * own dtoa than in orjson, and one call amortizes its overhead. */

/* Most floats in a line that the C encoder writes (its attributes', and its ts where
 * float_chars declines it); a record with more goes to Python. */
#define MAX_FLOATS 64

typedef struct {
    PyObject *values; /* the floats, in line order (a tuple), or NULL for ``one`` alone */
    PyObject *one;    /* the line's only float (its ts: most lines), or NULL */
    PyObject *json;   /* orjson.dumps(values): b"[1.5,2.0]", or NULL: their text is in text */
    Buf text;         /* "1.5,2.0", written here (floats_text) when it can */
    const char *next; /* the next float's text (in json or text) */
    const char *end;  /* the end of that text */
    Py_ssize_t index; /* the next float's place in values */
} Floats;

/* A Floats to take floats into (floats_take) and free (floats_free). */
static void
floats_init(Floats *f)
{
    f->values = f->one = f->json = NULL;
    buf_init(&f->text);
    f->next = f->end = NULL;
    f->index = 0;
}

static void
floats_free(Floats *f)
{
    Py_CLEAR(f->values);
    Py_CLEAR(f->one);
    Py_CLEAR(f->json);
    buf_free(&f->text);
}

/* The text of ``v``, the next float of the line (it ends at ',' or ']'). 1 (the Python
 * encoder's turn) if ``v`` is not the float counted there: the attributes changed under
 * us (Python code, e.g. a GC callback, can run between the passes). */
static int
put_next_float(Buf *b, Floats *f, PyObject *v)
{
    PyObject *expected = NULL;
    if (f->values != NULL)
        expected = f->index < PyTuple_GET_SIZE(f->values) ? PyTuple_GET_ITEM(f->values, f->index) : NULL;
    else if (f->index == 0)
        expected = f->one;
    if (v != expected)
        return 1;
    f->index++;
    const char *start = f->next, *p = start;
    while (p < f->end && *p != ',' && *p != ']')
        p++;
    if (p >= f->end)
        return 1;
    f->next = p + 1;
    return buf_put(b, start, p - start);
}

/* An attribute value the format writes as plain JSON (str, bool, int, finite float).
 * 1: anything else (tagged or structured values), which the Python encoder writes. */
static int
put_value(Buf *b, PyObject *v, Floats *floats)
{
    if (PyUnicode_CheckExact(v))
        return put_str(b, v);
    if (v == Py_True)
        return PUT_LITERAL(b, "true");
    if (v == Py_False)
        return PUT_LITERAL(b, "false");
    if (PyLong_CheckExact(v))
        return put_int(b, v);
    if (PyFloat_CheckExact(v))
        return put_next_float(b, floats, v);
    return 1;
}

/* ``,"key":`` for one of our own (ASCII, escape-free) keys. */
static int
put_key(Buf *b, PyObject *key, int comma)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(key);
    if (buf_reserve(b, n + 4) < 0)
        return -1;
    char *out = b->data + b->len;
    if (comma)
        *out++ = ',';
    *out++ = '"';
    memcpy(out, PyUnicode_DATA(key), (size_t)n);
    out += n;
    *out++ = '"';
    *out++ = ':';
    b->len = out - b->data;
    return 0;
}

/* A str known to be ASCII with nothing to escape (an id's hex text), between quotes. */
static int
put_plain(Buf *b, PyObject *s)
{
    return put_quoted(b, (const char *)PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s));
}

/* Takes the floats of a line into ``f``: ``first`` (its ts, or NULL: written already),
 * then each float value of ``dict`` (or None), written by one orjson ``dumps`` call.
 * 0: done; 1: not for the C path (NaN or inf, which the format tags; too many floats),
 * or an error. The floats are held (strong references: allocating the tuple can run
 * Python code, such as a GC callback, that changes the attributes; put_next_float then
 * sees the change). */
static int
floats_take(Floats *f, PyObject *dumps, PyObject *first, PyObject *dict)
{
    PyObject *found[MAX_FLOATS];
    Py_ssize_t count = 0, pos = 0;
    PyObject *k, *v;
    int odd = 0;
    if (first != NULL)
        found[count++] = Py_NewRef(first);
    if (dict != Py_None) {
        while (PyDict_Next(dict, &pos, &k, &v)) {
            if (PyFloat_CheckExact(v)) {
                if (count == MAX_FLOATS || !isfinite(PyFloat_AS_DOUBLE(v))) {
                    odd = 1;
                    break;
                }
                found[count++] = Py_NewRef(v);
            }
        }
    }
    if (!odd && count == 0)
        return 0; /* (no float to take: put_next_float refuses any) */
    if (!odd && count == 1) {
        f->one = found[0]; /* (no tuple for a line's only float) */
    }
    else {
        f->values = odd ? NULL : PyTuple_New(count);
        for (Py_ssize_t i = 0; i < count; i++) {
            if (f->values != NULL)
                PyTuple_SET_ITEM(f->values, i, found[i]);
            else
                Py_DECREF(found[i]);
        }
        if (f->values == NULL)
            return 1;
    }
    int rc = floats_text(&f->text, found, count);
    if (rc == 0)
        rc = PUT_LITERAL(&f->text, "]"); /* as orjson's text ends */
    if (rc < 0)
        return 1;
    if (rc == 0) {
        f->next = f->text.data;
        f->end = f->text.data + f->text.len;
        return 0;
    }
    if (f->values == NULL && (f->values = PyTuple_Pack(1, f->one)) == NULL)
        return 1;
    f->json = PyObject_CallOneArg(dumps, f->values);
    if (f->json == NULL || !PyBytes_CheckExact(f->json))
        return 1;
    f->next = PyBytes_AS_STRING(f->json) + 1;
    f->end = PyBytes_AS_STRING(f->json) + PyBytes_GET_SIZE(f->json);
    return 0;
}

/* A line's start, ``"ts":<text>`` for ``ts`` (an exact float), and the floats of its
 * attributes (``dict``) taken into ``f`` (floats_take). The ts is written here where
 * float_chars takes it (a time in seconds: all but odd ones), so a line whose only float
 * it is takes nothing; else it is taken first. 0: done; 1: not for the C path, or an
 * error; -1: no memory. */
static int
put_ts(Buf *b, Floats *f, PyObject *dumps, PyObject *ts, PyObject *dict)
{
    if (PUT_LITERAL(b, "\"ts\":") < 0)
        return -1;
    int rc = put_float_text(b, PyFloat_AS_DOUBLE(ts));
    if (rc < 0)
        return -1;
    if (floats_take(f, dumps, rc == 0 ? NULL : ts, dict))
        return 1;
    return rc == 0 ? 0 : put_next_float(b, f, ts);
}

/* ``,"key":value`` for each attribute of ``dict`` (or None), at the line's top level.
 * 0: done; -1: error; 1: not for the C path (a key that is not an exact str or is
 * reserved, which the Python encoder moves to _otel.attributes; a value it tags). */
static int
put_attributes(Buf *b, PyObject *dict, const Filter *filter, PyObject *reserved, Floats *floats)
{
    if (dict == Py_None)
        return 0;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    int rc;
    while (PyDict_Next(dict, &pos, &k, &v)) {
        if (!PyUnicode_CheckExact(k))
            return 1;
        if (filter_may_hold(filter, k) && PySet_Contains(reserved, k) != 0)
            return 1; /* (or an error: the Python encoder reports it) */
        if ((rc = PUT_LITERAL(b, ",")) || (rc = put_str(b, k)) || (rc = PUT_LITERAL(b, ":")) ||
            (rc = put_value(b, v, floats)))
            return rc;
    }
    return 0;
}

/* Steps of encode_fast: 0 goes on, -1 is an error, 1 hands the record to Python. */
#define STEP(expr)          \
    do {                    \
        if ((rc = (expr)))  \
            goto done;      \
    } while (0)

/* The fields of a record that the encoder reads, in the order the API's LogRecord sets
 * them (its instance dict's order). */
enum { F_TIMESTAMP, F_OBSERVED, F_TRACE, F_SPAN, F_FLAGS, F_TEXT, F_SEVERITY, F_BODY, F_ATTRS, F_EVENT, N_FIELDS };
static PyObject **const field_names[N_FIELDS] = {&a_timestamp, &a_observed,  &k_trace_id,  &k_span_id,
                                                 &k_trace_flags, &a_severity_text, &a_severity_number,
                                                 &a_body,      &a_attributes, &k_event_name};

/* Takes the fields of ``fields`` (an instance dict) into ``got`` (new references) in one
 * pass over it: cheaper than a lookup per field. Keys are matched by identity (attribute
 * names are interned); a field not found so is read by field() below. */
static void
take_fields(PyObject *fields, PyObject **got)
{
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    int left = N_FIELDS, next = 0;
    while (left > 0 && PyDict_Next(fields, &pos, &k, &v)) {
        for (int tried = 0; tried < N_FIELDS; tried++) {
            int which = next; /* fields come in order: start after the last one found */
            next = next + 1 == N_FIELDS ? 0 : next + 1;
            if (k == *field_names[which]) {
                if (got[which] == NULL) {
                    got[which] = Py_NewRef(v);
                    left--;
                }
                break;
            }
        }
    }
}

/* ``obj.name``: the value take_fields found (``*got``, handed over), else read from
 * ``fields`` (obj's instance dict) when given, else a generic getattr. New reference. */
static PyObject *
field(PyObject *obj, PyObject *fields, PyObject **got, int which)
{
    PyObject *name = *field_names[which];
    if (got[which] != NULL) {
        PyObject *value = got[which];
        got[which] = NULL;
        return value;
    }
    if (fields != NULL) {
        PyObject *value = PyDict_GetItemWithError(fields, name);
        if (value != NULL)
            return Py_NewRef(value);
        if (PyErr_Occurred())
            return NULL;
    }
    return PyObject_GetAttr(obj, name);
}

/* The line item, or NULL: with an exception set on error, without one when the
 * record needs the Python encoder. Every reference taken here is released at `done`. */
static PyObject *
encode_fast(FastEncoder *self, PyObject *record, PyObject *resource, PyObject *scope, PyObject *dropped)
{
    PyObject *timestamp = NULL, *observed = NULL, *severity = NULL, *text = NULL, *span_id = NULL,
             *flags = NULL, *event = NULL, *body = NULL, *trace_id = NULL, *attrs = NULL,
             *dict = NULL, *dropped_own = NULL, *tid = NULL, *span_hex = NULL, *result = NULL, *tail = NULL;
    PyObject *number = NULL, *mt = NULL, *ts_obj = NULL;
    int failed = 0, truth, rc = 0;
    double ts;
    Floats floats;
    floats_init(&floats);
    Buf b;
    buf_init(&b);
    /* The API's LogRecord keeps its fields in its instance dict (no descriptors). */
    PyObject *fields = NULL, *got[N_FIELDS] = {NULL};
    if ((PyObject *)Py_TYPE(record) == self->record_type) {
        fields = PyObject_GenericGetDict(record, NULL);
        if (fields == NULL || !PyDict_CheckExact(fields))
            goto bail;
        take_fields(fields, got);
    }

    /* Everything is read and checked first; the line is written after. */
    observed = field(record, fields, got, F_OBSERVED);
    if (observed == NULL || !PyLong_CheckExact(observed))
        goto bail;
    timestamp = field(record, fields, got, F_TIMESTAMP);
    if (timestamp == NULL || (timestamp != Py_None && !PyLong_CheckExact(timestamp)))
        goto bail;
    {
        /* int / 1e9 as Python computes it: the int correctly rounded to a double (as a
         * C conversion of a 64-bit int is), then divided. */
        PyObject *nanos = timestamp != Py_None ? timestamp : observed;
        int overflow = 0;
        long long whole = PyLong_AsLongLongAndOverflow(nanos, &overflow);
        if (overflow == 0 && !(whole == -1 && PyErr_Occurred())) {
            volatile double rounded = (double)whole; /* rounded to a double first, even on x87 */
            ts = rounded;
        }
        else {
            PyErr_Clear();
            ts = PyLong_AsDouble(nanos);
            if (ts == -1.0 && PyErr_Occurred())
                goto bail;
        }
        ts /= 1e9;
    }
    ts_obj = PyFloat_FromDouble(ts);
    if (ts_obj == NULL)
        goto bail;

    severity = field(record, fields, got, F_SEVERITY);
    if (severity == NULL)
        goto bail;
    if (severity == Py_None) {
        mt = s_info;
    }
    else {
        int i = members_find(&self->severities, severity);
        if (i < 0)
            goto bail; /* not a SeverityNumber member */
        number = self->severities.number[i];
        mt = self->severities.name[i];
        failed = self->severities.value[i] >= ERROR_SEVERITY;
    }
    text = field(record, fields, got, F_TEXT);
    if (text == NULL || (text != Py_None && !PyUnicode_CheckExact(text)))
        goto bail;
    span_id = field(record, fields, got, F_SPAN);
    if (span_id == NULL || !PyLong_CheckExact(span_id))
        goto bail;
    flags = field(record, fields, got, F_FLAGS);
    if (flags == NULL || !PyLong_Check(flags))
        goto bail; /* (a bool is an int: written as its number, as the Python encoder does) */
    event = field(record, fields, got, F_EVENT);
    if (event == NULL || (event != Py_None && !PyUnicode_CheckExact(event)))
        goto bail;
    body = field(record, fields, got, F_BODY);
    if (body == NULL || !PyUnicode_CheckExact(body))
        goto bail; /* None, str subclasses and structured bodies: the Python encoder */
    trace_id = field(record, fields, got, F_TRACE);
    if (trace_id == NULL || !PyLong_CheckExact(trace_id))
        goto bail;
    attrs = field(record, fields, got, F_ATTRS);
    if (attrs == NULL)
        goto bail;
    if ((PyObject *)Py_TYPE(attrs) == self->bounded) {
        if (dropped == Py_None) {
            dropped_own = PyObject_GetAttr(attrs, a_dropped);
            if (dropped_own == NULL)
                goto bail;
            dropped = dropped_own;
        }
        dict = PyObject_GetAttr(attrs, a_dict);
        if (dict == NULL || !PyDict_CheckExact(dict))
            goto bail;
    }
    else if (attrs == Py_None || PyDict_CheckExact(attrs)) {
        dict = Py_NewRef(attrs);
    }
    else {
        goto bail;
    }
    if (dropped != Py_None && !PyLong_CheckExact(dropped))
        goto bail;

    tail = last_tail_get(&self->last, scope, resource);
    if (tail == NULL) {
        PyObject *key = PyLong_FromUnsignedLongLong((unsigned long long)((uintptr_t)scope ^ (uintptr_t)resource));
        if (key == NULL)
            goto bail;
        PyObject *hit = PyDict_GetItemWithError(self->tails, key); /* borrowed */
        Py_DECREF(key);
        if (hit == NULL || !PyTuple_CheckExact(hit) || PyTuple_GET_SIZE(hit) != 3 ||
            PyTuple_GET_ITEM(hit, 0) != scope || PyTuple_GET_ITEM(hit, 1) != resource ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(hit, 2)))
            goto bail; /* a new (scope, resource): the Python encoder serializes and caches it */
        tail = Py_NewRef(PyTuple_GET_ITEM(hit, 2));
        last_tail_set(&self->last, scope, resource, tail);
    }

    /* The ids' and flags' truths first, as the Python encoder asks them before it puts the
     * attributes in (an int subclass's __bool__ may run code that changes them). */
    int has_span = PyObject_IsTrue(span_id), has_flags = 0, has_trace = 0;
    if (has_span < 0 || (has_flags = PyObject_IsTrue(flags)) < 0 || (has_trace = PyObject_IsTrue(trace_id)) < 0)
        goto bail;

    /* The line, in the order the Python encoder builds it. */
    STEP(put_ts(&b, &floats, self->dumps, ts_obj, dict));
    STEP(PUT_LITERAL(&b, ",\"mt\":\""));
    STEP(buf_put(&b, PyUnicode_DATA(mt), PyUnicode_GET_LENGTH(mt)));
    STEP(PUT_LITERAL(&b, "\",\"msg\":"));
    STEP(put_str(&b, body));
    STEP(put_attributes(&b, dict, &self->filter, self->reserved, &floats));
    STEP(PUT_LITERAL(&b, ",\"_otel\":{"));
    if (timestamp != Py_None) {
        STEP(put_key(&b, k_time, 0));
        STEP(put_int(&b, timestamp));
    }
    STEP(put_key(&b, k_observed, timestamp != Py_None));
    STEP(put_int(&b, observed));
    if (number != NULL) {
        STEP(put_key(&b, k_sev_number, 1));
        STEP(put_int(&b, number));
    }
    if (text != Py_None) {
        STEP(put_key(&b, k_sev_text, 1));
        STEP(put_str(&b, text));
    }
    if (has_span) {
        PyObject *hex = id_hex(&self->span_key, &self->span_hex, span_id, fmt_span);
        if (hex == NULL)
            goto bail;
        if (!id_fits(hex, 16)) {
            Py_DECREF(hex);
            goto bail; /* negative or wider than 64 bits: the Python encoder tags it */
        }
        rc = put_key(&b, k_span_id, 1);
        if (rc == 0)
            rc = put_plain(&b, hex);
        span_hex = hex; /* the item carries it too: the record's place in a tree of spans */
        if (rc)
            goto done;
    }
    if (has_flags) {
        STEP(put_key(&b, k_trace_flags, 1));
        STEP(put_int(&b, flags));
    }
    if (event != Py_None && PyUnicode_GET_LENGTH(event) > 0) {
        STEP(put_key(&b, k_event_name, 1));
        STEP(put_str(&b, event));
    }
    if (has_trace) {
        tid = id_hex(&self->trace_key, &self->trace_hex, trace_id, fmt_trace);
        if (tid == NULL || !id_fits(tid, 32))
            goto bail; /* (tid is released at done) */
        if (self->flat) {
            STEP(put_key(&b, k_trace_id, 1));
            STEP(put_plain(&b, tid));
            Py_CLEAR(tid);
        }
    }
    if (dropped != Py_None) {
        if ((truth = PyObject_IsTrue(dropped)) < 0)
            goto bail;
        if (truth) {
            STEP(put_key(&b, k_dropped_count, 1));
            STEP(put_int(&b, dropped));
        }
    }
    {
        /* The tail is shared, not copied: a record's own bytes stay small. */
        PyObject *data = PyBytes_FromStringAndSize(b.data, b.len);
        if (data != NULL)
            result = line_item(7, tid != NULL ? tid : Py_None, ts_obj, failed, data, tail,
                               span_hex != NULL ? span_hex : Py_None, Py_None);
        Py_XDECREF(data);
    }
    goto done;

bail:
    rc = 1;
done:
    (void)rc; /* result stays NULL unless built: with an error set, or none (Python's turn) */
    buf_free(&b);
    Py_XDECREF(timestamp);
    Py_XDECREF(observed);
    Py_XDECREF(severity);
    Py_XDECREF(text);
    Py_XDECREF(span_id);
    Py_XDECREF(flags);
    Py_XDECREF(event);
    Py_XDECREF(body);
    Py_XDECREF(trace_id);
    Py_XDECREF(attrs);
    Py_XDECREF(dict);
    Py_XDECREF(dropped_own);
    Py_XDECREF(tid);
    Py_XDECREF(span_hex);
    Py_XDECREF(tail);
    Py_XDECREF(ts_obj);
    floats_free(&floats);
    for (int i = 0; i < N_FIELDS; i++)
        Py_XDECREF(got[i]);
    Py_XDECREF(fields);
    return result;
}

static PyObject *
FastEncoder_encode(FastEncoder *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (self->fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "FastEncoder.__init__ has not run");
        return NULL;
    }
    if (nargs < 1 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "encode(record, resource=None, scope=None, dropped=None)");
        return NULL;
    }
    PyObject *result = encode_fast(self, args[0], nargs > 1 ? args[1] : Py_None,
                                   nargs > 2 ? args[2] : Py_None, nargs > 3 ? args[3] : Py_None);
    if (result != NULL)
        return result;
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return NULL; /* KeyboardInterrupt and the like go on, as in Python code */
        PyErr_Clear();
    }
    return PyObject_Vectorcall(self->fallback, args, (size_t)nargs, NULL);
}

static int
FastEncoder_init(FastEncoder *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"tails",      "dumps",    "reserved", "bounded", "record_type",
                             "severities", "fallback", "flat",     NULL};
    if (self->fallback != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "FastEncoder is set up once");
        return -1;
    }
    PyObject *tails, *dumps, *reserved, *bounded, *record_type, *severities, *fallback;
    int flat;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OO!OO!OOp", kwlist, &PyDict_Type, &tails, &dumps,
                                     &PyFrozenSet_Type, &reserved, &bounded, &PyType_Type, &record_type,
                                     &severities, &fallback, &flat))
        return -1;
    if (filter_fill(&self->filter, reserved) < 0)
        return -1;
    if (members_fill(&self->severities, severities, "severities") < 0)
        return -1;
    Py_XSETREF(self->tails, Py_NewRef(tails));
    Py_XSETREF(self->dumps, Py_NewRef(dumps));
    Py_XSETREF(self->reserved, Py_NewRef(reserved));
    Py_XSETREF(self->bounded, Py_NewRef(bounded));
    Py_XSETREF(self->record_type, Py_NewRef(record_type));
    Py_XSETREF(self->fallback, Py_NewRef(fallback));
    self->flat = flat;
    return 0;
}

static int
FastEncoder_traverse(FastEncoder *self, visitproc visit, void *arg)
{
    Py_VISIT(self->tails);
    Py_VISIT(self->dumps);
    LAST_TAIL_VISIT(self->last);
    Py_VISIT(self->reserved);
    Py_VISIT(self->bounded);
    Py_VISIT(self->record_type);
    Py_VISIT(self->fallback);
    if (members_traverse(&self->severities, visit, arg) < 0)
        return -1;
    return 0;
}

static int
FastEncoder_clear(FastEncoder *self)
{
    Py_CLEAR(self->tails);
    Py_CLEAR(self->dumps);
    LAST_TAIL_CLEAR(self->last);
    Py_CLEAR(self->reserved);
    Py_CLEAR(self->bounded);
    Py_CLEAR(self->record_type);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->span_key);
    Py_CLEAR(self->span_hex);
    Py_CLEAR(self->trace_key);
    Py_CLEAR(self->trace_hex);
    members_clear(&self->severities);
    return 0;
}

static void
FastEncoder_dealloc(FastEncoder *self)
{
    PyObject_GC_UnTrack(self);
    FastEncoder_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef FastEncoder_methods[] = {
    {"encode", (PyCFunction)(void (*)(void))FastEncoder_encode, METH_FASTCALL,
     "encode(record, resource=None, scope=None, dropped=None) -> LineItem"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FastEncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "logxpy_otel._speedups.FastEncoder",
    .tp_doc = "The common case of LineEncoder.encode in C; the rest goes to `fallback`.",
    .tp_basicsize = sizeof(FastEncoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FastEncoder_init,
    .tp_dealloc = (destructor)FastEncoder_dealloc,
    .tp_traverse = (traverseproc)FastEncoder_traverse,
    .tp_clear = (inquiry)FastEncoder_clear,
    .tp_methods = FastEncoder_methods,
};

/* ---- the processor's on_emit ------------------------------------------------------- */

static PyObject *a_scope, *a_log_record, *a_resource, *a_name, *s_own_name, *a_parent_context;

/* on_emit for LogxpyLogRecordProcessor: the same steps as its Python on_emit, without
 * a Python frame per record. Records of the package's own logger are counted (``own``),
 * never written; any fault is counted (``fault``), never raised into the application. */
typedef struct {
    PyObject_HEAD
    PyObject *encoder; /* a FastEncoder, called directly */
    PyObject *lane;    /* the AsyncWriter's ``_lane``: a list holding its lane, or None */
    PyObject *enqueue; /* AsyncWriter.enqueue, for everything else */
    PyObject *sync;    /* the sync_mode() ContextVar: set, enqueue decides */
    PyObject *own;     /* own() counts a record of our own diagnostics */
    PyObject *fault;   /* fault(exc) counts a record lost to an internal error */
    PyObject *last_scope;
    int last_own;
    PyObject *spans;   /* a SpanEncoder, for span_start/span_end (LogxpySpanProcessor), or NULL */
    PyObject *invalid; /* invalid() counts a span with ids OTel cannot carry */
    PyObject *noted;   /* _diagnostics.NOTED_INTERRUPTS (the application's interrupt, landed in
                        * its __repr__ while the encoder ran, raised once the line is queued),
                        * or a list of its own that stays empty (an emitter called by another
                        * entry point of ours, which raises it at its own end) */
    PyObject *noted_aside;  /* _diagnostics.noted_aside, at the start (noted_enter) */
    PyObject *settle_noted; /* _diagnostics.settle_noted, at the end (noted_leave) */
} Emitter;

static PyTypeObject EmitterType;

typedef struct SpanEncoderObject SpanEncoder;
static PyTypeObject SpanEncoderType;
static PyObject *span_encode(SpanEncoder *self, PyObject *span, int end);

/* Whether a scope is the ``logxpy_otel`` logger or one below it: 1 or 0, or -1 with an
 * error (as Python's getattr(scope, "name", None), only AttributeError means "no name"). */
static int
is_own_scope(PyObject *scope)
{
    PyObject *name = PyObject_GetAttr(scope, a_name);
    if (name == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    int own = 0;
    if (PyUnicode_Check(name)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(s_own_name);
        Py_ssize_t len = PyUnicode_GET_LENGTH(name);
        if (len >= n && PyUnicode_Tailmatch(name, s_own_name, 0, n, -1) == 1)
            own = len == n || PyUnicode_READ_CHAR(name, n) == '.';
        if (PyErr_Occurred()) {
            PyErr_Clear();
            own = 0;
        }
    }
    Py_DECREF(name);
    return own;
}

/* The writer's lane (``_queue.Lane``, a named tuple): the fields read here, by position.
 * Their names are the module's ``LANE_FIELDS``; the processor uses this Emitter only when
 * they equal ``Lane._fields``, so a change on either side turns the C path off, not wrong. */
enum { LANE_TAKE_SLOT, LANE_APPEND, LANE_ITEMS, LANE_BATCH_SIZE, LANE_WAKE, LANE_SIZE };
static const char *const lane_fields[LANE_SIZE] = {"take_slot", "append", "items", "batch_size", "wake"};

/* Queue ``item`` as AsyncWriter.enqueue does on its common path (writer running
 * asynchronously, not in sync_mode(), a free slot), through the lane the writer keeps
 * in ``_lane[0]`` (a list it changes in place, so no attribute lookup per record).
 * These are C calls, so no other Python code runs between reading the lane and
 * appending. Returns the result of enqueue(item) in every other case. New reference,
 * or NULL with an error. */
static PyObject *
emitter_enqueue(Emitter *self, PyObject *item)
{
    if (PyList_GET_SIZE(self->lane) != 1)
        return PyObject_CallOneArg(self->enqueue, item);
    PyObject *lane = Py_NewRef(PyList_GET_ITEM(self->lane, 0));
    if (!PyTuple_Check(lane) || PyTuple_GET_SIZE(lane) != LANE_SIZE)
        goto slow; /* None: not running asynchronously */
    PyObject *sync = NULL;
    if (PyContextVar_Get(self->sync, Py_False, &sync) < 0)
        goto error;
    int in_sync = PyObject_IsTrue(sync);
    Py_DECREF(sync);
    if (in_sync != 0) {
        if (in_sync < 0)
            goto error;
        goto slow;
    }
    PyObject *slot = PyObject_CallNoArgs(PyTuple_GET_ITEM(lane, LANE_TAKE_SLOT));
    if (slot == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_IndexError))
            goto error;
        PyErr_Clear();
        goto slow; /* no free slot: the queue policy decides, in enqueue */
    }
    Py_DECREF(slot);
    PyObject *appended = PyObject_CallOneArg(PyTuple_GET_ITEM(lane, LANE_APPEND), item);
    if (appended == NULL)
        goto error;
    Py_DECREF(appended);
    Py_ssize_t depth = PyObject_Length(PyTuple_GET_ITEM(lane, LANE_ITEMS));
    Py_ssize_t batch = PyLong_AsSsize_t(PyTuple_GET_ITEM(lane, LANE_BATCH_SIZE));
    if (depth < 0 || (batch == -1 && PyErr_Occurred()))
        goto error;
    if (depth == batch) {
        PyObject *woken = PyObject_CallNoArgs(PyTuple_GET_ITEM(lane, LANE_WAKE));
        if (woken == NULL)
            goto error;
        Py_DECREF(woken);
    }
    Py_DECREF(lane);
    return Py_NewRef(Py_True);
slow:
    Py_DECREF(lane);
    return PyObject_CallOneArg(self->enqueue, item);
error:
    Py_DECREF(lane);
    return NULL;
}

/* The raised exception counted as a lost line (``fault``), never raised into the
 * application: 0; -1 for what goes on (KeyboardInterrupt and the like, as from Python
 * code), with it set. */
static int
emitter_fault(Emitter *self)
{
    return count_fault(self->fault);
}


static PyObject *
emitter_emit(Emitter *self, PyObject *rw)
{
    PyObject *scope = NULL, *record = NULL, *resource = NULL, *item = NULL, *done = NULL, *result = NULL;
    int own;
    if (self->encoder == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Emitter.__init__ has not run");
        return NULL;
    }
    scope = PyObject_GetAttr(rw, a_scope);
    if (scope == NULL)
        goto fault;
    if (scope == self->last_scope) {
        own = self->last_own;
    }
    else {
        own = is_own_scope(scope);
        if (own < 0)
            goto fault;
        PyObject *old = self->last_scope; /* the cache whole before the old scope goes */
        self->last_scope = Py_NewRef(scope);
        self->last_own = own;
        Py_XDECREF(old);
    }
    if (own) {
        done = PyObject_CallNoArgs(self->own);
        if (done == NULL)
            goto fault;
        goto out;
    }
    record = PyObject_GetAttr(rw, a_log_record);
    if (record == NULL)
        goto fault;
    resource = PyObject_GetAttr(rw, a_resource);
    if (resource == NULL)
        goto fault;
    {
        PyObject *args[4] = {record, resource, scope, Py_None};
        item = FastEncoder_encode((FastEncoder *)self->encoder, args, 3);
    }
    if (item == NULL)
        goto fault;
    done = emitter_enqueue(self, item);
    if (done == NULL)
        goto fault;
    goto out;

fault:
    if (emitter_fault(self) < 0)
        goto error;
out:
    result = Py_NewRef(Py_None);
error:
    Py_XDECREF(scope);
    Py_XDECREF(record);
    Py_XDECREF(resource);
    Py_XDECREF(item);
    Py_XDECREF(done);
    return result;
}

/* on_emit: emitter_emit between noted_enter and noted_leave. */
static PyObject *
Emitter_emit(Emitter *self, PyObject *rw)
{
    PyObject *outer;
    if (self->encoder == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Emitter.__init__ has not run");
        return NULL;
    }
    if (noted_enter(self->noted, self->noted_aside, &outer) < 0)
        return NULL;
    return noted_leave(self->noted, self->settle_noted, outer, emitter_emit(self, rw));
}

/* A span's start (``end`` 0) or end line, queued as LogxpySpanProcessor._hand_over does:
 * a span without ids OTel can carry is counted (``invalid``), a fault too (``fault``). */
static PyObject *
emitter_span(Emitter *self, PyObject *span, int end)
{
    if (self->spans == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Emitter: no span encoder");
        return NULL;
    }
    PyObject *outer;
    if (noted_enter(self->noted, self->noted_aside, &outer) < 0)
        return NULL;
    PyObject *item = span_encode((SpanEncoder *)self->spans, span, end), *done = NULL, *result = Py_None;
    if (item != NULL)
        done = item == Py_None ? PyObject_CallNoArgs(self->invalid) : emitter_enqueue(self, item);
    Py_XDECREF(item);
    if (done == NULL && emitter_fault(self) < 0)
        result = NULL;
    Py_XDECREF(done);
    return noted_leave(self->noted, self->settle_noted, outer, Py_XNewRef(result));
}

static PyObject *
Emitter_span_start(Emitter *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    /* on_start(span, parent_context=None), called as the Python method can be (the parent
     * context is not needed) */
    PyObject *span = nargs >= 1 ? args[0] : NULL;
    int bad = nargs > 2;
    for (Py_ssize_t i = 0; kwnames != NULL && i < PyTuple_GET_SIZE(kwnames); i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        if (key == a_parent_context && nargs < 2)
            continue; /* (the SDK's call, its name interned as ours) */
        if (PyUnicode_Check(key) && PyUnicode_CompareWithASCIIString(key, "span") == 0 && span == NULL)
            span = args[nargs + i];
        else if (!(PyUnicode_Check(key) && PyUnicode_CompareWithASCIIString(key, "parent_context") == 0 && nargs < 2))
            bad = 1;
    }
    if (bad || span == NULL) {
        PyErr_SetString(PyExc_TypeError, "on_start(span, parent_context=None)");
        return NULL;
    }
    return emitter_span(self, span, 0);
}

static PyObject *
Emitter_span_end(Emitter *self, PyObject *span)
{
    return emitter_span(self, span, 1);
}

static int
Emitter_init(Emitter *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"encoder", "lane",        "enqueue",      "sync",  "own",     "fault",
                             "noted",   "noted_aside", "settle_noted", "spans", "invalid", NULL};
    PyObject *encoder, *lane, *enqueue, *sync, *own, *fault, *noted, *noted_aside, *settle_noted, *spans = NULL,
                                                                                               *invalid = NULL;
    if (self->encoder != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Emitter is set up once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!OO!OOO!OO|O!O", kwlist, &FastEncoderType, &encoder,
                                     &PyList_Type, &lane, &enqueue, &PyContextVar_Type, &sync, &own, &fault,
                                     &PyList_Type, &noted, &noted_aside, &settle_noted, &SpanEncoderType, &spans,
                                     &invalid))
        return -1;
    if ((spans == NULL) != (invalid == NULL)) {
        PyErr_SetString(PyExc_TypeError, "Emitter: spans and invalid go together");
        return -1;
    }
    Py_XSETREF(self->spans, Py_XNewRef(spans));
    Py_XSETREF(self->invalid, Py_XNewRef(invalid));
    Py_XSETREF(self->encoder, Py_NewRef(encoder));
    Py_XSETREF(self->lane, Py_NewRef(lane));
    Py_XSETREF(self->sync, Py_NewRef(sync));
    Py_XSETREF(self->enqueue, Py_NewRef(enqueue));
    Py_XSETREF(self->own, Py_NewRef(own));
    Py_XSETREF(self->fault, Py_NewRef(fault));
    Py_XSETREF(self->noted, Py_NewRef(noted));
    Py_XSETREF(self->noted_aside, Py_NewRef(noted_aside));
    Py_XSETREF(self->settle_noted, Py_NewRef(settle_noted));
    return 0;
}

static int
Emitter_traverse(Emitter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->encoder);
    Py_VISIT(self->lane);
    Py_VISIT(self->sync);
    Py_VISIT(self->enqueue);
    Py_VISIT(self->own);
    Py_VISIT(self->fault);
    Py_VISIT(self->last_scope);
    Py_VISIT(self->spans);
    Py_VISIT(self->invalid);
    Py_VISIT(self->noted);
    Py_VISIT(self->noted_aside);
    Py_VISIT(self->settle_noted);
    return 0;
}

static int
Emitter_clear(Emitter *self)
{
    Py_CLEAR(self->encoder);
    Py_CLEAR(self->lane);
    Py_CLEAR(self->sync);
    Py_CLEAR(self->enqueue);
    Py_CLEAR(self->own);
    Py_CLEAR(self->fault);
    Py_CLEAR(self->last_scope);
    Py_CLEAR(self->spans);
    Py_CLEAR(self->invalid);
    Py_CLEAR(self->noted);
    Py_CLEAR(self->noted_aside);
    Py_CLEAR(self->settle_noted);
    return 0;
}

static void
Emitter_dealloc(Emitter *self)
{
    PyObject_GC_UnTrack(self);
    Emitter_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Queue an item already encoded (the logging handler's C fast path writes its own lines):
 * the writer's lane, as emit does, without a Python frame; else enqueue(item). */
static PyObject *
Emitter_enqueue(Emitter *self, PyObject *item)
{
    if (self->encoder == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Emitter.__init__ has not run");
        return NULL;
    }
    return emitter_enqueue(self, item);
}

static PyMethodDef Emitter_methods[] = {
    {"emit", (PyCFunction)Emitter_emit, METH_O, "emit(log_record) -> None: on_emit, never raises"},
    {"enqueue", (PyCFunction)Emitter_enqueue, METH_O, "enqueue(item) -> bool: queue an encoded LineItem as emit does"},
    {"span_start", (PyCFunction)(void (*)(void))Emitter_span_start, METH_FASTCALL | METH_KEYWORDS,
     "span_start(span, parent_context=None) -> None: LogxpySpanProcessor.on_start, never raises"},
    {"span_end", (PyCFunction)Emitter_span_end, METH_O,
     "span_end(span) -> None: LogxpySpanProcessor.on_end, never raises"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EmitterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "logxpy_otel._speedups.Emitter",
    .tp_doc = "LogxpyLogRecordProcessor.on_emit in C: encode and enqueue, faults counted.",
    .tp_basicsize = sizeof(Emitter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Emitter_init,
    .tp_dealloc = (destructor)Emitter_dealloc,
    .tp_traverse = (traverseproc)Emitter_traverse,
    .tp_clear = (inquiry)Emitter_clear,
    .tp_methods = Emitter_methods,
};

/* ---- spans (the common case of _span_format.SpanEncoder) ---------------------------- */

/* A span's fields, read from the instance (the SDK's spans keep them there; the
 * properties that return them cost a Python call each). A field missing sends the span
 * to the Python encoder, which reads the properties. */
enum {
    SF_NAME, SF_CONTEXT, SF_KIND, SF_SCOPE, SF_PARENT, SF_START, SF_END, SF_ATTRIBUTES, SF_EVENTS,
    SF_LINKS, SF_RESOURCE, SF_STATUS, N_SPAN_FIELDS
};
/* (in the order ReadableSpan.__init__ sets them) */
static const char *const span_field_text[N_SPAN_FIELDS] = {
    "_name",        "_context",    "_kind",   "_instrumentation_scope", "_parent",   "_start_time",
    "_end_time",    "_attributes", "_events", "_links",                 "_resource", "_status"};
static PyObject *span_field[N_SPAN_FIELDS];
static PyObject *a_status_code, *a_description, *a_dq;


struct SpanEncoderObject {
    PyObject_HEAD
    PyObject *tails;       /* tails(scope, resource) -> the line's shared end (bytes) */
    PyObject *dumps;       /* orjson.dumps, for floats */
    PyObject *reserved;    /* frozenset: keys the Python encoder moves or handles */
    Filter filter;
    PyObject *span_types;  /* tuple of the exact span types read from their dict */
    PyObject *context_type; /* SpanContext: a tuple (trace_id, span_id, is_remote, flags, state, valid) */
    PyObject *empty_state; /* the default (empty) TraceState */
    PyObject *bounded;     /* BoundedAttributes */
    PyObject *bounded_list; /* BoundedList (events, links) */
    PyObject *internal;    /* SpanKind.INTERNAL */
    Members kinds;         /* SpanKind members but INTERNAL, each with its value and name */
    PyObject *unset, *ok, *error; /* StatusCode members */
    PyObject *status_type; /* Status: a subclass's properties may say another code (Python's turn) */
    PyObject *start_type, *end_type; /* SpanStart, SpanEnd */
    PyObject *fallback_start, *fallback_end; /* the Python encoder's methods */
    PyObject *trace_key, *trace_hex; /* the last trace id and its hex text */
    LastTail last;
    Py_ssize_t end_places[N_SPAN_FIELDS]; /* each field's place in an ended span's dict, -1 unknown */
    int end_places_known;
    PyObject *names;       /* dict: each open span's name at its start, by span id (shared with Python) */
    PyObject *aside;       /* dict: entries a start found in its place (Python's; while any, ends are too) */
    Py_ssize_t max_names;  /* more open spans than this: the names are forgotten at once */
};

/* ``value`` (an exact int in [1, 2**64)) as 16 hex digits into ``out``: 0; 1 when it is
 * not such an int (0 or an id OTel cannot carry: the Python encoder's case). */
static int
span_hex16(PyObject *value, char out[16])
{
    static const char hex[] = "0123456789abcdef";
    if (!PyLong_CheckExact(value))
        return 1;
    unsigned long long id = PyLong_AsUnsignedLongLong(value); /* (one read, any 64-bit id) */
    if (id == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear(); /* negative, or wider than 64 bits: rare, so the error's cost is too */
        return 1;
    }
    if (id == 0)
        return 1;
    for (int i = 15; i >= 0; i--, id >>= 4)
        out[i] = hex[id & 0xf];
    return 0;
}

/* A time in nanoseconds: 1 with its value in ``out`` when ``value`` is an exact int in
 * [0, 2**63) (the C path's; a number the format writes as it is); else 0. */
static int
as_time(PyObject *value, long long *out)
{
    if (!PyLong_CheckExact(value))
        return 0;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (overflow != 0 || v < 0)
        return 0;
    *out = v;
    return 1;
}

/* Whether ``value`` (an int) is 0. */
static int
is_zero(PyObject *value)
{
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return overflow == 0 && v == 0;
}

/* The nanoseconds as Unix seconds, as _format._seconds computes them (int / 1e9). */
static double
seconds(long long nanos)
{
    volatile double rounded = (double)nanos; /* rounded to a double first, even on x87 */
    return rounded / 1e9;
}

/* A role (SpanStart, SpanEnd: tuple types, checked in __init__) with its items set,
 * without its Python __new__: ``(parent,)``, or ``(parent, name, start_ts)`` for an end. */
static PyObject *
make_role(PyObject *type, PyObject *parent, PyObject *name, PyObject *start_ts)
{
    PyTypeObject *tp = (PyTypeObject *)type;
    PyObject *role = tp->tp_alloc(tp, name != NULL ? 3 : 1);
    if (role == NULL)
        return NULL;
    PyTuple_SET_ITEM(role, 0, Py_NewRef(parent));
    if (name != NULL) {
        PyTuple_SET_ITEM(role, 1, Py_NewRef(name));
        PyTuple_SET_ITEM(role, 2, Py_NewRef(start_ts));
    }
    return role;
}

/* The fields of an ended span into ``got`` (new references), from its instance dict: the
 * SDK hands on_end a ReadableSpan made for the call, which nothing reads much after, so
 * making a dict of its inline values costs no later access (a live span's would: see
 * span_fast). ReadableSpan.__init__ sets its fields in one order: each is read at its
 * place when the key there is its name (a dict walk step costs a third of a lookup; the
 * places are learnt from the first span), else looked up, else got by getattr (as for a
 * span without an instance dict). 0, or -1 with an error (a field missing). */
static int
ended_span_fields(SpanEncoder *self, PyObject *span, PyObject **got)
{
    PyObject *fields = PyObject_GenericGetDict(span, NULL), *key, *value;
    if (fields == NULL || !PyDict_CheckExact(fields)) {
        PyErr_Clear();
        Py_CLEAR(fields);
    }
    else if (!self->end_places_known) {
        Py_ssize_t pos = 0, at = 0;
        for (int i = 0; i < N_SPAN_FIELDS; i++)
            self->end_places[i] = -1;
        for (; PyDict_Next(fields, &pos, &key, &value); at = pos) {
            for (int i = 0; i < N_SPAN_FIELDS; i++) {
                if (key == span_field[i])
                    self->end_places[i] = at;
            }
        }
        self->end_places_known = 1;
    }
    int rc = 0;
    for (int i = 0; i < N_SPAN_FIELDS && rc == 0; i++) {
        value = NULL;
        if (fields != NULL) {
            Py_ssize_t pos = self->end_places[i];
            if (!(pos >= 0 && PyDict_Next(fields, &pos, &key, &value) && key == span_field[i])) {
                value = PyDict_GetItemWithError(fields, span_field[i]); /* borrowed */
                if (value == NULL && PyErr_Occurred())
                    rc = -1;
            }
        }
        got[i] = value != NULL ? Py_NewRef(value) : rc == 0 ? PyObject_GetAttr(span, span_field[i]) : NULL;
        if (got[i] == NULL)
            rc = -1;
    }
    Py_XDECREF(fields);
    return rc;
}

/* The entry of the open span ``span_id`` of trace ``trace_id`` in ``names`` (new
 * reference): (trace id, name at its start), which the Python encoder makes, or the C
 * encoder's (trace id, name at its start, span id's hex, start ts, span id), which lets
 * its end and its children's lines reuse that text and that float. NULL without an error
 * for none (or another trace's, whose span id repeats; or one whose trace id's == raises),
 * with one on error. */
static PyObject *
open_span(SpanEncoder *self, PyObject *span_id, PyObject *trace_id)
{
    PyObject *entry = PyDict_GetItemWithError(self->names, span_id); /* borrowed */
    if (entry == NULL || !PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) < 2)
        return NULL;
    PyObject *theirs = PyTuple_GET_ITEM(entry, 0);
    Py_INCREF(entry);
    int ours = theirs == trace_id ? 1 : PyObject_RichCompareBool(theirs, trace_id, Py_EQ);
    if (ours < 0 && PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear(); /* (another span's trace id whose == raises: not this span's entry) */
        ours = 0;
    }
    if (ours <= 0)
        Py_CLEAR(entry);
    return entry;
}

/* A span's entry at its start, once its line is made (a span handed to the Python encoder
 * gets that encoder's entry, never two): (trace id, name, span id's hex, start ts, span
 * id). 0; 1 (no error, nothing changed) where another open span's entry holds the span id
 * (one of another trace that repeats it, or this span started twice: a processor added
 * twice), which the Python encoder keeps aside for its own end; or -1 with an error. */
static int
remember_start(SpanEncoder *self, PyObject *span_id, PyObject *trace_id, PyObject *name, PyObject *span_hex,
               PyObject *ts)
{
    if (PyDict_GET_SIZE(self->names) >= self->max_names) {
        PyDict_Clear(self->names); /* (spans that never end: their renames are not seen) */
        PyDict_Clear(self->aside);
    }
    PyObject *made = PyTuple_Pack(5, trace_id, name, span_hex, ts, span_id);
    if (made == NULL)
        return -1;
    PyObject *there = PyDict_SetDefault(self->names, span_id, made); /* borrowed */
    int rc = there == NULL ? -1 : there != made; /* 1: another entry holds the id (below) */
    Py_DECREF(made);
    return rc;
}

/* The hex text of span id ``span_id`` (an exact int) kept in a C encoder's entry (see
 * open_span), or NULL for another entry: the Python encoder's, or one a key equal to
 * ``span_id`` but not it holds (an int subclass whose == says so; the dict keeps the first
 * key it was given). */
static PyObject *
entry_hex(PyObject *entry, PyObject *span_id)
{
    if (entry == NULL || PyTuple_GET_SIZE(entry) != 5)
        return NULL;
    PyObject *id = PyTuple_GET_ITEM(entry, 4);
    if (id != span_id && !(PyLong_CheckExact(id) && PyLong_CheckExact(span_id) &&
                           PyObject_RichCompareBool(id, span_id, Py_EQ) == 1))
        return NULL; /* (exact ints: the comparison runs no Python code and cannot fail) */
    PyObject *hex = PyTuple_GET_ITEM(entry, 2);
    return PyUnicode_CheckExact(hex) && PyUnicode_IS_COMPACT_ASCII(hex) && PyUnicode_GET_LENGTH(hex) == 16 ? hex
                                                                                                           : NULL;
}

/* The hex text of span id ``id`` into ``*text`` (new reference) and ``*chars``: with
 * ``look``, from the entry of its open span where the C encoder made one (``*entry``: a
 * new reference, or NULL), else made from the id into ``buf``. 0; 1 for an id the C path
 * does not take (0, negative, wider than 64 bits, not an exact int) or an error. */
static int
id_text(SpanEncoder *self, PyObject *id, PyObject *trace_id, int look, PyObject **entry, PyObject **text,
        char buf[16], const char **chars)
{
    if (look && PyLong_CheckExact(id)) {
        *entry = open_span(self, id, trace_id);
        if (*entry == NULL && PyErr_Occurred())
            return 1;
        *text = Py_XNewRef(entry_hex(*entry, id));
    }
    if (*text != NULL) {
        *chars = (const char *)PyUnicode_DATA(*text);
        return 0;
    }
    *chars = buf;
    return span_hex16(id, buf) || (*text = ascii_str(buf, 16)) == NULL;
}

/* The line item of a span's start (``end`` 0) or end line, as _span_format.SpanEncoder
 * writes it; NULL without an error for any span it does not take (the Python encoder's
 * turn), with one on error. */
static PyObject *
span_fast(SpanEncoder *self, PyObject *span, int end)
{
    PyObject *got[N_SPAN_FIELDS] = {NULL}, *trace_hex = NULL, *span_hex = NULL,
             *parent_hex = NULL, *dict = NULL, *dropped = NULL, *ts = NULL, *start_ts = NULL,
             *tail = NULL, *data = NULL, *role = NULL, *result = NULL, *code = NULL, *description = NULL,
             *entry = NULL, *parent_entry = NULL;
    Floats floats;
    floats_init(&floats);
    Buf b;
    buf_init(&b);
    int rc = 0, failed = 0, kind = -1;
    char hex_text[16], parent_text[16];
    const char *hex = hex_text, *parent_chars = parent_text; /* (or a reused str's text) */

    /* Read and check first; write after. */
    int known = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(self->span_types); i++)
        known |= (PyObject *)Py_TYPE(span) == PyTuple_GET_ITEM(self->span_types, i);
    if (!known)
        goto bail;
    /* Each field as the SDK keeps it in the instance (the properties that return them cost
     * a Python call each). A live span's (a start line's) by getattr, never through its
     * __dict__: that would make a dict of its inline values, which costs the SDK more than
     * all of this at every later access to the span (measured: 10,000 instructions a
     * span). An ended span's from its dict (ended_span_fields). */
    if (end) {
        if (ended_span_fields(self, span, got) < 0)
            goto bail; /* (a field renamed: the Python encoder reads the properties) */
    }
    else {
        for (int i = 0; i < N_SPAN_FIELDS; i++) {
            if (i == SF_END || i == SF_EVENTS || i == SF_LINKS || i == SF_STATUS)
                continue; /* (an end line's alone) */
            got[i] = PyObject_GetAttr(span, span_field[i]);
            if (got[i] == NULL)
                goto bail; /* (a field renamed: the Python encoder reads the properties) */
        }
    }
    PyObject *name = got[SF_NAME], *context = got[SF_CONTEXT], *parent = got[SF_PARENT];
    if (!PyUnicode_CheckExact(name) || (PyObject *)Py_TYPE(context) != self->context_type ||
        PyTuple_GET_SIZE(context) < 5)
        goto bail;
    PyObject *trace_id = PyTuple_GET_ITEM(context, 0), *flags = PyTuple_GET_ITEM(context, 3),
             *state = PyTuple_GET_ITEM(context, 4);
    if (!PyLong_CheckExact(trace_id) || !PyLong_Check(flags) || PyBool_Check(flags) || state != self->empty_state)
        goto bail; /* (a trace state: the Python encoder writes it) */
    {
        int zero = PyObject_Not(trace_id);
        if (zero != 0)
            goto bail;
    }
    /* (at its end, this span's entry, made at its start: its ids were checked there) */
    if (id_text(self, PyTuple_GET_ITEM(context, 1), trace_id, end, &entry, &span_hex, hex_text, &hex))
        goto bail;
    trace_hex = id_hex(&self->trace_key, &self->trace_hex, trace_id, fmt_trace);
    if (trace_hex == NULL || !id_fits(trace_hex, 32))
        goto bail;
    int remote = 0;
    if (parent != Py_None) {
        if ((PyObject *)Py_TYPE(parent) != self->context_type || PyTuple_GET_SIZE(parent) < 3)
            goto bail;
        PyObject *parent_id = PyTuple_GET_ITEM(parent, 1);
        if (PyLong_CheckExact(parent_id) && is_zero(parent_id))
            ; /* no parent: as the Python encoder, which tests parent.span_id */
        else {
            /* (an open parent's text, made at its start) */
            if (id_text(self, parent_id, trace_id, 1, &parent_entry, &parent_hex, parent_text, &parent_chars))
                goto bail;
            PyObject *is_remote = PyTuple_GET_ITEM(parent, 2);
            if (is_remote != Py_True && is_remote != Py_False)
                goto bail;
            remote = is_remote == Py_True;
        }
    }
    PyObject *kind_obj = got[SF_KIND];
    if (kind_obj != self->internal && (kind = members_find(&self->kinds, kind_obj)) < 0)
        goto bail;
    PyObject *start = got[SF_START], *stop = got[SF_END];
    long long start_ns, stop_ns = 0;
    if (!as_time(start, &start_ns))
        goto bail; /* None (not started), negative, or beyond 63 bits: Python's */
    if (end) {
        if (stop == Py_None)
            stop_ns = start_ns;
        else if (!as_time(stop, &stop_ns))
            goto bail;
    }
    PyObject *attributes = got[SF_ATTRIBUTES];
    if ((PyObject *)Py_TYPE(attributes) == self->bounded) {
        dict = PyObject_GetAttr(attributes, a_dict);
        if (dict == NULL || !PyDict_CheckExact(dict))
            goto bail;
        dropped = PyObject_GetAttr(attributes, a_dropped);
        if (dropped == NULL || !PyLong_CheckExact(dropped))
            goto bail;
    }
    else if (attributes == Py_None) {
        dict = Py_NewRef(Py_None);
    }
    else {
        goto bail;
    }
    if (end) {
        /* events and links: none, and none dropped (else the Python encoder writes them) */
        for (int which = SF_EVENTS; which <= SF_LINKS; which++) {
            PyObject *held = got[which];
            if ((PyObject *)Py_TYPE(held) != self->bounded_list)
                goto bail;
            PyObject *dq = PyObject_GetAttr(held, a_dq);
            Py_ssize_t n = dq == NULL ? -1 : PyObject_Length(dq);
            Py_XDECREF(dq);
            PyObject *lost = n == 0 ? PyObject_GetAttr(held, a_dropped) : NULL;
            int none_lost = lost != NULL && PyLong_CheckExact(lost) && is_zero(lost);
            Py_XDECREF(lost);
            if (!none_lost)
                goto bail;
        }
        PyObject *status = got[SF_STATUS];
        if ((PyObject *)Py_TYPE(status) != self->status_type)
            goto bail; /* (a subclass: its properties, which Python reads, may differ) */
        code = PyObject_GetAttr(status, a_status_code);
        /* (UNSET: no line says a description, so none is read: most spans) */
        description = code == NULL ? NULL
                      : code == self->unset ? Py_NewRef(Py_None)
                                            : PyObject_GetAttr(status, a_description);
        if (description == NULL || (description != Py_None && !PyUnicode_CheckExact(description)) ||
            (code != self->unset && code != self->ok && code != self->error))
            goto bail;
        failed = code == self->error;
        if (description != Py_None && PyUnicode_GET_LENGTH(description) == 0)
            Py_SETREF(description, Py_NewRef(Py_None)); /* "" is no description */
    }
    {
        PyObject *scope = got[SF_SCOPE], *resource = got[SF_RESOURCE];
        tail = last_tail_get(&self->last, scope, resource);
        if (tail == NULL) {
            PyObject *args[2] = {scope, resource};
            tail = PyObject_Vectorcall(self->tails, args, 2, NULL);
            if (tail == NULL || !PyBytes_CheckExact(tail))
                goto bail;
            last_tail_set(&self->last, scope, resource, tail);
        }
    }
    ts = PyFloat_FromDouble(seconds(end ? stop_ns : start_ns));
    if (ts == NULL)
        goto bail;
    if (end) {
        /* The start's ts, kept in its entry (the same float, unless the start time is not) */
        PyObject *kept = entry != NULL && PyTuple_GET_SIZE(entry) == 5 ? PyTuple_GET_ITEM(entry, 3) : NULL;
        double start_s = seconds(start_ns);
        if (kept != NULL && PyFloat_CheckExact(kept) && PyFloat_AS_DOUBLE(kept) == start_s)
            start_ts = Py_NewRef(kept);
        else if ((start_ts = PyFloat_FromDouble(start_s)) == NULL)
            goto bail;
    }
    if (end && entry != NULL) {
        /* The name at its start, by span id (shared with the Python encoder; the C encoder's
         * entry, made by remember_start, also keeps the span id's text and the start's ts):
         * a span renamed before its end keeps it in its end line's ``at`` (logxpy's tools
         * match the start by it), and that line is the Python encoder's (the final name in
         * ``_otel``). */
        PyObject *span_id = PyTuple_GET_ITEM(context, 1), *started = PyTuple_GET_ITEM(entry, 1);
        int same = started == name ? 1 : PyObject_RichCompareBool(started, name, Py_EQ);
        if (same < 0)
            goto done;
        if (!same)
            goto bail; /* renamed: the Python encoder writes it */
        /* Only while it is still there: Python code that ran since it was read (a GC
         * callback) may have put another span's entry there, which is not ours to drop */
        PyObject *now = PyDict_GetItemWithError(self->names, span_id); /* borrowed */
        if (now == NULL && PyErr_Occurred())
            goto done;
        if (now == entry && PyDict_DelItem(self->names, span_id) < 0)
            goto done;
    }
    /* The flags' truth first, as the Python encoder asks it (_ids) before it puts the
     * attributes in (an int subclass's __bool__ may run code that changes them). */
    int has_flags = PyObject_IsTrue(flags);
    if (has_flags < 0)
        goto bail;
    /* The line, in the order the Python encoder builds it. */
    STEP(put_ts(&b, &floats, self->dumps, ts, dict));
    STEP(PUT_LITERAL(&b, ",\"at\":"));
    STEP(put_str(&b, name));
    if (!end)
        STEP(PUT_LITERAL(&b, ",\"st\":\"started\""));
    else if (failed)
        STEP(PUT_LITERAL(&b, ",\"st\":\"failed\""));
    else
        STEP(PUT_LITERAL(&b, ",\"st\":\"succeeded\""));
    if (end && failed && description != Py_None) {
        STEP(PUT_LITERAL(&b, ",\"reason\":"));
        STEP(put_str(&b, description));
    }
    if (!end && kind >= 0) {
        STEP(PUT_LITERAL(&b, ",\"span.kind\":"));
        STEP(put_plain(&b, self->kinds.name[kind]));
    }
    STEP(put_attributes(&b, dict, &self->filter, self->reserved, &floats));
    STEP(PUT_LITERAL(&b, ",\"_otel\":{\"span_id\":"));
    STEP(put_quoted(&b, hex, 16));
    if (parent_hex != NULL) {
        STEP(PUT_LITERAL(&b, ",\"parent_span_id\":"));
        STEP(put_quoted(&b, parent_chars, 16));
        if (remote)
            STEP(PUT_LITERAL(&b, ",\"parent_is_remote\":true"));
    }
    if (kind >= 0) {
        STEP(PUT_LITERAL(&b, ",\"kind\":"));
        STEP(put_int(&b, self->kinds.number[kind]));
    }
    if (has_flags) {
        STEP(PUT_LITERAL(&b, ",\"trace_flags\":"));
        STEP(put_int(&b, flags));
    }
    STEP(PUT_LITERAL(&b, ",\"start_time_unix_nano\":"));
    STEP(put_decimal(&b, start_ns));
    if (end) {
        STEP(PUT_LITERAL(&b, ",\"end_time_unix_nano\":"));
        STEP(put_decimal(&b, stop_ns));
        if (code != self->unset) {
            STEP(PUT_LITERAL(&b, ",\"status\":{\"code\":"));
            STEP(code == self->ok ? PUT_LITERAL(&b, "\"OK\"") : PUT_LITERAL(&b, "\"ERROR\""));
            if (description != Py_None) {
                STEP(PUT_LITERAL(&b, ",\"description\":"));
                STEP(put_str(&b, description));
            }
            STEP(PUT_LITERAL(&b, "}"));
        }
    }
    if (dropped != NULL && !is_zero(dropped)) {
        STEP(PUT_LITERAL(&b, ",\"dropped_attributes_count\":"));
        STEP(put_int(&b, dropped));
    }
    data = PyBytes_FromStringAndSize(b.data, b.len);
    if (data == NULL)
        goto done;
    role = end ? make_role(self->end_type, parent_hex != NULL ? parent_hex : Py_None, name, start_ts)
               : make_role(self->start_type, parent_hex != NULL ? parent_hex : Py_None, NULL, NULL);
    if (role == NULL)
        goto done;
    result = line_item(7, trace_hex, ts, failed, data, tail, span_hex, role);
    if (result != NULL && PyObject_GC_IsTracked(role))
        PyObject_GC_UnTrack(role); /* a role of str/float slots: never part of a cycle either */
    if (result != NULL && !end &&
        remember_start(self, PyTuple_GET_ITEM(context, 1), trace_id, name, span_hex, ts) != 0)
        Py_CLEAR(result); /* (the Python encoder's turn, which keeps its own entry: see remember_start) */
    goto done;

bail:
    rc = 1;
done:
    (void)rc; /* result stays NULL unless built: with an error set, or none (Python's turn) */
    buf_free(&b);
    for (int i = 0; i < N_SPAN_FIELDS; i++)
        Py_XDECREF(got[i]);
    Py_XDECREF(trace_hex);
    Py_XDECREF(span_hex);
    Py_XDECREF(parent_hex);
    Py_XDECREF(dict);
    Py_XDECREF(dropped);
    Py_XDECREF(ts);
    Py_XDECREF(start_ts);
    Py_XDECREF(tail);
    Py_XDECREF(data);
    Py_XDECREF(role);
    Py_XDECREF(code);
    Py_XDECREF(description);
    Py_XDECREF(entry);
    Py_XDECREF(parent_entry);
    floats_free(&floats);
    return result;
}

static PyObject *
span_encode(SpanEncoder *self, PyObject *span, int end)
{
    if (self->fallback_end == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "SpanEncoder.__init__ has not run");
        return NULL;
    }
    /* (an entry kept aside: the Python encoder's ends find it) */
    PyObject *result = end && PyDict_GET_SIZE(self->aside) != 0 ? NULL : span_fast(self, span, end);
    if (result != NULL)
        return result;
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return NULL; /* KeyboardInterrupt and the like go on, as in Python code */
        PyErr_Clear();
    }
    return PyObject_CallOneArg(end ? self->fallback_end : self->fallback_start, span);
}

static PyObject *
SpanEncoder_start(SpanEncoder *self, PyObject *span)
{
    return span_encode(self, span, 0);
}

static PyObject *
SpanEncoder_end(SpanEncoder *self, PyObject *span)
{
    return span_encode(self, span, 1);
}

static int
SpanEncoder_init(SpanEncoder *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"tails", "dumps", "reserved", "span_types", "context_type", "empty_state",
                             "bounded", "bounded_list", "kinds", "internal", "status_codes", "roles",
                             "fallback_start", "fallback_end", "names", "aside", "max_names", "status_type", NULL};
    PyObject *tails, *dumps, *reserved, *span_types, *context_type, *empty_state, *bounded, *bounded_list,
        *kinds, *internal, *unset, *ok, *error, *start_type, *end_type, *fallback_start, *fallback_end, *names,
        *aside, *status_type;
    Py_ssize_t max_names;
    if (self->fallback_end != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "SpanEncoder is set up once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO!O!O!OO!O!OO(OOO)(O!O!)OOO!O!nO!", kwlist, &tails, &dumps,
                                     &PyFrozenSet_Type, &reserved, &PyTuple_Type, &span_types, &PyType_Type,
                                     &context_type, &empty_state, &PyType_Type, &bounded, &PyType_Type,
                                     &bounded_list, &kinds, &internal, &unset, &ok, &error, &PyType_Type,
                                     &start_type, &PyType_Type, &end_type, &fallback_start, &fallback_end,
                                     &PyDict_Type, &names, &PyDict_Type, &aside, &max_names, &PyType_Type,
                                     &status_type))
        return -1;
    if (!PyType_IsSubtype((PyTypeObject *)context_type, &PyTuple_Type) ||
        !PyType_IsSubtype((PyTypeObject *)start_type, &PyTuple_Type) ||
        !PyType_IsSubtype((PyTypeObject *)end_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "context_type and the roles must be tuple types");
        return -1;
    }
    if (filter_fill(&self->filter, reserved) < 0)
        return -1;
    if (members_fill(&self->kinds, kinds, "kinds") < 0)
        return -1;
    Py_XSETREF(self->tails, Py_NewRef(tails));
    Py_XSETREF(self->dumps, Py_NewRef(dumps));
    Py_XSETREF(self->reserved, Py_NewRef(reserved));
    Py_XSETREF(self->span_types, Py_NewRef(span_types));
    Py_XSETREF(self->context_type, Py_NewRef(context_type));
    Py_XSETREF(self->empty_state, Py_NewRef(empty_state));
    Py_XSETREF(self->bounded, Py_NewRef(bounded));
    Py_XSETREF(self->bounded_list, Py_NewRef(bounded_list));
    Py_XSETREF(self->internal, Py_NewRef(internal));
    Py_XSETREF(self->unset, Py_NewRef(unset));
    Py_XSETREF(self->ok, Py_NewRef(ok));
    Py_XSETREF(self->error, Py_NewRef(error));
    Py_XSETREF(self->status_type, Py_NewRef(status_type));
    Py_XSETREF(self->start_type, Py_NewRef(start_type));
    Py_XSETREF(self->end_type, Py_NewRef(end_type));
    Py_XSETREF(self->fallback_start, Py_NewRef(fallback_start));
    Py_XSETREF(self->fallback_end, Py_NewRef(fallback_end));
    Py_XSETREF(self->names, Py_NewRef(names));
    Py_XSETREF(self->aside, Py_NewRef(aside));
    self->max_names = max_names;
    return 0;
}

#define SPAN_ENCODER_FIELDS(X)                                                                               \
    X(tails) X(dumps) X(reserved) X(span_types) X(context_type) X(empty_state) X(bounded) X(bounded_list)  \
    X(internal) X(unset) X(ok) X(error) X(status_type) X(start_type) X(end_type) X(fallback_start)        \
    X(fallback_end) X(trace_key) X(trace_hex) X(names) X(aside)

static int
SpanEncoder_traverse(SpanEncoder *self, visitproc visit, void *arg)
{
#define VISIT_FIELD(name) Py_VISIT(self->name);
    SPAN_ENCODER_FIELDS(VISIT_FIELD)
#undef VISIT_FIELD
    LAST_TAIL_VISIT(self->last);
    if (members_traverse(&self->kinds, visit, arg) < 0)
        return -1;
    return 0;
}

static int
SpanEncoder_clear(SpanEncoder *self)
{
#define CLEAR_FIELD(name) Py_CLEAR(self->name);
    SPAN_ENCODER_FIELDS(CLEAR_FIELD)
#undef CLEAR_FIELD
    LAST_TAIL_CLEAR(self->last);
    members_clear(&self->kinds);
    return 0;
}

static void
SpanEncoder_dealloc(SpanEncoder *self)
{
    PyObject_GC_UnTrack(self);
    SpanEncoder_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef SpanEncoder_methods[] = {
    {"start", (PyCFunction)SpanEncoder_start, METH_O, "start(span) -> LineItem | None: the span's start line"},
    {"end", (PyCFunction)SpanEncoder_end, METH_O, "end(span) -> LineItem | None: the span's end line"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SpanEncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "logxpy_otel._speedups.SpanEncoder",
    .tp_doc = "The common case of _span_format.SpanEncoder in C; anything else goes to the Python one.",
    .tp_basicsize = sizeof(SpanEncoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)SpanEncoder_init,
    .tp_dealloc = (destructor)SpanEncoder_dealloc,
    .tp_traverse = (traverseproc)SpanEncoder_traverse,
    .tp_clear = (inquiry)SpanEncoder_clear,
    .tp_methods = SpanEncoder_methods,
};

static PyObject *s_start_body;

/* ---- the open traces' trees as C data (_trees.TreeNumberer's C path) ---------------- */

#include "_forest.h"

/* The append_locked sequence on ``len`` bytes at ``data``, with no Python API (the caller
 * may have let the GIL go): flock(LOCK_EX | LOCK_NB); when the file is ``expected`` bytes
 * long and still has a name, write(2) all of it; flock(LOCK_UN). 0: all written, the lock
 * let go; 1: nothing written, the lock not held; 2: a write failed after ``*written``
 * bytes, and the lock is still held (see speedups_append_locked). */
static int
append_under_flock(int fd, const char *data, size_t len, long long expected, Py_ssize_t *written)
{
    struct stat st;
    *written = 0;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        return 1;
    if (fstat(fd, &st) != 0 || st.st_size != (off_t)expected || st.st_nlink == 0) {
        (void)flock(fd, LOCK_UN);
        return 1;
    }
    while ((size_t)*written < len) {
        ssize_t n = write(fd, data + *written, len - (size_t)*written);
        if (n <= 0)
            return 2; /* the caller writes the rest under the lock (os.write handles EINTR) */
        *written += n;
    }
    (void)flock(fd, LOCK_UN);
    return 0;
}

/* Forest(token, task_head, max_open, idle_timeout_s, max_depth, start_type, end_type,
 * dumps): a Forest (_forest.h) and what its callbacks need. One call at a time: a call
 * made while another runs (a signal handler that logs in sync mode, reaching the writer
 * from inside a callback) raises RuntimeError instead of changing state under it. */
typedef struct {
    PyObject_HEAD
    Forest *forest;
    FOut out;                      /* the lines of one call (kept between calls, up to 1 MiB) */
    PyObject *start_type, *end_type, *dumps;
    PyObject *items;               /* during number: the batch (a tuple) */
    PyThreadState *saved;          /* during number_append, while the GIL is let go: this thread's state */
    int busy;
    int broken; /* a numbering failed part way (see forest_number): until restart */
} ForestObject;

static PyTypeObject ForestType;

static int forest_start_body_gil(ForestObject *self, size_t index, FOut *out);
static int forest_float_text_gil(ForestObject *self, double value, FOut *out);

/* FStartBody and FFloatText. Where number_append has let the GIL go (``saved``), each
 * takes it back for its Python calls with the very thread state it was let go with, and
 * lets it go again. (Not PyGILState_Ensure: in a subinterpreter it finds the thread's
 * main-interpreter state and waits for a GIL this thread holds, for good.) */
static int
forest_start_body(void *ctx, size_t index, FOut *out)
{
    ForestObject *self = ctx;
    if (self->saved == NULL)
        return forest_start_body_gil(self, index, out);
    PyEval_RestoreThread(self->saved);
    int rc = forest_start_body_gil(self, index, out);
    self->saved = PyEval_SaveThread();
    return rc;
}

static int
forest_float_text(void *ctx, double value, FOut *out)
{
    ForestObject *self = ctx;
    if (self->saved == NULL)
        return forest_float_text_gil(self, value, out);
    PyEval_RestoreThread(self->saved);
    int rc = forest_float_text_gil(self, value, out);
    self->saved = PyEval_SaveThread();
    return rc;
}

static int
forest_start_body_gil(ForestObject *self, size_t index, FOut *out)
{
    PyObject *role = PyTuple_GET_ITEM(PyTuple_GET_ITEM(self->items, (Py_ssize_t)index), 6);
    PyObject *body = PyObject_CallMethodNoArgs(role, s_start_body);
    if (body == NULL)
        return -1;
    int rc = -1;
    if (!PyBytes_Check(body))
        PyErr_SetString(PyExc_TypeError, "number: start_body must return bytes");
    else if (fout_put(out, PyBytes_AS_STRING(body), (size_t)PyBytes_GET_SIZE(body)) < 0)
        PyErr_NoMemory();
    else
        rc = 0;
    Py_DECREF(body);
    return rc;
}

/* orjson's text of ``value`` where float_chars declines it. */
static int
forest_float_text_gil(ForestObject *self, double value, FOut *out)
{
    PyObject *number = PyFloat_FromDouble(value);
    PyObject *text = number == NULL ? NULL : PyObject_CallOneArg(self->dumps, number);
    Py_XDECREF(number);
    if (text == NULL)
        return -1;
    int rc = -1;
    if (!PyBytes_Check(text))
        PyErr_SetString(PyExc_TypeError, "number: dumps must return bytes");
    else if (fout_put(out, PyBytes_AS_STRING(text), (size_t)PyBytes_GET_SIZE(text)) < 0)
        PyErr_NoMemory();
    else
        rc = 0;
    Py_DECREF(text);
    return rc;
}

static int
forest_enter(ForestObject *self)
{
    if (self->forest == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Forest: not set up");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Forest: called again while a call runs");
        return -1;
    }
    self->busy = 1;
    self->forest->nomem = 0;
    self->forest->ctx = self;
    self->forest->float_text = forest_float_text;
    self->forest->start_body = forest_start_body;
    self->out.len = 0;
    return 0;
}

/* End a call: on success (rc >= 0) its lines as one bytes appended to ``lines`` (none
 * for no lines); the buffer let go past 1 MiB. -1 with an error set on failure. */
static int
forest_leave(ForestObject *self, long long rc, PyObject *lines)
{
    self->busy = 0;
    if (rc < 0) {
        if (!PyErr_Occurred())
            PyErr_NoMemory(); /* (the forest's own failures are all for want of memory) */
    }
    else if (self->out.len > 0) {
        PyObject *data = PyBytes_FromStringAndSize(self->out.data, (Py_ssize_t)self->out.len);
        if (data == NULL || PyList_Append(lines, data) < 0)
            rc = -1;
        Py_XDECREF(data);
    }
    self->out.len = 0;
    if (self->out.cap > (1 << 20)) {
        F_FREE(self->out.data);
        self->out = (FOut){0};
    }
    return rc < 0 ? -1 : 0;
}

/* ``value`` as an ASCII str's characters (None: NULL): 1, or 0 for anything else. Runs no
 * Python code and sets no error: read with the GIL let go too (a str's characters never
 * change). */
static int
ascii_id(PyObject *value, const char **p, size_t *n)
{
    if (value == Py_None) {
        *p = NULL;
        *n = 0;
        return 1;
    }
    if (!PyUnicode_Check(value) || !PyUnicode_IS_ASCII(value))
        return 0;
    *p = (const char *)PyUnicode_DATA(value);
    *n = (size_t)PyUnicode_GET_LENGTH(value);
    return 1;
}

/* ascii_id, or -1 with a TypeError naming ``what``. */
static int
forest_id(PyObject *value, const char **p, size_t *n, const char *what)
{
    if (ascii_id(value, p, n))
        return 0;
    PyErr_Format(PyExc_TypeError, "number: %s must be an ASCII str or None", what);
    return -1;
}

/* A role's kind (FOREST_START, FOREST_END) where ``role`` is an exact SpanStart or SpanEnd
 * of its size, with its parent (an item of an immutable tuple, held by it) read into
 * ``fi``: an ASCII str or None. 0 for anything else. Runs no Python code: read with the
 * GIL let go too. */
static int
forest_role(const ForestObject *self, PyObject *role, FItem *fi)
{
    int kind = Py_IS_TYPE(role, (PyTypeObject *)self->start_type) ? FOREST_START
               : Py_IS_TYPE(role, (PyTypeObject *)self->end_type) ? FOREST_END
                                                                   : 0;
    if (kind == 0 || PyTuple_GET_SIZE(role) != (kind == FOREST_START ? 1 : 3))
        return 0;
    if (!ascii_id(PyTuple_GET_ITEM(role, 0), &fi->parent, &fi->parent_len))
        return 0;
    fi->role = kind;
    return kind;
}

/* A TypeError refusing ``item``, with its repr, or its type where a part's repr fails (a
 * role made past its ``__new__``), as _trees._described gives it. */
static void
refuse_item(PyObject *item)
{
    PyObject *text = PyObject_Repr(item);
    if (text == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return; /* (an interrupt goes on) */
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "number: each item must be a LineItem tuple, not a %.80s",
                     Py_TYPE(item)->tp_name);
        return;
    }
    PyErr_Format(PyExc_TypeError, "number: each item must be a LineItem tuple, not %.80U", text);
    Py_DECREF(text);
}

/* Read item ``item`` into ``fi``. As _trees._check_items: anything that is not a line item
 * is refused, before any item of the batch is numbered. */
static int
forest_item(ForestObject *self, PyObject *item, FItem *fi)
{
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 7 || !PyBytes_Check(PyTuple_GET_ITEM(item, 3)) ||
        !PyBytes_Check(PyTuple_GET_ITEM(item, 4))) {
        refuse_item(item);
        return -1;
    }
    PyObject *tid = PyTuple_GET_ITEM(item, 0), *ts = PyTuple_GET_ITEM(item, 1), *role = PyTuple_GET_ITEM(item, 6);
    PyObject *body = PyTuple_GET_ITEM(item, 3), *tail = PyTuple_GET_ITEM(item, 4);
    *fi = (FItem){
        .body = PyBytes_AS_STRING(body),
        .body_len = (size_t)PyBytes_GET_SIZE(body),
        .tail = PyBytes_AS_STRING(tail),
        .tail_len = (size_t)PyBytes_GET_SIZE(tail),
    };
    if (role != Py_None && (tid == Py_None || !(Py_IS_TYPE(role, (PyTypeObject *)self->start_type) ||
                                                Py_IS_TYPE(role, (PyTypeObject *)self->end_type)))) {
        PyErr_Format(PyExc_TypeError, "number: each item must be a LineItem tuple, not one with a %.80s role%s",
                     Py_TYPE(role)->tp_name, tid == Py_None ? " and no trace" : "");
        return -1;
    }
    /* (the ids before the role's parent, as _trees._check_items looks: the same error) */
    if (forest_id(tid, &fi->tid, &fi->tid_len, "a trace id") < 0 ||
        forest_id(PyTuple_GET_ITEM(item, 5), &fi->span, &fi->span_len, "a span id") < 0)
        return -1;
    if (role != Py_None && !forest_role(self, role, fi)) {
        PyErr_Format(PyExc_TypeError, "number: a span's role must have its fields and a parent that is an "
                                      "ASCII str or None, not a %.80s of %zd", Py_TYPE(role)->tp_name,
                     PyTuple_GET_SIZE(role));
        return -1;
    }
    if (tid == Py_None)
        return 0; /* (a task line: its ts and failed flag are not read) */
    if (!PyFloat_Check(ts) && !PyLong_Check(ts)) {
        PyErr_Format(PyExc_TypeError, "number: a ts must be a float, not %.80R", ts);
        return -1;
    }
    fi->ts = PyFloat_AsDouble(ts);
    if (fi->ts == -1.0 && PyErr_Occurred())
        return -1;
    PyObject *failed = PyTuple_GET_ITEM(item, 2);
    fi->failed = failed == Py_False ? 0 : failed == Py_True ? 1 : PyObject_IsTrue(failed);
    return fi->failed < 0 ? -1 : 0;
}

/* ``item`` read into ``fi`` without the GIL, where that is safe: 1 for a plain line (an
 * exact 7-tuple of immutable objects: bytes, ASCII str or None ids, an exact float
 * ts and an exact bool failed in a trace, and no role or an exact SpanStart or SpanEnd,
 * themselves tuples), 0 for anything else (read it with the GIL). The items are held by
 * the caller's tuple, and nothing here runs Python code or changes a reference count. */
static int
forest_item_plain(const ForestObject *self, PyObject *item, FItem *fi)
{
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 7)
        return 0;
    PyObject *tid = PyTuple_GET_ITEM(item, 0), *ts = PyTuple_GET_ITEM(item, 1), *failed = PyTuple_GET_ITEM(item, 2);
    PyObject *body = PyTuple_GET_ITEM(item, 3), *tail = PyTuple_GET_ITEM(item, 4), *span = PyTuple_GET_ITEM(item, 5);
    PyObject *role = PyTuple_GET_ITEM(item, 6);
    if (!PyBytes_CheckExact(body) || !PyBytes_CheckExact(tail))
        return 0;
    if (tid != Py_None && (!PyFloat_CheckExact(ts) || (failed != Py_True && failed != Py_False)))
        return 0;
    *fi = (FItem){
        .body = PyBytes_AS_STRING(body),
        .body_len = (size_t)PyBytes_GET_SIZE(body),
        .tail = PyBytes_AS_STRING(tail),
        .tail_len = (size_t)PyBytes_GET_SIZE(tail),
    };
    if (!ascii_id(tid, &fi->tid, &fi->tid_len) || !ascii_id(span, &fi->span, &fi->span_len))
        return 0;
    if (role != Py_None && (tid == Py_None || !forest_role(self, role, fi)))
        return 0;
    if (tid != Py_None) {
        fi->ts = PyFloat_AS_DOUBLE(ts);
        fi->failed = failed == Py_True;
    }
    return 1;
}

/* Items ``from``.. of ``seq`` read with the GIL (forest_item): 0, or -1 with an error. */
static int
forest_items(ForestObject *self, PyObject *seq, Py_ssize_t from, FItem *items)
{
    for (Py_ssize_t i = from; i < PyTuple_GET_SIZE(seq); i++)
        if (forest_item(self, PyTuple_GET_ITEM(seq, i), &items[i]) < 0)
            return -1;
    return 0;
}

/* number(items, out, now, remembered) -> span_lines: TreeNumberer.number's loop, with
 * the GIL held.
 * number_append(items, out, now, remembered, fd, expected) -> (span_lines, status,
 * written): the same numbering and then append_locked's sequence on the lines, both in
 * one release of the GIL (the writer thread's common case: it takes the GIL back once a
 * batch, not twice, and makes no bytes of the lines). ``status`` is append_locked's: 0
 * all ``written``, nothing in ``out``; 1 nothing written, the lock not held; 2 a write
 * failed after ``written`` bytes, the lock held. With 1 and 2 the lines are in ``out``,
 * as number puts them, for the Python path. A numbering error raises, as number's,
 * before the lock is taken. */
static PyObject *
forest_number_call(ForestObject *self, PyObject *const *args, Py_ssize_t nargs, int appending)
{
    if (nargs != (appending ? 6 : 4) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, appending ? "number_append(items, out: list, now, remembered, fd, expected)"
                                                   : "number(items, out: list, now, remembered) takes 4 arguments");
        return NULL;
    }
    if (self->forest == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Forest: not set up");
        return NULL;
    }
    double now = PyFloat_AsDouble(args[2]);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    long long remembered = PyLong_AsLongLong(args[3]);
    if (remembered == -1 && PyErr_Occurred())
        return NULL;
    long fd = 0;
    long long expected = 0;
    if (appending) {
        fd = PyLong_AsLong(args[4]);
        if (fd == -1 && PyErr_Occurred())
            return NULL;
        expected = PyLong_AsLongLong(args[5]);
        if (expected == -1 && PyErr_Occurred())
            return NULL;
        if (fd < 0 || fd > INT_MAX) {
            PyErr_SetString(PyExc_ValueError, "number_append: fd out of range");
            return NULL;
        }
    }
    /* A tuple of the items, not the caller's list: the FItems point into the items' str
     * and bytes, and Python code that runs while they are read (a ``failed`` flag's
     * __bool__, a callback) could empty that list and free them. */
    PyObject *seq = PySequence_Tuple(args[0]);
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    FItem *items = PyMem_Calloc((size_t)(n ? n : 1), sizeof(FItem));
    long long rc = -1;
    int status = 1;
    Py_ssize_t written = 0;
    if (items == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    /* The writer's batch is read in the release of the GIL that numbers and writes it (read
     * with the GIL, the items cost the application's threads a wait: docs/performance.md).
     * Its items and their roles are immutable tuples of immutable objects, held by ``seq``.
     * A batch that starts with anything else is read first, with the GIL, as number reads
     * it; one that meets anything else part way takes the GIL back for the rest. */
    Py_ssize_t plain = 0;
    PyObject *first = n > 0 ? PyTuple_GET_ITEM(seq, 0) : NULL;
    int read_later = appending && first != NULL && PyTuple_CheckExact(first) && PyTuple_GET_SIZE(first) == 7;
    if (!read_later && forest_items(self, seq, 0, items) < 0)
        goto out;
    if (forest_enter(self) < 0)
        goto out;
    self->items = seq;
    if (!appending) {
        rc = forest_number(self->forest, items, (size_t)n, now, remembered, &self->out);
    }
    else {
        /* (Nothing here touches a Python object but the plain reads of items ``seq`` holds
         * and the callbacks, which take the GIL; another call into this forest meanwhile
         * finds it busy.) */
        self->saved = PyEval_SaveThread();
        if (read_later) {
            while (plain < n && forest_item_plain(self, PyTuple_GET_ITEM(seq, plain), &items[plain]))
                plain++;
            if (plain < n) {
                PyEval_RestoreThread(self->saved);
                self->saved = NULL;
                if (forest_items(self, seq, plain, items) < 0) {
                    self->items = NULL;
                    (void)forest_leave(self, -1, args[1]); /* (refused: nothing numbered) */
                    goto out;
                }
                self->saved = PyEval_SaveThread();
            }
        }
        rc = forest_number(self->forest, items, (size_t)n, now, remembered, &self->out);
        if (rc >= 0)
            status = append_under_flock((int)fd, self->out.data, self->out.len, expected, &written);
        PyThreadState *saved = self->saved;
        self->saved = NULL;
        PyEval_RestoreThread(saved);
        if (rc >= 0 && status == 0)
            self->out.len = 0; /* in the file: nothing for ``out`` */
    }
    self->items = NULL;
    if (forest_leave(self, rc, args[1]) < 0) {
        if (rc >= 0 && status == 2) /* (the lines are in part in the file, and could not be handed back) */
            (void)flock((int)fd, LOCK_UN);
        rc = -1;
    }
    if (rc < 0) /* (numbered, and neither written nor handed back, is as broken as not numbered) */
        self->broken = 1;
out:
    PyMem_Free(items);
    Py_DECREF(seq);
    if (rc < 0)
        return NULL;
    return appending ? Py_BuildValue("(Lin)", rc, status, written) : PyLong_FromLongLong(rc);
}

static PyObject *
Forest_number(ForestObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return forest_number_call(self, args, nargs, 0);
}

static PyObject *
Forest_number_append(ForestObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return forest_number_call(self, args, nargs, 1);
}

/* close_idle(out, now): TreeNumberer.close_idle. */
static PyObject *
Forest_close_idle(ForestObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "close_idle(out: list, now) takes 2 arguments");
        return NULL;
    }
    double now = PyFloat_AsDouble(args[1]);
    if ((now == -1.0 && PyErr_Occurred()) || forest_enter(self) < 0)
        return NULL;
    int rc = forest_close_idle(self->forest, now, &self->out);
    return forest_leave(self, rc, args[0]) < 0 ? NULL : Py_NewRef(Py_None);
}

/* close_all(out): TreeNumberer.close_all; restart(out): close_all, then a new token. */
static PyObject *
forest_closing(ForestObject *self, PyObject *out, int restart)
{
    if (!PyList_Check(out)) {
        PyErr_SetString(PyExc_TypeError, "out must be a list");
        return NULL;
    }
    if (forest_enter(self) < 0)
        return NULL;
    int rc = forest_close_all(self->forest, &self->out);
    if (rc == 0 && restart) {
        rc = forest_new_trace_token(self->forest);
        if (rc == 0)
            self->broken = 0;
    }
    return forest_leave(self, rc, out) < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
Forest_close_all(ForestObject *self, PyObject *out)
{
    return forest_closing(self, out, 0);
}

static PyObject *
Forest_restart(ForestObject *self, PyObject *out)
{
    return forest_closing(self, out, 1);
}

static PyObject *
forest_prefix(const FAction *a)
{
    return a == NULL ? Py_NewRef(Py_None) : PyBytes_FromStringAndSize(a->prefix, (Py_ssize_t)a->prefix_len);
}

/* state() -> (task_count, [(trace_id, head, next_lvl, last_ts, failed, last_seen,
 * open_spans, {span: (prefix, next, open, depth, parent's prefix, earlier's prefix)})]),
 * open traces least recently used first: what decides the later lines (for the tests). */
static PyObject *
Forest_state(ForestObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->forest == NULL || self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Forest: not set up, or a call runs");
        return NULL;
    }
    PyObject *traces = PyList_New(0);
    if (traces == NULL)
        return NULL;
    for (FTrace *t = self->forest->oldest; t != NULL; t = t->next) {
        PyObject *spans = PyDict_New();
        for (size_t i = 0; spans != NULL && t->spans != NULL && i < t->spans->n; i++) {
            FSpanEntry *e = &t->spans->entries[i];
            FAction *a = e->action;
            PyObject *key = PyUnicode_DecodeASCII(ENTRY_KEY(e), (Py_ssize_t)e->key_len, NULL);
            PyObject *value = Py_BuildValue("(NLOiNN)", forest_prefix(a), a->next, a->open ? Py_True : Py_False,
                                            a->depth, forest_prefix(a->parent), forest_prefix(a->earlier));
            if (key == NULL || value == NULL || PyDict_SetItem(spans, key, value) < 0)
                Py_CLEAR(spans);
            Py_XDECREF(key);
            Py_XDECREF(value);
        }
        PyObject *entry =
            spans == NULL ? NULL
                          : Py_BuildValue("(s#y#LdOdLN)", t->tid, (Py_ssize_t)t->tid_len, t->head,
                                          (Py_ssize_t)t->head_len, t->next_lvl, t->last_ts,
                                          t->failed ? Py_True : Py_False, t->last_seen, t->open_spans, spans);
        if (entry == NULL || PyList_Append(traces, entry) < 0) {
            Py_XDECREF(entry);
            Py_DECREF(traces);
            return NULL;
        }
        Py_DECREF(entry);
    }
    return Py_BuildValue("(KN)", self->forest->task_count, traces);
}

static PyObject *
Forest_get_open_traces(ForestObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(self->forest == NULL ? 0 : self->forest->count);
}

/* 16 random bytes (os.urandom) for a forest's hash key. */
static int
forest_random_key(unsigned char key[16])
{
    PyObject *os = PyImport_ImportModule("os");
    PyObject *bytes = os == NULL ? NULL : PyObject_CallMethod(os, "urandom", "i", 16);
    Py_XDECREF(os);
    if (bytes == NULL)
        return -1;
    int rc = -1;
    if (PyBytes_Check(bytes) && PyBytes_GET_SIZE(bytes) == 16) {
        memcpy(key, PyBytes_AS_STRING(bytes), 16);
        rc = 0;
    }
    else
        PyErr_SetString(PyExc_TypeError, "os.urandom(16) must return 16 bytes");
    Py_DECREF(bytes);
    return rc;
}

static int
Forest_init(ForestObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"token", "task_head", "max_open", "idle_timeout_s", "max_depth",
                             "start_type", "end_type", "dumps", NULL};
    Py_buffer token, task_head;
    Py_ssize_t max_open;
    double idle;
    int max_depth;
    PyObject *start_type, *end_type, *dumps;
    unsigned char key[16];
    if (self->forest != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Forest: already set up");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*ndiO!O!O", kwlist, &token, &task_head, &max_open, &idle,
                                     &max_depth, &PyType_Type, &start_type, &PyType_Type, &end_type, &dumps))
        return -1;
    int rc = -1;
    if (max_open < 1 || max_depth < 1)
        PyErr_SetString(PyExc_ValueError, "Forest: max_open and max_depth must be >= 1");
    else if (!PyType_IsSubtype((PyTypeObject *)start_type, &PyTuple_Type) ||
             !PyType_IsSubtype((PyTypeObject *)end_type, &PyTuple_Type))
        PyErr_SetString(PyExc_TypeError, "Forest: the roles must be tuple types");
    else if (forest_random_key(key) < 0)
        ; /* (os.urandom's error) */
    else if ((self->forest = forest_new(token.buf, (size_t)token.len, task_head.buf, (size_t)task_head.len,
                                        (size_t)max_open, idle, max_depth, key)) == NULL)
        PyErr_NoMemory();
    else {
        self->start_type = Py_NewRef(start_type);
        self->end_type = Py_NewRef(end_type);
        self->dumps = Py_NewRef(dumps);
        rc = 0;
    }
    PyBuffer_Release(&token);
    PyBuffer_Release(&task_head);
    return rc;
}

static void
Forest_dealloc(ForestObject *self)
{
    if (self->busy) {
        /* Only in a forked child: another thread of the parent was inside a call, and its
         * forest may be half changed. It is left as it is, never walked. */
        self->forest = NULL;
        self->out = (FOut){0};
    }
    forest_free(self->forest);
    F_FREE(self->out.data);
    Py_CLEAR(self->start_type);
    Py_CLEAR(self->end_type);
    Py_CLEAR(self->dumps);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Forest_methods[] = {
    {"number", (PyCFunction)(void (*)(void))Forest_number, METH_FASTCALL,
     "number(items, out, now, remembered) -> span_lines: number a batch, its lines as one bytes into out"},
    {"number_append", (PyCFunction)(void (*)(void))Forest_number_append, METH_FASTCALL,
     "number_append(items, out, now, remembered, fd, expected) -> (span_lines, status, written):\n"
     "number, then append the lines under the file's lock, in one release of the GIL"},
    {"close_idle", (PyCFunction)(void (*)(void))Forest_close_idle, METH_FASTCALL,
     "close_idle(out, now): close the traces idle for idle_timeout_s"},
    {"close_all", (PyCFunction)Forest_close_all, METH_O, "close_all(out): close every open trace"},
    {"restart", (PyCFunction)Forest_restart, METH_O, "restart(out): close every open trace; a new token"},
    {"state", (PyCFunction)Forest_state, METH_NOARGS, "state(): what decides the later lines (for the tests)"},
    {NULL, NULL, 0, NULL},
};

static PyObject *
Forest_get_idle(ForestObject *self, void *closure)
{
    (void)closure;
    return PyFloat_FromDouble(self->forest == NULL ? 0.0 : self->forest->idle);
}

static int
Forest_set_idle(ForestObject *self, PyObject *value, void *closure)
{
    (void)closure;
    double idle = value == NULL ? -1.0 : PyFloat_AsDouble(value);
    if (idle == -1.0 && (value == NULL || PyErr_Occurred())) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "idle_timeout_s cannot be deleted");
        return -1;
    }
    if (self->forest == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Forest: not set up");
        return -1;
    }
    self->forest->idle = idle;
    return 0;
}

static PyObject *
Forest_get_broken(ForestObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->broken);
}

static PyGetSetDef Forest_getset[] = {
    {"open_traces", (getter)Forest_get_open_traces, NULL, "how many traces are open", NULL},
    {"broken", (getter)Forest_get_broken, NULL, "a numbering failed part way, and no restart came since", NULL},
    {"idle_timeout_s", (getter)Forest_get_idle, (setter)Forest_set_idle, "how long an idle trace stays open", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ForestType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "logxpy_otel._speedups.Forest",
    .tp_doc = "Forest(token, task_head, max_open, idle_timeout_s, max_depth, start_type, end_type, dumps):\n"
              "the open traces' trees as C data (_trees.TreeNumberer's C path).",
    .tp_basicsize = sizeof(ForestObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Forest_init,
    .tp_dealloc = (destructor)Forest_dealloc,
    .tp_methods = Forest_methods,
    .tp_getset = Forest_getset,
};

/* append_locked(fd, data, expected) -> (status, written): AsyncFileDestination's append
 * in its common case (see _append_lock.AppendLock.append) in one release of the GIL, where
 * the same system calls from Python release and take it four times, and each taking waits
 * while another thread runs Python: flock(LOCK_EX | LOCK_NB); the file's size and links by
 * fstat; when it is ``expected`` bytes and still has a name, all of ``data`` by write(2);
 * flock(LOCK_UN).
 * status 0: all written, the lock let go; 1: nothing written, the lock not held (the lock
 * is another's, flock failed, the file is not ``expected`` bytes long, or it was deleted:
 * the Python path looks at why); 2: a write failed
 * after ``written`` bytes (EINTR too), and the lock is still held. */
static PyObject *
speedups_append_locked(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "append_locked(fd, data, expected) takes 3 arguments");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "append_locked: fd out of range");
        return NULL;
    }
    long long expected = PyLong_AsLongLong(args[2]);
    if (expected == -1 && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int status;
    Py_ssize_t written;
    Py_BEGIN_ALLOW_THREADS
    status = append_under_flock((int)fd, (const char *)view.buf, (size_t)view.len, expected, &written);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return Py_BuildValue("(in)", status, written);
}

/* deleted(fd) -> bool: whether the file open at ``fd`` has no name left (False when fstat
 * fails): _destinations._deleted's check before every batch, without a stat_result. */
static PyObject *
speedups_deleted(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "deleted: fd out of range");
        return NULL;
    }
    struct stat st;
    return PyBool_FromLong(fstat((int)fd, &st) == 0 && st.st_nlink == 0);
}

/* float_text(d) -> bytes | None: put_float_text's text of ``d`` (None where orjson's is
 * used). For the tests, which hold it to orjson's. */
static PyObject *
speedups_float_text(PyObject *Py_UNUSED(module), PyObject *arg)
{
    double d = PyFloat_AsDouble(arg);
    if (d == -1.0 && PyErr_Occurred())
        return NULL;
    Buf b;
    buf_init(&b);
    PyObject *text = put_float_text(&b, d) == 0 ? PyBytes_FromStringAndSize(b.data, b.len) : Py_NewRef(Py_None);
    buf_free(&b);
    return text;
}

/* forest_bytes() -> int | None: the bytes the forests hold now (None where not counted). */
static PyObject *
speedups_forest_bytes(PyObject *module, PyObject *unused)
{
#if F_COUNTED
    return PyLong_FromSize_t(__atomic_load_n(&f_live_bytes, __ATOMIC_RELAXED));
#else
    Py_RETURN_NONE;
#endif
}

static PyMethodDef speedups_functions[] = {
    {"append_locked", (PyCFunction)(void (*)(void))speedups_append_locked, METH_FASTCALL,
     "append_locked(fd, data, expected) -> (status, written): a locked append in one GIL release"},
    {"deleted", (PyCFunction)speedups_deleted, METH_O,
     "deleted(fd) -> bool: whether the file open at fd has no name left"},
    {"forest_bytes", (PyCFunction)speedups_forest_bytes, METH_NOARGS,
     "forest_bytes() -> int | None: the bytes the trees' C state holds now (None where not counted)"},
    {"float_text", (PyCFunction)speedups_float_text, METH_O,
     "float_text(d) -> bytes | None: the float's text where the C encoders write it without orjson"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "logxpy_otel._speedups",
    .m_doc = "Optional C speed-up of the line encoder (see _format.LineEncoder).",
    .m_size = -1,
    .m_methods = speedups_functions,
};

static int
intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (intern(&k_time, "time_unix_nano") || intern(&k_observed, "observed_time_unix_nano") ||
        intern(&k_sev_number, "severity_number") || intern(&k_sev_text, "severity_text") ||
        intern(&k_span_id, "span_id") || intern(&k_trace_flags, "trace_flags") ||
        intern(&k_event_name, "event_name") || intern(&k_trace_id, "trace_id") ||
        intern(&k_dropped_count, "dropped_attributes_count") || intern(&a_timestamp, "timestamp") ||
        intern(&a_observed, "observed_timestamp") || intern(&a_severity_number, "severity_number") ||
        intern(&a_severity_text, "severity_text") || intern(&a_body, "body") ||
        intern(&a_attributes, "attributes") || intern(&a_dict, "_dict") || intern(&a_dropped, "dropped") ||
        cjson_init() < 0 || intern(&s_info, "info") ||
        intern(&a_scope, "instrumentation_scope") ||
        intern(&a_log_record, "log_record") || intern(&a_resource, "resource") || intern(&a_name, "name") ||
        intern(&s_own_name, "logxpy_otel") || intern(&a_status_code, "_status_code") ||
        intern(&a_description, "_description") || intern(&a_dq, "_dq") ||
        intern(&a_parent_context, "parent_context") ||
        intern(&s_start_body, "start_body"))
        return NULL;
    for (int i = 0; i < N_SPAN_FIELDS; i++)
        if (intern(&span_field[i], span_field_text[i]))
            return NULL;
    if (PyType_Ready(&FastEncoderType) < 0 || PyType_Ready(&EmitterType) < 0 ||
        PyType_Ready(&SpanEncoderType) < 0 || PyType_Ready(&ForestType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL)
        return NULL;
    /* The names this module is coupled to (see LANE_FIELDS, TRACE_FIELDS, OWN_LOGGER in the
     * Python that uses them): declared here, checked there. */
    PyObject *lane_names = PyTuple_New(LANE_SIZE);
    if (lane_names == NULL) {
        Py_DECREF(module);
        return NULL;
    }
    for (int i = 0; i < LANE_SIZE; i++) {
        PyObject *field = PyUnicode_InternFromString(lane_fields[i]);
        if (field == NULL) {
            Py_DECREF(lane_names);
            Py_DECREF(module);
            return NULL;
        }
        PyTuple_SET_ITEM(lane_names, i, field);
    }
    int failed = PyModule_AddObjectRef(module, "FastEncoder", (PyObject *)&FastEncoderType) < 0 ||
                 PyModule_AddObjectRef(module, "Emitter", (PyObject *)&EmitterType) < 0 ||
                 PyModule_AddObjectRef(module, "SpanEncoder", (PyObject *)&SpanEncoderType) < 0 ||
                 PyModule_AddObjectRef(module, "Forest", (PyObject *)&ForestType) < 0 ||
                 PyModule_AddObjectRef(module, "LANE_FIELDS", lane_names) < 0 ||
                 PyModule_AddObjectRef(module, "OWN_LOGGER", s_own_name) < 0;
    Py_DECREF(lane_names);
    if (failed) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
