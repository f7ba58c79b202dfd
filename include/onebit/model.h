/* The model's parameters: one contiguous float buffer with a table of named
 * tensors (Hugging Face Llama names, docs/MODEL.md), initialisation, and
 * safetensors load/save. Backends take their layout from here. */
#ifndef ONEBIT_MODEL_H
#define ONEBIT_MODEL_H

#include "onebit/config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ob_param_kind {
    OB_PARAM_EMBED,     /* model.embed_tokens.weight */
    OB_PARAM_POSITIONS, /* model.embed_positions.weight */
    OB_PARAM_NORM,      /* input/post-attention/final norm gains */
    OB_PARAM_QK_NORM,   /* q_norm / k_norm gains [head_dim] */
    OB_PARAM_LINEAR,    /* a decoder projection */
    OB_PARAM_HEAD,      /* lm_head.weight (untied) */
} ob_param_kind;

/* The seven projections of a decoder layer. */
typedef enum ob_proj {
    OB_PROJ_Q, OB_PROJ_K, OB_PROJ_V, OB_PROJ_O, OB_PROJ_GATE, OB_PROJ_UP, OB_PROJ_DOWN, OB_PROJ_COUNT
} ob_proj;

typedef struct ob_param {
    char name[96];
    ob_param_kind kind;
    int layer;          /* decoder layer, -1 for model-level tensors */
    int rows, cols;     /* matrices [rows, cols]; vectors have cols = 0 */
    size_t offset;      /* in floats, into the parameter buffer */
    size_t numel;
    ob_quant_mode mode; /* quantiser in the forward pass (f16 for gains and positions) */
    bool decay;         /* AdamW weight decay applies (2-D weights) */
    bool clamp;         /* latent clamp after each optimizer step */
} ob_param;

/* Parameter indices of one decoder layer (-1 when absent). */
typedef struct ob_layer_params {
    int input_norm, post_norm, q_norm, k_norm;
    int proj[OB_PROJ_COUNT];
} ob_layer_params;

typedef struct ob_model {
    ob_config cfg;
    ob_param *params;
    int num_params;
    size_t num_floats;       /* total size of the parameter buffer */
    int embed, positions, final_norm, head; /* head == embed when tied; positions -1 with RoPE */
    ob_layer_params *layers;
    float *weights;          /* the parameter buffer (num_floats), 64-byte aligned */
} ob_model;

/* Builds the layout for a validated config and allocates a zeroed buffer. */
ob_status ob_model_create(const ob_config *cfg, ob_model **out) OB_NODISCARD;
void ob_model_free(ob_model *m);
/* Fills the buffer per docs/MODEL.md "Init" from a seed. */
void ob_model_init(ob_model *m, uint64_t seed);
int ob_model_find(const ob_model *m, const char *name);
/* Writes every parameter as F32 to a safetensors file (atomic). `metadata` may be
 * NULL or a NULL-terminated list of key, value pairs. */
ob_status ob_model_save(const ob_model *m, const float *buffer, const char *path,
                        const char *const *metadata) OB_NODISCARD;
/* Reads every parameter by name into `buffer` (num_floats): each must be present with
 * its exact shape (F32, F16 or BF16); extra tensors are an error. */
ob_status ob_model_load(const ob_model *m, float *buffer, const char *path) OB_NODISCARD;
/* Number of parameters of matrices whose mode is binary/ternary (for reports). */
size_t ob_model_quantised_count(const ob_model *m);

#ifdef __cplusplus
}
#endif
#endif
