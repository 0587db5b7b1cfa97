/* A session recording's per-read and per-statement work in C: see shared/recording/tape.py, which
   holds the pure-Python twin of this type (TapePy) and the documentation of its contract. Both are
   held to the same output by tests/unit/recording/test_tape.py. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define HEADER_SIZE 22 /* EVENT_HEADER "!QqBBI": seq, ts_ns, direction, kind, payload length */
#define KIND_WIRE 0
#define DIR_DECISION 2

typedef struct {
    PyObject_HEAD
    char *buf;                 /* pending events, encoded */
    Py_ssize_t len, cap;
    Py_ssize_t chunk_size;
    unsigned long long next_seq, first_seq;
    long long first_ts;
    unsigned long long bytes_agent, bytes_proxy, statements;
    char open;
    PyObject *clock;           /* callable returning ns since the epoch, or None: CLOCK_REALTIME */
    PyObject *on_full;         /* called by agent()/proxy() once pending reaches chunk_size, or None */
    PyObject *prefix;          /* bytes: the line between the time and the statement, or NULL */
    PyObject *sink;            /* callable(date, line) */
    PyObject *fallback;        /* callable(time_ns, text, kind, decision, rows, duration_ns, error_code) */
    Py_ssize_t limit;          /* statement text kept per line, in UTF-8 bytes */
    long long stamp_second;    /* the second stamp and date were made for */
    char stamp[80];            /* {"time":"YYYY-MM-DDTHH:MM:SS. */
    PyObject *date;            /* str YYYY-MM-DD of stamp_second */
} Tape;

static int
now_ns(Tape *self, long long *out)
{
    if (self->clock == Py_None) {
        struct timespec ts;
        if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        *out = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        return 0;
    }
    PyObject *r = PyObject_CallNoArgs(self->clock);
    if (r == NULL)
        return -1;
    long long v = PyLong_AsLongLong(r);
    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

static int
reserve(Tape *self, Py_ssize_t extra)
{
    if (self->len + extra <= self->cap)
        return 0;
    Py_ssize_t cap = self->cap ? self->cap : 4096;
    while (cap < self->len + extra) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    char *buf = PyMem_Realloc(self->buf, cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->buf = buf;
    self->cap = cap;
    return 0;
}

static void
put_be(char *p, unsigned long long v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

/* One event: header + payload at the end of the pending buffer. */
static int
add_event(Tape *self, long long ts, int direction, int kind, const char *data, Py_ssize_t size)
{
    if ((unsigned long long)size > 0xffffffffULL) {
        PyErr_Format(PyExc_ValueError, "event %llu: field out of range: payload of %zd bytes", self->next_seq, size);
        return -1;
    }
    if (reserve(self, HEADER_SIZE + size) < 0)
        return -1;
    if (self->len == 0) {
        self->first_seq = self->next_seq;
        self->first_ts = ts;
    }
    char *p = self->buf + self->len;
    put_be(p, self->next_seq, 8);
    put_be(p + 8, (unsigned long long)ts, 8);
    p[16] = (char)direction;
    p[17] = (char)kind;
    put_be(p + 18, (unsigned long long)size, 4);
    memcpy(p + HEADER_SIZE, data, size);
    self->len += HEADER_SIZE + size;
    self->next_seq++;
    if (direction == 0)
        self->bytes_agent += size;
    else if (direction == 1)
        self->bytes_proxy += size;
    return 0;
}

static int
wire_now(Tape *self, int direction, PyObject *data)
{
    Py_buffer view;
    long long ts;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return -1;
    int rc = -1;
    if (now_ns(self, &ts) == 0)
        rc = add_event(self, ts, direction, KIND_WIRE, view.buf, view.len);
    PyBuffer_Release(&view);
    return rc;
}

static PyObject *
Tape_wire(Tape *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "wire() takes 2 arguments (direction, data)");
        return NULL;
    }
    long direction = PyLong_AsLong(args[0]);
    if (direction == -1 && PyErr_Occurred())
        return NULL;
    if (direction != 0 && direction != 1) {
        PyErr_SetString(PyExc_ValueError, "wire bytes need a wire direction");
        return NULL;
    }
    if (wire_now(self, (int)direction, args[1]) < 0)
        return NULL;
    return PyBool_FromLong(self->len >= self->chunk_size);
}

static PyObject *
relay(Tape *self, int direction, PyObject *data)
{
    if (self->open && PyObject_Length(data) > 0) {
        if (wire_now(self, direction, data) < 0)
            return NULL;
        if (self->len >= self->chunk_size && self->on_full != Py_None) {
            PyObject *r = PyObject_CallNoArgs(self->on_full);
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
        }
    }
    else if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Tape_agent(Tape *self, PyObject *data)
{
    return relay(self, 0, data);
}

static PyObject *
Tape_proxy(Tape *self, PyObject *data)
{
    return relay(self, 1, data);
}

static PyObject *
Tape_append(Tape *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "append() takes 4 arguments (direction, kind, payload, ts_ns)");
        return NULL;
    }
    long direction = PyLong_AsLong(args[0]);
    long kind = PyLong_AsLong(args[1]);
    if ((direction == -1 || kind == -1) && PyErr_Occurred())
        return NULL;
    if (direction < 0 || direction > 255 || kind < 0 || kind > 255) {
        PyErr_Format(PyExc_ValueError, "event %llu: field out of range: direction %ld, kind %ld", self->next_seq,
                     direction, kind);
        return NULL;
    }
    long long ts;
    if (args[3] == Py_None) {
        if (now_ns(self, &ts) < 0)
            return NULL;
    }
    else {
        int overflow;
        ts = PyLong_AsLongLongAndOverflow(args[3], &overflow);
        if (ts == -1 && PyErr_Occurred())
            return NULL;
        if (overflow) {
            PyErr_Format(PyExc_ValueError, "event %llu: field out of range: timestamp", self->next_seq);
            return NULL;
        }
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[2], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int rc = add_event(self, ts, (int)direction, (int)kind, view.buf, view.len);
    PyBuffer_Release(&view);
    if (rc < 0)
        return NULL;
    return PyBool_FromLong(self->len >= self->chunk_size);
}

static PyObject *
Tape_count(Tape *self, PyObject *n)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(n);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    self->statements += v;
    Py_RETURN_NONE;
}

