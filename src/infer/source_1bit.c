/* Placeholder for the .1bit reader of the export module (see source_1bit.h):
 * it recognises the file and reports that reading it is not built yet. */
#include "infer/source_1bit.h"

ob_status ob_packed_model_open_1bit(const char *path, const ob_pack_options *opts, ob_packed_model **model,
                                    ob_tokenizer **tok) {
    (void)opts;
    *model = NULL;
    if (tok)
        *tok = NULL;
    return ob_error(OB_ERR_UNSUPPORTED, "%s: reading .1bit files is not built yet (it comes with the export module); "
                                        "give a checkpoint directory with --model-dir",
                    path);
}
