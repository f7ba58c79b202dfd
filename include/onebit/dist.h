/* Data-parallel training over several processes, one GPU each: which process
 * this is (from mpirun's or onebit's environment variables) and where the
 * processes meet to set up NCCL. docs/TRAINING.md explains the launch. */
#ifndef ONEBIT_DIST_H
#define ONEBIT_DIST_H

#include "onebit/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ob_dist {
    int rank;       /* 0 .. world - 1 */
    int world;      /* number of processes */
    int local_rank; /* index of this process on its machine: its GPU */
    char rendezvous[4096]; /* file through which rank 0 hands out the NCCL id */
} ob_dist;

/* Reads OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK (mpirun), or ONEBIT_RANK /
 * ONEBIT_WORLD_SIZE / ONEBIT_LOCAL_RANK (one process per GPU started by hand or
 * by a scheduler); world 1 when neither is set. */
ob_status ob_dist_from_env(ob_dist *d) OB_NODISCARD;

/* Rank 0 publishes `bytes` at the rendezvous file (atomically, replacing a stale
 * one); other ranks wait for a file written after they started (up to
 * timeout_s seconds) and read it. */
ob_status ob_dist_exchange(const ob_dist *d, void *bytes, size_t size, double timeout_s) OB_NODISCARD;

#ifdef __cplusplus
}
#endif
#endif
