/* placeholder */
#include "tokenizer/tok_internal.h"
ob_status ob_tokenizer_train(const ob_bpe_train_options *opts, const char *const *files, int num_files,
                             ob_tokenizer **out) { (void)opts; (void)files; (void)num_files; *out = NULL; return ob_error(OB_ERR_UNSUPPORTED, "todo"); }
ob_status ob_tokenizer_save(const ob_tokenizer *tok, const char *path) { (void)tok; return ob_error(OB_ERR_UNSUPPORTED, "todo %s", path); }
