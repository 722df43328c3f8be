/* The common case of LogxpyLoggingHandler.handle in C (optional: the handler works
 * without it; logxpy_otel/logging_handler.py, ``_install_fast_path``).
 *
 * ``Fast.handle(record)`` does what the Python fast path there does, step for step, for
 * a ``logging.LogRecord`` with no exception, no event name, plain attribute values that
 * no limit bites on and a ``str`` message, on a handler with no filter and no formatter.
 * It writes the record's line itself, straight from the ``logging.LogRecord`` (the bytes
 * the processor's encoder writes for the API ``LogRecord`` the OTel handler would build:
 * ``direct`` below), and hands it to the writer's ``enqueue``. A record whose line has
 * anything the encoder treats specially (a key logxpy reserves, a NaN, a lone surrogate,
 * an int beyond 64 bits...) goes the encoder's way: the API ``LogRecord`` is built here
 * and handed to the processor's C ``on_emit`` (``_speedups.Emitter``), which encodes it.
 * Anything else goes, unchanged, to the Python code it was given: ``general(record)``
 * (filters, formatter, another record class, a global provider to bind to) or, inside
 * the recursion guard, ``write(record, scope, resource, body)`` (everything the fast path does
 * not take, and any error before the record was handed over, which the Python path then
 * reports as it does). The equivalence tests (tests/test_logging_handler.py) run it
 * against the OTel path.
 *
 * The recursion guard: while this code works on a record, the Python paths' ContextVar
 * (``flag``) is set, in the context it runs in; a record logged meanwhile (by Python
 * code this code runs: an argument's ``__str__``, the SDK's attribute cleaning, a
 * finalizer) is skipped, as the OTel handler skips it. Per context, not per thread: a
 * greenlet (gevent) that yields inside a record hands the thread to others, whose
 * records are not recursion (a flag of the thread skipped them all, session 34).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "_cjson.h"

#define MAX_LEVEL 60
/* Most attributes and floats in a line written here; more go the encoder's way. */
#define MAX_ATTRS 64
#define MAX_FLOATS 16
/* The severity number from which a record counts as failed (ERROR). */
#define ERROR_SEVERITY 17
/* Span types remembered (a type's way to its span context). */
#define MAX_SPAN_TYPES 64

static PyObject *k_timestamp, *k_observed, *k_trace_id, *k_span_id, *k_trace_flags, *k_severity_text,
    *k_severity_number, *k_body, *k_attributes, *k_event_name;
static PyObject *f_name, *f_msg, *f_args, *f_levelno, *f_levelname, *f_created, *f_exc_info, *h_filters,
    *h_formatter, *a_logger_config, *a_is_enabled, *a_resource, *a_global, *m_get_span_context, *m_get_message,
    *a_trace_id, *a_span_id, *a_trace_flags, *a_context;
static PyObject *k_code_file, *k_code_function, *k_code_line, *f_pathname, *f_func_name, *f_lineno;
static PyObject *empty_tuple;
static PyObject *a_get, *dict_get; /* "get"; dict's own get (a method descriptor) */

/* The LogRecord fields the fast path reads (field()), by their names above. */
#define MAX_INIT 64 /* LogRecord.__init__ sets 20 or 21 fields */
enum { P_NAME, P_MSG, P_ARGS, P_LEVELNO, P_LEVELNAME, P_CREATED, P_EXC_INFO, P_PATHNAME, P_FUNC_NAME, P_LINENO,
       N_PLACES };
static PyObject **const place_names[N_PLACES] = {&f_name,      &f_msg,     &f_args,     &f_levelno,
                                                 &f_levelname, &f_created, &f_exc_info, &f_pathname,
                                                 &f_func_name, &f_lineno};

/* A class found to let the instance dict answer (own_attr, below), held, and its version
 * tag then. */
typedef struct {
    PyObject *type;
    unsigned int tag;
} DictClass;

typedef struct {
    PyObject_HEAD
    PyObject *handler_dict; /* the handler's __dict__: "filters" and "formatter" per record */
    PyObject *general;      /* general(record): the Python handle */
    PyObject *write;        /* write(record, scope, resource, body or None): the Python path, in the guard */
    PyObject *scopes;       /* dict: logger name -> (scope, live, resource, own, disabled) */
    PyObject *scope_of;     /* scope_of(name) -> that entry, made and cached */
    PyObject *flag;         /* the Python paths' recursion guard (a ContextVar) */
    PyObject *discard;      /* discard(reason) */
    PyObject *recursive;    /* the reason for a record logged while one is handled */
    PyObject *own_record;   /* own_record(): one of our own diagnostics */
    PyObject *fault;        /* fault(exc): a record lost to an internal error */
    PyObject *format_failed; /* format_failed(record, exc): its message could not be built */
    PyObject *reserved;     /* frozenset of the LogRecord fields that are not attributes */
    PyObject *otel_event;   /* "otel.event.name" */
    PyObject *event;        /* "event.name" */
    PyObject *severities;   /* list: levelno 0..MAX_LEVEL -> SeverityNumber */
    PyObject *severity_of;  /* severity_of(levelno) for other levels */
    PyObject *texts;        /* dict: level name -> OTel severity text */
    PyObject *span_var;     /* the API's current-context ContextVar, or None */
    PyObject *get_current;  /* opentelemetry.context.get_current, when span_var is None */
    PyObject *span_key;     /* the context key of the current span */
    PyObject *span_kind;    /* span_kind(type) -> 0 not a Span, 1 call get_span_context, 2 read _context */
    PyObject *span_kinds;   /* dict: span type -> span_kind(type) */
    PyObject *invalid;      /* INVALID_SPAN_CONTEXT */
    PyObject *context_type; /* SpanContext: a tuple (trace_id, span_id, is_remote, trace_flags, ...) */
    PyObject *record_type;  /* opentelemetry._logs.LogRecord */
    PyObject *field_order;  /* its instance dict's keys, in the order its __init__ sets them */
    PyObject *logging_type; /* logging.LogRecord: the only class taken here */
    PyObject *get_message;  /* logging's own LogRecord.getMessage, or None (see stdlib_message) */
    PyObject *noted;        /* _diagnostics.NOTED_INTERRUPTS (see noted_enter, noted_leave) */
    PyObject *noted_aside;  /* _diagnostics.noted_aside */
    PyObject *settle_noted; /* _diagnostics.settle_noted */
    PyObject *get_message_code; /* its code when it was handed over, or NULL */
    unsigned int get_message_tag; /* logging_type's version tag when getMessage was it, or 0 */
    PyObject *emitter;      /* the processor's C on_emit, bound: emitter(rw) */
    PyObject *rw_type;      /* a tuple subclass (log_record, resource, instrumentation_scope) */
    PyObject *clock;        /* time.time_ns */
    PyObject *logs_api;     /* the API module holding the global provider, when unbound, else None */
    /* the line, written here (``direct``) */
    PyObject *enqueue;      /* the writer's enqueue(item), or None: every record the encoder's way */
    PyObject *dumps;        /* orjson.dumps: the floats' text, as the encoder writes them */
    PyObject *enc_reserved; /* the encoder's RESERVED_KEYS: a record with one goes its way */
    PyObject *tail_of;      /* tail_of(scope, resource) -> the line's end the encoder shares */
    PyObject *mts[MAX_LEVEL + 1];   /* levelno -> the encoder's mt ("info"...) */
    long numbers[MAX_LEVEL + 1];    /* levelno -> the severity number */
    LastTail last; /* the last tail used */
    DictClass logger_class, config_class; /* classes of SDK Loggers and their configs (own_attr) */
    Filter reserved_filter, enc_reserved_filter; /* before the sets reserved, enc_reserved */
    PyObject *span_id_key, *span_id_hex, *trace_id_key, *trace_id_hex; /* the last ids and their hex */
    PyObject *init_keys[MAX_INIT];   /* LogRecord.__init__'s keys, in its order (n_init_keys of them) */
    signed char init_field[MAX_INIT]; /* the field read here (P_...) that each of them is, or -1 */
    Py_ssize_t n_init_keys;          /* 0: none known (every record's dict read whole) */
    Py_ssize_t max_count; /* -1: no limit */
    int limited;          /* a value length limit is set */
    int code;             /* log_code_attributes */
    int tuple_context;    /* SpanContext keeps trace_id, span_id, trace_flags at 0, 1, 3 */
    int flat;             /* the encoder writes the trace id into the line (flat mode) */
    int item_size;        /* the writer's items: (tid, ts, failed, data, tail), or 7 with
                           * (..., span id hex or None, None) */
} Fast;

static PyTypeObject FastType;

/* Steps of handle: 0 went on, 1 hands the record to write() (no error set), 2 goes the
 * encoder's way (no error set). -1 is an error before the record was handed over (the
 * Python path meets it again and reports it); -2 an error after (reported, never written
 * again); -3 the record's message could not be built (the Exception set: reported as the
 * Python path reports it, and the message never built a second time). */
enum { GO = 0, WRITE = 1, ENCODER = 2, ERROR = -1, HANDED = -2, FORMAT = -3 };

/* ---- JSON, as the processor's encoder writes it ---------------------------------------
 *
 * Text is written byte for byte as _speedups.c's FastEncoder (and so orjson and the
 * Python encoder) writes it, by the helpers both extensions share (_cjson.h): strings
 * escaped as orjson escapes them, with U+0085, U+2028 and U+2029 escaped too; ints in
 * [-2**63, 2**64 - 1] as numbers.
 */

/* The text of the next float in ``*next`` (orjson's text of a tuple of floats: they end
 * at ',' or ']'), moving past it. 1 if there is none. */
static int
put_next_float(Buf *b, const char **next, const char *end)
{
    const char *start = *next, *p = start;
    while (p < end && *p != ',' && *p != ']')
        p++;
    if (p == start)
        return 1;
    *next = p < end ? p + 1 : p;
    return buf_put(b, start, p - start);
}

/* orjson.dumps of the floats: of the one float, or of a tuple of them ("[1e-7,2.5]"). */
static PyObject *
orjson_floats(PyObject *dumps, PyObject *const *floats, Py_ssize_t n)
{
    if (n == 1)
        return PyObject_CallOneArg(dumps, floats[0]);
    PyObject *tuple = PyTuple_New(n);
    if (tuple == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(floats[i]));
    PyObject *json = PyObject_CallOneArg(dumps, tuple);
    Py_DECREF(tuple);
    return json;
}

/* ---- the current span ------------------------------------------------------------------ */

/* How to get a span's context, by its type: 0 it is not a Span (the invalid context, as
 * the OTel handler's get_current_span() gives), 1 call its get_span_context(), 2 read its
 * ``_context`` (its get_span_context is one that returns just that). A type's 1 or 2 is
 * remembered with its version tag, which changes with the class (a method patched):
 * looked at again then. A 0 is not remembered (a class registered as a Span later). */
