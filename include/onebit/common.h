/* Common services every onebit module relies on: status codes with a thread-local
 * error message, levelled logging, a platform-independent seeded RNG, an arena
 * allocator, a progress bar, timers, strict JSON parsing, UTF-8 checks and
 * crash-safe file output. Nothing here prints unless the caller asks it to. */
#ifndef ONEBIT_COMMON_H
#define ONEBIT_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OB_VERSION_MAJOR 0
#define OB_VERSION_MINOR 1
#define OB_VERSION_PATCH 0
#define OB_VERSION_STRING "0.1.0"

#if defined(__GNUC__)
#define OB_PRINTF(fmt_idx, first_arg) __attribute__((format(printf, fmt_idx, first_arg)))
#define OB_NODISCARD __attribute__((warn_unused_result))
#else
#define OB_PRINTF(fmt_idx, first_arg)
#define OB_NODISCARD
#endif

/* ---- status and error messages ------------------------------------------ */

typedef enum ob_status {
    OB_OK = 0,
    OB_ERR_INVALID_ARG,  /* the caller passed something wrong (flag, argument) */
    OB_ERR_IO,           /* open, read, write, mmap, rename failed */
    OB_ERR_FORMAT,       /* a file's bytes are malformed */
    OB_ERR_CONFIG,       /* a well-formed value is out of its allowed range */
    OB_ERR_NOMEM,        /* an allocation failed */
    OB_ERR_UNSUPPORTED,  /* valid, but not implemented or not built in */
    OB_ERR_NUMERIC,      /* NaN or Inf where a finite number was needed */
    OB_ERR_INTERRUPTED,  /* stopped on request (Ctrl-C) */
    OB_ERR_DEVICE,       /* CUDA, cuBLAS or NCCL failure */
    OB_ERR_NOT_FOUND,    /* a named thing (tensor, file, token) is absent */
} ob_status;

/* Short name of a status ("format error"). */
const char *ob_status_name(ob_status s);

/* Records a message for this thread and returns `code`, so that callers can write
 * `return ob_error(OB_ERR_FORMAT, "%s: ...", path);`. */
ob_status ob_error(ob_status code, const char *fmt, ...) OB_PRINTF(2, 3);

/* Prefixes the current message with context ("loading x: <old message>"). */
ob_status ob_error_context(ob_status code, const char *fmt, ...) OB_PRINTF(2, 3);

/* The last message recorded on this thread ("" if none). */
const char *ob_last_error(void);
void ob_clear_error(void);

/* ---- logging ------------------------------------------------------------ */

typedef enum ob_log_level {
    OB_LOG_ERROR = 0,
    OB_LOG_WARN,
    OB_LOG_INFO,
    OB_LOG_DEBUG,
    OB_LOG_TRACE,
} ob_log_level;

typedef void (*ob_log_sink)(ob_log_level level, const char *message, void *user);

/* The level comes from $ONEBIT_LOG (error|warn|info|debug|trace) on first use,
 * default warn; ob_log_set_level overrides it. */
void ob_log(ob_log_level level, const char *fmt, ...) OB_PRINTF(2, 3);
void ob_log_set_level(ob_log_level level);
ob_log_level ob_log_get_level(void);
bool ob_log_enabled(ob_log_level level);
/* Route messages elsewhere (tests capture warnings this way); NULL restores stderr. */
void ob_log_set_sink(ob_log_sink sink, void *user);
/* Parses "warn" etc.; returns false on an unknown name. */
bool ob_log_level_parse(const char *name, ob_log_level *out);

#define OB_LOG_W(...) ob_log(OB_LOG_WARN, __VA_ARGS__)
#define OB_LOG_I(...) ob_log(OB_LOG_INFO, __VA_ARGS__)
#define OB_LOG_D(...) ob_log(OB_LOG_DEBUG, __VA_ARGS__)

/* ---- random numbers ----------------------------------------------------- */

/* xoshiro256** seeded through splitmix64: the same seed gives the same stream on
 * every platform and compiler (integer arithmetic only; normals use a fixed
 * polar method in double precision). */
typedef struct ob_rng {
    uint64_t s[4];
} ob_rng;

void ob_rng_seed(ob_rng *rng, uint64_t seed);
/* An independent stream for worker `stream` (thread, rank) derived from `seed`. */
void ob_rng_seed_stream(ob_rng *rng, uint64_t seed, uint64_t stream);
uint64_t ob_rng_u64(ob_rng *rng);
uint32_t ob_rng_u32(ob_rng *rng);
/* Uniform integer in [0, n), without modulo bias; n > 0. */
uint64_t ob_rng_below(ob_rng *rng, uint64_t n);
/* Uniform in [0, 1) with 53 (double) or 24 (float) random bits. */
double ob_rng_uniform(ob_rng *rng);
float ob_rng_uniformf(ob_rng *rng);
/* Standard normal. */
double ob_rng_normal(ob_rng *rng);
void ob_rng_fill_normal(ob_rng *rng, float *out, size_t n, float mean, float stddev);

