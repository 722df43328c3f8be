/* The common case of LogxpyLoggingHandler.handle in C (optional: the handler works
 * without it; logxpy_otel/logging_handler.py, ``_install_fast_path``).
 *
 * ``Fast.handle(record)`` does what the Python fast path there does, step for step, for
 * a ``logging.LogRecord`` with no exception, no event name, plain attribute values that
 * no limit bites on and a ``str`` message, on a handler with no filter and no formatter:
 * it builds the API ``LogRecord`` the OTel handler would build (its instance dict, as
 * the C encoder reads it) and hands it to the processor's C ``on_emit``
 * (``_speedups.Emitter``). Anything else goes, unchanged, to the Python code it was
 * given: ``general(record)`` (filters, formatter, another record class, a global
 * provider to bind to) or, inside the recursion guard, ``write(record, scope,
 * resource)`` (everything the fast path does not take, and any error before the record
 * was handed over, which the Python path then reports as it does). The equivalence
 * tests (tests/test_logging_handler.py) run it against the OTel path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define MAX_LEVEL 60

static PyObject *k_timestamp, *k_observed, *k_trace_id, *k_span_id, *k_trace_flags, *k_severity_text,
    *k_severity_number, *k_body, *k_attributes, *k_event_name;
static PyObject *f_name, *f_msg, *f_args, *f_levelno, *f_levelname, *f_created, *f_exc_info, *h_filters,
    *h_formatter, *a_logger_config, *a_is_enabled, *a_resource, *a_global, *m_get_span_context,
    *a_trace_id, *a_span_id, *a_trace_flags;
static PyObject *k_code_file, *k_code_function, *k_code_line, *f_pathname, *f_func_name, *f_lineno;
static PyObject *empty_tuple;

typedef struct {
    PyObject_HEAD
    PyObject *handler_dict; /* the handler's __dict__: "filters" and "formatter" per record */
    PyObject *general;      /* general(record): the Python handle */
    PyObject *write;        /* write(record, scope, resource): the Python path, inside the guard */
    PyObject *scopes;       /* dict: logger name -> (scope, live, resource, own, disabled) */
    PyObject *scope_of;     /* scope_of(name) -> that entry, made and cached */
    PyObject *flag;         /* the recursion guard (a ContextVar) */
    PyObject *discard;      /* discard(reason) */
    PyObject *recursive;    /* the reason for a record logged while one is handled */
    PyObject *own_record;   /* own_record(): one of our own diagnostics */
    PyObject *fault;        /* fault(exc): a record lost to an internal error */
    PyObject *reserved;     /* frozenset of the LogRecord fields that are not attributes */
    PyObject *last_init;    /* the last key LogRecord.__init__ sets */
    PyObject *otel_event;   /* "otel.event.name" */
    PyObject *event;        /* "event.name" */
    PyObject *severities;   /* list: levelno 0..MAX_LEVEL -> SeverityNumber */
    PyObject *severity_of;  /* severity_of(levelno) for other levels */
    PyObject *texts;        /* dict: level name -> OTel severity text */
    PyObject *span_var;     /* the API's current-context ContextVar, or None */
    PyObject *get_current;  /* opentelemetry.context.get_current, when span_var is None */
    PyObject *span_key;     /* the context key of the current span */
    PyObject *span_type;    /* opentelemetry.trace.Span (an ABC) */
    PyObject *invalid;      /* INVALID_SPAN_CONTEXT */
    PyObject *context_type; /* SpanContext: a tuple (trace_id, span_id, is_remote, trace_flags, ...) */
    PyObject *record_type;  /* opentelemetry._logs.LogRecord */
    PyObject *field_order;  /* its instance dict's keys, in the order its __init__ sets them */
    PyObject *logging_type; /* logging.LogRecord: the only class taken here */
    PyObject *emitter;      /* the processor's C on_emit, bound: emitter(rw) */
    PyObject *rw_type;      /* a tuple subclass (log_record, resource, instrumentation_scope) */
    PyObject *clock;        /* time.time_ns */
    PyObject *logs_api;     /* the API module holding the global provider, when unbound, else None */
    PyObject *last_span_type;
    Py_ssize_t n_init;
    Py_ssize_t max_count; /* -1: no limit */
    int limited;          /* a value length limit is set */
    int code;             /* log_code_attributes */
    int tuple_context;    /* SpanContext keeps trace_id, span_id, trace_flags at 0, 1, 3 */
} Fast;

