/* SPDX-License-Identifier: Apache-2.0 */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int parse_line(char *line, struct tu_entry *e)
{
	char *save = NULL;
	char *f[7] = { 0 };
	int n = 0;

	line[strcspn(line, "\r\n")] = '\0';
	for (char *t = strtok_r(line, "\t", &save); t && n < 7; t = strtok_r(NULL, "\t", &save))
		f[n++] = t;
	memset(e, 0, sizeof(*e));
	if (n == 7 && strcmp(f[0], "good") == 0) {
		e->kind = TU_GOOD;
		e->in_dim = (uint32_t)strtoul(f[2], NULL, 10);
		e->out_dim = (uint32_t)strtoul(f[3], NULL, 10);
		e->rtol = strtod(f[4], NULL);
		e->atol = strtod(f[5], NULL);
		e->max_steps = (uint32_t)strtoul(f[6], NULL, 10);
	} else if (n == 3 && strcmp(f[0], "bad") == 0) {
		e->kind = TU_BAD;
		snprintf(e->errors, sizeof(e->errors), "%s", f[2]);
	} else {
		return -EINVAL;
	}
	snprintf(e->name, sizeof(e->name), "%s", f[1]);
	return 0;
}

int tu_manifest_read(const char *dir, struct tu_manifest *ret)
{
	char path[4096];
	char line[1024];
	struct tu_entry *e = NULL;
	size_t n = 0, cap = 0;

	snprintf(path, sizeof(path), "%s/manifest.tsv", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '\n' || line[0] == '#')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			struct tu_entry *ne = realloc(e, cap * sizeof(*e));
			if (!ne) {
				free(e);
				fclose(f);
				return -ENOMEM;
			}
			e = ne;
		}
		if (parse_line(line, &e[n]) < 0) {
			fprintf(stderr, "%s: bad manifest line %zu\n", path, n + 1);
			free(e);
			fclose(f);
			return -EINVAL;
		}
		n++;
	}
	fclose(f);
	ret->e = e;
	ret->n = n;
	return 0;
}

void tu_manifest_free(struct tu_manifest *m)
{
	free(m->e);
	m->e = NULL;
	m->n = 0;
}

int tu_read_file(const char *path, void **ret_buf, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	while (buf) {
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (len < cap)
			break;
		char *nb = realloc(buf, cap * 2);
		if (!nb) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		cap *= 2;
	}
	int rc = ferror(f) ? -EIO : 0;
	fclose(f);
	if (!buf)
		return -ENOMEM;
	if (rc) {
		free(buf);
		return rc;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

int tu_contains_any(const char *s, const char *alts)
{
	char alt[256];
	const char *p = alts;

	while (*p) {
		size_t l = strcspn(p, "|");
		if (l > 0 && l < sizeof(alt)) {
			memcpy(alt, p, l);
			alt[l] = '\0';
			if (strcasestr(s, alt))
				return 1;
		}
		p += l;
		if (*p == '|')
			p++;
	}
	return 0;
}
