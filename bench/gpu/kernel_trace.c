/* A kernel timeline for any CUDA program, through CUPTI's activity records:
 *   LD_PRELOAD=build-gpu/lib/libkernel_trace.so bench_gpu_train ...
 * At exit it prints, per training step (from the end of the first step's
 * last kernel to the end of the last step's; the whole run where there are
 * fewer than two): the time some kernel ran on the device, the idle gaps
 * between kernels by length, the time kernels ran beside each other, and the
 * kernels and memsets by total time. What ONEBIT_CUDA_PROFILE cannot show:
 * the gaps between launches and the overlap of streams.
 * KERNEL_TRACE_TIMELINE=file also writes the last step's kernels, one a line. */
#include <cupti.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUFFER_BYTES (8u << 20)
#define TOP_KERNELS 40

typedef struct {
    uint64_t start, end;
    const char *name;
    uint32_t stream;
} span;

static span *spans;
static size_t count, capacity;

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
    *buffer = aligned_alloc(8, BUFFER_BYTES);
    *size = *buffer ? BUFFER_BYTES : 0;
    *max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer, size_t size, size_t valid) {
    (void)ctx, (void)stream, (void)size;
    CUpti_Activity *record = NULL;
    while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
        span s;
        if (record->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) {
            const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)record;
            s = (span){k->start, k->end, strdup(k->name ? k->name : "?"), k->streamId};
        } else if (record->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
            const CUpti_ActivityMemset4 *m = (const CUpti_ActivityMemset4 *)record;
            char name[48]; /* by size: what is zeroed shows in how much */
            snprintf(name, sizeof name, "memset %llu B", (unsigned long long)m->bytes);
            s = (span){m->start, m->end, strdup(name), m->streamId};
        } else {
            continue;
        }
        if (count == capacity) {
            capacity = capacity ? 2 * capacity : 65536;
            spans = realloc(spans, capacity * sizeof *spans);
        }
        spans[count++] = s;
    }
    free(buffer);
}

static int by_start(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

typedef struct {
    const char *name;
    double us;
    int calls;
} kernel_total;

static int by_time(const void *a, const void *b) {
    const kernel_total *x = a, *y = b;
    return x->us < y->us ? 1 : x->us > y->us ? -1 : 0;
}

/* A step's last kernel: the AdamW of the parameters outside the matrices. */
static bool ends_step(const span *s) { return strstr(s->name, "adamw_kernel") != NULL; }

/* KERNEL_TRACE_TIMELINE=file: the last step's kernels, one a line: start and
 * end (us from the step's start), stream, name. */
static void write_timeline(size_t first, size_t last) {
    const char *path = getenv("KERNEL_TRACE_TIMELINE");
    if (!path || last <= first)
        return;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "kernel trace: cannot write %s\n", path);
        return;
    }
    size_t from = last - 1; /* the kernels after the step before the last */
    while (from > first && !ends_step(&spans[from - 1]))
        from--;
    uint64_t t0 = spans[from].start;
    for (size_t i = from; i < last; i++)
        fprintf(f, "%10.1f %10.1f %3u %.120s\n", (spans[i].start - t0) / 1e3, (spans[i].end - t0) / 1e3,
                spans[i].stream, spans[i].name);
    fclose(f);
}

static void report(void) {
    cuptiActivityFlushAll(1);
    if (count < 2)
        return;
    qsort(spans, count, sizeof *spans, by_start);
    size_t first = 0, last = count; /* the kernels that start after the first AdamW and by the end of the last */
    int adamw = 0;
    for (size_t i = 0; i < count; i++)
        if (ends_step(&spans[i])) {
            if (adamw++ == 0)
                first = i + 1;
            last = i + 1;
        }
    int steps = adamw - 1;
    if (steps < 1 || first >= last)
        first = 0, last = count, steps = 1;
    double kernel_us = 0, idle_us[3] = {0, 0, 0}; /* gaps under 5 µs, under 50 µs, longer */
    uint64_t begin = first ? spans[first - 1].end : spans[0].start, busy_end = begin, busy = 0;
    kernel_total *totals = calloc(count, sizeof *totals);
    size_t distinct = 0;
    for (size_t i = first; i < last; i++) {
        const span *s = &spans[i];
        kernel_us += (s->end - s->start) / 1e3;
        if (s->start > busy_end) {
            double gap = (s->start - busy_end) / 1e3;
            idle_us[gap < 5 ? 0 : gap < 50 ? 1 : 2] += gap;
        }
        if (s->end > busy_end) {
            busy += s->end - (s->start > busy_end ? s->start : busy_end);
            busy_end = s->end;
        }
        size_t k = 0;
        while (k < distinct && strcmp(totals[k].name, s->name) != 0)
            k++;
        if (k == distinct)
            totals[distinct++].name = s->name;
        totals[k].us += (s->end - s->start) / 1e3;
        totals[k].calls++;
    }
    double per = steps, window_us = (busy_end - begin) / 1e3;
    fprintf(stderr, "kernel trace: %d steps, %.3f ms a step\n", steps, window_us / 1e3 / per);
    fprintf(stderr, "  some kernel running  %8.3f ms a step\n", busy / 1e6 / per);
    fprintf(stderr, "  idle, gaps < 5 us    %8.3f ms a step\n", idle_us[0] / 1e3 / per);
    fprintf(stderr, "  idle, gaps 5-50 us   %8.3f ms a step\n", idle_us[1] / 1e3 / per);
    fprintf(stderr, "  idle, longer gaps    %8.3f ms a step\n", idle_us[2] / 1e3 / per);
    fprintf(stderr, "  kernels beside others%8.3f ms a step (sum of kernel times minus busy time)\n",
            (kernel_us - busy / 1e3) / 1e3 / per);
    write_timeline(first, last);
    qsort(totals, distinct, sizeof *totals, by_time);
    for (size_t k = 0; k < distinct && k < TOP_KERNELS; k++)
        fprintf(stderr, "  %8.3f ms %6.1f calls  %8.1f us  %.90s\n", totals[k].us / 1e3 / per, totals[k].calls / per,
                totals[k].us / totals[k].calls, totals[k].name);
    free(totals);
}

__attribute__((constructor)) static void start_trace(void) {
    if (cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS ||
        cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS ||
        cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET) != CUPTI_SUCCESS) {
        fprintf(stderr, "kernel trace: CUPTI would not start\n");
        return;
    }
    atexit(report);
}