static int
span_kind_of(Fast *self, PyObject *span)
{
    PyTypeObject *type = Py_TYPE(span);
    PyObject *seen = PyDict_GetItemWithError(self->span_kinds, (PyObject *)type); /* borrowed */
    if (seen == NULL && PyErr_Occurred())
        return -1;
    if (seen != NULL && PyTuple_CheckExact(seen) && PyTuple_GET_SIZE(seen) == 2 && type->tp_version_tag != 0 &&
        PyLong_AsUnsignedLong(PyTuple_GET_ITEM(seen, 1)) == type->tp_version_tag)
        return (int)PyLong_AsLong(PyTuple_GET_ITEM(seen, 0));
    if (PyErr_Occurred())
        return -1;
    PyObject *kind = PyObject_CallOneArg(self->span_kind, (PyObject *)type);
    if (kind == NULL)
        return -1;
    long value = PyLong_CheckExact(kind) ? PyLong_AsLong(kind) : -1;
    Py_DECREF(kind); /* (small ints: immortal, or held by the function's constants) */
    if (value < 0 || value > 2) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "span_kind must return 0, 1 or 2");
        return -1;
    }
    unsigned int tag = type->tp_version_tag; /* (after the lookups span_kind made) */
    if (value != 0 && tag != 0) {
        if (PyDict_GET_SIZE(self->span_kinds) >= MAX_SPAN_TYPES)
            PyDict_Clear(self->span_kinds);
        PyObject *entry = Py_BuildValue("(lk)", value, (unsigned long)tag);
        if (entry == NULL || PyDict_SetItem(self->span_kinds, (PyObject *)type, entry) < 0) {
            Py_XDECREF(entry);
            return -1;
        }
        Py_DECREF(entry);
    }
    return (int)value;
}

/* The last Context type found to use dict's own get, and its version tag then. */
static PyTypeObject *plain_context_type;
static unsigned int plain_context_tag;

/* 1 when ``context``'s get is dict's own (an OTel Context: read as a dict), 0 when it is
 * not a dict or its class has a get of its own (called, as get_current_span() calls it),
 * -1 with an error. */
static int
plain_context(PyObject *context)
{
    PyTypeObject *type = Py_TYPE(context);
    if (type == &PyDict_Type)
        return 1;
    if (!PyDict_Check(context))
        return 0;
    if (type == plain_context_type && type->tp_version_tag != 0 && type->tp_version_tag == plain_context_tag)
        return 1;
    PyObject *get = PyObject_GetAttr((PyObject *)type, a_get);
    if (get == NULL)
        return -1;
    int plain = get == dict_get;
    Py_DECREF(get);
    if (plain && type->tp_version_tag != 0) {
        PyTypeObject *old = plain_context_type;
        plain_context_type = (PyTypeObject *)Py_NewRef((PyObject *)type);
        plain_context_tag = type->tp_version_tag;
        Py_XDECREF((PyObject *)old);
    }
    return plain;
}

/* ---- attributes of the SDK's long-lived objects ------------------------------------------
 *
 * PyObject_GetAttr looks a name up in the object's class first (a data descriptor comes
 * before the instance), through CPython's method cache: a direct-mapped table where two
 * hot lookups can collide, depending on where things sit in memory (so from process to
 * process). A colliding lookup walks the class's MRO each time: measured (callgrind) 726
 * instructions instead of 189, three times a record. Where the class has nothing of that
 * name that could come first (checked once per class version), the instance dict answers
 * as getattr would. Only for objects that live long (the SDK Logger, its config): reading
 * the dict makes one, which the object keeps. */

/* Whether the instance dict of ``type``'s objects answers each of ``names`` (when it has
 * the name) as getattr does: a generic getattr, and no data descriptor of that name in the
 * MRO (nothing of that name but None, a bool, an int, a float or a str: a value whose class
 * cannot become a descriptor's). 0 for any class this cannot tell. */
static int
dict_answers(PyTypeObject *type, PyObject *const *names, int n)
{
    if (type->tp_getattro != PyObject_GenericGetAttr || type->tp_dictoffset == 0 || type->tp_mro == NULL ||
        !PyTuple_Check(type->tp_mro))
        return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(type->tp_mro); i++) {
        PyObject *base = PyTuple_GET_ITEM(type->tp_mro, i);
        if (!PyType_Check(base))
            return 0;
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *dict = PyType_GetDict((PyTypeObject *)base); /* new reference */
#else
        PyObject *dict = Py_XNewRef(((PyTypeObject *)base)->tp_dict);
#endif
        if (dict == NULL || !PyDict_Check(dict)) {
            Py_XDECREF(dict);
            return 0;
        }
        for (int k = 0; k < n; k++) {
            PyObject *found = PyDict_GetItemWithError(dict, names[k]); /* borrowed */
            if (found == NULL && PyErr_Occurred()) {
                PyErr_Clear();
                Py_DECREF(dict);
                return 0;
            }
            if (found != NULL && !(found == Py_None || PyBool_Check(found) || PyLong_CheckExact(found) ||
                                   PyFloat_CheckExact(found) || PyUnicode_CheckExact(found))) {
                Py_DECREF(dict);
                return 0; /* anything but a plain value: its class could be (or become) a data
                           * descriptor's, which answers before the instance */
            }
        }
        Py_DECREF(dict);
    }
    return 1;
}

/* ``obj.name`` (new reference), as getattr gives it: from the instance dict where
 * ``known`` (or a look at the class, then remembered in it) says it answers. */
static PyObject *
own_attr(DictClass *known, PyObject *obj, PyObject *const *names, int n, int which)
{
    PyTypeObject *type = Py_TYPE(obj);
    unsigned int tag = type->tp_version_tag;
    if (tag == 0 || known->type != (PyObject *)type || known->tag != tag) {
        if (tag == 0 || !dict_answers(type, names, n))
            return PyObject_GetAttr(obj, names[which]);
        Py_XSETREF(known->type, Py_NewRef((PyObject *)type));
        known->tag = tag;
    }
    PyObject *dict = PyObject_GenericGetDict(obj, NULL);
    if (dict == NULL) {
        PyErr_Clear();
        return PyObject_GetAttr(obj, names[which]);
    }
    PyObject *value = PyDict_CheckExact(dict) ? PyDict_GetItemWithError(dict, names[which]) : NULL;
    Py_XINCREF(value);
    Py_DECREF(dict);
    if (value != NULL || PyErr_Occurred())
        return value;
    return PyObject_GetAttr(obj, names[which]); /* (not in the dict: the class's, or its error) */
}

/* The current span's context (new reference), INVALID_SPAN_CONTEXT when there is none.
 * Read for every record, as the OTel handler reads it: nothing of a Context is kept (an
 * OTel Context can be changed in place through dict's methods, a span's ``_context``
 * set again; and a Context kept would keep a request's objects alive). */
static PyObject *
current_span_context(Fast *self)
{
    PyObject *context = NULL, *span, *result;
    if (self->span_var != Py_None) {
        if (PyContextVar_Get(self->span_var, NULL, &context) < 0)
            return NULL;
        if (context == NULL)
            return Py_NewRef(self->invalid);
    }
    else {
        context = PyObject_CallNoArgs(self->get_current);
        if (context == NULL)
            return NULL;
    }
    int plain = plain_context(context);
    if (plain < 0) {
        Py_DECREF(context);
        return NULL;
    }
    if (plain) {
        span = PyDict_GetItemWithError(context, self->span_key); /* borrowed */
        Py_XINCREF(span);
    }
    else {
        span = PyObject_CallMethod(context, "get", "O", self->span_key);
    }
    Py_DECREF(context);
    if (span == NULL)
        return PyErr_Occurred() ? NULL : Py_NewRef(self->invalid);
    if (span == Py_None) {
        Py_DECREF(span);
        return Py_NewRef(self->invalid);
    }
    int kind = span_kind_of(self, span);
    if (kind <= 0) {
        Py_DECREF(span);
        return kind < 0 ? NULL : Py_NewRef(self->invalid);
    }
    result = NULL;
    if (kind == 2) {
        result = PyObject_GetAttr(span, a_context);
        if (result == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                Py_DECREF(span);
                return NULL;
            }
            PyErr_Clear(); /* not there after all: the method says */
        }
        else if ((PyObject *)Py_TYPE(result) != self->context_type) {
            Py_CLEAR(result); /* something else: the method says */
        }
    }
    if (result == NULL)
        result = PyObject_CallMethodNoArgs(span, m_get_span_context);
    Py_DECREF(span);
    return result;
}

/* ---- the record's fields ----------------------------------------------------------------- */

/* A record's instance dict as the fast path reads it. LogRecord.__init__ sets its fields
 * in one order, and logging adds a record's own attributes (``extra``) after them: when
 * the dict starts with exactly those keys in that order (one walk over them, each key
 * compared by identity), the fields read here are taken on the way, and the attributes
 * are the keys after them. Otherwise (fields deleted, moved or set again, a dict rebuilt)
 * each field is looked up and the whole dict is looked at. Either way each field is held
 * (a strong reference) until fields_release: Python code that runs later in the call (a
 * GC callback, a key's __eq__) may change the record's dict, never what was read. */
typedef struct {
    PyObject *dict;            /* the record's instance dict (strong), or NULL: nothing read */
    Py_ssize_t extras;         /* the dict position after __init__'s fields, or 0: read it whole */
    PyObject *value[N_PLACES]; /* each field (strong), or NULL: the record has none */
} Fields;

static void
fields_release(Fields *f)
{
    for (int i = 0; i < N_PLACES; i++)
        Py_CLEAR(f->value[i]);
    Py_CLEAR(f->dict);
}

/* Reads ``dict`` (an exact dict) into ``f``: 0, or -1 with an error (``f`` released). */
static int
fields_read(const Fast *self, PyObject *dict, Fields *f)
{
    f->dict = Py_NewRef(dict);
    f->extras = 0;
    for (int i = 0; i < N_PLACES; i++)
        f->value[i] = NULL;
    Py_ssize_t n = self->n_init_keys, pos = 0;
    int standard = n > 0 && PyDict_GET_SIZE(dict) >= n;
    PyObject *key, *value;
    for (Py_ssize_t i = 0; standard && i < n; i++) {
        if (!PyDict_Next(dict, &pos, &key, &value) || key != self->init_keys[i])
            standard = 0;
        else if (self->init_field[i] >= 0)
            f->value[self->init_field[i]] = value; /* (held below: no Python code runs in the walk) */
    }
    if (standard) {
        for (int i = 0; i < N_PLACES; i++)
            Py_XINCREF(f->value[i]);
        f->extras = pos;
        return 0;
    }
    for (int i = 0; i < N_PLACES; i++) {
        /* (a lookup can run a colliding key's __eq__: each value is held as it is found) */
        value = PyDict_GetItemWithError(dict, *place_names[i]);
        if (value == NULL && PyErr_Occurred()) {
            fields_release(f);
            return -1;
        }
        f->value[i] = Py_XNewRef(value);
    }
    return 0;
}

