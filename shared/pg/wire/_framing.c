/* The framer's loop in C: see shared/pg/wire/framing.py (Framer.feed, Framer.scan), which holds the
   pure-Python twin of this function and the documentation of its contract. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* scan(data, pos, allowed, limit, small, small_limit, frames, watch)
     -> (end, need, watched, last_watched, error)
   Walks whole messages of ``data`` from ``pos``. ``allowed``/``small``/``watch``: 256-byte tables
   (nonzero = member) or None. Appends (type, body_start, end) to ``frames`` when it is a list.
   error: 0 = none; 1 = type not allowed; 2 = bad length (``end`` is then the offending message). */
static PyObject *
scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "scan() takes 8 arguments");
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "data must be bytes");
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    Py_ssize_t limit = PyLong_AsSsize_t(args[3]);
    Py_ssize_t small_limit = PyLong_AsSsize_t(args[5]);
    if ((pos == -1 || limit == -1 || small_limit == -1) && PyErr_Occurred())
        return NULL;
    const unsigned char *allowed = NULL, *small = NULL, *watch = NULL;
    PyObject *tables[3] = {args[2], args[4], args[7]};
    const unsigned char **out[3] = {&allowed, &small, &watch};
    for (int i = 0; i < 3; i++) {
        if (tables[i] == Py_None)
            continue;
        if (!PyBytes_Check(tables[i]) || PyBytes_GET_SIZE(tables[i]) != 256) {
            PyErr_SetString(PyExc_TypeError, "type tables must be 256 bytes or None");
            return NULL;
        }
        *out[i] = (const unsigned char *)PyBytes_AS_STRING(tables[i]);
    }
    PyObject *frames = args[6];
    if (frames != Py_None && !PyList_CheckExact(frames)) {
        PyErr_SetString(PyExc_TypeError, "frames must be a list or None");
        return NULL;
    }
    Py_ssize_t need = 5, watched = 0, last = -1;
    int error = 0;
    if (pos < 0 || pos > size)
        pos = size;
    while (size - pos >= 5) {
        unsigned char mtype = data[pos];
        int32_t length = (int32_t)(((uint32_t)data[pos + 1] << 24) | ((uint32_t)data[pos + 2] << 16) |
                                   ((uint32_t)data[pos + 3] << 8) | (uint32_t)data[pos + 4]);
        if (allowed != NULL && !allowed[mtype]) {
            error = 1;
            break;
        }
        if (length < 4 || length > limit || (small != NULL && small[mtype] && length > small_limit)) {
            error = 2;
            break;
        }
        Py_ssize_t end = pos + 1 + (Py_ssize_t)length;
        if (end > size) {
            need = end - pos;
            break;
        }
        if (watch != NULL && watch[mtype]) {
            watched++;
            last = pos + 5;
        }
        if (frames != Py_None) {
            PyObject *frame = Py_BuildValue("(inn)", (int)mtype, pos + 5, end);
            if (frame == NULL)
                return NULL;
            int failed = PyList_Append(frames, frame);
            Py_DECREF(frame);
            if (failed)
                return NULL;
        }
        pos = end;
    }
    return Py_BuildValue("(nnnni)", pos, need, watched, last, error);
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL, "Walk whole PostgreSQL messages (see framing.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_framing", NULL, 0, methods};

PyMODINIT_FUNC
PyInit__framing(void)
{
    return PyModule_Create(&module);
}
