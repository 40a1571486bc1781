/* SPDX-License-Identifier: Apache-2.0 */
/*
 * quivermodule.c - the `quiver` Python module: quiver.Client (shared
 * memory, libquiver's qv_*) and quiver.UdpClient (qv_udp_*), with the same
 * methods, over one implementation that calls through a small ops table.
 *
 * Why it is shaped this way:
 *  - Every request is a typed one (qv_infer_tensors / qv_submit_tensors):
 *    libquiver copies each input array's buffer straight into the slot or
 *    datagram and unpacks the answer straight into fresh NumPy arrays; no
 *    Python object is made per element or per row.
 *  - The GIL is released around every call that may wait (connect, lookup,
 *    infer, a waiting poll). libquiver's clients are single-threaded, so a
 *    second Python thread entering the same client while the first waits
 *    gets a RuntimeError instead of corrupting the rings (the `busy` flag
 *    is only touched with the GIL held, so it needs no atomics).
 *  - Model names resolve once per client (a dict of capsules); a
 *    completion saying UNKNOWN_MODEL or BAD_SHAPE drops the cached entry so
 *    the next call looks the model up again (it may have been reloaded).
 *  - infer() on more rows than one request may carry (max_batch, slot or
 *    datagram size) splits them into requests back to back; submit() sends
 *    exactly one request and refuses more rows with ShapeError.
 */
#define QVPY_MAIN
#include "qvpy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "qv_udp_proto.h"

PyObject *qvpy_Error, *qvpy_ShapeError, *qvpy_DtypeError;

/* Status -> exception class; [QV_OK] unused. */
static PyObject *status_exc[QV_STATUS_COUNT];
static PyObject *timeout_exc;

static const struct {
	const char *name;
	int status;
	const char *doc;
} exc_table[] = {
	{ "UnknownModelError", QV_UNKNOWN_MODEL, "No model of that name is served." },
	{ "ShapeError", QV_BAD_SHAPE, "An input's shape (or the inputs given) is not the model's." },
	{ "BadRequestError", QV_BAD_REQUEST, "The server refused the request (e.g. an id outside its table)." },
	{ "DeadlineExceededError", QV_DEADLINE_EXCEEDED, "The request's deadline passed." },
	{ "OverloadedError", QV_OVERLOADED, "The server, or every slot of this client, is busy." },
	{ "UnavailableError", QV_UNAVAILABLE, "quiverd is gone, draining or unreachable." },
	{ "InternalError", QV_INTERNAL, "The server failed, or sent an answer that failed validation." },
};

PyObject *qvpy_exc_for_status(int status)
{
	if (status > 0 && status < QV_STATUS_COUNT && status_exc[status])
		return status_exc[status];
	return qvpy_Error;
}

static PyObject *make_exc(PyObject *cls, int status, int neg_errno, PyObject *msg)
{
	PyObject *e = PyObject_CallOneArg(cls, msg);
	PyObject *st, *en;

	if (!e)
		return NULL;
	st = PyLong_FromLong(status);
	en = PyLong_FromLong(-neg_errno);
	if (!st || !en || PyObject_SetAttrString(e, "status", st) < 0 ||
	    PyObject_SetAttrString(e, "errno", en) < 0)
		Py_CLEAR(e);
	Py_XDECREF(st);
	Py_XDECREF(en);
	return e;
}

PyObject *qvpy_raise(PyObject *cls, int status, int neg_errno, const char *fmt, ...)
{
	va_list ap;
	PyObject *msg, *e;

	va_start(ap, fmt);
	msg = PyUnicode_FromFormatV(fmt, ap);
	va_end(ap);
	if (!msg)
		return NULL;
	e = make_exc(cls, status, neg_errno, msg);
	Py_DECREF(msg);
	if (e) {
		PyErr_SetObject((PyObject *)Py_TYPE(e), e);
		Py_DECREF(e);
	}
	return NULL;
}

PyObject *qvpy_status_error(const struct qvpy_model *m, const struct qv_result *res)
{
	PyObject *msg = PyUnicode_FromFormat("model '%s': %s (version %u)", m->d.name,
					     qv_strerror((int)res->status), res->version);
	PyObject *e;

	if (!msg)
		return NULL;
	e = make_exc(qvpy_exc_for_status((int)res->status), (int)res->status, 0, msg);
	Py_DECREF(msg);
	return e;
}