/* record.<which> (borrowed: held until fields_release), or NULL: the record has none. */
static ALWAYS_INLINE PyObject *
field(const Fields *f, int which)
{
    return f->value[which];
}

/* ``record`` read again into ``now``, from its ``__dict__`` as it is now (the Python code
 * that ran may have set another): GO, WRITE (not an exact dict: the general way), ERROR. */
static int
read_again(const Fast *self, PyObject *record, Fields *now)
{
    PyObject *dict = PyObject_GenericGetDict(record, NULL);
    if (dict == NULL)
        return ERROR;
    int rc = !PyDict_CheckExact(dict) ? WRITE : fields_read(self, dict, now) < 0 ? ERROR : GO;
    Py_DECREF(dict);
    return rc;
}

/* 0 when the record has no exception (``exc_info`` None or an empty tuple), else 1: an
 * exception to write, no such field, or an ``exc_info`` whose truth may run Python code,
 * which the general way asks where the OTel handler does (after the attributes). */
static int
has_exception(const Fields *f)
{
    PyObject *exc_info = field(f, P_EXC_INFO); /* borrowed */
    return !(exc_info == Py_None || (exc_info != NULL && PyTuple_CheckExact(exc_info) &&
                                     PyTuple_GET_SIZE(exc_info) == 0));
}

/* An exact str, int, float, bool or None: a value %-formatting writes without running
 * Python code, and an attribute value the SDK keeps as it is. */
static int
plain_value(PyObject *v)
{
    return PyUnicode_CheckExact(v) || PyLong_CheckExact(v) || PyFloat_CheckExact(v) || PyBool_Check(v) ||
           v == Py_None;
}

/* 1 when ``v`` is an exact list or tuple whose items, or an exact dict of str keys whose
 * values, all pass ``ok``; 0 when one does not; -1 when ``v`` is none of those. */
static int
all_pass(PyObject *v, int (*ok)(PyObject *))
{
    if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
        PyObject **items = PySequence_Fast_ITEMS(v);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!ok(items[i]))
                return 0;
        }
        return 1;
    }
    if (PyDict_CheckExact(v)) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(v, &pos, &key, &value)) {
            if (!PyUnicode_CheckExact(key) || !ok(value))
                return 0;
        }
        return 1;
    }
    return -1;
}

/* A plain_value(), or an exact list, tuple or dict (of str keys) of them. */
static int
plain_arg(PyObject *v)
{
    return plain_value(v) || all_pass(v, plain_value) == 1;
}

/* Whether ``args`` is one that %-formatting turns into text without running Python code:
 * None, or a tuple of plain_arg()s, or a dict of str keys and plain_arg() values. Then
 * the record cannot change while its message is built, and its fields and attributes,
 * read before, are what the OTel handler reads after getMessage(). Else direct() builds
 * the message first and reads the record again. */
static int
plain_args(PyObject *args)
{
    return args == Py_None || (!PyList_CheckExact(args) && all_pass(args, plain_arg) == 1);
}

/* LogRecord.__init__'s keys, from a record made once, when they are what the Python side
 * says (``n_init`` of them, ending with ``last_init``): 0, or -1 with an error. Else none
 * are known, and every record's dict is read whole. */
static int
find_init_keys(Fast *self, Py_ssize_t n_init, PyObject *last_init)
{
    self->n_init_keys = 0;
    PyObject *record = PyObject_CallFunction(self->logging_type, "sisisOO", "n", 0, "p", 0, "m", Py_None, Py_None);
    if (record == NULL)
        return -1;
    PyObject *dict = PyObject_GenericGetDict(record, NULL);
    Py_DECREF(record);
    if (dict == NULL)
        return -1;
    Py_ssize_t pos = 0, n = 0;
    PyObject *key, *value;
    int usable = PyDict_CheckExact(dict) && PyDict_GET_SIZE(dict) == n_init && n_init <= MAX_INIT;
    while (usable && PyDict_Next(dict, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            usable = 0;
            break;
        }
        self->init_keys[n] = Py_NewRef(key);
        self->init_field[n] = -1;
        for (int i = 0; i < N_PLACES; i++) {
            if (key == *place_names[i])
                self->init_field[n] = (signed char)i;
        }
        n++;
    }
    int last = usable && n == n_init && n > 0 ? PyObject_RichCompareBool(self->init_keys[n - 1], last_init, Py_EQ) : 0;
    Py_DECREF(dict);
    if (last != 1) {
        for (Py_ssize_t i = 0; i < n; i++)
            Py_DECREF(self->init_keys[i]);
        return last; /* -1 with the comparison's error; 0: none known */
    }
    self->n_init_keys = n;
    return 0;
}

/* ---- the encoder's way: the API LogRecord, through the processor's on_emit ----------- */

/* The record's attributes (its fields after LogRecord.__init__'s, or all of them minus
 * the reserved ones: see Fields), into ``*out`` (NULL when there are none): or WRITE when
 * one is not plain. */
static int
take_attributes(Fast *self, const Fields *f, PyObject **out)
{
    Py_ssize_t pos = f->extras;
    PyObject *k, *v, *attributes = NULL;
    Py_ssize_t otel_len = PyUnicode_GET_LENGTH(self->otel_event), event_len = PyUnicode_GET_LENGTH(self->event);
    while (PyDict_Next(f->dict, &pos, &k, &v)) {
        if (!PyUnicode_CheckExact(k)) {
            /* (its __hash__ or __eq__ may change the dict and free it: held meanwhile) */
            Py_INCREF(k);
            int reserved = PySet_Contains(self->reserved, k);
            Py_DECREF(k);
            if (reserved < 0)
                goto error;
            if (reserved)
                continue;
            goto write; /* the SDK makes a str of it, or drops it */
        }
        int reserved = PySet_Contains(self->reserved, k); /* (a str: no Python code runs) */
        if (reserved < 0)
            goto error;
        if (reserved)
            continue;
        Py_ssize_t len = PyUnicode_GET_LENGTH(k);
        if (len == 0)
            goto write; /* the SDK drops it, and counts it */
        if ((len == otel_len && PyUnicode_Compare(k, self->otel_event) == 0) ||
            (len == event_len && PyUnicode_Compare(k, self->event) == 0))
            goto write; /* an event name, promoted */
        if (!plain_value(v))
            goto write; /* the SDK cleans it (a list to a tuple, an object to its str) */
        /* (an allocation may collect, and a GC callback change the record's dict: the pair
         * is held while it is put) */
        Py_INCREF(k);
        Py_INCREF(v);
        int failed = (attributes == NULL && (attributes = PyDict_New()) == NULL) ||
                     PyDict_SetItem(attributes, k, v) < 0;
        Py_DECREF(k);
        Py_DECREF(v);
        if (failed)
            goto error;
    }
    *out = attributes;
    return GO;
write:
    Py_XDECREF(attributes);
    return WRITE;
error:
    Py_XDECREF(attributes);
    return ERROR;
}

/* The record's ids from a span context: three new references, or -1 with an error. */
static int
span_ids(Fast *self, PyObject *context, PyObject **trace_id, PyObject **span_id, PyObject **flags)
{
    if (self->tuple_context && (PyObject *)Py_TYPE(context) == self->context_type &&
        PyTuple_GET_SIZE(context) >= 4) {
        *trace_id = Py_NewRef(PyTuple_GET_ITEM(context, 0));
        *span_id = Py_NewRef(PyTuple_GET_ITEM(context, 1));
        *flags = Py_NewRef(PyTuple_GET_ITEM(context, 3));
        return 0;
    }
    *trace_id = PyObject_GetAttr(context, a_trace_id);
    *span_id = *trace_id ? PyObject_GetAttr(context, a_span_id) : NULL;
    *flags = *span_id ? PyObject_GetAttr(context, a_trace_flags) : NULL;
    if (*flags == NULL) {
        Py_CLEAR(*trace_id);
        Py_CLEAR(*span_id);
        return -1;
    }
    return 0;
}

/* The line's record for the encoder: an API LogRecord with the fields it reads.
 * ``asked``: the current span's context when direct() asked it already (it is asked once
 * a record), else NULL. */
static PyObject *
line_record(Fast *self, const Fields *f, PyObject *attributes, PyObject *body, PyObject *severity,
            PyObject *text, PyObject *asked)
{
    PyObject *record = NULL, *dict = NULL, *timestamp = NULL, *observed = NULL, *context = NULL,
             *trace_id = NULL, *span_id = NULL, *flags = NULL, *created;
    created = field(f, P_CREATED); /* borrowed */
    if (created == NULL || !PyFloat_CheckExact(created))
        goto done; /* (or an error) the Python path */
    /* int(record.created * 1e9), as the OTel handler computes it */
    timestamp = PyLong_FromDouble(PyFloat_AS_DOUBLE(created) * 1e9);
    if (timestamp == NULL)
        goto done;
    observed = PyObject_CallNoArgs(self->clock);
    if (observed == NULL)
        goto done;
    context = asked != NULL ? Py_NewRef(asked) : current_span_context(self);
    if (context == NULL || span_ids(self, context, &trace_id, &span_id, &flags) < 0)
        goto done;
    record = ((PyTypeObject *)self->record_type)->tp_new((PyTypeObject *)self->record_type, empty_tuple, NULL);
    if (record == NULL)
        goto done;
    dict = PyObject_GenericGetDict(record, NULL);
    if (dict == NULL) {
        Py_CLEAR(record);
        goto done;
    }
    /* In the order LogRecord.__init__ sets them (``field_order``), so that the instance
     * dict keeps the keys it shares with every LogRecord; fields the encoder does not
     * read (context, exception) are None. */
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(self->field_order); i++) {
        PyObject *key = PyTuple_GET_ITEM(self->field_order, i), *value = Py_None;
        if (key == k_timestamp)
            value = timestamp;
        else if (key == k_observed)
            value = observed;
        else if (key == k_trace_id)
            value = trace_id;
        else if (key == k_span_id)
            value = span_id;
        else if (key == k_trace_flags)
            value = flags;
        else if (key == k_severity_text)
            value = text;
        else if (key == k_severity_number)
            value = severity;
        else if (key == k_body)
            value = body;
        else if (key == k_attributes && attributes != NULL)
            value = attributes;
        if (PyDict_SetItem(dict, key, value) < 0) {
            Py_CLEAR(record);
            break;
        }
    }
done:
    Py_XDECREF(dict);
    Py_XDECREF(timestamp);
    Py_XDECREF(observed);
    Py_XDECREF(context);
    Py_XDECREF(trace_id);
    Py_XDECREF(span_id);
    Py_XDECREF(flags);
    return record;
}

