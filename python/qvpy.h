/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qvpy.h - shared between the files of the `quiver` Python extension:
 * the client object (one layout for Client and UdpClient, which differ in
 * a small table of libquiver calls), the per-model cache and the array
 * conversions.
 */
#ifndef QVPY_H
#define QVPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL qvpy_ARRAY_API
#ifndef QVPY_MAIN
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include <stdint.h>

#include "quiver.h"

/* The libquiver calls a client type uses: shared memory or UDP. */
struct qvpy_ops {
	const char *what;  /* "shm" or "udp", for messages */
	int (*lookup)(void *c, const char *name, struct qv_model_desc *ret_desc);
	int (*infer)(void *c, const struct qv_request *req, const struct qv_tensors *t,
		     uint32_t timeout_ms, struct qv_result *ret_result);
	int (*submit)(void *c, const struct qv_request *req, const struct qv_tensors *t);
	int (*poll)(void *c, struct qv_result *results, int max);
	uint32_t (*inflight)(const void *c);
	void (*close)(void *c);
};

/* What a client keeps per model name, made at its lookup. */
struct qvpy_model {
	struct qv_model_desc d;
	uint32_t max_rows;          /* rows one request may carry (batch, slot or datagram) */
	int in_type[QV_MAX_TENSORS_WIRE];   /* NPY_FLOAT32 ... */
	int out_type[QV_MAX_TENSORS_WIRE];
	PyObject *in_names[QV_MAX_TENSORS_WIRE];  /* str, owned */
	PyObject *out_names[QV_MAX_TENSORS_WIRE];
	PyObject *name;             /* str, owned */
};

typedef struct {
	PyObject_HEAD
	void *c;                    /* qv_client * or qv_udp_client * */
	const struct qvpy_ops *ops;
	PyObject *models;           /* dict: name -> capsule of struct qvpy_model */
	PyObject *pending;          /* dict: request id -> (outputs, model name) */
	uint64_t next_id;
	uint32_t in_cap, out_cap;   /* bytes one request may carry each way */
	int busy;                   /* a call runs with the GIL released */
} qvpy_client;

/* Exceptions (module state is static: one interpreter). */
extern PyObject *qvpy_Error, *qvpy_ShapeError, *qvpy_DtypeError;
PyObject *qvpy_exc_for_status(int status);
/* Raises cls with .status and .errno set; returns NULL. */
PyObject *qvpy_raise(PyObject *cls, int status, int neg_errno, const char *fmt, ...);
/* Makes (does not raise) the exception of a request's failed status. */
PyObject *qvpy_status_error(const struct qvpy_model *m, const struct qv_result *res);
/* Raises what a negative errno from libquiver means for a request. */
PyObject *qvpy_raise_errno(const struct qvpy_model *m, int r, const char *call);

/* Typed conversions (convert.c). */
int qvpy_npy_type(uint32_t qv_dtype);
/*
 * Checks and converts the input(s) x of model m into one C-contiguous,
 * aligned array per input of the model's dtype (new references in
 * ret_arr[0..n_inputs)); *ret_rows the rows, *ret_single 1 when every
 * input was given as one row without its batch dimension.
 */
int qvpy_inputs(const struct qvpy_model *m, PyObject *x, PyArrayObject **ret_arr,
		uint32_t *ret_rows, int *ret_single);
/* New arrays for rows of every output (ret_arr new references). */
int qvpy_outputs(const struct qvpy_model *m, uint32_t rows, int single,
		 PyArrayObject **ret_arr);
/* The value infer() returns: the array, or a dict name -> array. Steals arr[]. */
PyObject *qvpy_outputs_value(const struct qvpy_model *m, PyArrayObject **arr);
/* lookup()'s ModelInfo of a description. */
PyObject *qvpy_model_info(const struct qv_model_desc *d);
int qvpy_types_init(PyObject *module);
extern PyTypeObject *qvpy_ResultType;

#endif /* QVPY_H */
