/* Model switches that the parity tests (test_torch_parity against PyTorch,
 * test_infer_equivalence between the runtime and the training forward) both
 * cover: each changes a small default configuration in place. */
#ifndef ONEBIT_TEST_CONFIG_VARIANTS_H
#define ONEBIT_TEST_CONFIG_VARIANTS_H

#include "onebit/config.h"

/* The small model the variants start from: the defaults of DESIGN §3 with
 * vocabulary 48, hidden 32, 4 heads, 2 layers, FFN 40, context 16. */
void cv_base_config(ob_config *c);

/* Binary, LayerNorm, learned positions, QK-norm, SiLU, tied: the defaults. */
void cv_binary_defaults(ob_config *c);
void cv_ternary_relu2_rms_rope_untied(ob_config *c);
void cv_ternary_absmean_swiglu_gqa(ob_config *c);
void cv_binary_layernorm_gqa1_untied(ob_config *c);
/* Many latent weights beyond the clamp. */
void cv_ternary_small_clamp(ob_config *c);
void cv_activation_bits_4(ob_config *c);
/* 8-bit embedding, 4-bit head, an f16 and an 8-bit layer. */
void cv_mixed_layer_modes(ob_config *c);
void cv_binary_ternary_layers_tied_ternary_embedding(ob_config *c);
void cv_fourbit_layers_binary_head(ob_config *c);

#endif
