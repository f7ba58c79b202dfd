/* The .1bit source of packed models: the format module's reader
 * (src/format/onebit_model.c) maps the file, validates it and fills an
 * ob_packed_model with views into it (no copy), releasing the mapping through
 * the model's release callback. */
#ifndef ONEBIT_INFER_SOURCE_1BIT_H
#define ONEBIT_INFER_SOURCE_1BIT_H

#include "onebit/infer.h"

/* The first bytes of a .1bit file. */
#define OB_1BIT_MAGIC "1BIT"

/* A checkpoint directory (heap path): DIR itself when it holds config.json,
 * else what DIR/latest resolves to when that does; NULL when neither. */
char *ob_checkpoint_dir_resolve(const char *dir);

ob_status ob_packed_model_open_1bit(const char *path, const ob_pack_options *opts, ob_packed_model **model,
                                    ob_tokenizer **tok) OB_NODISCARD;

#endif
