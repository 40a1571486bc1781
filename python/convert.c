/* SPDX-License-Identifier: Apache-2.0 */
/*
 * convert.c - NumPy arrays to and from a model's typed tensors, and the
 * struct sequences lookup() and poll() return.
 *
 * An input array that already has the model's dtype (native byte order),
 * is C-contiguous and aligned is used as it is: libquiver copies its
 * buffer straight into the slot or datagram. Anything else is converted
 * by NumPy only when NumPy's "safe" casting rule allows it (int32 ids for
 * an int64 input, a big-endian float32 array); a cast that may lose
 * information (float64 to float32, int64 to int32) is refused with
 * quiver.DtypeError, so the caller decides how to round.
 */
#include "qvpy.h"

#include <stdio.h>
#include <string.h>

int qvpy_npy_type(uint32_t qv_dtype)
{
	switch (qv_dtype) {
	case QV_TENSOR_FLOAT32: return NPY_FLOAT32;
	case QV_TENSOR_INT32: return NPY_INT32;
	case QV_TENSOR_INT64: return NPY_INT64;
	default: return -1;
	}
}

/* "(rows, 4, 8) or (4, 8)" for messages. */
static void want_shape(const struct qv_tensor_desc *t, char *buf, size_t len)
{
	size_t o = 0;
	char row[96] = "";

	for (uint32_t k = 1; k < t->rank && o < sizeof(row); k++)
		o += (size_t)snprintf(row + o, sizeof(row) - o, "%s%lld", k > 1 ? ", " : "",
				      (long long)t->shape[k]);
	if (t->rank == 1)
		snprintf(buf, len, "(rows,) or a scalar");
	else if (t->rank == 2)
		snprintf(buf, len, "(rows, %s) or (%s,)", row, row);
	else
		snprintf(buf, len, "(rows, %s) or (%s)", row, row);
}

static void got_shape(PyArrayObject *a, char *buf, size_t len)
{
	size_t o = 0;
	int nd = PyArray_NDIM(a);

	o += (size_t)snprintf(buf, len, "(");
	for (int k = 0; k < nd && o < len; k++)
		o += (size_t)snprintf(buf + o, len - o, "%s%lld", k ? ", " : "",
				      (long long)PyArray_DIM(a, k));
	if (o < len)
		snprintf(buf + o, len - o, nd == 1 ? ",)" : ")");
}

/* Elements of one row of t by its shape, or 0 if the shape does not say. */
static int64_t shape_row_elems(const struct qv_tensor_desc *t)
{
	int64_t n = 1;

	for (uint32_t k = 1; k < t->rank; k++) {
		if (t->shape[k] <= 0)
			return 0;
		n *= t->shape[k];
	}
	return n;
}