static PyObject *
Tape_take(Tape *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer head = {0};
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "take() takes at most 1 argument (head)");
        return NULL;
    }
    if (nargs == 1 && PyObject_GetBuffer(args[0], &head, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, head.len + self->len);
    if (out != NULL) {
        char *p = PyBytes_AS_STRING(out);
        if (head.len)
            memcpy(p, head.buf, head.len);
        if (self->len)
            memcpy(p + head.len, self->buf, self->len);
        self->len = 0;
        if (self->cap > (64 << 10)) { /* a busy session's buffer goes back; an idle one keeps none */
            PyMem_Free(self->buf);
            self->buf = NULL;
            self->cap = 0;
        }
    }
    if (nargs == 1)
        PyBuffer_Release(&head);
    return out;
}

static PyObject *
Tape_lines(Tape *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "lines() takes 4 arguments (prefix, limit, sink, fallback)");
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "prefix must be bytes");
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[1]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    if (!PyCallable_Check(args[2]) || !PyCallable_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "sink and fallback must be callable");
        return NULL;
    }
    Py_INCREF(args[0]);
    Py_XSETREF(self->prefix, args[0]);
    Py_INCREF(args[2]);
    Py_XSETREF(self->sink, args[2]);
    Py_INCREF(args[3]);
    Py_XSETREF(self->fallback, args[3]);
    self->limit = limit;
    Py_RETURN_NONE;
}

/* ---- statement lines: the ASCII case here, everything else through ``fallback`` ---- */

static const char HEX[] = "0123456789abcdef";

/* json.dumps(s, ensure_ascii=False) for an ASCII str: the escapes of CPython's _json module. */
static char *
put_json_ascii(char *p, const char *s, Py_ssize_t n)
{
    *p++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': *p++ = '\\'; *p++ = '"'; break;
        case '\\': *p++ = '\\'; *p++ = '\\'; break;
        case '\b': *p++ = '\\'; *p++ = 'b'; break;
        case '\f': *p++ = '\\'; *p++ = 'f'; break;
        case '\n': *p++ = '\\'; *p++ = 'n'; break;
        case '\r': *p++ = '\\'; *p++ = 'r'; break;
        case '\t': *p++ = '\\'; *p++ = 't'; break;
        default:
            if (c < 0x20) {
                memcpy(p, "\\u00", 4);
                p[4] = HEX[c >> 4];
                p[5] = HEX[c & 15];
                p += 6;
            }
            else
                *p++ = (char)c;
        }
    }
    *p++ = '"';
    return p;
}