/* The body: getMessage() for a str msg (str(msg), then % args when there are args). NULL
 * without an error: the Python path (a msg of another type, whose str() may do anything). */
static PyObject *
message(const Fields *f)
{
    PyObject *msg = field(f, P_MSG);   /* borrowed */
    PyObject *args = field(f, P_ARGS); /* borrowed */
    if (msg == NULL || args == NULL || !PyUnicode_CheckExact(msg) || !plain_args(args))
        return NULL;
    int truth = PyObject_IsTrue(args);
    if (truth < 0)
        return NULL;
    if (!truth)
        return Py_NewRef(msg);
    return PyNumber_Remainder(msg, args);
}

/* The encoder's way, for an entry that is written: the API LogRecord the OTel handler
 * would build, handed to the processor's C on_emit. ``before``: the record as read before
 * its message was built (the time, the level number), ``f`` as read after (the same when
 * building it ran no Python code). ``*body``: the message when it was built already, else
 * NULL; a message built here is left there too (the caller's: the general way takes it on
 * WRITE, so that it is never built twice). */
static int
encoder_way(Fast *self, const Fields *before, const Fields *f, PyObject *scope, PyObject *resource,
            PyObject **body, PyObject *asked, PyObject *asked_attributes)
{
    PyObject *attributes = NULL, *severity = NULL, *text, *levelno, *levelname, *record = NULL,
             *rw = NULL, *done = NULL;
    int rc = ERROR;
    if (has_exception(f)) {
        rc = WRITE;
        goto out;
    }
    if (asked_attributes != NULL) {
        /* read by direct() before it asked the span (code attributes included) */
        attributes = asked_attributes == Py_None ? NULL : Py_NewRef(asked_attributes);
    }
    else {
        rc = take_attributes(self, f, &attributes);
        if (rc != GO)
            goto out;
    }
    rc = ERROR;
    if (self->code && asked_attributes == NULL) {
        /* code.file.path, code.function.name, code.line.number, after the extras */
        PyObject *keys[3] = {k_code_file, k_code_function, k_code_line};
        int names[3] = {P_PATHNAME, P_FUNC_NAME, P_LINENO};
        if (attributes == NULL && (attributes = PyDict_New()) == NULL)
            goto out;
        for (int i = 0; i < 3; i++) {
            PyObject *v = field(f, names[i]); /* borrowed */
            if (v == NULL) {
                rc = PyErr_Occurred() ? ERROR : WRITE;
                goto out;
            }
            if (!(PyUnicode_CheckExact(v) || PyLong_CheckExact(v) || v == Py_None)) {
                rc = WRITE;
                goto out;
            }
            if (PyDict_SetItem(attributes, keys[i], v) < 0)
                goto out;
        }
    }
    if (attributes != NULL &&
        (self->limited || (self->max_count >= 0 && PyDict_GET_SIZE(attributes) > self->max_count))) {
        rc = WRITE; /* a limit may bite: the SDK's BoundedAttributes */
        goto out;
    }
    if (*body == NULL)
        *body = message(f);
    if (*body == NULL) {
        rc = !PyErr_Occurred() ? WRITE : PyErr_ExceptionMatches(PyExc_Exception) ? FORMAT : ERROR;
        goto out;
    }
    levelno = field(before, P_LEVELNO); /* borrowed */
    levelname = field(f, P_LEVELNAME);  /* borrowed */
    if (levelno == NULL || levelname == NULL) {
        rc = PyErr_Occurred() ? ERROR : WRITE;
        goto out;
    }
    if (PyLong_CheckExact(levelno)) {
        long level = PyLong_AsLong(levelno);
        if (level == -1 && PyErr_Occurred())
            PyErr_Clear();
        else if (level >= 0 && level <= MAX_LEVEL && PyList_GET_SIZE(self->severities) > level)
            severity = Py_NewRef(PyList_GET_ITEM(self->severities, level));
    }
    if (severity == NULL && (severity = PyObject_CallOneArg(self->severity_of, levelno)) == NULL)
        goto out;
    text = PyDict_GetItemWithError(self->texts, levelname); /* borrowed */
    if (text == NULL) {
        if (PyErr_Occurred())
            goto out;
        text = levelname;
    }
    record = line_record(self, before, attributes, *body, severity, text, asked);
    if (record == NULL) {
        /* (an error once the span was asked is counted, never asked again on another way) */
        rc = PyErr_Occurred() ? HANDED : WRITE;
        goto out;
    }
    rw = ((PyTypeObject *)self->rw_type)->tp_alloc((PyTypeObject *)self->rw_type, 3);
    if (rw == NULL)
        goto out;
    PyTuple_SET_ITEM(rw, 0, Py_NewRef(record));
    PyTuple_SET_ITEM(rw, 1, Py_NewRef(resource));
    PyTuple_SET_ITEM(rw, 2, Py_NewRef(scope));
    /* Handed over: from here an error is the emitter's (it counts faults itself and
     * raises only what is not an Exception), never a reason to write again. */
    done = PyObject_CallOneArg(self->emitter, rw);
    rc = done != NULL ? GO : -2;
out:
    Py_XDECREF(attributes);
    Py_XDECREF(severity);
    Py_XDECREF(record);
    Py_XDECREF(rw);
    Py_XDECREF(done);
    return rc;
}

/* The message of a record whose msg has only %s and %d conversions (and %%), one for
 * each of its args, all exact strs (for %s) or ints: written into the line as a JSON
 * string, as ``msg % args`` would make it (no Python code runs). 0: done; 1: another
 * message, left to Python's % (nothing written); -1: error. */
static int
put_message(Buf *b, PyObject *msg, PyObject *args)
{
    const char *p;
    Py_ssize_t n, used = 0, i;
    if (!PyTuple_CheckExact(args))
        return 1;
    Py_ssize_t count = PyTuple_GET_SIZE(args);
    int rc = utf8_of(msg, &p, &n);
    if (rc != 0)
        return rc;
    for (i = 0; i < n; i++) {
        if (p[i] != '%')
            continue;
        if (i + 1 == n)
            return 1;
        char c = p[++i];
        if (c == '%')
            continue;
        if ((c != 's' && c != 'd') || used == count)
            return 1;
        PyObject *arg = PyTuple_GET_ITEM(args, used++);
        if (!PyLong_CheckExact(arg) && !(c == 's' && PyUnicode_CheckExact(arg)))
            return 1;
    }
    if (used != count)
        return 1;
    Py_ssize_t start = b->len, segment = 0;
    if (buf_put(b, "\"", 1) < 0)
        return -1;
    used = 0;
    for (i = 0; i < n; i++) {
        if (p[i] != '%')
            continue;
        if (put_escaped(b, p + segment, i - segment) < 0)
            return -1;
        char c = p[++i];
        segment = i + 1;
        if (c == '%') {
            if (buf_put(b, "%", 1) < 0)
                return -1;
            continue;
        }
        PyObject *arg = PyTuple_GET_ITEM(args, used++);
        if (PyLong_CheckExact(arg)) {
            int overflow = 0;
            long long value = PyLong_AsLongLongAndOverflow(arg, &overflow);
            if (value == -1 && PyErr_Occurred())
                return -1;
            if (overflow != 0) {
                b->len = start; /* a long int: Python's % */
                return 1;
            }
            if (put_decimal(b, value) < 0)
                return -1;
        }
        else {
            const char *text;
            Py_ssize_t size;
            rc = utf8_of(arg, &text, &size);
            if (rc != 0) {
                b->len = start;
                return rc;
            }
            if (put_escaped(b, text, size) < 0)
                return -1;
        }
    }
    if (put_escaped(b, p + segment, n - segment) < 0 || buf_put(b, "\"", 1) < 0)
        return -1;
    return 0;
}

/* ---- the line, written here ------------------------------------------------------------- */

/* The attributes of ``record`` (its fields after LogRecord.__init__'s, minus the reserved
 * ones), as strong references into keys/values (``*count`` of them, set on every return:
 * the caller releases them). WRITE when one is not plain (the SDK would clean it, or an
 * event name), ENCODER when the encoder treats one specially or there are too many. */
static int
scan_attributes(Fast *self, const Fields *f, PyObject **keys, PyObject **values, Py_ssize_t *count)
{
    Py_ssize_t pos = f->extras, n = 0; /* (after LogRecord.__init__'s fields, or the whole dict) */
    PyObject *k, *v;
    *count = 0;
    Py_ssize_t otel_len = PyUnicode_GET_LENGTH(self->otel_event), event_len = PyUnicode_GET_LENGTH(self->event);
    while (PyDict_Next(f->dict, &pos, &k, &v)) {
        if (!PyUnicode_CheckExact(k)) {
            /* (its __hash__ or __eq__ may change the dict and free it: held meanwhile) */
            Py_INCREF(k);
            int reserved = PySet_Contains(self->reserved, k);
            Py_DECREF(k);
            if (reserved != 0) {
                if (reserved < 0)
                    return ERROR;
                continue;
            }
            return WRITE; /* the SDK makes a str of it, or drops it */
        }
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(k) < 0)
            return ERROR;
#endif
        if (filter_may_hold(&self->reserved_filter, k)) {
            int reserved = PySet_Contains(self->reserved, k);
            if (reserved != 0) {
                if (reserved < 0)
                    return ERROR;
                continue;
            }
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(k);
        if (len == 0)
            return WRITE; /* the SDK drops it, and counts it */
        if ((len == otel_len && PyUnicode_Compare(k, self->otel_event) == 0) ||
            (len == event_len && PyUnicode_Compare(k, self->event) == 0))
            return WRITE; /* an event name, promoted */
        if (!plain_value(v))
            return WRITE; /* the SDK cleans it (a list to a tuple, an object to its str) */
        if (n == MAX_ATTRS)
            return ENCODER;
        if (filter_may_hold(&self->enc_reserved_filter, k)) {
            int special = PySet_Contains(self->enc_reserved, k);
            if (special != 0)
                return special < 0 ? ERROR : ENCODER; /* the encoder moves it to _otel.attributes */
        }
        keys[n] = Py_NewRef(k);
        values[n] = Py_NewRef(v);
        *count = ++n;
    }
    return GO;
}