/* One input: a new reference to an array quiver can read in place. */
static PyArrayObject *one_input(const struct qvpy_model *m, uint32_t i, PyObject *obj,
				uint32_t *ret_rows, int *ret_single)
{
	const struct qv_tensor_desc *t = &m->d.inputs[i];
	PyArray_Descr *want = PyArray_DescrFromType(m->in_type[i]);
	PyArrayObject *a;
	char ws[160], gs[160];
	int nd;

	if (PyArray_Check(obj)) {
		Py_INCREF(obj);
		a = (PyArrayObject *)obj;
	} else {
		/* A list or scalar: NumPy's own dtype for it, then the same rule. */
		a = (PyArrayObject *)PyArray_FromAny(obj, NULL, 0, 0, 0, NULL);
		if (!a) {
			Py_DECREF(want);
			return NULL;
		}
	}
	if (!PyArray_EquivTypes(PyArray_DESCR(a), want)) {
		if (!PyArray_CanCastTypeTo(PyArray_DESCR(a), want, NPY_SAFE_CASTING)) {
			qvpy_raise(qvpy_DtypeError,
				   QV_BAD_REQUEST, 0,
				   "model '%s' input '%s': got %s, want %s (NumPy cannot cast it "
				   "safely; convert it with astype() first)",
				   m->d.name, t->name, PyArray_DESCR(a)->typeobj->tp_name,
				   want->typeobj->tp_name);
			Py_DECREF(want);
			Py_DECREF(a);
			return NULL;
		}
	}
	if (!PyArray_EquivTypes(PyArray_DESCR(a), want) || !PyArray_ISCARRAY_RO(a)) {
		/* Steals want. */
		PyArrayObject *c = (PyArrayObject *)PyArray_FromArray(a, want, NPY_ARRAY_IN_ARRAY);
		Py_DECREF(a);
		if (!c)
			return NULL;
		a = c;
	} else {
		Py_DECREF(want);
	}

	nd = PyArray_NDIM(a);
	int64_t row_elems = shape_row_elems(t);
	int ok = 0;
	if ((uint32_t)nd == t->rank || (uint32_t)nd + 1 == t->rank) {
		int off = (uint32_t)nd == t->rank ? 1 : 0;
		ok = 1;
		if (row_elems) {
			for (uint32_t k = 1; k < t->rank; k++)
				if (PyArray_DIM(a, (int)k - 1 + off) != t->shape[k])
					ok = 0;
		} else {
			/* The description gives no static row shape: the row's bytes decide. */
			int64_t e = 1;
			for (int k = off; k < nd; k++)
				e *= PyArray_DIM(a, k);
			ok = e * (int64_t)PyArray_ITEMSIZE(a) == (int64_t)t->row_bytes;
		}
		if (ok) {
			npy_intp rows = off ? PyArray_DIM(a, 0) : 1;
			if (rows <= 0) {
				qvpy_raise(qvpy_ShapeError,
					   QV_BAD_SHAPE, 0, "model '%s' input '%s': no rows", m->d.name,
					   t->name);
				Py_DECREF(a);
				return NULL;
			}
			if (rows > (npy_intp)UINT32_MAX)
				ok = 0;
			*ret_rows = (uint32_t)rows;
			*ret_single = !off;
		}
	}
	if (!ok) {
		want_shape(t, ws, sizeof(ws));
		got_shape(a, gs, sizeof(gs));
		qvpy_raise(qvpy_ShapeError,
			   QV_BAD_SHAPE, 0, "model '%s' input '%s': got shape %s, want %s", m->d.name,
			   t->name, gs, ws);
		Py_DECREF(a);
		return NULL;
	}
	return a;
}

int qvpy_inputs(const struct qvpy_model *m, PyObject *x, PyArrayObject **ret_arr,
		uint32_t *ret_rows, int *ret_single)
{
	uint32_t n = m->d.n_inputs, rows = 0;
	int single = -1;

	if (PyDict_Check(x)) {
		Py_ssize_t given = PyDict_Size(x);
		/* Every key must name an input: a typo is an error, not ignored. */
		PyObject *k, *v;
		Py_ssize_t pos = 0;
		while (PyDict_Next(x, &pos, &k, &v)) {
			uint32_t i;
			for (i = 0; i < n; i++)
				if (PyUnicode_Check(k) &&
				    PyUnicode_Compare(k, m->in_names[i]) == 0)
					break;
			if (i == n) {
				PyObject *names = PyTuple_New(n);
				for (uint32_t j = 0; names && j < n; j++) {
					Py_INCREF(m->in_names[j]);
					PyTuple_SET_ITEM(names, j, m->in_names[j]);
				}
				PyErr_Clear();
				qvpy_raise(qvpy_ShapeError, QV_BAD_SHAPE, 0,
					   "model '%s' has no input %R (inputs: %R)", m->d.name, k,
					   names ? names : Py_None);
				Py_XDECREF(names);
				return -1;
			}
		}
		if (given != (Py_ssize_t)n) {
			for (uint32_t i = 0; i < n; i++)
				if (!PyDict_GetItem(x, m->in_names[i])) {
					qvpy_raise(qvpy_ShapeError, QV_BAD_SHAPE, 0,
						   "model '%s': input '%s' missing", m->d.name,
						   m->d.inputs[i].name);
					return -1;
				}
		}
	} else if (n != 1) {
		qvpy_raise(qvpy_ShapeError, QV_BAD_SHAPE, 0,
			   "model '%s' has %u inputs: pass a dict of name -> array", m->d.name, n);
		return -1;
	}

	for (uint32_t i = 0; i < n; i++) {
		PyObject *obj = PyDict_Check(x) ? PyDict_GetItem(x, m->in_names[i]) : x;
		uint32_t r = 0;
		int s = 0;
		ret_arr[i] = one_input(m, i, obj, &r, &s);
		if (!ret_arr[i])
			goto fail;
		if (i > 0 && (r != rows || s != single)) {
			qvpy_raise(qvpy_ShapeError, QV_BAD_SHAPE, 0,
				   "model '%s': input '%s' has %u row(s)%s, input '%s' %u%s",
				   m->d.name, m->d.inputs[i].name, r, s ? " (no batch dimension)" : "",
				   m->d.inputs[0].name, rows, single ? " (no batch dimension)" : "");
			Py_DECREF(ret_arr[i]);
			goto fail;
		}
		rows = r;
		single = s;
		continue;
fail:
		for (uint32_t j = 0; j < i; j++)
			Py_DECREF(ret_arr[j]);
		return -1;
	}
	*ret_rows = rows;
	*ret_single = single;
	return 0;
}

