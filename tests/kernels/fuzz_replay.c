/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_replay - feeds files to a libFuzzer target without libFuzzer, so a
 * fuzz corpus (seeds and every crash ever found) runs as a unit test, under
 * ASan/UBSan in CI. Arguments are files or directories (their regular files,
 * not recursive); a directory that does not exist is skipped with a note.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_file(const char *path)
{
	void *buf;
	size_t len;
	int rc = tu_read_file(path, &buf, &len);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(-rc));
		return rc;
	}
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

/* Returns the number of files replayed, or -errno. Sorted, so a crash
 * always shows up at the same file. */
static int replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			char **nn = realloc(names, cap * sizeof(*names));
			if (!nn) {
				rc = -ENOMEM;
				break;
			}
			names = nn;
		}
		if (!(names[n] = strdup(path))) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (rc == 0)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (rc == 0 && replay_file(names[i]) < 0)
			rc = -EIO;
		free(names[i]);
	}
	free(names);
	return rc < 0 ? rc : (int)n;
}

int main(int argc, char **argv)
{
	int total = 0, failed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			printf("note: %s does not exist, skipped\n", argv[i]);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			int n = replay_dir(argv[i]);
			if (n < 0) {
				fprintf(stderr, "%s: %s\n", argv[i], strerror(-n));
				failed++;
			} else {
				printf("%s: %d inputs\n", argv[i], n);
				total += n;
			}
		} else if (replay_file(argv[i]) < 0) {
			failed++;
		} else {
			total++;
		}
	}
	printf("replayed %d inputs without a crash\n", total);
	if (total == 0) {
		printf("SKIP: no inputs\n");
		return 77;
	}
	return failed ? 1 : 0;
}
