/* Process placement from the environment and the file rendezvous (dist.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "onebit/dist.h"

static ob_status env_int(const char *name, int *out, bool *present) {
    const char *v = getenv(name);
    *present = v && *v;
    if (!*present)
        return OB_OK;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < 0 || x > 1 << 20)
        return ob_error(OB_ERR_INVALID_ARG, "environment variable %s = '%s' is not a valid rank or size", name, v);
    *out = (int)x;
    return OB_OK;
}

ob_status ob_dist_from_env(ob_dist *d) {
    memset(d, 0, sizeof *d);
    d->world = 1;
    static const char *const names[2][3] = {
        {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
        {"ONEBIT_RANK", "ONEBIT_WORLD_SIZE", "ONEBIT_LOCAL_RANK"},
    };
    for (int k = 0; k < 2; k++) {
        bool has_rank, has_size, has_local;
        int rank = 0, size = 1, local = 0;
        ob_status st = env_int(names[k][0], &rank, &has_rank);
        if (st == OB_OK)
            st = env_int(names[k][1], &size, &has_size);
        if (st == OB_OK)
            st = env_int(names[k][2], &local, &has_local);
        if (st)
            return st;
        if (!has_rank && !has_size)
            continue;
        if (!has_rank || !has_size || size < 1 || rank >= size)
            return ob_error(OB_ERR_INVALID_ARG, "%s = %d and %s = %d do not describe a process of a group", names[k][0],
                            rank, names[k][1], size);
        d->rank = rank;
        d->world = size;
        d->local_rank = has_local ? local : rank;
        return OB_OK;
    }
    return OB_OK;
}

static double now_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A rendezvous file is taken as fresh when written at most this long before a
 * rank started looking (ranks start within moments of each other). */
#define FRESH_SLACK_S 30.0

ob_status ob_dist_exchange(const ob_dist *d, void *bytes, size_t size, double timeout_s) {
    if (!d->rendezvous[0])
        return ob_error(OB_ERR_INVALID_ARG, "distributed training needs a rendezvous file (--dist-rendezvous)");
    if (d->rank == 0)
        return ob_write_file_atomic(d->rendezvous, bytes, size);
    double start = now_wall();
    for (;;) {
        struct stat st;
        if (stat(d->rendezvous, &st) == 0 && (size_t)st.st_size == size &&
            (double)st.st_mtime >= start - FRESH_SLACK_S) {
            char *data;
            size_t got;
            ob_status s = ob_read_file(d->rendezvous, &data, &got);
            if (s == OB_OK && got == size) {
                memcpy(bytes, data, size);
                free(data);
                return OB_OK;
            }
            free(data);
            ob_clear_error();
        }
        if (now_wall() - start > timeout_s)
            return ob_error(OB_ERR_IO, "%s: rank %d waited %.0f s for rank 0 to publish the NCCL id (is rank 0 "
                            "running, with the same --dist-rendezvous?)", d->rendezvous, d->rank, timeout_s);
        usleep(100 * 1000);
    }
}
