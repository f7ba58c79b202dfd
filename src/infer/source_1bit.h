/* The .1bit source of packed models. The export module's reader maps the file
 * and fills an ob_packed_model with views into it (no copy), releasing the
 * mapping through the model's release callback; until it lands, opening a
 * .1bit file says so. */
#ifndef ONEBIT_INFER_SOURCE_1BIT_H
#define ONEBIT_INFER_SOURCE_1BIT_H

#include "onebit/infer.h"

/* The first bytes of a .1bit file. */
#define OB_1BIT_MAGIC "1BIT"

ob_status ob_packed_model_open_1bit(const char *path, const ob_pack_options *opts, ob_packed_model **model,
                                    ob_tokenizer **tok) OB_NODISCARD;

#endif