static char *
put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static char *
put_ull(char *p, unsigned long long v, int width)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width)
        tmp[n++] = '0';
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* An optional field: 1 = null, 0 = an ASCII str (its data in *s, *n), -1 = anything else. */
static int
ascii_or_null(PyObject *o, const char **s, Py_ssize_t *n)
{
    if (o == Py_None)
        return 1;
    if (!PyUnicode_Check(o) || !PyUnicode_IS_ASCII(o))
        return -1;
    *s = (const char *)PyUnicode_DATA(o);
    *n = PyUnicode_GET_LENGTH(o);
    return 0;
}

/* An optional int field: 1 = null, 0 = fits a long long (in *v), -1 = anything else. */
static int
int_or_null(PyObject *o, long long *v)
{
    if (o == Py_None)
        return 1;
    if (!PyLong_Check(o))
        return -1;
    int overflow;
    *v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (*v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return overflow || *v == LLONG_MIN ? -1 : 0;
}

static int
make_stamp(Tape *self, long long second)
{
    time_t t = (time_t)second;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1000 || tm.tm_year + 1900 > 9999)
        return 0;
    char date[40];
    snprintf(date, sizeof date, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    PyObject *d = PyUnicode_FromString(date);
    if (d == NULL)
        return -1;
    Py_XSETREF(self->date, d);
    snprintf(self->stamp, sizeof self->stamp, "{\"time\":\"%sT%02d:%02d:%02d.", date, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
    self->stamp_second = second;
    return 1;
}

/* The line ``StatementLines.line`` makes, or NULL with no error set when this case is the fallback's. */
static PyObject *
fast_line(Tape *self, long long time_ns, PyObject *const *f)
{
    const char *text, *kind = NULL, *decision = NULL, *code = NULL;
    Py_ssize_t text_n, kind_n = 0, decision_n = 0, code_n = 0;
    long long rows = 0, duration = 0;
    if (time_ns < 0 || ascii_or_null(f[0], &text, &text_n) != 0 || text_n > self->limit)
        return NULL;
    int kind_null = ascii_or_null(f[1], &kind, &kind_n);
    int decision_null = ascii_or_null(f[2], &decision, &decision_n);
    int rows_null = int_or_null(f[3], &rows);
    int duration_null = int_or_null(f[4], &duration);
    int code_null = ascii_or_null(f[5], &code, &code_n);
    if (kind_null < 0 || decision_null < 0 || rows_null < 0 || duration_null < 0 || code_null < 0)
        return NULL;
    long long second = time_ns / 1000000000LL;
    if (second != self->stamp_second || self->date == NULL) {
        int made = make_stamp(self, second);
        if (made <= 0)
            return NULL; /* an error (set) or a year the fast path does not write (fallback) */
    }
    Py_ssize_t size = 64 + PyBytes_GET_SIZE(self->prefix) + 6 * (text_n + kind_n + decision_n + code_n) + 200;
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL)
        return NULL;
    char *start = PyBytes_AS_STRING(out), *p = start;
    p = put_str(p, self->stamp);
    p = put_ull(p, (unsigned long long)(time_ns / 1000 % 1000000), 6);
    memcpy(p, PyBytes_AS_STRING(self->prefix), PyBytes_GET_SIZE(self->prefix));
    p += PyBytes_GET_SIZE(self->prefix);
    p = put_json_ascii(p, text, text_n);
    p = put_str(p, ",\"statement_truncated\":false,\"statement_kind\":");
    p = kind_null ? put_str(p, "null") : put_json_ascii(p, kind, kind_n);
    p = put_str(p, ",\"decision\":");
    p = decision_null ? put_str(p, "null") : put_json_ascii(p, decision, decision_n);
    p = put_str(p, ",\"rows\":");
    if (rows_null)
        p = put_str(p, "null");
    else {
        if (rows < 0)
            *p++ = '-';
        p = put_ull(p, rows < 0 ? (unsigned long long)(-rows) : (unsigned long long)rows, 1);
    }
    p = put_str(p, ",\"duration_ms\":");
    if (duration_null)
        p = put_str(p, "null");
    else {
        unsigned long long magnitude = duration < 0 ? (unsigned long long)(-duration) : (unsigned long long)duration;
        if (duration < 0)
            *p++ = '-';
        p = put_ull(p, magnitude / 1000000, 1);
        *p++ = '.';
        p = put_ull(p, magnitude % 1000000, 6);
    }
    p = put_str(p, ",\"error_code\":");
    p = code_null ? put_str(p, "null") : put_json_ascii(p, code, code_n);
    p = put_str(p, ",\"reason\":null}\n");
    if (_PyBytes_Resize(&out, p - start) < 0)
        return NULL;
    return out;
}

static const char *STATEMENT_KW[] = {"text", "kind", "decision", "rows", "duration_ns", "error_code", NULL};

static PyObject *
Tape_statement(Tape *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *f[6] = {NULL, Py_None, NULL, Py_None, Py_None, Py_None};
    PyObject *allow = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 6) {
        PyErr_SetString(PyExc_TypeError, "statement() takes at most 6 arguments");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        f[i] = args[i];
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        int found = 0;
        for (int i = 0; STATEMENT_KW[i]; i++) {
            if (PyUnicode_CompareWithASCIIString(name, STATEMENT_KW[i]) == 0) {
                if (i < nargs) {
                    PyErr_Format(PyExc_TypeError, "statement() got multiple values for argument '%s'", STATEMENT_KW[i]);
                    return NULL;
                }
                f[i] = args[nargs + k];
                found = 1;
                break;
            }
        }
        if (!found) {
            PyErr_Format(PyExc_TypeError, "statement() got an unexpected keyword argument '%U'", name);
            return NULL;
        }
    }
    if (f[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, "statement() missing required argument 'text'");
        return NULL;
    }
    if (!self->open)
        Py_RETURN_NONE;
    self->statements++;
    if (self->sink == NULL)
        Py_RETURN_NONE;
    if (f[2] == NULL) {
        allow = PyUnicode_FromString("allow");
        if (allow == NULL)
            return NULL;
        f[2] = allow;
    }
    long long time_ns;
    PyObject *line = NULL, *r = NULL;
    if (now_ns(self, &time_ns) < 0)
        goto done;
    line = fast_line(self, time_ns, f);
    if (line != NULL) {
        PyObject *call[2] = {self->date, line};
        r = PyObject_Vectorcall(self->sink, call, 2, NULL);
    }
    else if (!PyErr_Occurred()) {
        PyObject *when = PyLong_FromLongLong(time_ns);
        if (when == NULL)
            goto done;
        PyObject *call[7] = {when, f[0], f[1], f[2], f[3], f[4], f[5]};
        PyObject *made = PyObject_Vectorcall(self->fallback, call, 7, NULL);
        Py_DECREF(when);
        if (made == NULL)
            goto done;
        if (!PyTuple_Check(made) || PyTuple_GET_SIZE(made) != 2) {
            Py_DECREF(made);
            PyErr_SetString(PyExc_TypeError, "fallback must return (date, line)");
            goto done;
        }
        PyObject *pair[2] = {PyTuple_GET_ITEM(made, 0), PyTuple_GET_ITEM(made, 1)};
        r = PyObject_Vectorcall(self->sink, pair, 2, NULL);
        Py_DECREF(made);
    }
done:
    Py_XDECREF(allow);
    Py_XDECREF(line);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* ---- the type ---- */

static int
Tape_init(Tape *self, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"chunk_size", "clock", NULL};
    Py_ssize_t chunk_size;
    PyObject *clock = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n|O", kw, &chunk_size, &clock))
        return -1;
    if (chunk_size <= 0) {
        PyErr_SetString(PyExc_ValueError, "chunk_size must be positive");
        return -1;
    }
    if (clock != Py_None && !PyCallable_Check(clock)) {
        PyErr_SetString(PyExc_TypeError, "clock must be callable or None");
        return -1;
    }
    self->chunk_size = chunk_size;
    Py_INCREF(clock);
    Py_XSETREF(self->clock, clock);
    Py_INCREF(Py_None);
    Py_XSETREF(self->on_full, Py_None);
    self->open = 1;
    self->stamp_second = -1;
    return 0;
}