PyObject *qvpy_raise_errno(const struct qvpy_model *m, int r, const char *call)
{
	const char *name = m ? m->d.name : "";

	switch (r) {
	case -ETIMEDOUT:
		return qvpy_raise(timeout_exc, QV_DEADLINE_EXCEEDED, r,
				  "model '%s': %s: no answer in time", name, call);
	case -EAGAIN:
		return qvpy_raise(status_exc[QV_OVERLOADED], QV_OVERLOADED, r,
				  "model '%s': %s: every request slot is in flight (poll first)",
				  name, call);
	case -EMSGSIZE:
	case -ENOBUFS:
		return qvpy_raise(qvpy_ShapeError, QV_BAD_SHAPE, r,
				  "model '%s': %s: request larger than a slot or datagram", name,
				  call);
	case -ENOENT:
		return qvpy_raise(status_exc[QV_UNKNOWN_MODEL], QV_UNKNOWN_MODEL, r,
				  "model '%s': no such model", name);
	case -EPIPE:
	case -ESHUTDOWN:
	case -ECONNREFUSED:
	case -ECONNRESET:
		return qvpy_raise(status_exc[QV_UNAVAILABLE], QV_UNAVAILABLE, r,
				  "model '%s': %s: quiverd unavailable (%s)", name, call,
				  strerror(-r));
	default:
		return qvpy_raise(qvpy_Error, QV_BAD_REQUEST, r, "model '%s': %s: %s", name, call,
				  strerror(-r));
	}
}

/* ---- the two back ends ---- */

static int shm_lookup(void *c, const char *n, struct qv_model_desc *d) { return qv_model_lookup(c, n, d); }
static int shm_infer(void *c, const struct qv_request *q, const struct qv_tensors *t, uint32_t tmo,
		     struct qv_result *r) { return qv_infer_tensors(c, q, t, tmo, r); }
static int shm_submit(void *c, const struct qv_request *q, const struct qv_tensors *t) { return qv_submit_tensors(c, q, t); }
static int shm_poll(void *c, struct qv_result *r, int max) { return qv_poll(c, r, max); }
static uint32_t shm_inflight(const void *c) { return qv_inflight(c); }
static void shm_close(void *c) { qv_close(c); }

static const struct qvpy_ops shm_ops = {
	"shm", shm_lookup, shm_infer, shm_submit, shm_poll, shm_inflight, shm_close,
};

static int udp_lookup(void *c, const char *n, struct qv_model_desc *d) { return qv_udp_lookup(c, n, d); }
static int udp_infer(void *c, const struct qv_request *q, const struct qv_tensors *t, uint32_t tmo,
		     struct qv_result *r) { return qv_udp_infer_tensors(c, q, t, tmo, r); }
static int udp_submit(void *c, const struct qv_request *q, const struct qv_tensors *t) { return qv_udp_submit_tensors(c, q, t); }
static int udp_poll(void *c, struct qv_result *r, int max) { return qv_udp_poll(c, r, max); }
static uint32_t udp_inflight(const void *c) { return qv_udp_inflight(c); }
static void udp_close(void *c) { qv_udp_close(c); }

static const struct qvpy_ops udp_ops = {
	"udp", udp_lookup, udp_infer, udp_submit, udp_poll, udp_inflight, udp_close,
};

/* ---- client object ---- */

static int enter(qvpy_client *self)
{
	if (!self->c) {
		PyErr_SetString(PyExc_ValueError, "client is closed");
		return -1;
	}
	if (self->busy) {
		PyErr_SetString(PyExc_RuntimeError,
				"client used from two threads at once (open one client per thread)");
		return -1;
	}
	self->busy = 1;
	return 0;
}

static void leave(qvpy_client *self)
{
	self->busy = 0;
}

static void model_free(PyObject *cap)
{
	struct qvpy_model *m = PyCapsule_GetPointer(cap, "quiver.model");

	if (!m)
		return;
	for (uint32_t i = 0; i < QV_MAX_TENSORS_WIRE; i++) {
		Py_XDECREF(m->in_names[i]);
		Py_XDECREF(m->out_names[i]);
	}
	Py_XDECREF(m->name);
	PyMem_Free(m);
}

/* Looks name up over the socket / network and caches it; borrowed pointer. */
static struct qvpy_model *model_lookup(qvpy_client *self, PyObject *name)
{
	struct qv_model_desc d;
	struct qvpy_model *m;
	const char *s = PyUnicode_AsUTF8(name);
	PyObject *cap;
	int r;

