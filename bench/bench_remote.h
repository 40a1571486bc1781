/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_remote.h - quiver-bench against a running quiverd: `--shm SOCKET`
 * (libquiver's shared-memory channel) or `--udp ADDR:PORT` (qv_udp_*),
 * printed beside the floors of the same transport (floor-ring, floor-udp),
 * an empty round trip through the daemon (`echo`) and the same model run
 * in-process (`inproc`), all measured in the same run.
 */
#ifndef QV_BENCH_REMOTE_H
#define QV_BENCH_REMOTE_H

/* Whether argv asks for the remote mode (--shm or --udp anywhere). */
int qv_bench_is_remote(int argc, char **argv);

/* Runs it. Returns the exit code: 0 ok, 1 a run failed, 2 bad arguments. */
int qv_bench_remote_main(int argc, char **argv);

#endif /* QV_BENCH_REMOTE_H */