int qvpy_outputs(const struct qvpy_model *m, uint32_t rows, int single, PyArrayObject **ret_arr)
{
	for (uint32_t j = 0; j < m->d.n_outputs; j++) {
		const struct qv_tensor_desc *t = &m->d.outputs[j];
		npy_intp dims[QV_MAX_RANK_WIRE];
		int nd = 0;
		int64_t e = shape_row_elems(t);

		if (!single)
			dims[nd++] = rows;
		int64_t esz = m->out_type[j] == NPY_INT64 ? 8 : 4;

		if (e && e * esz == (int64_t)t->row_bytes) {
			for (uint32_t k = 1; k < t->rank; k++)
				dims[nd++] = (npy_intp)t->shape[k];
		} else {
			/* No static row shape: a flat row of its elements. */
			dims[nd++] = (npy_intp)(t->row_bytes / esz);
		}
		ret_arr[j] = (PyArrayObject *)PyArray_SimpleNew(nd, dims, m->out_type[j]);
		if (!ret_arr[j]) {
			for (uint32_t i = 0; i < j; i++)
				Py_DECREF(ret_arr[i]);
			return -1;
		}
	}
	return 0;
}

PyObject *qvpy_outputs_value(const struct qvpy_model *m, PyArrayObject **arr)
{
	PyObject *d;

	if (m->d.n_outputs == 1)
		return (PyObject *)arr[0];
	d = PyDict_New();
	for (uint32_t j = 0; j < m->d.n_outputs; j++) {
		if (d && PyDict_SetItem(d, m->out_names[j], (PyObject *)arr[j]) < 0)
			Py_CLEAR(d);
		Py_DECREF(arr[j]);
	}
	return d;
}

/* ---- struct sequences ---- */

static PyTypeObject *TensorInfoType, *ModelInfoType;
PyTypeObject *qvpy_ResultType;

static PyStructSequence_Field tensor_fields[] = {
	{ "name", "tensor name" },
	{ "dtype", "numpy.dtype of its elements" },
	{ "shape", "shape with the batch dimension first as None" },
	{ "index_bound", "ids must be in [0, index_bound); 0: not an id input" },
	{ NULL, NULL },
};
static PyStructSequence_Desc tensor_desc = {
	"quiver.TensorInfo", "One named input or output of a model.", tensor_fields, 4,
};

static PyStructSequence_Field model_fields[] = {
	{ "name", "model name" },
	{ "handle", "route handle (survives version swaps)" },
	{ "version", "primary version at lookup time" },
	{ "max_batch", "rows one request may carry at most, as the server says" },
	{ "inputs", "tuple of TensorInfo" },
	{ "outputs", "tuple of TensorInfo" },
	{ NULL, NULL },
};
static PyStructSequence_Desc model_desc = {
	"quiver.ModelInfo", "A model as quiverd describes it.", model_fields, 6,
};

