/* Optional timing of the phases of a GPU pass (ONEBIT_CUDA_PROFILE=1): CUDA
 * events recorded at phase boundaries, summed per phase name, printed as a
 * table when the backend is destroyed. Costs one branch when off. */
#ifndef ONEBIT_CUDA_PROFILE_CUH
#define ONEBIT_CUDA_PROFILE_CUH

#include "cuda/cuda_common.cuh"

#define PROF_EVENTS 1024
#define PROF_NAMES 64

typedef struct ob_gpu_profile {
    bool on;
    cudaEvent_t events[PROF_EVENTS];
    const char *labels[PROF_EVENTS];
    int count;
    const char *names[PROF_NAMES];
    double ms[PROF_NAMES];
    long calls[PROF_NAMES];
    int num_names;
    int passes; /* counted */
    int seen;   /* all */
} ob_gpu_profile;

void ob_gpu_profile_init(ob_gpu_profile *p);
/* The work queued on `s` from now until the next mark belongs to `label`. */
void ob_gpu_profile_mark(ob_gpu_profile *p, cudaStream_t s, const char *label);
/* Closes the pass: synchronises and adds up the phases. */
void ob_gpu_profile_flush(ob_gpu_profile *p, cudaStream_t s);
/* Prints the table under `title` (and frees the events). With flops, a
 * column of TFLOP/s from each name's floating-point operations per call. */
void ob_gpu_profile_report(ob_gpu_profile *p, const char *title, double (*flops)(const char *name));

#endif