	if (!s)
		return NULL;
	if (strlen(s) >= QV_NAME_MAX) {
		qvpy_raise(status_exc[QV_UNKNOWN_MODEL], QV_UNKNOWN_MODEL, -ENAMETOOLONG,
			   "model name '%s' longer than %d bytes", s, QV_NAME_MAX - 1);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	r = self->ops->lookup(self->c, s, &d);
	Py_END_ALLOW_THREADS
	if (r < 0) {
		if (r == -ENOENT)
			qvpy_raise(status_exc[QV_UNKNOWN_MODEL], QV_UNKNOWN_MODEL, r,
				   "no model '%s' is served", s);
		else if (r == -ETIMEDOUT)
			qvpy_raise(timeout_exc, QV_DEADLINE_EXCEEDED, r,
				   "lookup '%s': no answer in time", s);
		else
			qvpy_raise(status_exc[QV_UNAVAILABLE], QV_UNAVAILABLE, r,
				   "lookup '%s': %s", s, strerror(-r));
		return NULL;
	}
	m = PyMem_Calloc(1, sizeof(*m));
	if (!m)
		return (struct qvpy_model *)PyErr_NoMemory();
	m->d = d;
	/* The largest request: max_batch, and what a slot or datagram holds. */
	uint64_t mr = d.max_batch;
	if (d.in_dim && self->in_cap / (d.in_dim * 4u) < mr)
		mr = self->in_cap / (d.in_dim * 4u);
	if (d.out_dim && self->out_cap / (d.out_dim * 4u) < mr)
		mr = self->out_cap / (d.out_dim * 4u);
	m->max_rows = (uint32_t)mr;
	Py_INCREF(name);
	m->name = name;
	cap = PyCapsule_New(m, "quiver.model", model_free);
	if (!cap) {
		Py_DECREF(name);
		PyMem_Free(m);
		return NULL;
	}
	for (uint32_t i = 0; i < d.n_inputs; i++) {
		m->in_type[i] = qvpy_npy_type(d.inputs[i].dtype);
		m->in_names[i] = PyUnicode_FromString(d.inputs[i].name);
		if (!m->in_names[i] || m->in_type[i] < 0)
			goto bad;
	}
	for (uint32_t j = 0; j < d.n_outputs; j++) {
		m->out_type[j] = qvpy_npy_type(d.outputs[j].dtype);
		m->out_names[j] = PyUnicode_FromString(d.outputs[j].name);
		if (!m->out_names[j] || m->out_type[j] < 0)
			goto bad;
	}
	if (m->max_rows == 0) {
		qvpy_raise(qvpy_ShapeError, QV_BAD_SHAPE, 0,
			   "model '%s': one row (%u input bytes, %u output bytes) does not fit a "
			   "request of this client (%u / %u bytes)", s, d.in_dim * 4u,
			   d.out_dim * 4u, self->in_cap, self->out_cap);
		Py_DECREF(cap);
		return NULL;
	}
	if (PyDict_SetItem(self->models, name, cap) < 0) {
		Py_DECREF(cap);
		return NULL;
	}
	Py_DECREF(cap);
	return m;
bad:
	if (!PyErr_Occurred())
		qvpy_raise(qvpy_Error, QV_INTERNAL, 0, "model '%s': unknown tensor dtype", s);
	Py_DECREF(cap);
	return NULL;
}

static struct qvpy_model *model_get(qvpy_client *self, PyObject *name)
{
	PyObject *cap;

