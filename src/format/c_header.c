/* The C header export (`onebit export --emit-c-header`): one self-contained
 * header that defines `static const obe_model onebit_model` for the embedded
 * runtime, with every tensor as a 64-byte aligned const array (packed codes
 * as bytes, floats as exact hexadecimal literals, halves as integers), the
 * rotary tables, the config.json text and the tokenizer's vocabulary as bytes.
 * It prints the obe_model that ob_embedded_model_build makes, so the header
 * holds exactly what the tests run. */
#include <stdlib.h>
#include <string.h>

#include "format/embedded_model.h"

typedef struct {
    FILE *f;
    bool ok;
} out;

static void put(out *o, const char *s) {
    if (o->ok && fputs(s, o->f) < 0)
        o->ok = false;
}

static void putf(out *o, const char *fmt, ...) OB_PRINTF(2, 3);
static void putf(out *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (o->ok && vfprintf(o->f, fmt, ap) < 0)
        o->ok = false;
    va_end(ap);
}

#define PER_LINE 24

static void bytes_array(out *o, const char *name, const uint8_t *p, size_t n) {
    putf(o, "static const _Alignas(64) uint8_t %s[%zu] = {", name, n ? n : 1);
    char buf[PER_LINE * 4 + 8];
    for (size_t i = 0; i < n; i += PER_LINE) {
        size_t len = 0;
        buf[len++] = '\n';
        for (size_t k = i; k < n && k < i + PER_LINE; k++) {
            unsigned v = p[k];
            if (v >= 100)
                buf[len++] = (char)('0' + v / 100);
            if (v >= 10)
                buf[len++] = (char)('0' + v / 10 % 10);
            buf[len++] = (char)('0' + v % 10);
            buf[len++] = ',';
        }
        buf[len] = 0;
        put(o, buf);
    }
    put(o, n ? "\n};\n" : "0};\n");
}

static void u16_array(out *o, const char *name, const uint16_t *p, size_t n) {
    putf(o, "static const _Alignas(64) uint16_t %s[%zu] = {", name, n);
    for (size_t i = 0; i < n; i++)
        putf(o, "%s%u,", i % PER_LINE ? "" : "\n", p[i]);
    put(o, "\n};\n");
}

static void u32_array(out *o, const char *name, const uint32_t *p, size_t n) {
    putf(o, "static const _Alignas(64) uint32_t %s[%zu] = {", name, n);
    for (size_t i = 0; i < n; i++)
        putf(o, "%s%u,", i % 16 ? "" : "\n", p[i]);
    put(o, "\n};\n");
}

/* Hexadecimal literals ("%a") are exact: the compiler reads back the same bits. */
static void float_array(out *o, const char *name, const float *p, size_t n) {
    putf(o, "static const _Alignas(64) float %s[%zu] = {", name, n);
    for (size_t i = 0; i < n; i++)
        putf(o, "%s%a,", i % 8 ? "" : "\n", (double)p[i]);
    put(o, "\n};\n");
}

static const char *dtype_macro(int32_t code) {
    static const char *const names[] = {"0", "OBE_F32", "OBE_F16", "OBE_I8", "OBE_FOURBIT", "OBE_TERNARY2",
                                        "OBE_BINARY1"};
    return code >= 1 && code <= 6 ? names[code] : "0";
}

/* The arrays of one tensor, named <name>_data and <name>_scales. */
static void tensor_arrays(out *o, const char *name, const obe_tensor *t, const char *what) {
    char buf[96];
    size_t bytes = (size_t)t->rows * (size_t)t->row_bytes;
    putf(o, "\n/* %s: %s [%d, %d] */\n", what, dtype_macro(t->dtype), t->rows, t->cols);
    snprintf(buf, sizeof buf, "%s_data", name);
    if (t->dtype == OBE_F32)
        float_array(o, buf, t->data, bytes / 4);
    else if (t->dtype == OBE_F16)
        u16_array(o, buf, t->data, bytes / 2);
    else
        bytes_array(o, buf, t->data, bytes);
    if (t->num_scales) {
        snprintf(buf, sizeof buf, "%s_scales", name);
        float_array(o, buf, t->scales, (size_t)t->num_scales);
    }
}

static void tensor_init(out *o, const char *name, const obe_tensor *t) {
    if (t->rows == 0) {
        putf(o, "{%s, 0, %d, %d, %d, 0, 0, 0}", dtype_macro(t->dtype), t->cols, t->cols_padded, t->row_bytes);
        return;
    }
    putf(o, "{%s, %d, %d, %d, %d, %d, %s_data, ", dtype_macro(t->dtype), t->rows, t->cols, t->cols_padded,
         t->row_bytes, t->num_scales, name);
    if (t->num_scales)
        putf(o, "%s_scales}", name);
    else
        put(o, "0}");
}

