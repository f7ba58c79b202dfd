/* config.json: the model's shape and every quantisation switch (DESIGN.md §3),
 * with OneBit-LLM's field names and defaults. Loading validates every field and
 * names the file, field and value in errors; unknown fields are warned about and
 * written back unchanged on save. */
#ifndef ONEBIT_CONFIG_H
#define ONEBIT_CONFIG_H

#include "onebit/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OB_MAX_LAYERS 512

/* Precision of one part of the model (layer_bit_map modes). */
typedef enum ob_quant_mode {
    OB_MODE_F16 = 0,  /* full precision (fp32 in training, f16 when stored) */
    OB_MODE_EIGHTBIT, /* 8-bit weights, per-row absmax */
    OB_MODE_FOURBIT,  /* 4-bit weights, per-row absmax */
    OB_MODE_TERNARY,  /* {-1, 0, +1} with one scale per matrix */
    OB_MODE_BINARY,   /* {-1, +1} with one scale per matrix */
} ob_quant_mode;

typedef enum ob_ffn_kind {
    OB_FFN_SILU = 0, /* down(silu(up(x))) */
    OB_FFN_RELU2,    /* down(relu(up(x))^2) */
    OB_FFN_SWIGLU,   /* down(silu(gate(x)) * up(x)) */
} ob_ffn_kind;

typedef struct ob_config {
    int vocab_size;
    int hidden_size;
    int num_heads;
    int num_kv_heads;
    int num_layers;
    int intermediate_size;
    int max_seq_len;
    double layer_norm_eps;
    double rope_theta;
    bool tie_embeddings;
    bool use_ternary;
    bool use_relu2;
    bool use_swiglu;
    bool use_subln;
    bool use_rope;
    bool use_qk_norm;
    bool use_residual_scaling;
    bool use_dynamic_threshold;
    double ste_scale_factor;
    double latent_clamp_max;
    double anneal_fraction;
    int activation_bits;
    bool has_arenas;          /* arenas_initial is a number (not null) */
    double arenas_initial;
    int64_t arenas_anneal_steps;
    bool has_layer_bit_map;
    ob_quant_mode embedding_mode;
    bool has_lm_head_mode;    /* absent: the head follows embedding_mode */
    ob_quant_mode lm_head_mode;
    uint8_t layer_modes[OB_MAX_LAYERS]; /* ob_quant_mode per decoder layer */
    void *extra;              /* unknown fields (a cJSON object), kept for save */
} ob_config;

/* The defaults of DESIGN.md §3. */
void ob_config_default(ob_config *cfg);
/* Loads and validates. A missing file is an error. *cfg is overwritten (free an
 * earlier config first); on failure it holds the defaults and nothing to free. */
ob_status ob_config_load(const char *path, ob_config *cfg) OB_NODISCARD;
/* Parses and validates JSON text (same contract); `source` names it in messages. */
ob_status ob_config_parse(const char *text, size_t len, const char *source, ob_config *cfg) OB_NODISCARD;
ob_status ob_config_validate(const ob_config *cfg, const char *source) OB_NODISCARD;
/* Pretty-printed JSON (heap string, free with free()). */
char *ob_config_to_json(const ob_config *cfg);
ob_status ob_config_save(const ob_config *cfg, const char *path) OB_NODISCARD;
/* True when both describe the same model: every field, the layer_bit_map parts
 * that are present, and the unknown fields. */
bool ob_config_equal(const ob_config *a, const ob_config *b);
/* Deep copy (the unknown fields too); release with ob_config_free. */
ob_status ob_config_copy(ob_config *dst, const ob_config *src) OB_NODISCARD;
void ob_config_free(ob_config *cfg);

int ob_config_head_dim(const ob_config *cfg);
ob_ffn_kind ob_config_ffn(const ob_config *cfg);
/* Mode of decoder layer i: layer_bit_map when present, else ternary/binary from use_ternary. */
ob_quant_mode ob_config_layer_mode(const ob_config *cfg, int layer);
ob_quant_mode ob_config_embedding_mode(const ob_config *cfg);
ob_quant_mode ob_config_lm_head_mode(const ob_config *cfg);
/* Parameter count of the model this config describes. */
int64_t ob_config_param_count(const ob_config *cfg);

const char *ob_quant_mode_name(ob_quant_mode mode);
bool ob_quant_mode_parse(const char *name, ob_quant_mode *mode);
const char *ob_ffn_kind_name(ob_ffn_kind kind);

#ifdef __cplusplus
}
#endif
#endif