/* The code attributes (after the extras, as the OTel handler adds them). */
static int
code_attributes(Fast *self, const Fields *f, PyObject **keys, PyObject **values, Py_ssize_t *count)
{
    PyObject *code_keys[3] = {k_code_file, k_code_function, k_code_line};
    int names[3] = {P_PATHNAME, P_FUNC_NAME, P_LINENO};
    for (Py_ssize_t i = 0; i < *count; i++) {
        for (int j = 0; j < 3; j++) {
            if (PyUnicode_GET_LENGTH(keys[i]) == PyUnicode_GET_LENGTH(code_keys[j]) &&
                PyUnicode_Compare(keys[i], code_keys[j]) == 0)
                return ENCODER; /* an extra of the same name: the dict keeps its place */
        }
    }
    for (int j = 0; j < 3; j++) {
        PyObject *v = field(f, names[j]); /* borrowed */
        if (v == NULL)
            return PyErr_Occurred() ? ERROR : WRITE;
        if (!(PyUnicode_CheckExact(v) || PyLong_CheckExact(v) || v == Py_None))
            return WRITE;
        if (*count >= MAX_ATTRS + 3)
            return ENCODER;
        keys[*count] = Py_NewRef(code_keys[j]);
        values[*count] = Py_NewRef(v);
        (*count)++;
    }
    return GO;
}

/* The attributes a line written here carries (scan_attributes, then the code attributes
 * when asked), as strong references into keys/values (``*n``: the caller releases them):
 * GO, or the way the record goes instead (WRITE too when a limit may bite: the SDK's
 * BoundedAttributes). */
static int
line_attributes(Fast *self, const Fields *f, PyObject **keys, PyObject **values, Py_ssize_t *n)
{
    int rc = scan_attributes(self, f, keys, values, n);
    if (rc == GO && self->code)
        rc = code_attributes(self, f, keys, values, n);
    if (rc == GO && *n > 0 && (self->limited || (self->max_count >= 0 && *n > self->max_count)))
        rc = WRITE;
    return rc;
}

static void
release_attributes(PyObject **keys, PyObject **values, Py_ssize_t *n)
{
    for (Py_ssize_t i = 0; i < *n; i++) {
        Py_DECREF(keys[i]);
        Py_DECREF(values[i]);
    }
    *n = 0;
}

/* The tail the encoder shares for (scope, resource): a new reference, or NULL. */
static PyObject *
tail_for(Fast *self, PyObject *scope, PyObject *resource)
{
    PyObject *tail = last_tail_get(&self->last, scope, resource);
    if (tail != NULL)
        return tail;
    tail = PyObject_CallFunctionObjArgs(self->tail_of, scope, resource, NULL);
    if (tail == NULL)
        return NULL;
    if (!PyBytes_CheckExact(tail)) {
        Py_DECREF(tail);
        PyErr_SetString(PyExc_TypeError, "tail_of must return bytes");
        return NULL;
    }
    last_tail_set(&self->last, scope, resource, tail);
    return tail;
}

/* The line of ``record`` (read into ``f``), as the encoder writes it for the API LogRecord
 * the OTel handler would build: the item (tid, ts, failed, data, tail) into ``*item``.
 * GO, WRITE or ENCODER (then ``*body_out`` holds the message when it was built here: it is
 * never built twice), or ERROR. When building the message could run Python code, the
 * record is read again after it into ``now`` (the caller releases it): the OTel handler
 * reads the time and the level number before getMessage(), everything else after.
 * ``observed``: the observed time to write, or -1 for now. */
static int
direct(Fast *self, PyObject *record, const Fields *f, Fields *now, PyObject *scope, PyObject *resource,
       long long observed, PyObject **body_out, PyObject **asked, PyObject **asked_attributes, PyObject **item)
{
    PyObject *keys[MAX_ATTRS + 3], *values[MAX_ATTRS + 3], *floats[MAX_FLOATS];
    PyObject *body = NULL, *ts_obj = NULL, *context = NULL, *trace_id = NULL, *span_id = NULL, *flags = NULL,
             *json = NULL, *tail = NULL, *tid = NULL, *data = NULL, *span_hex = NULL;
    Py_ssize_t n = 0, n_floats = 0;
    int rc, truth, formatted = 0;
    const Fields *g = f; /* the fields read after the message: f, or now */
    Buf b, float_text;
    buf_init(&b);
    buf_init(&float_text);
    *item = NULL;

    if (has_exception(f))
        return WRITE;
    /* The time and level number (read before the message, as the OTel handler reads them). */
    PyObject *levelno = field(f, P_LEVELNO); /* borrowed */
    PyObject *created = field(f, P_CREATED); /* borrowed */
    if (levelno == NULL || created == NULL)
        return PyErr_Occurred() ? ERROR : WRITE;
    if (!PyFloat_CheckExact(created))
        return WRITE;
    if (!PyLong_CheckExact(levelno))
        return ENCODER;
    rc = line_attributes(self, f, keys, values, &n);
    if (rc != GO)
        goto done;
    /* The message: getMessage() for a str msg (msg % args when there are args). */
    PyObject *msg = field(f, P_MSG);   /* borrowed */
    PyObject *args = field(f, P_ARGS); /* borrowed */
    if (msg == NULL || args == NULL || !PyUnicode_CheckExact(msg)) {
        rc = WRITE; /* a msg of another type, whose str() may do anything */
        goto done;
    }
    if (!plain_args(args)) {
        /* Arguments whose str() may run Python code, which may change the record: the
         * message is built now, as getMessage() comes before the OTel handler reads the
         * level name, the attributes and the span; then the record is read again, as it
         * is after (the time and level number stay the ones read before, as there). */
        formatted = PyObject_IsTrue(args);
        if (formatted > 0) {
            /* (getMessage() reads record.args again after ``if self.args``: the old one's
             * __bool__ may have set another) */
            PyObject *now_args = PyObject_GetAttr(record, f_args);
            body = now_args == NULL ? NULL : PyNumber_Remainder(msg, now_args);
            Py_XDECREF(now_args);
        }
        else {
            body = formatted < 0 ? NULL : Py_NewRef(msg);
        }
        if (body == NULL) {
            rc = PyErr_ExceptionMatches(PyExc_Exception) ? FORMAT : ERROR;
            goto done;
        }
        release_attributes(keys, values, &n);
        rc = read_again(self, record, now);
        if (rc != GO)
            goto done;
        g = now;
        if (has_exception(g)) {
            rc = WRITE; /* (an exception set meanwhile: the general way writes it) */
            goto done;
        }
        if (!PyUnicode_CheckExact(body)) {
            rc = ENCODER; /* (which takes the body: it is not built again) */
            goto done;
        }
        rc = line_attributes(self, g, keys, values, &n);
        if (rc != GO)
            goto done; /* (the general way, or the encoder's, with the message built here) */
    }
    /* Severity, text and time. */
    PyObject *levelname = field(g, P_LEVELNAME); /* borrowed */
    if (levelname == NULL) {
        rc = PyErr_Occurred() ? ERROR : WRITE;
        goto done;
    }
    if (!PyUnicode_CheckExact(levelname)) {
        rc = ENCODER;
        goto done;
    }
    int overflow = 0;
    long level = PyLong_AsLongAndOverflow(levelno, &overflow);
    if (level == -1 && PyErr_Occurred()) {
        rc = ERROR;
        goto done;
    }
    /* as the OTel handler maps levels: below 10 UNSPECIFIED, above 53 FATAL4 (on overflow
     * ``level`` is -1: the sign is overflow's) */
    if (overflow < 0 || (overflow == 0 && level < 0))
        level = 0;
    else if (overflow > 0 || level > MAX_LEVEL)
        level = MAX_LEVEL;
    long number = self->numbers[level];
    PyObject *mt = self->mts[level];
    PyObject *text = PyDict_GetItemWithError(self->texts, levelname); /* borrowed */
    if (text == NULL) {
        if (PyErr_Occurred()) {
            rc = ERROR;
            goto done;
        }
        text = levelname;
    }
    if (!PyUnicode_CheckExact(text)) {
        rc = ENCODER;
        goto done;
    }
    /* int(record.created * 1e9), as the OTel handler computes it; ts = that / 1e9, as
     * the encoder does (the int rounded to a double, then divided). */
    double scaled = PyFloat_AS_DOUBLE(created) * 1e9;
    if (!(scaled > -9.2e18 && scaled < 9.2e18)) {
        rc = ENCODER;
        goto done;
    }
    long long timestamp = (long long)scaled;
    volatile double rounded = (double)timestamp; /* rounded to a double first, even on x87 */
    ts_obj = PyFloat_FromDouble(rounded / 1e9);
    if (ts_obj == NULL) {
        rc = ERROR;
        goto done;
    }
    floats[n_floats++] = ts_obj;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyFloat_CheckExact(values[i])) {
            if (n_floats == MAX_FLOATS || !isfinite(PyFloat_AS_DOUBLE(values[i]))) {
                rc = ENCODER; /* many floats, or NaN/inf (tagged) */
                goto done;
            }
            floats[n_floats++] = values[i];
        }
    }

    if (body == NULL) {
        /* (plain arguments: the message is written below, without running Python code) */
        formatted = args == empty_tuple || args == Py_None ? 0 : PyObject_IsTrue(args);
        if (formatted < 0) {
            rc = PyErr_ExceptionMatches(PyExc_Exception) ? FORMAT : ERROR; /* (getMessage's `if self.args`) */
            goto done;
        }
    }
    if (observed < 0) {
#if defined(CLOCK_REALTIME) && !defined(_WIN32)
        /* time.time_ns(), as the OTel handler takes it */
        struct timespec now;
        if (clock_gettime(CLOCK_REALTIME, &now) == 0) {
            observed = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
        }
        else
#endif
        {
            PyObject *now_ns = PyObject_CallNoArgs(self->clock);
            if (now_ns == NULL) {
                rc = ERROR;
                goto done;
            }
            observed = PyLong_AsLongLong(now_ns);
            Py_DECREF(now_ns);
            if (observed == -1 && PyErr_Occurred()) {
                rc = ERROR;
                goto done;
            }
        }
    }
    /* Every float of the line as orjson writes it: by floats_text, or one orjson call. */
    const char *next, *end;
    rc = floats_text(&float_text, floats, n_floats);
    if (rc < 0) {
        rc = ERROR;
        goto done;
    }
    next = float_text.data;
    end = float_text.data + float_text.len;
    if (rc > 0) {
        json = orjson_floats(self->dumps, floats, n_floats);
        if (json == NULL || !PyBytes_CheckExact(json)) {
            rc = json == NULL ? ERROR : ENCODER;
            goto done;
        }
        next = PyBytes_AS_STRING(json) + (n_floats > 1);
        end = PyBytes_AS_STRING(json) + PyBytes_GET_SIZE(json);
    }