/* config.json as a C string literal. */
static void string_literal(out *o, const char *s) {
    put(o, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\n')
            put(o, "\\n\"\n    \"");
        else if (ch == '"' || ch == '\\')
            putf(o, "\\%c", ch);
        else if (ch < 32 || ch >= 127)
            putf(o, "\\%03o", ch);
        else
            putf(o, "%c", ch);
    }
    put(o, "\"");
}

static const char *const proj_names[OBE_PROJ_COUNT] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                        "gate_proj", "up_proj", "down_proj"};

static void write_model(out *o, const ob_packed_model *pm, const ob_embedded_model *e) {
    const obe_model *m = &e->model;
    const ob_config *c = &pm->cfg;
    int hd = m->hidden_size / m->num_heads;
    char *json = ob_config_to_json(c);
    put(o, "/* A onebit model for the embedded runtime, written by `onebit export --emit-c-header`.\n"
           " * Include it in one C file next to onebit_embedded.h; do not edit. */\n"
           "#ifndef ONEBIT_MODEL_H_INCLUDED\n#define ONEBIT_MODEL_H_INCLUDED\n\n#include \"onebit_embedded.h\"\n\n");
    putf(o, "#if OBE_MODEL_VERSION != %d\n#error \"this model header was written for obe_model layout %d\"\n#endif\n\n",
         OBE_MODEL_VERSION, OBE_MODEL_VERSION);
    putf(o, "/* %d layers, hidden %d, vocabulary %d, context up to %d. A static arena for a session of\n"
            " * `context` tokens: static uint8_t arena[ONEBIT_MODEL_ARENA_BYTES(context)]. */\n"
            "#define ONEBIT_MODEL_MAX_CONTEXT %d\n"
            "#define ONEBIT_MODEL_ARENA_BYTES(context) OBE_ARENA_BYTES(%d, %d, %d, %d, %d, (context))\n\n",
         m->num_layers, m->hidden_size, m->vocab_size, m->max_seq_len, m->max_seq_len, m->vocab_size,
         m->hidden_size, m->intermediate_size, m->num_layers, m->num_kv_heads * hd);
    put(o, "static const char onebit_model_config_json[] =\n    ");
    string_literal(o, json ? json : "");
    put(o, ";\n");
    free(json);
    if (!json)
        o->ok = false;
    tensor_arrays(o, "obm_embed", &m->embed, "model.embed_tokens.weight");
    if (m->positions) {
        put(o, "\n/* model.embed_positions.weight */\n");
        float_array(o, "obm_positions", m->positions, (size_t)m->max_seq_len * (size_t)m->hidden_size);
    }
    char name[64];
    for (int l = 0; l < m->num_layers; l++) {
        const obe_layer *ly = &m->layers[l];
        putf(o, "\n/* ---- layer %d ---- */\n", l);
        snprintf(name, sizeof name, "obm_l%d_input_norm", l);
        float_array(o, name, ly->input_norm, (size_t)m->hidden_size);
        snprintf(name, sizeof name, "obm_l%d_post_norm", l);
        float_array(o, name, ly->post_norm, (size_t)m->hidden_size);
        if (ly->q_norm) {
            snprintf(name, sizeof name, "obm_l%d_q_norm", l);
            float_array(o, name, ly->q_norm, (size_t)hd);
            snprintf(name, sizeof name, "obm_l%d_k_norm", l);
            float_array(o, name, ly->k_norm, (size_t)hd);
        }
        for (int k = 0; k < OBE_PROJ_COUNT; k++) {
            if (ly->proj[k].rows == 0)
                continue;
            char what[96];
            snprintf(name, sizeof name, "obm_l%d_%s", l, proj_names[k]);
            snprintf(what, sizeof what, "model.layers.%d.%s%s.weight", l, k < OBE_PROJ_GATE ? "self_attn." : "mlp.",
                     proj_names[k]);
            tensor_arrays(o, name, &ly->proj[k], what);
        }
    }
    put(o, "\n/* model.norm.weight */\n");
    float_array(o, "obm_final_norm", m->final_norm, (size_t)m->hidden_size);
    bool tied = m->head.data == m->embed.data;
    if (!tied)
        tensor_arrays(o, "obm_head", &m->head, "lm_head.weight");
    if (m->rope_cos) {
        put(o, "\n/* rotary tables [max_seq_len][head_dim/2], as the full runtime computes them */\n");
        float_array(o, "obm_rope_cos", m->rope_cos, (size_t)m->max_seq_len * (size_t)(hd / 2));
        float_array(o, "obm_rope_sin", m->rope_sin, (size_t)m->max_seq_len * (size_t)(hd / 2));
    }
    if (m->vocab_count) {
        putf(o, "\n/* the tokenizer's %d tokens as bytes: token t is obm_vocab_bytes[offsets[t] .. offsets[t+1]) */\n",
             m->vocab_count);
        u32_array(o, "obm_vocab_offsets", m->vocab_offsets, (size_t)m->vocab_count + 1);
        bytes_array(o, "obm_vocab_bytes", m->vocab_bytes, m->vocab_offsets[m->vocab_count]);
    }
    putf(o, "\nstatic const obe_layer obm_layers[%d] = {\n", m->num_layers);
    for (int l = 0; l < m->num_layers; l++) {
        const obe_layer *ly = &m->layers[l];
        putf(o, "    {obm_l%d_input_norm, obm_l%d_post_norm, ", l, l);
        if (ly->q_norm)
            putf(o, "obm_l%d_q_norm, obm_l%d_k_norm,\n     {", l, l);
        else
            put(o, "0, 0,\n     {");
        for (int k = 0; k < OBE_PROJ_COUNT; k++) {
            snprintf(name, sizeof name, "obm_l%d_%s", l, proj_names[k]);
            put(o, k ? ",\n      " : "");
            tensor_init(o, name, &ly->proj[k]);
        }
        putf(o, "},\n     %d},\n", ly->act_bits);
    }
    put(o, "};\n\nstatic const obe_model onebit_model = {\n");
    putf(o, "    .layout_version = OBE_MODEL_VERSION,\n    .vocab_size = %d,\n    .hidden_size = %d,\n"
            "    .num_heads = %d,\n    .num_kv_heads = %d,\n    .num_layers = %d,\n    .intermediate_size = %d,\n"
            "    .max_seq_len = %d,\n    .layernorm = %d,\n    .use_qk_norm = %d,\n    .use_rope = %d,\n"
            "    .ffn = %d,\n",
         m->vocab_size, m->hidden_size, m->num_heads, m->num_kv_heads, m->num_layers, m->intermediate_size,
         m->max_seq_len, m->layernorm, m->use_qk_norm, m->use_rope, m->ffn);
    putf(o, "    .norm_eps = %a,\n    .residual_scale = %a,\n    .attn_scale = %a,\n    .embed = ",
         (double)m->norm_eps, (double)m->residual_scale, (double)m->attn_scale);
    tensor_init(o, "obm_embed", &m->embed);
    putf(o, ",\n    .positions = %s,\n    .layers = obm_layers,\n    .final_norm = obm_final_norm,\n    .head = ",
         m->positions ? "obm_positions" : "0");
    tensor_init(o, tied ? "obm_embed" : "obm_head", &m->head);
    putf(o, ",\n    .head_act_bits = %d,\n", m->head_act_bits);
    putf(o, "    .rope_cos = %s,\n    .rope_sin = %s,\n", m->rope_cos ? "obm_rope_cos" : "0",
         m->rope_cos ? "obm_rope_sin" : "0");
    putf(o, "    .vocab_count = %d,\n    .eos_id = %d,\n    .vocab_offsets = %s,\n    .vocab_bytes = %s,\n};\n\n#endif\n",
         m->vocab_count, m->eos_id, m->vocab_count ? "obm_vocab_offsets" : "0",
         m->vocab_count ? "obm_vocab_bytes" : "0");
}

ob_status ob_c_header_write(const char *path, const ob_packed_model *pm, const ob_tokenizer *tok) {
    ob_embedded_model e;
    ob_status st = ob_embedded_model_build(pm, tok, &e);
    if (st)
        return ob_error_context(st, "%s", path);
    ob_atomic_file af;
    if ((st = ob_atomic_open(&af, path)) == OB_OK) {
        out o = {af.fp, true};
        write_model(&o, pm, &e);
        if (o.ok) {
            st = ob_atomic_commit(&af);
        } else {
            ob_atomic_abort(&af);
            st = ob_error(OB_ERR_IO, "%s: write failed (disk full?)", path);
        }
    }
    ob_embedded_model_free(&e);
    return st;
}