	if (!PyUnicode_Check(name)) {
		PyErr_SetString(PyExc_TypeError, "model must be a str (the model's name)");
		return NULL;
	}
	cap = PyDict_GetItemWithError(self->models, name);
	if (cap)
		return PyCapsule_GetPointer(cap, "quiver.model");
	if (PyErr_Occurred())
		return NULL;
	return model_lookup(self, name);
}

static void model_forget(qvpy_client *self, const struct qvpy_model *m, int status)
{
	if (status == QV_UNKNOWN_MODEL || status == QV_BAD_SHAPE) {
		if (PyDict_DelItem(self->models, m->name) < 0)
			PyErr_Clear();
	}
}

static void client_dealloc(qvpy_client *self)
{
	if (self->c)
		self->ops->close(self->c);
	self->c = NULL;
	/* After close nothing writes into the pending outputs: release them. */
	Py_XDECREF(self->pending);
	Py_XDECREF(self->models);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *client_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	qvpy_client *self = (qvpy_client *)type->tp_alloc(type, 0);

	(void)args;
	(void)kw;
	if (!self)
		return NULL;
	self->models = PyDict_New();
	self->pending = PyDict_New();
	self->next_id = 1;
	if (!self->models || !self->pending) {
		Py_DECREF(self);
		return NULL;
	}
	return (PyObject *)self;
}

static int shm_init(qvpy_client *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "socket_path", "name", "slots", "slot_in_bytes",
				  "slot_out_bytes", "dead_after_ms", NULL };
	const char *path = NULL, *name = NULL;
	unsigned int slots = 0, in_b = 0, out_b = 0, dead = 0;
	struct qv_connect_opts o;
	qv_client *c = NULL;
	int r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|z$zIIII", kwlist, &path, &name, &slots,
					 &in_b, &out_b, &dead))
		return -1;
	if (self->c) {
		PyErr_SetString(PyExc_RuntimeError, "client already connected");
		return -1;
	}
	memset(&o, 0, sizeof(o));
	o.client_name = name;
	o.slots = slots;
	o.slot_in_bytes = in_b;
	o.slot_out_bytes = out_b;
	o.dead_after_ms = dead;
	Py_BEGIN_ALLOW_THREADS
	r = qv_connect(path, &o, &c);
	Py_END_ALLOW_THREADS
	if (r < 0) {
		qvpy_raise(status_exc[QV_UNAVAILABLE], QV_UNAVAILABLE, r, "connect %s: %s",
			   path ? path : QV_DEFAULT_SOCKET, strerror(-r));
		return -1;
	}
	self->c = c;
	self->ops = &shm_ops;
	self->in_cap = in_b ? in_b : 64u * 1024u;
	self->out_cap = out_b ? out_b : 16u * 1024u;
	return 0;
}

static int udp_init(qvpy_client *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "address", "max_inflight", "timeout_ms", NULL };
	const char *addr;
	unsigned int maxin = 0, tmo = 0;
	struct qv_udp_opts o;
	qv_udp_client *c = NULL;
	int r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|$II", kwlist, &addr, &maxin, &tmo))
		return -1;
	if (self->c) {
		PyErr_SetString(PyExc_RuntimeError, "client already connected");
		return -1;
	}
	o.max_inflight = maxin;
	o.timeout_ms = tmo;
	r = qv_udp_connect(addr, &o, &c);
	if (r < 0) {
		if (r == -EINVAL)
			PyErr_Format(PyExc_ValueError,
				     "address '%s': want A.B.C.D:PORT or [v6]:PORT", addr);
		else
			qvpy_raise(status_exc[QV_UNAVAILABLE], QV_UNAVAILABLE, r, "udp %s: %s",
				   addr, strerror(-r));
		return -1;
	}
	self->c = c;
	self->ops = &udp_ops;
	self->in_cap = (uint32_t)QV_UDP_MAX_IN_BYTES;
	self->out_cap = (uint32_t)QV_UDP_MAX_OUT_BYTES;
	return 0;
}

static PyObject *client_lookup(qvpy_client *self, PyObject *name)
{
	struct qvpy_model *m;

	if (!PyUnicode_Check(name)) {
		PyErr_SetString(PyExc_TypeError, "model must be a str (the model's name)");
		return NULL;
	}
	if (enter(self) < 0)
		return NULL;
	m = model_lookup(self, name); /* always asks: the version may have changed */
	leave(self);
	return m ? qvpy_model_info(&m->d) : NULL;
}

/* Request options shared by infer and submit. */
struct req_opts {
	unsigned long long deadline_ns, routing_key;
	unsigned int timeout_ms;
};

static void set_ptrs(const struct qvpy_model *m, PyArrayObject **in, PyArrayObject **out,
		     uint32_t start, const void **ip, void **op, size_t *caps, uint32_t n)
{
	for (uint32_t i = 0; i < m->d.n_inputs; i++)
		ip[i] = (const char *)PyArray_DATA(in[i]) +
			(size_t)start * m->d.inputs[i].row_bytes;
	for (uint32_t j = 0; j < m->d.n_outputs; j++) {
		op[j] = (char *)PyArray_DATA(out[j]) + (size_t)start * m->d.outputs[j].row_bytes;
		caps[j] = (size_t)n * m->d.outputs[j].row_bytes;
	}
}