#define PUT(expr)                                                 \
    do {                                                          \
        int put_rc = (expr);                                      \
        if (put_rc != 0) {                                        \
            rc = put_rc < 0 ? ERROR : ENCODER;                    \
            goto done;                                            \
        }                                                         \
    } while (0)

    /* The line, in the order the encoder writes it. */
    PUT(PUT_LITERAL(&b, "\"ts\":"));
    PUT(put_next_float(&b, &next, end));
    PUT(PUT_LITERAL(&b, ",\"mt\":\""));
    PUT(buf_put(&b, (const char *)PyUnicode_DATA(mt), PyUnicode_GET_LENGTH(mt)));
    PUT(PUT_LITERAL(&b, "\",\"msg\":"));
    if (body != NULL) {
        PUT(put_str(&b, body)); /* (built before the record was read again) */
    }
    else if (!formatted) {
        PUT(put_str(&b, msg));
    }
    else {
        int put_rc = put_message(&b, msg, args);
        if (put_rc < 0) {
            rc = ERROR;
            goto done;
        }
        if (put_rc > 0) {
            /* any other format: Python's own % (plain arguments: no Python code runs) */
            body = PyNumber_Remainder(msg, args);
            if (body == NULL) {
                rc = PyErr_ExceptionMatches(PyExc_Exception) ? FORMAT : ERROR;
                goto done;
            }
            if (!PyUnicode_CheckExact(body)) {
                rc = ENCODER;
                goto done;
            }
            PUT(put_str(&b, body));
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = values[i];
        PUT(PUT_LITERAL(&b, ","));
        PUT(put_str(&b, keys[i]));
        PUT(PUT_LITERAL(&b, ":"));
        if (PyUnicode_CheckExact(v))
            PUT(put_str(&b, v));
        else if (v == Py_True)
            PUT(PUT_LITERAL(&b, "true"));
        else if (v == Py_False)
            PUT(PUT_LITERAL(&b, "false"));
        else if (v == Py_None)
            PUT(PUT_LITERAL(&b, "null"));
        else if (PyLong_CheckExact(v))
            PUT(put_int(&b, v));
        else
            PUT(put_next_float(&b, &next, end));
    }
    PUT(PUT_LITERAL(&b, ",\"_otel\":{\"time_unix_nano\":"));
    PUT(put_decimal(&b, timestamp));
    PUT(PUT_LITERAL(&b, ",\"observed_time_unix_nano\":"));
    PUT(put_decimal(&b, observed));
    PUT(PUT_LITERAL(&b, ",\"severity_number\":"));
    PUT(put_decimal(&b, number));
    PUT(PUT_LITERAL(&b, ",\"severity_text\":"));
    PUT(put_str(&b, text));
    /* The span, asked last (after the attributes, as the OTel handler asks it; and only
     * for a line whose message and attributes are written: a way taken before would ask
     * it again). */
    context = current_span_context(self);
    if (context == NULL) {
        rc = HANDED; /* (counted, as the Python path counts it: the span is never asked twice) */
        goto done;
    }
    if (!(self->tuple_context && (PyObject *)Py_TYPE(context) == self->context_type &&
          PyTuple_GET_SIZE(context) >= 4)) {
        rc = ENCODER;
        goto done;
    }
    trace_id = Py_NewRef(PyTuple_GET_ITEM(context, 0));
    span_id = Py_NewRef(PyTuple_GET_ITEM(context, 1));
    flags = Py_NewRef(PyTuple_GET_ITEM(context, 3));
    if (!PyLong_CheckExact(trace_id) || !PyLong_CheckExact(span_id) || !PyLong_Check(flags) ||
        PyBool_Check(flags)) {
        rc = ENCODER;
        goto done;
    }
    if ((truth = PyObject_IsTrue(span_id)) < 0) {
        rc = ERROR;
        goto done;
    }
    if (truth) {
        span_hex = id_hex(&self->span_id_key, &self->span_id_hex, span_id, fmt_span);
        if (span_hex == NULL) {
            rc = ERROR;
            goto done;
        }
        PUT(id_fits(span_hex, 16) ? 0 : 1); /* an id that does not fit: the encoder tags it */
        PUT(PUT_LITERAL(&b, ",\"span_id\":"));
        PUT(put_quoted(&b, (const char *)PyUnicode_DATA(span_hex), 16));
    }
    if ((truth = PyObject_IsTrue(flags)) < 0) {
        rc = ERROR;
        goto done;
    }
    if (truth) {
        PUT(PUT_LITERAL(&b, ",\"trace_flags\":"));
        PUT(put_int(&b, flags));
    }
    if ((truth = PyObject_IsTrue(trace_id)) < 0) {
        rc = ERROR;
        goto done;
    }
    if (truth) {
        tid = id_hex(&self->trace_id_key, &self->trace_id_hex, trace_id, fmt_trace);
        if (tid == NULL) {
            rc = ERROR;
            goto done;
        }
        PUT(id_fits(tid, 32) ? 0 : 1);
        if (self->flat) {
            PUT(PUT_LITERAL(&b, ",\"trace_id\":"));
            PUT(put_quoted(&b, (const char *)PyUnicode_DATA(tid), 32));
            Py_CLEAR(tid);
        }
    }
#undef PUT
    tail = tail_for(self, scope, resource);
    if (tail == NULL) {
        rc = ERROR;
        goto done;
    }
    data = PyBytes_FromStringAndSize(b.data, b.len);
    if (data == NULL) {
        rc = ERROR;
        goto done;
    }
    *item = line_item(self->item_size, tid != NULL ? tid : Py_None, ts_obj, number >= ERROR_SEVERITY, data, tail,
                      span_hex != NULL ? span_hex : Py_None, Py_None);
    if (*item == NULL) {
        rc = ERROR;
        goto done;
    }
    rc = GO;

done:
    buf_free(&b);
    buf_free(&float_text);
    if (rc == ENCODER && context != NULL) {
        /* The span was asked: the encoder's way takes the attributes read before it (the
         * span's code may have changed the record since), and the context. */
        *asked_attributes = n > 0 ? PyDict_New() : Py_NewRef(Py_None);
        for (Py_ssize_t i = 0; *asked_attributes != NULL && *asked_attributes != Py_None && i < n; i++) {
            if (PyDict_SetItem(*asked_attributes, keys[i], values[i]) < 0)
                Py_CLEAR(*asked_attributes);
        }
        if (*asked_attributes == NULL)
            rc = ERROR;
    }
    release_attributes(keys, values, &n);
    if (rc == ENCODER || rc == WRITE || rc == ERROR)
        *body_out = body; /* the way the record goes takes it from here (never built twice) */
    else
        Py_XDECREF(body);
    if (rc == ENCODER && context != NULL) {
        *asked = context; /* (the encoder's way does not ask the span again) */
        context = NULL;
    }
    Py_XDECREF(ts_obj);
    Py_XDECREF(context);
    Py_XDECREF(trace_id);
    Py_XDECREF(span_id);
    Py_XDECREF(flags);
    Py_XDECREF(json);
    Py_XDECREF(tail);
    Py_XDECREF(tid);
    Py_XDECREF(data);
    Py_XDECREF(span_hex);
    return rc;
}

/* Call fault(exc) for the error set; an error that is not an Exception goes on. */
static int
report_fault(Fast *self)
{
    return count_fault(self->fault);
}

/* Where the record of a written entry goes, inside the guard: its line, written here and
 * queued, or the encoder's way. GO, WRITE or ERROR (before it was handed over: the general
 * way writes it, with ``*body``, the message, when it was built already), HANDED (an error
 * after: never written again). */
static int
handle_entry(Fast *self, PyObject *record, const Fields *f, PyObject *scope, PyObject *resource, PyObject **body)
{
    PyObject *item = NULL, *asked = NULL, *asked_attributes = NULL;
    Fields now = {NULL, 0, {NULL}}; /* the record read again after its message was built */
    int rc = ENCODER;
    if (self->enqueue != Py_None) {
        rc = direct(self, record, f, &now, scope, resource, -1, body, &asked, &asked_attributes, &item);
        if (rc == GO) {
            fields_release(&now);
            PyObject *done = PyObject_CallOneArg(self->enqueue, item);
            Py_DECREF(item);
            if (done == NULL)
                return HANDED;
            Py_DECREF(done);
            return GO;
        }
    }
    if (rc == ENCODER)
        rc = encoder_way(self, f, now.dict != NULL ? &now : f, scope, resource, body, asked, asked_attributes);
    Py_XDECREF(asked);
    Py_XDECREF(asked_attributes);
    fields_release(&now);
    if (rc != WRITE && rc != ERROR)
        Py_CLEAR(*body);
    return rc;
}

/* Whether logging.LogRecord still lets this code build what the OTel handler reads from a
 * record: its getMessage is logging's own function (found as the class has it, with no
 * descriptor asked), its attributes are looked up the generic way (no __getattribute__
 * of its own), and no field read here from the record's dict has a class attribute of
 * its name (a property there answers before the dict). */
static int
class_is_logging_s(Fast *self, PyTypeObject *type)
{
    if (type->tp_getattro != PyObject_GenericGetAttr || _PyType_Lookup(type, m_get_message) != self->get_message)
        return 0;
    for (int i = 0; i < N_PLACES; i++) {
        if (_PyType_Lookup(type, *place_names[i]) != NULL)
            return 0;
    }
    return 1;
}

/* Whether this code builds the message ``record.getMessage()`` gives (str(msg) % args, as
 * logging's own does): 1, or 0 where an application or library put another in place (a
 * redaction or brace-style shim on the class, new code in logging's own function, a
 * ``getMessage`` in the record's own dict: ``fields``), or changed how the class answers
 * (class_is_logging_s); the record then goes the general way, which asks the record. The
 * class is looked at again whenever it changed (its version tag), so a patch made after
 * the handler was built is seen at the next record. -1 with an error. */
static int
stdlib_message(Fast *self, PyObject *fields)
{
    PyTypeObject *type = (PyTypeObject *)self->logging_type;
    if (self->get_message == Py_None || PyFunction_GET_CODE(self->get_message) != self->get_message_code)
        return 0; /* (code swapped in place keeps the class's tag: looked at each time) */
    if (type->tp_version_tag == 0 || type->tp_version_tag != self->get_message_tag) {
        if (!class_is_logging_s(self, type))
            return 0;
        self->get_message_tag = type->tp_version_tag; /* (read after the lookups, which may set it) */
    }
    PyObject *own = PyDict_GetItemWithError(fields, m_get_message); /* borrowed */
    return own != NULL ? 0 : PyErr_Occurred() ? -1 : 1;
}

/* The guard set by Fast_handle back as it was (``token`` given back): 0, or -1 with an
 * error. */
static int
guard_reset(Fast *self, PyObject *token)
{
    int rc = PyContextVar_Reset(self->flag, token);
    Py_DECREF(token);
    return rc;
}

