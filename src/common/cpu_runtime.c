/* OpenBLAS picks its matrix kernels from the CPU model at load time. On CPUs it
 * does not know (new models, or virtual machines that hide the model), it falls
 * back to a generic SSE3 kernel ("Prescott") that is several times slower; the
 * OPENBLAS_CORETYPE variable overrides the choice, but only before the library
 * loads. This tells a program which core type to ask for, from the CPU's
 * features, and re-executes the program with it. */
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

void ob_blas_use_fast_kernels(char **argv) {
    const char *core = better_coretype();
    if (!core)
        return;
    setenv("OPENBLAS_CORETYPE", core, 1);
    execv("/proc/self/exe", argv); /* returns only on failure: then run on as is */
}