static PyObject *client_infer(qvpy_client *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "model", "x", "timeout_ms", "deadline_ns", "routing_key", NULL };
	PyArrayObject *in[QV_MAX_TENSORS_WIRE], *out[QV_MAX_TENSORS_WIRE];
	const void *ip[QV_MAX_TENSORS_WIRE];
	void *op[QV_MAX_TENSORS_WIRE];
	size_t caps[QV_MAX_TENSORS_WIRE];
	struct req_opts ro = { 0, 0, 0 };
	struct qv_result res = { 0 };
	struct qv_request req = { 0 };
	struct qv_tensors t;
	struct qvpy_model *m;
	PyObject *name, *x, *ret = NULL;
	uint32_t rows, done = 0;
	int single, r = 0;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$IKK", kwlist, &name, &x, &ro.timeout_ms,
					 &ro.deadline_ns, &ro.routing_key))
		return NULL;
	if (enter(self) < 0)
		return NULL;
	m = model_get(self, name);
	if (!m)
		goto out_leave;
	if (qvpy_inputs(m, x, in, &rows, &single) < 0)
		goto out_leave;
	if (qvpy_outputs(m, rows, single, out) < 0)
		goto out_in;

	req.handle = m->d.handle;
	req.deadline_ns = ro.deadline_ns;
	req.routing_key = ro.routing_key;
	t.n_inputs = m->d.n_inputs;
	t.n_outputs = m->d.n_outputs;
	t.inputs = ip;
	t.outputs = op;
	t.out_caps = caps;
	Py_BEGIN_ALLOW_THREADS
	while (done < rows) {
		uint32_t n = rows - done < m->max_rows ? rows - done : m->max_rows;
		set_ptrs(m, in, out, done, ip, op, caps, n);
		req.rows = n;
		req.request_id = self->next_id++;
		r = self->ops->infer(self->c, &req, &t, ro.timeout_ms, &res);
		if (r < 0 || res.status != QV_OK)
			break;
		done += n;
	}
	Py_END_ALLOW_THREADS
	if (r < 0) {
		qvpy_raise_errno(m, r, "infer");
	} else if (res.status != QV_OK) {
		PyObject *e = qvpy_status_error(m, &res);
		if (e) {
			PyErr_SetObject((PyObject *)Py_TYPE(e), e);
			Py_DECREF(e);
		}
	} else {
		ret = qvpy_outputs_value(m, out);
		goto out_in;
	}
	for (uint32_t j = 0; j < m->d.n_outputs; j++)
		Py_DECREF(out[j]);
out_in:
	for (uint32_t i = 0; i < m->d.n_inputs; i++)
		Py_DECREF(in[i]);
	/* Last: this may free m. */
	if (r == 0 && res.status != QV_OK)
		model_forget(self, m, (int)res.status);
out_leave:
	leave(self);
	return ret;
}

static PyObject *client_submit(qvpy_client *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "model", "x", "request_id", "deadline_ns", "routing_key", NULL };
	PyArrayObject *in[QV_MAX_TENSORS_WIRE], *out[QV_MAX_TENSORS_WIRE];
	const void *ip[QV_MAX_TENSORS_WIRE];
	void *op[QV_MAX_TENSORS_WIRE];
	size_t caps[QV_MAX_TENSORS_WIRE];
	struct req_opts ro = { 0, 0, 0 };
	struct qv_request req = { 0 };
	struct qv_tensors t;
	struct qvpy_model *m;
	PyObject *name, *x, *rid_obj = Py_None, *ret = NULL, *key = NULL, *val = NULL;
	uint64_t rid;
	uint32_t rows;
	int single, r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$OKK", kwlist, &name, &x, &rid_obj,
					 &ro.deadline_ns, &ro.routing_key))
		return NULL;
	if (enter(self) < 0)
		return NULL;
	if (rid_obj != Py_None) {
		rid = PyLong_AsUnsignedLongLong(rid_obj);
		if (PyErr_Occurred())
			goto out_leave;
	} else {
		rid = self->next_id++;
	}
	key = PyLong_FromUnsignedLongLong(rid);
	if (!key)
		goto out_leave;
	if (PyDict_Contains(self->pending, key)) {
		PyErr_Format(PyExc_ValueError, "request_id %llu is already in flight",
			     (unsigned long long)rid);
		goto out_leave;
	}
	m = model_get(self, name);
	if (!m)
		goto out_leave;
	if (qvpy_inputs(m, x, in, &rows, &single) < 0)
		goto out_leave;
	if (rows > m->max_rows) {
		qvpy_raise(qvpy_ShapeError, QV_BAD_SHAPE, -EMSGSIZE,
			   "model '%s': %u rows do not fit one request (at most %u; infer() "
			   "splits larger inputs)", m->d.name, rows, m->max_rows);
		goto out_in;
	}
	if (qvpy_outputs(m, rows, single, out) < 0)
		goto out_in;
	req.handle = m->d.handle;
	req.rows = rows;
	req.deadline_ns = ro.deadline_ns;
	req.routing_key = ro.routing_key;
	req.request_id = rid;
	t.n_inputs = m->d.n_inputs;
	t.n_outputs = m->d.n_outputs;
	t.inputs = ip;
	t.outputs = op;
	t.out_caps = caps;
	set_ptrs(m, in, out, 0, ip, op, caps, rows);
	/* Keep the outputs alive (libquiver writes them when the completion is
	 * reaped) before the request can complete. */
	{
		PyObject *o = qvpy_outputs_value(m, out);
		if (!o)
			goto out_in;
		val = Py_BuildValue("(NO)", o, m->name);
		if (!val || PyDict_SetItem(self->pending, key, val) < 0)
			goto out_in;
	}
	r = self->ops->submit(self->c, &req, &t);
	if (r < 0) {
		PyDict_DelItem(self->pending, key);
		qvpy_raise_errno(m, r, "submit");
		goto out_in;
	}
	Py_INCREF(key);
	ret = key;
