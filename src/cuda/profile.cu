/* Phase timing of GPU passes (see profile.cuh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/profile.cuh"

void ob_gpu_profile_init(ob_gpu_profile *p) {
    memset(p, 0, sizeof *p);
    const char *env = getenv("ONEBIT_CUDA_PROFILE");
    p->on = env && env[0] == '1';
    for (int i = 0; p->on && i < PROF_EVENTS; i++)
        cudaEventCreate(&p->events[i]);
}

void ob_gpu_profile_mark(ob_gpu_profile *p, cudaStream_t s, const char *label) {
    if (!p->on || p->count >= PROF_EVENTS)
        return;
    cudaEventRecord(p->events[p->count], s);
    p->labels[p->count++] = label;
}

static int name_index(ob_gpu_profile *p, const char *name) {
    for (int i = 0; i < p->num_names; i++)
        if (strcmp(p->names[i], name) == 0)
            return i;
    if (p->num_names == PROF_NAMES)
        return PROF_NAMES - 1;
    p->names[p->num_names] = name;
    return p->num_names++;
}

/* The first passes (plan selection, caches) are left out of the figures. */
#define PROF_WARMUP 2

void ob_gpu_profile_flush(ob_gpu_profile *p, cudaStream_t s) {
    if (!p->on)
        return;
    ob_gpu_profile_mark(p, s, NULL);
    cudaStreamSynchronize(s);
    for (int i = 0; i + 1 < p->count && p->seen >= PROF_WARMUP; i++) {
        float ms = 0;
        if (!p->labels[i] || cudaEventElapsedTime(&ms, p->events[i], p->events[i + 1]) != cudaSuccess)
            continue;
        int k = name_index(p, p->labels[i]);
        p->ms[k] += ms;
        p->calls[k]++;
    }
    p->count = 0;
    if (p->seen++ >= PROF_WARMUP)
        p->passes++;
}

void ob_gpu_profile_report(ob_gpu_profile *p, const char *title, double (*flops)(const char *name)) {
    if (!p->on || !p->passes)
        return;
    double total = 0;
    for (int i = 0; i < p->num_names; i++)
        total += p->ms[i];
    fprintf(stderr, "%s: %d passes, %.2f ms per pass\n", title, p->passes, total / p->passes);
    for (int i = 0; i < p->num_names; i++) {
        fprintf(stderr, "  %-28s %9.3f ms/pass %5.1f%%  (%ld calls)", p->names[i], p->ms[i] / p->passes,
                100.0 * p->ms[i] / total, p->calls[i]);
        if (flops && p->ms[i] > 0)
            fprintf(stderr, "  %6.1f TFLOP/s", flops(p->names[i]) * p->calls[i] / (p->ms[i] * 1e9));
        fputc('\n', stderr);
    }
    for (int i = 0; i < PROF_EVENTS; i++)
        cudaEventDestroy(p->events[i]);
    p->on = false;
}