static int
Tape_traverse(Tape *self, visitproc visit, void *arg)
{
    Py_VISIT(self->clock);
    Py_VISIT(self->on_full);
    Py_VISIT(self->sink);
    Py_VISIT(self->fallback);
    return 0;
}

static int
Tape_clear(Tape *self)
{
    Py_CLEAR(self->clock);
    Py_CLEAR(self->on_full);
    Py_CLEAR(self->sink);
    Py_CLEAR(self->fallback);
    return 0;
}

static void
Tape_dealloc(Tape *self)
{
    PyObject_GC_UnTrack(self);
    Tape_clear(self);
    Py_CLEAR(self->prefix);
    Py_CLEAR(self->date);
    PyMem_Free(self->buf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Tape_get_pending_bytes(Tape *self, void *closure)
{
    return PyLong_FromSsize_t(self->len);
}

static PyObject *
Tape_get_on_full(Tape *self, void *closure)
{
    Py_INCREF(self->on_full);
    return self->on_full;
}

static int
Tape_set_on_full(Tape *self, PyObject *value, void *closure)
{
    if (value == NULL || (value != Py_None && !PyCallable_Check(value))) {
        PyErr_SetString(PyExc_TypeError, "on_full must be callable or None");
        return -1;
    }
    Py_INCREF(value);
    Py_XSETREF(self->on_full, value);
    return 0;
}

static PyGetSetDef Tape_getset[] = {
    {"pending_bytes", (getter)Tape_get_pending_bytes, NULL, "encoded size of the pending events", NULL},
    {"on_full", (getter)Tape_get_on_full, (setter)Tape_set_on_full, "called when agent()/proxy() fill a chunk", NULL},
    {NULL},
};

static PyMemberDef Tape_members[] = {
    {"next_seq", T_ULONGLONG, offsetof(Tape, next_seq), READONLY, "sequence number of the next event"},
    {"first_seq", T_ULONGLONG, offsetof(Tape, first_seq), READONLY, "sequence number of the oldest pending event"},
    {"first_ts", T_LONGLONG, offsetof(Tape, first_ts), READONLY, "time (ns) of the oldest pending event"},
    {"bytes_agent", T_ULONGLONG, offsetof(Tape, bytes_agent), READONLY, "wire bytes recorded agent -> proxy"},
    {"bytes_proxy", T_ULONGLONG, offsetof(Tape, bytes_proxy), READONLY, "wire bytes recorded proxy -> agent"},
    {"statements", T_ULONGLONG, offsetof(Tape, statements), READONLY, "statements counted"},
    {"open", T_BOOL, offsetof(Tape, open), 0, "False: agent(), proxy() and statement() ignore their input"},
    {NULL},
};

static PyMethodDef Tape_methods[] = {
    {"wire", (PyCFunction)(void (*)(void))Tape_wire, METH_FASTCALL, NULL},
    {"agent", (PyCFunction)Tape_agent, METH_O, NULL},
    {"proxy", (PyCFunction)Tape_proxy, METH_O, NULL},
    {"append", (PyCFunction)(void (*)(void))Tape_append, METH_FASTCALL, NULL},
    {"count", (PyCFunction)Tape_count, METH_O, NULL},
    {"take", (PyCFunction)(void (*)(void))Tape_take, METH_FASTCALL, NULL},
    {"lines", (PyCFunction)(void (*)(void))Tape_lines, METH_FASTCALL, NULL},
    {"statement", (PyCFunction)(void (*)(void))Tape_statement, METH_FASTCALL | METH_KEYWORDS, NULL},
    {NULL},
};

static PyTypeObject TapeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "shared.recording._tape.Tape",
    .tp_basicsize = sizeof(Tape),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A session's pending events and statement lines (see shared/recording/tape.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Tape_init,
    .tp_dealloc = (destructor)Tape_dealloc,
    .tp_traverse = (traverseproc)Tape_traverse,
    .tp_clear = (inquiry)Tape_clear,
    .tp_methods = Tape_methods,
    .tp_members = Tape_members,
    .tp_getset = Tape_getset,
};

static struct PyModuleDef tape_module = {
    PyModuleDef_HEAD_INIT, "_tape", "A session recording's hot path (twin: shared/recording/tape.py).", -1, NULL,
};

PyMODINIT_FUNC
PyInit__tape(void)
{
    if (PyType_Ready(&TapeType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&tape_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&TapeType);
    if (PyModule_AddObject(m, "Tape", (PyObject *)&TapeType) < 0) {
        Py_DECREF(&TapeType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