static PyObject *
fast_handle(Fast *self, PyObject *record)
{
    PyObject *value, *fields = NULL, *entry = NULL, *resource = NULL, *result = NULL, *body = NULL;
    Fields f = {0};
    int rc, failed = 0;
    if (self->general == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Fast.__init__ has not run");
        return NULL;
    }
    /* What the Python handle decides before the guard: another class of record, filters,
     * a formatter, a global provider to bind to. */
    if ((PyObject *)Py_TYPE(record) != self->logging_type)
        return PyObject_CallOneArg(self->general, record);
    value = PyDict_GetItemWithError(self->handler_dict, h_filters); /* borrowed */
    if (value == NULL && PyErr_Occurred())
        return NULL;
    if (value != NULL && (!PyList_CheckExact(value) || PyList_GET_SIZE(value) != 0))
        return PyObject_CallOneArg(self->general, record);
    value = PyDict_GetItemWithError(self->handler_dict, h_formatter); /* borrowed */
    if (value == NULL && PyErr_Occurred())
        return NULL;
    if (value != NULL && value != Py_None)
        return PyObject_CallOneArg(self->general, record);
    if (self->logs_api != Py_None) {
        /* its global, read in the module's dict (a plain lookup, not a getattr) */
        value = PyModule_Check(self->logs_api) ? PyDict_GetItemWithError(PyModule_GetDict(self->logs_api), a_global)
                                               : NULL; /* borrowed */
        if (value == NULL) {
            if (PyErr_Occurred())
                return NULL;
            value = PyObject_GetAttr(self->logs_api, a_global);
            if (value == NULL)
                return NULL;
            Py_DECREF(value);
        }
        if (value != Py_None)
            return PyObject_CallOneArg(self->general, record);
    }

    /* The guard: this code, or a Python path of ours, at work on a record in this context. */
    if (PyContextVar_Get(self->flag, NULL, &value) < 0)
        return NULL;
    rc = value == NULL || value == Py_False ? 0 : value == Py_True ? 1 : PyObject_IsTrue(value);
    Py_XDECREF(value);
    if (rc < 0)
        return NULL;
    if (rc) {
        value = PyObject_CallOneArg(self->discard, self->recursive); /* (it never raises) */
        if (value == NULL)
            return NULL;
        Py_DECREF(value);
        return Py_NewRef(Py_True);
    }
    PyObject *token = PyContextVar_Set(self->flag, Py_True);
    if (token == NULL)
        return NULL;

    fields = PyObject_GenericGetDict(record, NULL);
    if (fields == NULL)
        goto fault;
    if (!PyDict_CheckExact(fields)) {
        /* a __dict__ of another mapping type (set by a filter): the Python path's record */
        Py_DECREF(fields);
        if (guard_reset(self, token) < 0)
            return NULL;
        return PyObject_CallOneArg(self->general, record);
    }
    rc = stdlib_message(self, fields);
    if (rc < 0)
        goto fault;
    if (rc == 0) {
        /* getMessage is not logging's own: the general way calls it, as the OTel handler does */
        Py_DECREF(fields);
        if (guard_reset(self, token) < 0)
            return NULL;
        return PyObject_CallOneArg(self->general, record);
    }
    if (fields_read(self, fields, &f) < 0)
        goto fault;
    value = field(&f, P_NAME); /* borrowed */
    if (value == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_AttributeError, "name");
        goto fault;
    }
    entry = PyDict_GetItemWithError(self->scopes, value);
    if (entry != NULL)
        Py_INCREF(entry);
    else if (PyErr_Occurred() || (entry = PyObject_CallOneArg(self->scope_of, value)) == NULL)
        goto fault;
    if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 5) {
        PyErr_SetString(PyExc_TypeError, "a scope entry is (scope, live, resource, own, disabled)");
        goto fault;
    }
    PyObject *scope = PyTuple_GET_ITEM(entry, 0), *live = PyTuple_GET_ITEM(entry, 1);
    if (PyTuple_GET_ITEM(entry, 3) == Py_True) {
        value = PyObject_CallNoArgs(self->own_record);
        Py_XDECREF(value);
        if (value == NULL)
            goto fault;
        goto out;
    }
    if (PyTuple_GET_ITEM(entry, 4) == Py_True)
        goto out; /* the OTel handler's logger is a NoOpLogger: nothing is written */
    resource = Py_NewRef(PyTuple_GET_ITEM(entry, 2));
    if (live != Py_None) {
        PyObject *const names[2] = {a_logger_config, a_resource};
        PyObject *config = own_attr(&self->logger_class, live, names, 2, 0);
        if (config == NULL)
            goto fault;
        value = own_attr(&self->config_class, config, &a_is_enabled, 1, 0);
        Py_DECREF(config);
        if (value == NULL)
            goto fault;
        rc = value == Py_True ? 1 : PyObject_IsTrue(value);
        Py_DECREF(value);
        if (rc <= 0) {
            if (rc < 0)
                goto fault;
            goto out; /* the provider's logger configurator turned this logger off */
        }
        if (resource == Py_None) {
            Py_SETREF(resource, own_attr(&self->logger_class, live, names, 2, 1));
            if (resource == NULL)
                goto fault;
        }
    }
    rc = handle_entry(self, record, &f, scope, resource, &body);
    if (rc == GO)
        goto out;
    if (rc == HANDED)
        goto fault; /* counted (an Exception) or it goes on, as from Python code */
    if (rc == FORMAT) {
        /* counted format_error and reported by logging's handleError, as _write does: the
         * message is not built again (its arguments' __str__ may do anything) */
        PyObject *exc = take_error();
        value = PyObject_CallFunctionObjArgs(self->format_failed, record, exc, NULL);
        if (value == exc) {
            /* given back by format_failed: the application's own (its alarm in an
             * argument's __str__), which goes up as from the Python paths */
            Py_DECREF(value);
            put_error(exc);
            failed = 1;
            goto out;
        }
        Py_DECREF(exc);
        Py_XDECREF(value);
        if (value == NULL)
            goto fault;
        goto out;
    }
    if (rc == ERROR) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            failed = 1; /* KeyboardInterrupt and the like go on */
            goto out;
        }
        PyErr_Clear(); /* the Python path will meet it again, and report it as it does */
    }
    /* With the message when it was built already (an argument's str() runs once), and the
     * time and level number read before it, as the OTel handler reads them. */
    PyObject *created = field(&f, P_CREATED), *levelno = field(&f, P_LEVELNO); /* borrowed */
    PyObject *built = body != NULL && created != NULL && levelno != NULL ? PyTuple_Pack(3, body, created, levelno)
                                                                          : Py_NewRef(Py_None);
    if (built == NULL)
        goto fault;
    value = PyObject_CallFunctionObjArgs(self->write, record, scope, resource, built, NULL);
    Py_DECREF(built);
    Py_XDECREF(value);
    if (value == NULL)
        goto fault;
    goto out;

fault:
    if (report_fault(self) < 0)
        failed = 1;
out:
    if (failed) {
        PyObject *exc = take_error(); /* (the guard goes back without losing it) */
        if (guard_reset(self, token) < 0)
            Py_DECREF(take_error());
        put_error(exc);
    }
    else if (guard_reset(self, token) == 0) {
        result = Py_NewRef(Py_True);
    }
    fields_release(&f);
    Py_XDECREF(fields);
    Py_XDECREF(entry);
    Py_XDECREF(resource);
    Py_XDECREF(body);
    return result;
}

/* handle: fast_handle between noted_enter and noted_leave (the application's interrupt,
 * landed in its own code while a record was encoded, raised once it is queued). */
static PyObject *
Fast_handle(Fast *self, PyObject *record)
{
    PyObject *outer;
    if (self->general == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Fast.__init__ has not run");
        return NULL;
    }
    if (noted_enter(self->noted, self->noted_aside, &outer) < 0)
        return NULL;
    return noted_leave(self->noted, self->settle_noted, outer, fast_handle(self, record));
}

/* Fast.encode(record, scope, resource, observed): the item handle would queue for
 * ``record`` (written here), or None where it would go another way. For the tests. */
static PyObject *
Fast_encode(Fast *self, PyObject *args)
{
    PyObject *record, *scope, *resource, *fields, *body = NULL, *item = NULL;
    long long observed;
    if (self->general == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Fast.__init__ has not run");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!OOL", (PyTypeObject *)self->logging_type, &record, &scope, &resource,
                          &observed))
        return NULL;
    if (observed < 0) {
        PyErr_SetString(PyExc_ValueError, "observed must be >= 0");
        return NULL;
    }
    fields = PyObject_GenericGetDict(record, NULL);
    if (fields == NULL)
        return NULL;
    int plain = PyDict_CheckExact(fields) ? stdlib_message(self, fields) : 0;
    if (plain <= 0) {
        Py_DECREF(fields);
        return plain < 0 ? NULL : Py_NewRef(Py_None);
    }
    Fields f, now = {NULL, 0, {NULL}};
    if (fields_read(self, fields, &f) < 0) {
        Py_DECREF(fields);
        return NULL;
    }
    PyObject *asked = NULL, *asked_attributes = NULL;
    int rc = direct(self, record, &f, &now, scope, resource, observed, &body, &asked, &asked_attributes, &item);
    Py_XDECREF(asked);
    Py_XDECREF(asked_attributes);
    fields_release(&now);
    fields_release(&f);
    Py_DECREF(fields);
    Py_XDECREF(body);
    if (rc == ERROR)
        return NULL;
    return rc == GO ? item : Py_NewRef(Py_None);
}