/* ---- arena allocator ---------------------------------------------------- */

/* One block, bump allocation, reset to a mark: activations and scratch buffers
 * are sized once and never allocated in hot loops. */
typedef struct ob_arena {
    uint8_t *base;
    size_t capacity;
    size_t used;
    size_t high_water;
} ob_arena;

ob_status ob_arena_init(ob_arena *arena, size_t capacity) OB_NODISCARD;
/* NULL (with an error message) when the arena is full; align is a power of two. */
void *ob_arena_alloc(ob_arena *arena, size_t bytes, size_t align);
size_t ob_arena_mark(const ob_arena *arena);
void ob_arena_reset(ob_arena *arena, size_t mark);
void ob_arena_free(ob_arena *arena);

/* ---- time and progress -------------------------------------------------- */

/* Monotonic seconds. */
double ob_now(void);

typedef struct ob_progress {
    FILE *out;
    char label[48];
    char unit[16];
    uint64_t total;     /* 0 = unknown */
    uint64_t done;
    double start;
    double last_draw;
    bool tty;
    bool finished;
} ob_progress;

/* Draws on `out` (stderr if NULL): a bar with rate and ETA on a terminal, one plain
 * line every few seconds otherwise. */
void ob_progress_begin(ob_progress *p, FILE *out, const char *label, uint64_t total, const char *unit);
/* `suffix` (may be NULL) is shown after the rate, e.g. "loss 3.21". */
void ob_progress_update(ob_progress *p, uint64_t done, const char *suffix);
void ob_progress_end(ob_progress *p, const char *suffix);
/* Formats seconds as "1h02m", "3m05s" or "4.2s". */
void ob_format_duration(double seconds, char *buf, size_t size);

/* ---- text --------------------------------------------------------------- */

/* True if `s[0..n)` is well-formed UTF-8 (no overlongs, surrogates or values above
 * U+10FFFF). On failure *bad_offset (if not NULL) is the first bad byte. */
bool ob_utf8_valid(const char *s, size_t n, size_t *bad_offset);
/* Levenshtein distance, for "did you mean" suggestions. */
size_t ob_edit_distance(const char *a, const char *b);
/* True when a name at edit `distance` from what the user typed is worth
 * suggesting: at most a third of the typed name's length plus one (leading
 * dashes not counted), and less than its whole length. One rule for flags and
 * command names, so '--lr-mn' suggests '--lr-min' and '--x' suggests nothing. */
bool ob_close_enough(const char *given, size_t distance);

/* ---- files -------------------------------------------------------------- */

/* Reads a whole file into a NUL-terminated heap buffer. */
ob_status ob_read_file(const char *path, char **data, size_t *size) OB_NODISCARD;

typedef struct ob_mapping {
    void *data;
    size_t size;
} ob_mapping;

/* Read-only mmap of a whole file (an empty file maps to data = NULL, size = 0). */
ob_status ob_map_file(const char *path, ob_mapping *map) OB_NODISCARD;
void ob_unmap_file(ob_mapping *map);

/* A file written under a temporary name next to its destination and renamed into
 * place by ob_atomic_commit after fsync, so a crash never leaves a half-written
 * file under the final name. */
typedef struct ob_atomic_file {
    FILE *fp;
    char *final_path;
    char *temp_path;
} ob_atomic_file;

ob_status ob_atomic_open(ob_atomic_file *f, const char *path) OB_NODISCARD;
ob_status ob_atomic_commit(ob_atomic_file *f) OB_NODISCARD;
void ob_atomic_abort(ob_atomic_file *f);
/* Writes `size` bytes to `path` atomically. */
ob_status ob_write_file_atomic(const char *path, const void *data, size_t size) OB_NODISCARD;

/* mkdir -p. */
ob_status ob_mkdirs(const char *path) OB_NODISCARD;
bool ob_path_exists(const char *path);
bool ob_is_directory(const char *path);
/* Joins two path parts into a new heap string. */
char *ob_path_join(const char *a, const char *b);

/* ---- run-time libraries ------------------------------------------------- */

/* Re-executes the program (argv) with run-time library settings that suit the
 * CPU and the work, when they are not set already: OPENBLAS_CORETYPE where
 * OpenBLAS fell back to a slow generic kernel, and for training
 * OMP_WAIT_POLICY=passive (OpenMP threads must not spin while OpenBLAS's
 * threads compute). Call it first in main; it returns when nothing changes. */
void ob_tune_cpu_runtime(char **argv, bool training);

/* ---- memory ------------------------------------------------------------- */

/* malloc/calloc that record an error message on failure. */
void *ob_malloc(size_t size);
void *ob_calloc(size_t count, size_t size);
/* 64-byte aligned allocation, released with ob_aligned_free. */
void *ob_aligned_alloc(size_t size);
void ob_aligned_free(void *p);
char *ob_strdup(const char *s);

#ifdef __cplusplus
}
#endif
#endif
