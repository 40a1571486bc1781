/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_table.c - left-aligned columns, widths computed over every row, so a
 * table reads the same whatever the longest model name is. The first row
 * is the header. Out of memory in a CLI that prints a few rows is fatal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

struct ctl_table {
	unsigned ncols;
	size_t nrows, cap;
	char **cells;   /* nrows * ncols */
};

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q) {
		fputs("quiverctl: out of memory\n", stderr);
		exit(CTL_EXIT_DAEMON);
	}
	return q;
}

struct ctl_table *ctl_table_new(unsigned ncols)
{
	struct ctl_table *t = xrealloc(NULL, sizeof(*t));
	t->ncols = ncols;
	t->nrows = 0;
	t->cap = 0;
	t->cells = NULL;
	return t;
}

void ctl_table_add(struct ctl_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 8;
		t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof(char *));
	}
	for (unsigned i = 0; i < t->ncols; i++) {
		const char *s = cells[i] ? cells[i] : "-";
		size_t n = strlen(s) + 1;
		char *d = xrealloc(NULL, n);
		memcpy(d, s, n);
		t->cells[t->nrows * t->ncols + i] = d;
	}
	t->nrows++;
}

void ctl_table_print(const struct ctl_table *t)
{
	ctl_table_print_to(t, stdout, "");
}

void ctl_table_print_to(const struct ctl_table *t, FILE *f, const char *eol)
{
	size_t w[16] = { 0 };
	unsigned ncols = t->ncols < 16 ? t->ncols : 16;

	for (size_t r = 0; r < t->nrows; r++)
		for (unsigned c = 0; c < ncols; c++) {
			size_t n = strlen(t->cells[r * t->ncols + c]);
			if (n > w[c])
				w[c] = n;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (unsigned c = 0; c < ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			if (c + 1 == ncols)
				fputs(s, f);   /* no trailing blanks */
			else
				fprintf(f, "%-*s  ", (int)w[c], s);
		}
		fprintf(f, "%s\n", eol);
	}
}

void ctl_table_free(struct ctl_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}
