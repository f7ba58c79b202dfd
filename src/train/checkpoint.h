/* Checkpoint directories (DESIGN.md §5): checkpoint-N/ with config.json,
 * model.safetensors, optimizer.safetensors, tokenizer.json and
 * trainer_state.json, and a `latest` link to the newest. A checkpoint is built
 * under a temporary name and renamed into place, so a crash never leaves a
 * half-written one behind. */
#ifndef ONEBIT_TRAIN_CHECKPOINT_H
#define ONEBIT_TRAIN_CHECKPOINT_H

#include <cjson/cJSON.h>

#include "onebit/model.h"

/* Writes checkpoint-<step> in output_dir and points `latest` at it; the path of
 * the directory is copied to `written`. `tokenizer` may be NULL. `state` is the
 * trainer_state.json object. */
ob_status ob_checkpoint_save(const char *output_dir, int64_t step, const ob_model *m, const float *params,
                             const float *exp_avg, const float *exp_avg_sq, const char *tokenizer,
                             const cJSON *state, char *written, size_t written_size) OB_NODISCARD;

/* "latest" (in output_dir) or a directory → the checkpoint directory. */
ob_status ob_checkpoint_resolve(const char *output_dir, const char *resume, char *dir, size_t size) OB_NODISCARD;

/* Reads parameters, optimizer moments and the trainer state of a checkpoint made
 * for the same config (*state: free with cJSON_Delete). */
ob_status ob_checkpoint_load(const char *dir, const ob_model *m, float *params, float *exp_avg, float *exp_avg_sq,
                             cJSON **state) OB_NODISCARD;

/* Copies a file (atomically at the destination). */
ob_status ob_copy_file(const char *from, const char *to) OB_NODISCARD;

#endif
