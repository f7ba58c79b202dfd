/* Two run-time libraries read their settings only when they load, so a program
 * that wants other settings sets the variables and re-executes itself:
 * - OpenBLAS picks its matrix kernels from the CPU model. On CPUs it does not
 *   know (new models, or virtual machines that hide the model) it falls back to
 *   a generic SSE3 kernel ("Prescott"), several times slower; OPENBLAS_CORETYPE
 *   names the kernel that matches the CPU's features instead.
 * - GNU OpenMP threads spin for a while after each parallel region. In training,
 *   OpenMP regions alternate with OpenBLAS products, whose own threads then find
 *   every core busy spinning (2.8x slower steps on 2 cores); OMP_WAIT_POLICY=passive
 *   puts them to sleep at once. Inference runs back-to-back short regions and no
 *   BLAS, so there spinning is what makes it fast. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onebit/common.h"

static const char *better_coretype(void) {
    if (getenv("OPENBLAS_CORETYPE"))
        return NULL;
    const char *core = openblas_get_corename();
    if (!core || (strcmp(core, "Prescott") != 0 && strcmp(core, "Core2") != 0 && strcmp(core, "Nehalem") != 0 &&
                  strcmp(core, "Sandybridge") != 0))
        return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
    return NULL;
}

void ob_tune_cpu_runtime(char **argv, bool training) {
    bool changed = false;
    const char *core = better_coretype();
    if (core) {
        setenv("OPENBLAS_CORETYPE", core, 1);
        changed = true;
    }
    if (training && !getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        changed = true;
    }
    if (changed)
        execv("/proc/self/exe", argv); /* returns only on failure: then run on as is */
}