out_in:
	for (uint32_t i = 0; i < m->d.n_inputs; i++)
		Py_DECREF(in[i]);
out_leave:
	Py_XDECREF(key);
	Py_XDECREF(val);
	leave(self);
	return ret;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A Result for one completion; the pending entry is removed. */
static PyObject *make_result(qvpy_client *self, const struct qv_result *res)
{
	PyObject *key = PyLong_FromUnsignedLongLong(res->request_id);
	PyObject *o, *val, *output = Py_None, *err = Py_None;

	if (!key)
		return NULL;
	val = PyDict_GetItemWithError(self->pending, key);
	if (!val && PyErr_Occurred()) {
		Py_DECREF(key);
		return NULL;
	}
	Py_XINCREF(val);
	if (val && PyDict_DelItem(self->pending, key) < 0) {
		Py_DECREF(val);
		Py_DECREF(key);
		return NULL;
	}
	o = PyStructSequence_New(qvpy_ResultType);
	if (!o)
		goto fail;
	if (res->status == QV_OK && val)
		output = PyTuple_GET_ITEM(val, 0);
	Py_INCREF(output);
	if (res->status != QV_OK) {
		struct qvpy_model anon;
		const char *nm = val ? PyUnicode_AsUTF8(PyTuple_GET_ITEM(val, 1)) : NULL;
		PyObject *cap = val ? PyDict_GetItem(self->models, PyTuple_GET_ITEM(val, 1)) : NULL;

		memset(&anon, 0, sizeof(anon));
		snprintf(anon.d.name, sizeof(anon.d.name), "%s", nm ? nm : "?");
		if (cap)
			model_forget(self, PyCapsule_GetPointer(cap, "quiver.model"),
				     (int)res->status);
		err = qvpy_status_error(&anon, res);
		if (!err) {
			Py_DECREF(output);
			Py_DECREF(o);
			goto fail;
		}
	} else {
		Py_INCREF(err);
	}
	PyStructSequence_SET_ITEM(o, 0, key);
	PyStructSequence_SET_ITEM(o, 1, PyLong_FromLong((long)res->status));
	PyStructSequence_SET_ITEM(o, 2, output);
	PyStructSequence_SET_ITEM(o, 3, err);
	PyStructSequence_SET_ITEM(o, 4, PyLong_FromUnsignedLong(res->version));
	PyStructSequence_SET_ITEM(o, 5, PyLong_FromUnsignedLong(res->flags));
	Py_XDECREF(val);
	if (PyErr_Occurred()) {
		Py_DECREF(o);
		return NULL;
	}
	return o;
fail:
	Py_XDECREF(val);
	Py_DECREF(key);
	return NULL;
}

static PyObject *client_poll(qvpy_client *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "max", "timeout_ms", NULL };
	struct qv_result res[64];
	unsigned int max = 64, tmo = 0;
	PyObject *list;
	int n = 0;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|I$I", kwlist, &max, &tmo))
		return NULL;
	if (max == 0 || max > 64)
		max = 64;
	if (enter(self) < 0)
		return NULL;
	n = self->ops->poll(self->c, res, (int)max);
	if (n == 0 && tmo > 0 && self->ops->inflight(self->c) > 0) {
		/* Spin without the GIL: the answer is microseconds away. */
		Py_BEGIN_ALLOW_THREADS
		uint64_t end = mono_ns() + (uint64_t)tmo * 1000000ull;
		for (uint32_t spin = 1; n == 0; spin++) {
			n = self->ops->poll(self->c, res, (int)max);
			if (n == 0 && (spin & 1023u) == 0 && mono_ns() >= end)
				break;
		}
		Py_END_ALLOW_THREADS
	}
	if (n < 0) {
		leave(self);
		return qvpy_raise_errno(NULL, n, "poll");
	}
	list = PyList_New(n);
	for (int i = 0; list && i < n; i++) {
		PyObject *o = make_result(self, &res[i]);
		if (!o) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, i, o);
	}
	leave(self);
	return list;
}

