/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_config.c - libFuzzer target for the operator-written JSON quiverd
 * reads: config.json (qv_config_parse) and its "ensemble" object
 * (qv_ens_config_parse). The first byte chooses the parser. Besides not
 * crashing: an accepted config is within the documented limits, an
 * accepted ensemble has 1..32 steps whose names are NUL-terminated and
 * unique, binds tensors by name in every step or in none (each bind a
 * non-empty name and source), and a refusal always says why in a NUL-terminated message.
 * Built with -Dfuzz=true (clang -fsanitize=fuzzer); otherwise linked with
 * tests/udp/fuzz_replay.c and run over corpus_config/ as a unit test.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *s)
{
	if (strnlen(s, QV_REPO_NAME_MAX) == QV_REPO_NAME_MAX)
		abort();
}

/* a name and a source, both non-empty and NUL-terminated, the name unique */
static void check_bind(const struct qv_ens_bind_cfg *b)
{
	size_t n = strnlen(b->name, sizeof(b->name)), s = strnlen(b->source, sizeof(b->source));
	if (n == 0 || n == sizeof(b->name) || s == 0 || s == sizeof(b->source))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct qv_ens_config ens;
	struct qv_model_config cfg;
	char err[256];
	int r;

	if (size == 0)
		return 0;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	memset(err, 'x', sizeof(err));
	if ((data[0] & 1) == 0) {
		r = qv_config_parse(text, len, &cfg, err, sizeof(err));
		if (r == 0) {
			if (cfg.max_batch > QV_REPO_MAX_BATCH_LIMIT ||
			    cfg.preferred_batch > QV_REPO_MAX_BATCH_LIMIT ||
			    (cfg.max_batch && cfg.preferred_batch > cfg.max_batch) ||
			    cfg.max_queue_delay_us > 1000000u)
				abort();
		} else if (r != -EINVAL || strnlen(err, sizeof(err)) == sizeof(err) || !err[0]) {
			abort();
		}
		return 0;
	}
	r = qv_ens_config_parse(text, len, &ens, err, sizeof(err));
	if (r == 0) {
		if (ens.n_steps == 0 || ens.n_steps > QV_REPO_ENS_MAX_STEPS)
			abort();
		check_name(ens.output);
		for (uint32_t i = 0; i < ens.n_steps; i++) {
			const struct qv_ens_step_cfg *s = &ens.steps[i];
			check_name(s->name);
			check_name(s->model);
			check_name(s->gate_step);
			if (s->n_inputs > QV_REPO_ENS_MAX_INPUTS || s->gate_op < 0 || s->gate_op > 2)
				abort();
			for (uint32_t k = 0; k < s->n_inputs; k++)
				check_name(s->inputs[k]);
			/* named form: every step binds by name, none positionally */
			if (s->n_binds > QV_REPO_ENS_MAX_BINDS || (ens.named && (!s->n_binds || s->n_inputs)) ||
			    (!ens.named && s->n_binds))
				abort();
			for (uint32_t k = 0; k < s->n_binds; k++)
				check_bind(&s->binds[k]);
		}
		if (ens.n_outputs > QV_REPO_ENS_MAX_BINDS || (ens.n_outputs && !ens.named) ||
		    (ens.named && ens.output[0]))
			abort();
		for (uint32_t k = 0; k < ens.n_outputs; k++)
			check_bind(&ens.outputs[k]);
	} else if ((r != -EINVAL && r != -ENOENT) ||
		   (r == -EINVAL && (strnlen(err, sizeof(err)) == sizeof(err) || !err[0]))) {
		abort();
	}
	return 0;
}