static int
Fast_init(Fast *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"handler_dict", "general",      "write",        "scopes",      "scope_of",
                             "flag",         "discard",      "recursive",    "own_record",  "fault",
                             "reserved",     "n_init",       "last_init",    "otel_event",  "event",
                             "severities",   "severity_of",  "texts",        "span_var",    "get_current",
                             "span_key",     "span_kind",    "invalid",      "context_type", "record_type",
                             "logging_type", "emitter",      "rw_type",      "clock",       "logs_api",
                             "max_count",    "limited",      "tuple_context", "field_order", "code",
                             "enqueue",      "dumps",        "enc_reserved", "tail_of",     "levels",
                             "flat",         "item_size",    "format_failed", "get_message", "noted",
                             "noted_aside",  "settle_noted", NULL};
    PyObject *handler_dict, *general, *write, *scopes, *scope_of, *flag, *discard, *recursive, *own_record,
        *fault, *reserved, *last_init, *otel_event, *event, *severities, *severity_of, *texts, *span_var,
        *get_current, *span_key, *span_kind, *invalid, *context_type, *record_type, *logging_type, *emitter,
        *rw_type, *clock, *logs_api, *field_order, *enqueue, *dumps, *enc_reserved, *tail_of, *levels,
        *format_failed, *get_message, *noted, *noted_aside, *settle_noted;
    Py_ssize_t n_init, max_count;
    int limited, tuple_context, code, flat, item_size;
    if (self->general != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Fast is set up once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "$O!OOO!OO!OOOOO!nUUUO!OO!OOOOOO!O!O!OO!OOnppO!pOOO!OO!piOOO!OO", kwlist, &PyDict_Type,
            &handler_dict, &general, &write, &PyDict_Type, &scopes, &scope_of, &PyContextVar_Type, &flag,
            &discard, &recursive, &own_record, &fault, &PyFrozenSet_Type, &reserved, &n_init, &last_init,
            &otel_event, &event, &PyList_Type, &severities, &severity_of, &PyDict_Type, &texts, &span_var,
            &get_current, &span_key, &span_kind, &invalid, &PyType_Type, &context_type, &PyType_Type,
            &record_type, &PyType_Type, &logging_type, &emitter, &PyType_Type, &rw_type, &clock, &logs_api,
            &max_count, &limited, &tuple_context, &PyTuple_Type, &field_order, &code, &enqueue, &dumps,
            &PyFrozenSet_Type, &enc_reserved, &tail_of, &PyList_Type, &levels, &flat, &item_size,
            &format_failed, &get_message, &PyList_Type, &noted, &noted_aside, &settle_noted))
        return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(field_order); i++) {
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(field_order, i))) {
            PyErr_SetString(PyExc_TypeError, "field_order must be a tuple of str");
            return -1;
        }
    }
    if (span_var != Py_None && !PyContextVar_CheckExact(span_var)) {
        PyErr_SetString(PyExc_TypeError, "span_var must be a ContextVar or None");
        return -1;
    }
    if (!PyType_IsSubtype((PyTypeObject *)rw_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "rw_type must be a tuple subclass");
        return -1;
    }
    if (item_size != 5 && item_size != 7) {
        PyErr_SetString(PyExc_ValueError, "item_size must be 5 or 7");
        return -1;
    }
    if (PyList_GET_SIZE(levels) != MAX_LEVEL + 1) {
        PyErr_Format(PyExc_ValueError, "levels must have %d entries", MAX_LEVEL + 1);
        return -1;
    }
    for (Py_ssize_t i = 0; i <= MAX_LEVEL; i++) {
        PyObject *level = PyList_GET_ITEM(levels, i);
        if (!PyTuple_CheckExact(level) || PyTuple_GET_SIZE(level) != 2 ||
            !PyLong_CheckExact(PyTuple_GET_ITEM(level, 0)) || !PyUnicode_CheckExact(PyTuple_GET_ITEM(level, 1)) ||
            !PyUnicode_IS_ASCII(PyTuple_GET_ITEM(level, 1))) {
            PyErr_SetString(PyExc_TypeError, "levels: (severity number, ASCII mt) for each level");
            return -1;
        }
        long number = PyLong_AsLong(PyTuple_GET_ITEM(level, 0));
        if (number == -1 && PyErr_Occurred())
            return -1;
        self->numbers[i] = number;
        self->mts[i] = Py_NewRef(PyTuple_GET_ITEM(level, 1));
    }
    /* Interned, so that a key of the record's dict is the encoder's name by identity. */
    Py_INCREF(otel_event);
    PyUnicode_InternInPlace(&otel_event);
    Py_INCREF(event);
    PyUnicode_InternInPlace(&event);
    self->otel_event = otel_event;
    self->event = event;
    self->handler_dict = Py_NewRef(handler_dict);
    self->write = Py_NewRef(write);
    self->scopes = Py_NewRef(scopes);
    self->scope_of = Py_NewRef(scope_of);
    self->flag = Py_NewRef(flag);
    self->discard = Py_NewRef(discard);
    self->recursive = Py_NewRef(recursive);
    self->own_record = Py_NewRef(own_record);
    self->fault = Py_NewRef(fault);
    self->format_failed = Py_NewRef(format_failed);
    self->reserved = Py_NewRef(reserved);
    self->severities = Py_NewRef(severities);
    self->severity_of = Py_NewRef(severity_of);
    self->texts = Py_NewRef(texts);
    self->span_var = Py_NewRef(span_var);
    self->get_current = Py_NewRef(get_current);
    self->span_key = Py_NewRef(span_key);
    self->span_kind = Py_NewRef(span_kind);
    self->span_kinds = PyDict_New();
    if (self->span_kinds == NULL)
        return -1;
    self->invalid = Py_NewRef(invalid);
    self->context_type = Py_NewRef(context_type);
    self->record_type = Py_NewRef(record_type);
    /* its keys interned: compared by identity with the names above */
    self->field_order = PyTuple_New(PyTuple_GET_SIZE(field_order));
    if (self->field_order == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(field_order); i++) {
        PyObject *key = Py_NewRef(PyTuple_GET_ITEM(field_order, i));
        PyUnicode_InternInPlace(&key);
        PyTuple_SET_ITEM(self->field_order, i, key);
    }
    self->logging_type = Py_NewRef(logging_type);
    if (get_message != Py_None && !PyFunction_Check(get_message)) {
        PyErr_SetString(PyExc_TypeError, "get_message must be a function or None");
        return -1;
    }
    self->get_message = Py_NewRef(get_message);
    self->noted = Py_NewRef(noted);
    self->noted_aside = Py_NewRef(noted_aside);
    self->settle_noted = Py_NewRef(settle_noted);
    self->get_message_code = get_message == Py_None ? NULL : Py_NewRef(PyFunction_GET_CODE(get_message));
    self->get_message_tag = 0;
    if (find_init_keys(self, n_init, last_init) < 0)
        return -1;
    self->emitter = Py_NewRef(emitter);
    self->rw_type = Py_NewRef(rw_type);
    self->clock = Py_NewRef(clock);
    self->logs_api = Py_NewRef(logs_api);
    self->enqueue = Py_NewRef(enqueue);
    self->dumps = Py_NewRef(dumps);
    self->enc_reserved = Py_NewRef(enc_reserved);
    if (filter_fill(&self->reserved_filter, reserved) < 0 || filter_fill(&self->enc_reserved_filter, enc_reserved) < 0)
        return -1;
    self->tail_of = Py_NewRef(tail_of);
    self->max_count = max_count;
    self->limited = limited;
    self->code = code;
    self->tuple_context = tuple_context;
    self->flat = flat;
    self->item_size = item_size;
    self->general = Py_NewRef(general); /* last: set means set up */
    return 0;
}

#define FAST_FIELDS(X)                                                                                       \
    X(handler_dict) X(general) X(write) X(scopes) X(scope_of) X(flag) X(discard) X(recursive) X(own_record) \
        X(fault) X(format_failed) X(reserved) X(otel_event) X(event) X(severities)            \
            X(severity_of) X(texts)                                                                         \
            X(span_var) X(get_current) X(span_key) X(span_kind) X(span_kinds) X(invalid) X(context_type)    \
                X(record_type) X(field_order) X(logging_type) X(get_message) X(get_message_code) X(noted) X(noted_aside) X(settle_noted) X(emitter) X(rw_type) X(clock) X(logs_api)    \
                    X(enqueue) X(dumps) X(enc_reserved) X(tail_of) X(span_id_key) X(span_id_hex)            \
                        X(trace_id_key) X(trace_id_hex)

static int
Fast_traverse(Fast *self, visitproc visit, void *arg)
{
#define VISIT(name) Py_VISIT(self->name);
    FAST_FIELDS(VISIT)
#undef VISIT
    LAST_TAIL_VISIT(self->last);
    Py_VISIT(self->logger_class.type);
    Py_VISIT(self->config_class.type);
    return 0;
}

static int
Fast_clear(Fast *self)
{
#define CLEAR(name) Py_CLEAR(self->name);
    FAST_FIELDS(CLEAR)
#undef CLEAR
    LAST_TAIL_CLEAR(self->last);
    Py_CLEAR(self->logger_class.type);
    Py_CLEAR(self->config_class.type);
    for (Py_ssize_t i = 0; i < self->n_init_keys; i++)
        Py_CLEAR(self->init_keys[i]);
    self->n_init_keys = 0;
    return 0;
}

static void
Fast_dealloc(Fast *self)
{
    PyObject_GC_UnTrack(self);
    Fast_clear(self);
    for (int i = 0; i <= MAX_LEVEL; i++)
        Py_CLEAR(self->mts[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Fast_methods[] = {
    {"handle", (PyCFunction)Fast_handle, METH_O,
     "handle(record): LogxpyLoggingHandler.handle for the common case; the rest to the Python code."},
    {"encode", (PyCFunction)Fast_encode, METH_VARARGS,
     "encode(record, scope, resource, observed): the item handle would queue, or None (for the tests)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FastType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "logxpy_otel._logging_speedups.Fast",
    .tp_basicsize = sizeof(Fast),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The common case of LogxpyLoggingHandler.handle in C.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Fast_init,
    .tp_dealloc = (destructor)Fast_dealloc,
    .tp_traverse = (traverseproc)Fast_traverse,
    .tp_clear = (inquiry)Fast_clear,
    .tp_methods = Fast_methods,
};

static struct PyModuleDef logging_speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "logxpy_otel._logging_speedups",
    .m_doc = "The common case of LogxpyLoggingHandler.handle in C (optional).",
    .m_size = -1,
};

static int
intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL;
}

PyMODINIT_FUNC
PyInit__logging_speedups(void)
{
    if (intern(&k_timestamp, "timestamp") || intern(&k_observed, "observed_timestamp") ||
        intern(&k_trace_id, "trace_id") || intern(&k_span_id, "span_id") || intern(&k_trace_flags, "trace_flags") ||
        intern(&k_severity_text, "severity_text") || intern(&k_severity_number, "severity_number") ||
        intern(&k_body, "body") || intern(&k_attributes, "attributes") || intern(&k_event_name, "event_name") ||
        intern(&f_name, "name") || intern(&f_msg, "msg") || intern(&f_args, "args") ||
        intern(&f_levelno, "levelno") || intern(&f_levelname, "levelname") || intern(&f_created, "created") ||
        intern(&f_exc_info, "exc_info") || intern(&h_filters, "filters") || intern(&h_formatter, "formatter") ||
        intern(&a_logger_config, "_logger_config") || intern(&a_is_enabled, "is_enabled") ||
        intern(&a_resource, "_resource") || intern(&a_global, "_LOGGER_PROVIDER") ||
        intern(&m_get_span_context, "get_span_context") || intern(&m_get_message, "getMessage") || intern(&a_trace_id, "trace_id") ||
        intern(&a_span_id, "span_id") || intern(&a_trace_flags, "trace_flags") || intern(&a_context, "_context") ||
        cjson_init() < 0 ||
        intern(&k_code_file, "code.file.path") || intern(&k_code_function, "code.function.name") ||
        intern(&k_code_line, "code.line.number") || intern(&f_pathname, "pathname") ||
        intern(&f_func_name, "funcName") || intern(&f_lineno, "lineno") || intern(&a_get, "get"))
        return NULL;
    dict_get = PyObject_GetAttr((PyObject *)&PyDict_Type, a_get);
    if (dict_get == NULL)
        return NULL;
    empty_tuple = PyTuple_New(0);
    if (empty_tuple == NULL || PyType_Ready(&FastType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&logging_speedups_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Fast", (PyObject *)&FastType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