static PyObject *client_close(qvpy_client *self, PyObject *unused)
{
	(void)unused;
	if (self->busy) {
		PyErr_SetString(PyExc_RuntimeError, "client in use by another thread");
		return NULL;
	}
	if (self->c)
		self->ops->close(self->c);
	self->c = NULL;
	PyDict_Clear(self->pending);
	PyDict_Clear(self->models);
	Py_RETURN_NONE;
}

static PyObject *client_enter(PyObject *self, PyObject *unused)
{
	(void)unused;
	Py_INCREF(self);
	return self;
}

static PyObject *client_exit(qvpy_client *self, PyObject *args)
{
	(void)args;
	return client_close(self, NULL);
}

static PyObject *client_inflight(qvpy_client *self, void *closure)
{
	(void)closure;
	return PyLong_FromUnsignedLong(self->c ? self->ops->inflight(self->c) : 0);
}

static PyMethodDef client_methods[] = {
	{ "lookup", (PyCFunction)client_lookup, METH_O,
	  "lookup(model) -> ModelInfo: the model's inputs, outputs, version and max batch." },
	{ "infer", (PyCFunction)(void (*)(void))client_infer, METH_VARARGS | METH_KEYWORDS,
	  "infer(model, x, *, timeout_ms=0, deadline_ns=0, routing_key=0) -> array or dict" },
	{ "submit", (PyCFunction)(void (*)(void))client_submit, METH_VARARGS | METH_KEYWORDS,
	  "submit(model, x, *, request_id=None, deadline_ns=0, routing_key=0) -> request id" },
	{ "poll", (PyCFunction)(void (*)(void))client_poll, METH_VARARGS | METH_KEYWORDS,
	  "poll(max=64, *, timeout_ms=0) -> list of Result" },
	{ "close", (PyCFunction)client_close, METH_NOARGS, "close the connection" },
	{ "__enter__", client_enter, METH_NOARGS, NULL },
	{ "__exit__", (PyCFunction)client_exit, METH_VARARGS, NULL },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef client_getset[] = {
	{ "inflight", (getter)client_inflight, NULL, "requests submitted and not yet polled", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject ClientType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "quiver.Client",
	.tp_basicsize = sizeof(qvpy_client),
	.tp_dealloc = (destructor)client_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Client(socket_path=None, *, name=None, slots=0, slot_in_bytes=0, "
		  "slot_out_bytes=0, dead_after_ms=0): a shared-memory channel to quiverd.",
	.tp_methods = client_methods,
	.tp_getset = client_getset,
	.tp_init = (initproc)shm_init,
	.tp_new = client_new,
};

static PyTypeObject UdpClientType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "quiver.UdpClient",
	.tp_basicsize = sizeof(qvpy_client),
	.tp_dealloc = (destructor)client_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "UdpClient(address, *, max_inflight=0, timeout_ms=0): quiverd over UDP "
		  "(address 'A.B.C.D:PORT' or '[v6]:PORT').",
	.tp_methods = client_methods,
	.tp_getset = client_getset,
	.tp_init = (initproc)udp_init,
	.tp_new = client_new,
};

static PyObject *mod_strerror(PyObject *mod, PyObject *arg)
{
	long v = PyLong_AsLong(arg);

	(void)mod;
	if (v == -1 && PyErr_Occurred())
		return NULL;
	return PyUnicode_FromString(qv_strerror((int)v));
}

static PyMethodDef module_methods[] = {
	{ "strerror", mod_strerror, METH_O, "strerror(status) -> the status's name and meaning" },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef quiver_module = {
	PyModuleDef_HEAD_INIT, "quiver",
	"Client of quiverd, the shared-memory CPU inference server: quiver.Client over "
	"shared memory, quiver.UdpClient over UDP.",
	-1, module_methods, NULL, NULL, NULL, NULL,
};

static PyObject *new_exc(PyObject *mod, const char *name, const char *doc, PyObject *bases,
			 int status)
{
	char full[96];
	PyObject *e, *st;

	snprintf(full, sizeof(full), "quiver.%s", name);
	e = PyErr_NewExceptionWithDoc(full, doc, bases, NULL);
	if (!e)
		return NULL;
	st = PyLong_FromLong(status);
	if (!st || PyObject_SetAttrString(e, "status", st) < 0 ||
	    PyObject_SetAttrString(e, "errno", PyLong_FromLong(0)) < 0 ||
	    PyModule_AddObjectRef(mod, name, e) < 0) {
		Py_XDECREF(st);
		Py_DECREF(e);
		return NULL;
	}
	Py_DECREF(st);
	return e;
}

PyMODINIT_FUNC PyInit_quiver(void);
PyMODINIT_FUNC PyInit_quiver(void)
{
	PyObject *m, *bases;

	import_array();
	if (PyType_Ready(&ClientType) < 0 || PyType_Ready(&UdpClientType) < 0)
		return NULL;
	m = PyModule_Create(&quiver_module);
	if (!m)
		return NULL;
	qvpy_Error = new_exc(m, "Error",
			     "Base of quiver's errors; .status is the quiver status (quiver.OK ...), "
			     ".errno the errno behind it or 0.", NULL, QV_INTERNAL);
	if (!qvpy_Error)
		goto fail;
	for (size_t i = 0; i < sizeof(exc_table) / sizeof(exc_table[0]); i++) {
		PyObject *b2 = exc_table[i].status == QV_BAD_SHAPE ? PyExc_ValueError : NULL;
		bases = b2 ? PyTuple_Pack(2, qvpy_Error, b2) : PyTuple_Pack(1, qvpy_Error);
		if (!bases)
			goto fail;
		status_exc[exc_table[i].status] =
			new_exc(m, exc_table[i].name, exc_table[i].doc, bases, exc_table[i].status);
		Py_DECREF(bases);
		if (!status_exc[exc_table[i].status])
			goto fail;
	}
	qvpy_ShapeError = status_exc[QV_BAD_SHAPE];
	bases = PyTuple_Pack(2, qvpy_Error, PyExc_TypeError);
	qvpy_DtypeError = bases ? new_exc(m, "DtypeError",
					  "An input's dtype is not the model's and NumPy cannot "
					  "cast it safely.", bases, QV_BAD_REQUEST) : NULL;
	Py_XDECREF(bases);
	bases = PyTuple_Pack(1, status_exc[QV_DEADLINE_EXCEEDED]);
	timeout_exc = bases ? new_exc(m, "TimeoutError",
				      "No answer within the call's timeout_ms (client side).",
				      bases, QV_DEADLINE_EXCEEDED) : NULL;
	Py_XDECREF(bases);
	if (!qvpy_DtypeError || !timeout_exc)
		goto fail;

	if (PyModule_AddObjectRef(m, "Client", (PyObject *)&ClientType) < 0 ||
	    PyModule_AddObjectRef(m, "UdpClient", (PyObject *)&UdpClientType) < 0 ||
	    qvpy_types_init(m) < 0)
		goto fail;
	if (PyModule_AddIntConstant(m, "OK", QV_OK) < 0 ||
	    PyModule_AddIntConstant(m, "UNKNOWN_MODEL", QV_UNKNOWN_MODEL) < 0 ||
	    PyModule_AddIntConstant(m, "BAD_SHAPE", QV_BAD_SHAPE) < 0 ||
	    PyModule_AddIntConstant(m, "BAD_REQUEST", QV_BAD_REQUEST) < 0 ||
	    PyModule_AddIntConstant(m, "DEADLINE_EXCEEDED", QV_DEADLINE_EXCEEDED) < 0 ||
	    PyModule_AddIntConstant(m, "OVERLOADED", QV_OVERLOADED) < 0 ||
	    PyModule_AddIntConstant(m, "UNAVAILABLE", QV_UNAVAILABLE) < 0 ||
	    PyModule_AddIntConstant(m, "INTERNAL", QV_INTERNAL) < 0 ||
	    PyModule_AddIntConstant(m, "FLAG_FALLBACK", QV_FLAG_FALLBACK) < 0 ||
	    PyModule_AddIntConstant(m, "FLAG_CANARY", QV_FLAG_CANARY) < 0 ||
	    PyModule_AddStringConstant(m, "DEFAULT_SOCKET", QV_DEFAULT_SOCKET) < 0)
		goto fail;
	return m;
fail:
	Py_DECREF(m);
	return NULL;
}