static PyTypeObject FastType;

/* Steps of handle: 0 went on, 1 hands the record to write() (no error set). -1 is an error. */
enum { GO = 0, WRITE = 1, ERROR = -1 };

/* The fields of ``record`` after its first ``n_init`` (LogRecord.__init__'s, when the key
 * at n_init - 1 is the last of them), or all its fields otherwise, minus the reserved
 * ones, into ``*out`` (NULL when there are none): or WRITE when one is not plain. */
static int
take_attributes(Fast *self, PyObject *fields, PyObject **out)
{
    Py_ssize_t pos = 0, i = 0;
    PyObject *k, *v, *attributes = NULL;
    Py_ssize_t otel_len = PyUnicode_GET_LENGTH(self->otel_event), event_len = PyUnicode_GET_LENGTH(self->event);
    int standard = self->n_init > 0 && PyDict_GET_SIZE(fields) >= self->n_init;
    while (PyDict_Next(fields, &pos, &k, &v)) {
        if (standard && i < self->n_init) {
            /* LogRecord.__init__'s fields come first: skipped, once the last of them is
             * where it should be; else the whole dict is looked at, from its start. */
            if (++i < self->n_init)
                continue;
            if (k != self->last_init) {
                int eq = PyUnicode_Check(k) ? PyUnicode_Compare(k, self->last_init) : 1;
                if (eq == -1 && PyErr_Occurred())
                    goto error;
                if (eq != 0) {
                    standard = 0;
                    pos = 0;
                }
            }
            continue;
        }
        int reserved = PySet_Contains(self->reserved, k);
        if (reserved < 0)
            goto error;
        if (reserved)
            continue;
        if (!PyUnicode_CheckExact(k))
            goto write; /* the SDK makes a str of it, or drops it */
        Py_ssize_t len = PyUnicode_GET_LENGTH(k);
        if (len == 0)
            goto write; /* the SDK drops it, and counts it */
        if ((len == otel_len && PyUnicode_Compare(k, self->otel_event) == 0) ||
            (len == event_len && PyUnicode_Compare(k, self->event) == 0))
            goto write; /* an event name, promoted */
        if (!(PyUnicode_CheckExact(v) || PyLong_CheckExact(v) || PyFloat_CheckExact(v) || PyBool_Check(v) ||
              v == Py_None))
            goto write; /* the SDK cleans it (a list to a tuple, an object to its str) */
        if (attributes == NULL && (attributes = PyDict_New()) == NULL)
            goto error;
        if (PyDict_SetItem(attributes, k, v) < 0)
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

/* The current span's context (new reference), INVALID_SPAN_CONTEXT when there is none. */
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
    if (PyDict_Check(context)) {
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
    if ((PyObject *)Py_TYPE(span) != self->last_span_type) {
        int is_span = PyObject_IsInstance(span, self->span_type);
        if (is_span <= 0) {
            Py_DECREF(span);
            return is_span < 0 ? NULL : Py_NewRef(self->invalid);
        }
        Py_XSETREF(self->last_span_type, Py_NewRef((PyObject *)Py_TYPE(span)));
    }
    result = PyObject_CallMethodNoArgs(span, m_get_span_context);
    Py_DECREF(span);
    return result;
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

/* The line's record for the encoder: an API LogRecord with the fields it reads. */
static PyObject *
line_record(Fast *self, PyObject *fields, PyObject *attributes, PyObject *body, PyObject *severity,
            PyObject *text)
{
    PyObject *record = NULL, *dict = NULL, *timestamp = NULL, *observed = NULL, *context = NULL,
             *trace_id = NULL, *span_id = NULL, *flags = NULL, *created;
    created = PyDict_GetItemWithError(fields, f_created); /* borrowed */
    if (created == NULL || !PyFloat_CheckExact(created))
        goto done; /* (or an error) the Python path */
    /* int(record.created * 1e9), as the OTel handler computes it */
    timestamp = PyLong_FromDouble(PyFloat_AS_DOUBLE(created) * 1e9);
    if (timestamp == NULL)
        goto done;
    observed = PyObject_CallNoArgs(self->clock);
    if (observed == NULL)
        goto done;
    context = current_span_context(self);
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
message(PyObject *fields)
{
    PyObject *msg = PyDict_GetItemWithError(fields, f_msg);     /* borrowed */
    PyObject *args = PyDict_GetItemWithError(fields, f_args);   /* borrowed */
    if (msg == NULL || args == NULL || !PyUnicode_CheckExact(msg))
        return NULL;
    int truth = PyObject_IsTrue(args);
    if (truth < 0)
        return NULL;
    if (!truth)
        return Py_NewRef(msg);
    return PyNumber_Remainder(msg, args);
}

/* What handle does once inside the guard, for an entry that is written. */
static int
fast_write(Fast *self, PyObject *fields, PyObject *scope, PyObject *resource)
{
    PyObject *attributes = NULL, *body = NULL, *severity = NULL, *text, *levelno, *levelname, *record = NULL,
             *rw = NULL, *done = NULL, *exc_info;
    int rc = ERROR;
    exc_info = PyDict_GetItemWithError(fields, f_exc_info); /* borrowed */
    if (exc_info == NULL)
        return PyErr_Occurred() ? ERROR : WRITE;
    int truth = PyObject_IsTrue(exc_info);
    if (truth != 0)
        return truth < 0 ? ERROR : WRITE;
    rc = take_attributes(self, fields, &attributes);
    if (rc != GO)
        return rc;
    rc = ERROR;
    if (self->code) {
        /* code.file.path, code.function.name, code.line.number, after the extras */
        PyObject *keys[3] = {k_code_file, k_code_function, k_code_line};
        PyObject *names[3] = {f_pathname, f_func_name, f_lineno};
        if (attributes == NULL && (attributes = PyDict_New()) == NULL)
            goto out;
        for (int i = 0; i < 3; i++) {
            PyObject *v = PyDict_GetItemWithError(fields, names[i]); /* borrowed */
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
    body = message(fields);
    if (body == NULL) {
        rc = PyErr_Occurred() ? ERROR : WRITE;
        goto out;
    }
    levelno = PyDict_GetItemWithError(fields, f_levelno);     /* borrowed */
    levelname = PyDict_GetItemWithError(fields, f_levelname); /* borrowed */
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
    record = line_record(self, fields, attributes, body, severity, text);
    if (record == NULL) {
        rc = PyErr_Occurred() ? ERROR : WRITE;
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
    Py_XDECREF(body);
    Py_XDECREF(severity);
    Py_XDECREF(record);
    Py_XDECREF(rw);
    Py_XDECREF(done);
    return rc;
}

/* The raised exception, taken out of the error indicator (PyErr_GetRaisedException on
 * 3.12+; from PyErr_Fetch before). An error must be set. */
static PyObject *
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

/* Raise ``exc`` (from take_error) again; steals the reference. */
static void
put_error(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

/* Call fault(exc) for the error set; an error that is not an Exception goes on. */
static int
report_fault(Fast *self)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception))
        return -1;
    PyObject *value = take_error();
    PyObject *counted = PyObject_CallOneArg(self->fault, value);
    Py_DECREF(value);
    if (counted == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return -1;
        PyErr_Clear();
    }
    Py_XDECREF(counted);
    return 0;
}

static PyObject *
Fast_handle(Fast *self, PyObject *record)
{
    PyObject *value, *fields = NULL, *entry = NULL, *token = NULL, *resource = NULL, *result = NULL;
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
        value = PyObject_GetAttr(self->logs_api, a_global);
        if (value == NULL)
            return NULL;
        Py_DECREF(value);
        if (value != Py_None)
            return PyObject_CallOneArg(self->general, record);
    }

    if (PyContextVar_Get(self->flag, NULL, &value) < 0)
        return NULL;
    rc = value != NULL ? PyObject_IsTrue(value) : 0;
    Py_XDECREF(value);
    if (rc != 0) {
        if (rc < 0)
            return NULL;
        value = PyObject_CallOneArg(self->discard, self->recursive); /* (it never raises) */
        if (value == NULL)
            return NULL;
        Py_DECREF(value);
        return Py_NewRef(Py_True);
    }
    token = PyContextVar_Set(self->flag, Py_True);
    if (token == NULL)
        return NULL;

    fields = PyObject_GenericGetDict(record, NULL);
    if (fields == NULL || !PyDict_CheckExact(fields))
        goto fault;
    value = PyDict_GetItemWithError(fields, f_name); /* borrowed */
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
        PyObject *config = PyObject_GetAttr(live, a_logger_config);
        if (config == NULL)
            goto fault;
        value = PyObject_GetAttr(config, a_is_enabled);
        Py_DECREF(config);
        if (value == NULL)
            goto fault;
        rc = PyObject_IsTrue(value);
        Py_DECREF(value);
        if (rc <= 0) {
            if (rc < 0)
                goto fault;
            goto out; /* the provider's logger configurator turned this logger off */
        }
        if (resource == Py_None) {
            Py_SETREF(resource, PyObject_GetAttr(live, a_resource));
            if (resource == NULL)
                goto fault;
        }
    }
    rc = fast_write(self, fields, scope, resource);
    if (rc == GO)
        goto out;
    if (rc == -2) {
        failed = 1; /* the emitter raised what is not an Exception */
        goto out;
    }
    if (rc == ERROR)
        PyErr_Clear(); /* the Python path will meet it again, and report it as it does */
    value = PyObject_CallFunctionObjArgs(self->write, record, scope, resource, NULL);
    Py_XDECREF(value);
    if (value == NULL)
        goto fault;
    goto out;

fault:
    if (report_fault(self) < 0)
        failed = 1;
out:
    {
        /* The guard is reset whatever happened; an error that goes on is kept aside meanwhile. */
        PyObject *pending = failed && PyErr_Occurred() ? take_error() : NULL;
        if (PyContextVar_Reset(self->flag, token) < 0) {
            if (pending != NULL)
                PyErr_Clear();
            else
                failed = 1;
        }
        if (pending != NULL)
            put_error(pending);
    }
    if (!failed)
        result = Py_NewRef(Py_True);
    Py_XDECREF(token);
    Py_XDECREF(fields);
    Py_XDECREF(entry);
    Py_XDECREF(resource);
    return result;
}

static int
Fast_init(Fast *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"handler_dict", "general",    "write",        "scopes",      "scope_of",
                             "flag",         "discard",    "recursive",    "own_record",  "fault",
                             "reserved",     "n_init",     "last_init",    "otel_event",  "event",
                             "severities",   "severity_of", "texts",       "span_var",    "get_current",
                             "span_key",     "span_type",  "invalid",      "context_type", "record_type",
                             "logging_type", "emitter",    "rw_type",      "clock",       "logs_api",
                             "max_count",    "limited",    "tuple_context", "field_order", "code", NULL};
    PyObject *handler_dict, *general, *write, *scopes, *scope_of, *flag, *discard, *recursive, *own_record,
        *fault, *reserved, *last_init, *otel_event, *event, *severities, *severity_of, *texts, *span_var,
        *get_current, *span_key, *span_type, *invalid, *context_type, *record_type, *logging_type, *emitter,
        *rw_type, *clock, *logs_api, *field_order;
    Py_ssize_t n_init, max_count;
    int limited, tuple_context, code;
    if (self->general != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Fast is set up once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "$O!OOO!OO!OOOOO!nUUUO!OO!OOUOOO!O!O!OO!OOnppO!p", kwlist, &PyDict_Type, &handler_dict,
            &general, &write, &PyDict_Type, &scopes, &scope_of, &PyContextVar_Type, &flag, &discard, &recursive,
            &own_record, &fault, &PyFrozenSet_Type, &reserved, &n_init, &last_init, &otel_event, &event,
            &PyList_Type, &severities, &severity_of, &PyDict_Type, &texts, &span_var, &get_current, &span_key,
            &span_type, &invalid, &PyType_Type, &context_type, &PyType_Type, &record_type, &PyType_Type,
            &logging_type, &emitter, &PyType_Type, &rw_type, &clock, &logs_api, &max_count, &limited,
            &tuple_context, &PyTuple_Type, &field_order, &code))
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
    /* Interned, so that a key of the record's dict is the encoder's name by identity. */
    Py_INCREF(last_init);
    PyUnicode_InternInPlace(&last_init);
    Py_INCREF(otel_event);
    PyUnicode_InternInPlace(&otel_event);
    Py_INCREF(event);
    PyUnicode_InternInPlace(&event);
    self->last_init = last_init;
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
    self->reserved = Py_NewRef(reserved);
    self->severities = Py_NewRef(severities);
    self->severity_of = Py_NewRef(severity_of);
    self->texts = Py_NewRef(texts);
    self->span_var = Py_NewRef(span_var);
    self->get_current = Py_NewRef(get_current);
    self->span_key = Py_NewRef(span_key);
    self->span_type = Py_NewRef(span_type);
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
    self->emitter = Py_NewRef(emitter);
    self->rw_type = Py_NewRef(rw_type);
    self->clock = Py_NewRef(clock);
    self->logs_api = Py_NewRef(logs_api);
    self->n_init = n_init;
    self->max_count = max_count;
    self->limited = limited;
    self->code = code;
    self->tuple_context = tuple_context;
    self->general = Py_NewRef(general); /* last: set means set up */
    return 0;
}

#define FAST_FIELDS(X)                                                                                       \
    X(handler_dict) X(general) X(write) X(scopes) X(scope_of) X(flag) X(discard) X(recursive) X(own_record) \
        X(fault) X(reserved) X(last_init) X(otel_event) X(event) X(severities) X(severity_of) X(texts)      \
            X(span_var) X(get_current) X(span_key) X(span_type) X(invalid) X(context_type) X(record_type)   \
                X(field_order)                                                                          \
                X(logging_type) X(emitter) X(rw_type) X(clock) X(logs_api) X(last_span_type)

static int
Fast_traverse(Fast *self, visitproc visit, void *arg)
{
#define VISIT(name) Py_VISIT(self->name);
    FAST_FIELDS(VISIT)
#undef VISIT
    return 0;
}

static int
Fast_clear(Fast *self)
{
#define CLEAR(name) Py_CLEAR(self->name);
    FAST_FIELDS(CLEAR)
#undef CLEAR
    return 0;
}

static void
Fast_dealloc(Fast *self)
{
    PyObject_GC_UnTrack(self);
    Fast_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Fast_methods[] = {
    {"handle", (PyCFunction)Fast_handle, METH_O,
     "handle(record): LogxpyLoggingHandler.handle for the common case; the rest to the Python code."},
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
        intern(&m_get_span_context, "get_span_context") || intern(&a_trace_id, "trace_id") ||
        intern(&a_span_id, "span_id") || intern(&a_trace_flags, "trace_flags") ||
        intern(&k_code_file, "code.file.path") || intern(&k_code_function, "code.function.name") ||
        intern(&k_code_line, "code.line.number") || intern(&f_pathname, "pathname") ||
        intern(&f_func_name, "funcName") || intern(&f_lineno, "lineno"))
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
