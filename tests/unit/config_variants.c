/* The shared model switches (see config_variants.h). */
#include "config_variants.h"

void cv_base_config(ob_config *c) {
    ob_config_default(c);
    c->vocab_size = 48;
    c->hidden_size = 32;
    c->num_heads = 4;
    c->num_kv_heads = 4;
    c->num_layers = 2;
    c->intermediate_size = 40;
    c->max_seq_len = 16;
}

void cv_binary_defaults(ob_config *c) { (void)c; }

void cv_ternary_relu2_rms_rope_untied(ob_config *c) {
    c->use_ternary = c->use_relu2 = c->use_subln = c->use_rope = true;
    c->use_qk_norm = c->use_residual_scaling = false;
    c->tie_embeddings = false;
}

void cv_ternary_absmean_swiglu_gqa(ob_config *c) {
    c->use_ternary = c->use_swiglu = c->use_subln = c->use_rope = true;
    c->use_dynamic_threshold = false;
    c->num_kv_heads = 2;
}

void cv_binary_layernorm_gqa1_untied(ob_config *c) {
    c->num_kv_heads = 1;
    c->use_relu2 = true;
    c->tie_embeddings = false;
}

void cv_ternary_small_clamp(ob_config *c) {
    c->use_ternary = true;
    c->latent_clamp_max = 0.03;
}

void cv_activation_bits_4(ob_config *c) {
    c->use_ternary = true;
    c->activation_bits = 4;
    c->use_swiglu = true;
}

void cv_mixed_layer_modes(ob_config *c) {
    c->has_layer_bit_map = true;
    c->tie_embeddings = false;
    c->embedding_mode = OB_MODE_EIGHTBIT;
    c->has_lm_head_mode = true;
    c->lm_head_mode = OB_MODE_FOURBIT;
    c->layer_modes[0] = OB_MODE_F16;
    c->layer_modes[1] = OB_MODE_EIGHTBIT;
}

void cv_binary_ternary_layers_tied_ternary_embedding(ob_config *c) {
    c->has_layer_bit_map = true;
    c->embedding_mode = OB_MODE_TERNARY;
    c->layer_modes[0] = OB_MODE_BINARY;
    c->layer_modes[1] = OB_MODE_TERNARY;
    c->use_swiglu = true;
}

void cv_fourbit_layers_binary_head(ob_config *c) {
    c->has_layer_bit_map = true;
    c->tie_embeddings = false;
    c->has_lm_head_mode = true;
    c->lm_head_mode = OB_MODE_BINARY;
    c->layer_modes[0] = OB_MODE_FOURBIT;
    c->layer_modes[1] = OB_MODE_TERNARY;
    c->use_subln = true;
}