static PyStructSequence_Field result_fields[] = {
	{ "request_id", "the id submit() returned" },
	{ "status", "quiver.OK or the failure status" },
	{ "output", "array, or dict of name -> array; None on failure" },
	{ "error", "a quiver.Error instance on failure, else None" },
	{ "version", "model version that answered" },
	{ "flags", "quiver.FLAG_FALLBACK | quiver.FLAG_CANARY" },
	{ NULL, NULL },
};
static PyStructSequence_Desc result_desc = {
	"quiver.Result", "One completed asynchronous request.", result_fields, 6,
};

static PyObject *tensor_info(const struct qv_tensor_desc *t)
{
	PyObject *o = PyStructSequence_New(TensorInfoType);
	PyObject *shape;

	if (!o)
		return NULL;
	shape = PyTuple_New(t->rank);
	if (!shape) {
		Py_DECREF(o);
		return NULL;
	}
	for (uint32_t k = 0; k < t->rank; k++) {
		PyObject *v;
		if (t->shape[k] < 0) {
			Py_INCREF(Py_None);
			v = Py_None;
		} else {
			v = PyLong_FromLongLong(t->shape[k]);
		}
		PyTuple_SET_ITEM(shape, k, v);
	}
	PyStructSequence_SET_ITEM(o, 0, PyUnicode_FromString(t->name));
	PyStructSequence_SET_ITEM(o, 1, (PyObject *)PyArray_DescrFromType(qvpy_npy_type(t->dtype)));
	PyStructSequence_SET_ITEM(o, 2, shape);
	PyStructSequence_SET_ITEM(o, 3, PyLong_FromLongLong(t->index_bound));
	if (PyErr_Occurred()) {
		Py_DECREF(o);
		return NULL;
	}
	return o;
}

static PyObject *tensor_tuple(const struct qv_tensor_desc *ts, uint32_t n)
{
	PyObject *tup = PyTuple_New(n);

	for (uint32_t i = 0; tup && i < n; i++) {
		PyObject *t = tensor_info(&ts[i]);
		if (!t) {
			Py_CLEAR(tup);
			break;
		}
		PyTuple_SET_ITEM(tup, i, t);
	}
	return tup;
}

PyObject *qvpy_model_info(const struct qv_model_desc *d)
{
	PyObject *o = PyStructSequence_New(ModelInfoType);
	PyObject *ins, *outs;

	if (!o)
		return NULL;
	ins = tensor_tuple(d->inputs, d->n_inputs);
	outs = ins ? tensor_tuple(d->outputs, d->n_outputs) : NULL;
	if (!outs) {
		Py_XDECREF(ins);
		Py_DECREF(o);
		return NULL;
	}
	PyStructSequence_SET_ITEM(o, 0, PyUnicode_FromString(d->name));
	PyStructSequence_SET_ITEM(o, 1, PyLong_FromUnsignedLong(d->handle));
	PyStructSequence_SET_ITEM(o, 2, PyLong_FromUnsignedLong(d->version));
	PyStructSequence_SET_ITEM(o, 3, PyLong_FromUnsignedLong(d->max_batch));
	PyStructSequence_SET_ITEM(o, 4, ins);
	PyStructSequence_SET_ITEM(o, 5, outs);
	if (PyErr_Occurred()) {
		Py_DECREF(o);
		return NULL;
	}
	return o;
}

int qvpy_types_init(PyObject *module)
{
	TensorInfoType = PyStructSequence_NewType(&tensor_desc);
	ModelInfoType = PyStructSequence_NewType(&model_desc);
	qvpy_ResultType = PyStructSequence_NewType(&result_desc);
	if (!TensorInfoType || !ModelInfoType || !qvpy_ResultType)
		return -1;
	if (PyModule_AddObjectRef(module, "TensorInfo", (PyObject *)TensorInfoType) < 0 ||
	    PyModule_AddObjectRef(module, "ModelInfo", (PyObject *)ModelInfoType) < 0 ||
	    PyModule_AddObjectRef(module, "Result", (PyObject *)qvpy_ResultType) < 0)
		return -1;
	return 0;
}
