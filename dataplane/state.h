/* SPDX-License-Identifier: Apache-2.0 */
/* state.h - routes that survive a restart (state.c). */
#ifndef QV_DP_STATE_H
#define QV_DP_STATE_H

struct qv_daemon;

/* Writes every route's versions and roles to d->state_path atomically.
 * 0 when there is no state file; -errno. Control thread. */
int qv_state_save(struct qv_daemon *d);
/* qv_state_save, logging a failure with what it followed (`why`). */
void qv_state_save_logged(struct qv_daemon *d, const char *why);
/* Reads d->state_path back at start (after the repository loaded) and
 * publishes the restored table. A missing file is 0; a bad one is logged
 * and returned as -errno with nothing changed. */
int qv_state_restore(struct qv_daemon *d);

#endif /* QV_DP_STATE_H */
