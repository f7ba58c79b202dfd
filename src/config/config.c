/* config.json loading, validation and saving (see include/onebit/config.h). The
 * field table below is the single list of known fields: parsing, defaults and
 * saving all walk it. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "onebit/config.h"
#include "onebit/json.h"

typedef enum { F_INT, F_I64, F_DOUBLE, F_BOOL } field_type;

typedef struct {
    const char *name;
    field_type type;
    size_t offset;
} field;

#define FIELD(name, type) {#name, type, offsetof(ob_config, name)}

/* Order here is the order on save. num_kv_heads, arenas_initial and
 * layer_bit_map have rules of their own and are handled beside the table. */
static const field fields[] = {
    FIELD(vocab_size, F_INT),
    FIELD(hidden_size, F_INT),
    FIELD(num_heads, F_INT),
    FIELD(num_layers, F_INT),
    FIELD(intermediate_size, F_INT),
    FIELD(max_seq_len, F_INT),
    FIELD(layer_norm_eps, F_DOUBLE),
    FIELD(rope_theta, F_DOUBLE),
    FIELD(tie_embeddings, F_BOOL),
    FIELD(use_ternary, F_BOOL),
    FIELD(use_relu2, F_BOOL),
    FIELD(use_swiglu, F_BOOL),
    FIELD(use_subln, F_BOOL),
    FIELD(use_rope, F_BOOL),
    FIELD(use_qk_norm, F_BOOL),
    FIELD(use_residual_scaling, F_BOOL),
    FIELD(use_dynamic_threshold, F_BOOL),
    FIELD(ste_scale_factor, F_DOUBLE),
    FIELD(latent_clamp_max, F_DOUBLE),
    FIELD(anneal_fraction, F_DOUBLE),
    FIELD(activation_bits, F_INT),
    FIELD(arenas_anneal_steps, F_I64),
};
static const size_t field_count = sizeof fields / sizeof fields[0];

static const char *const mode_names[] = {"f16", "eightbit", "fourbit", "ternary", "binary"};

const char *ob_quant_mode_name(ob_quant_mode mode) {
    return (unsigned)mode < 5 ? mode_names[mode] : "unknown";
}

bool ob_quant_mode_parse(const char *name, ob_quant_mode *mode) {
    for (int i = 0; i < 5; i++) {
        if (strcmp(name, mode_names[i]) == 0) {
            *mode = (ob_quant_mode)i;
            return true;
        }
    }
    return false;
}

const char *ob_ffn_kind_name(ob_ffn_kind kind) {
    switch (kind) {
    case OB_FFN_SILU: return "silu";
    case OB_FFN_RELU2: return "relu2";
    case OB_FFN_SWIGLU: return "swiglu";
    }
    return "unknown";
}

void ob_config_default(ob_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->vocab_size = 50257;
    cfg->hidden_size = 512;
    cfg->num_heads = 8;
    cfg->num_kv_heads = 8;
    cfg->num_layers = 6;
    cfg->intermediate_size = 2048;
    cfg->max_seq_len = 512;
    cfg->layer_norm_eps = 1e-5;
    cfg->rope_theta = 10000.0;
    cfg->tie_embeddings = true;
    cfg->use_qk_norm = true;
    cfg->use_residual_scaling = true;
    cfg->use_dynamic_threshold = true;
    cfg->ste_scale_factor = 2.0;
    cfg->latent_clamp_max = 1.5;
    cfg->anneal_fraction = 0.3;
    cfg->activation_bits = 8;
    cfg->arenas_anneal_steps = 10000;
    cfg->embedding_mode = OB_MODE_F16;
    cfg->lm_head_mode = OB_MODE_F16;
}

void ob_config_free(ob_config *cfg) {
    cJSON_Delete(cfg->extra);
    cfg->extra = NULL;
}

static ob_status read_field(const cJSON *root, const field *f, const char *source, ob_config *cfg) {
    void *dest = (char *)cfg + f->offset;
    switch (f->type) {
    case F_INT: {
        int64_t v = *(int *)dest;
        ob_status st = ob_json_get_int(root, f->name, source, &v, NULL);
        if (st)
            return st;
        if (v < -2147483647LL || v > 2147483647LL)
            return ob_error(OB_ERR_CONFIG, "%s: field '%s' = %lld is out of range", source, f->name, (long long)v);
        *(int *)dest = (int)v;
        return OB_OK;
    }
    case F_I64: return ob_json_get_int(root, f->name, source, dest, NULL);
    case F_DOUBLE: return ob_json_get_double(root, f->name, source, dest, NULL);
    case F_BOOL: return ob_json_get_bool(root, f->name, source, dest, NULL);
    }
    return OB_OK;
}

static ob_status parse_mode(const cJSON *item, const char *source, const char *what, ob_quant_mode *out) {
    if (!cJSON_IsString(item))
        return ob_json_type_error(item, what, source, "a mode name string");
    if (!ob_quant_mode_parse(item->valuestring, out))
        return ob_error(OB_ERR_CONFIG,
                        "%s: field '%s' = \"%s\" is not a mode (f16, eightbit, fourbit, ternary, binary)", source,
                        what, item->valuestring);
    return OB_OK;
}

static ob_status parse_layer_bit_map(const cJSON *map, const char *source, ob_config *cfg) {
    if (cJSON_IsNull(map))
        return OB_OK;
    if (!cJSON_IsObject(map))
        return ob_json_type_error(map, "layer_bit_map", source, "an object or null");
    cfg->has_layer_bit_map = true;
    cfg->embedding_mode = OB_MODE_F16;
    ob_status st;
    for (const cJSON *item = map->child; item; item = item->next) {
        if (strcmp(item->string, "embedding") == 0) {
            if ((st = parse_mode(item, source, "layer_bit_map.embedding", &cfg->embedding_mode)))
                return st;
        } else if (strcmp(item->string, "lm_head") == 0) {
            if (cJSON_IsNull(item))
                continue;
            if ((st = parse_mode(item, source, "layer_bit_map.lm_head", &cfg->lm_head_mode)))
                return st;
            cfg->has_lm_head_mode = true;
        } else if (strcmp(item->string, "layer_modes") == 0) {
            if (!cJSON_IsArray(item))
                return ob_json_type_error(item, "layer_bit_map.layer_modes", source, "an array of mode names");
            int n = cJSON_GetArraySize(item);
            if (n != cfg->num_layers)
                return ob_error(OB_ERR_CONFIG,
                                "%s: field 'layer_bit_map.layer_modes' has %d entries but num_layers is %d", source,
                                n, cfg->num_layers);
            int i = 0;
            for (const cJSON *m = item->child; m; m = m->next, i++) {
                char what[64];
                ob_quant_mode mode;
                snprintf(what, sizeof what, "layer_bit_map.layer_modes[%d]", i);
                if ((st = parse_mode(m, source, what, &mode)))
                    return st;
                cfg->layer_modes[i] = (uint8_t)mode;
            }
        } else {
            return ob_error(OB_ERR_CONFIG,
                            "%s: unknown field 'layer_bit_map.%s' (expected embedding, layer_modes, lm_head)", source,
                            item->string);
        }
    }
    if (!cJSON_GetObjectItemCaseSensitive(map, "layer_modes"))
        return ob_error(OB_ERR_CONFIG, "%s: field 'layer_bit_map' has no 'layer_modes' array", source);
    return OB_OK;
}

static bool is_known(const char *name) {
    for (size_t i = 0; i < field_count; i++)
        if (strcmp(fields[i].name, name) == 0)
            return true;
    return strcmp(name, "num_kv_heads") == 0 || strcmp(name, "arenas_initial") == 0 ||
           strcmp(name, "layer_bit_map") == 0;
}

static ob_status from_json(const cJSON *root, const char *source, ob_config *cfg) {
    ob_config_default(cfg);
    if (!cJSON_IsObject(root))
        return ob_error(OB_ERR_FORMAT, "%s: the top level must be a JSON object, found %s", source,
                        ob_json_type_name(root));
    ob_status st;
    for (size_t i = 0; i < field_count; i++)
        if ((st = read_field(root, &fields[i], source, cfg)))
            return st;

    int64_t kv = cfg->num_heads;
    if ((st = ob_json_get_int(root, "num_kv_heads", source, &kv, NULL)))
        return st;
    if (kv < -2147483647LL || kv > 2147483647LL)
        return ob_error(OB_ERR_CONFIG, "%s: field 'num_kv_heads' = %lld is out of range", source, (long long)kv);
    cfg->num_kv_heads = (int)kv;

    const cJSON *arenas = cJSON_GetObjectItemCaseSensitive(root, "arenas_initial");
    if (arenas && !cJSON_IsNull(arenas)) {
        if (!cJSON_IsNumber(arenas))
            return ob_json_type_error(arenas, "arenas_initial", source, "a number or null");
        cfg->has_arenas = true;
        cfg->arenas_initial = arenas->valuedouble;
    }

    /* layer_modes' length is checked against num_layers, so sizes come first. */
    if (cfg->num_layers < 1 || cfg->num_layers > OB_MAX_LAYERS)
        return ob_error(OB_ERR_CONFIG, "%s: field 'num_layers' = %d must be between 1 and %d", source,
                        cfg->num_layers, OB_MAX_LAYERS);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "layer_bit_map");
    if (map && (st = parse_layer_bit_map(map, source, cfg)))
        return st;

    for (const cJSON *item = root->child; item; item = item->next) {
        if (is_known(item->string))
            continue;
        ob_log(OB_LOG_WARN, "%s: unknown field '%s' (kept as is on save)", source, item->string);
        if (!cfg->extra && !(cfg->extra = cJSON_CreateObject()))
            return ob_error(OB_ERR_NOMEM, "%s: out of memory", source);
        cJSON *copy = cJSON_Duplicate(item, true);
        if (!copy || !cJSON_AddItemToObject(cfg->extra, item->string, copy)) {
            cJSON_Delete(copy);
            return ob_error(OB_ERR_NOMEM, "%s: out of memory", source);
        }
    }
    return OB_OK;
}

#define CHECK(cond, ...)                                  \
    do {                                                  \
        if (!(cond))                                      \
            return ob_error(OB_ERR_CONFIG, __VA_ARGS__);  \
    } while (0)

/* A number in a message appears as the file would write it (the shortest exact
 * form), so that 1.0000001 is never shown as "1". */
static ob_status bad_number(const char *source, const char *name, double v, const char *rule) {
    char text[40];
    if (isfinite(v))
        ob_json_format_number(v, text, sizeof text);
    else
        snprintf(text, sizeof text, "%g", v);
    return ob_error(OB_ERR_CONFIG, "%s: field '%s' = %s %s", source, name, text, rule);
}

/* Upper bounds keep a hostile file from asking for absurd allocations. */
ob_status ob_config_validate(const ob_config *c, const char *source) {
    static const struct {
        const char *name;
        size_t offset;
        int max;
    } sizes[] = {
        {"vocab_size", offsetof(ob_config, vocab_size), 1 << 24},
        {"hidden_size", offsetof(ob_config, hidden_size), 1 << 16},
        {"num_heads", offsetof(ob_config, num_heads), 1 << 12},
        {"num_kv_heads", offsetof(ob_config, num_kv_heads), 1 << 12},
        {"num_layers", offsetof(ob_config, num_layers), OB_MAX_LAYERS},
        {"intermediate_size", offsetof(ob_config, intermediate_size), 1 << 18},
        {"max_seq_len", offsetof(ob_config, max_seq_len), 1 << 20},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int v = *(const int *)((const char *)c + sizes[i].offset);
        CHECK(v > 0, "%s: field '%s' = %d must be positive", source, sizes[i].name, v);
        CHECK(v <= sizes[i].max, "%s: field '%s' = %d exceeds the limit %d", source, sizes[i].name, v,
              sizes[i].max);
    }
    CHECK(c->hidden_size % c->num_heads == 0, "%s: field 'num_heads' = %d does not divide hidden_size %d", source,
          c->num_heads, c->hidden_size);
    CHECK(c->num_heads % c->num_kv_heads == 0, "%s: field 'num_kv_heads' = %d does not divide num_heads %d",
          source, c->num_kv_heads, c->num_heads);
    int head_dim = c->hidden_size / c->num_heads;
    CHECK(!c->use_rope || head_dim % 2 == 0,
          "%s: field 'use_rope' = true needs an even head_dim, but hidden_size %d / num_heads %d = %d is odd",
          source, c->hidden_size, c->num_heads, head_dim);
    static const struct {
        const char *name;
        size_t offset;
    } positive[] = {
        {"layer_norm_eps", offsetof(ob_config, layer_norm_eps)},
        {"rope_theta", offsetof(ob_config, rope_theta)},
        {"latent_clamp_max", offsetof(ob_config, latent_clamp_max)},
        {"ste_scale_factor", offsetof(ob_config, ste_scale_factor)},
    };
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++) {
        double v = *(const double *)((const char *)c + positive[i].offset);
        if (!(isfinite(v) && v > 0))
            return bad_number(source, positive[i].name, v, "must be > 0");
    }
    if (!(c->anneal_fraction >= 0 && c->anneal_fraction <= 1))
        return bad_number(source, "anneal_fraction", c->anneal_fraction, "must be within [0, 1]");
    CHECK(c->activation_bits == 0 || (c->activation_bits >= 2 && c->activation_bits <= 8),
          "%s: field 'activation_bits' = %d must be 0 (off) or between 2 and 8", source, c->activation_bits);
    if (c->has_arenas && !(isfinite(c->arenas_initial) && c->arenas_initial >= 0))
        return bad_number(source, "arenas_initial", c->arenas_initial, "must be >= 0 (or null to disable)");
    CHECK(c->arenas_anneal_steps > 0, "%s: field 'arenas_anneal_steps' = %lld must be positive", source,
          (long long)c->arenas_anneal_steps);
    if (c->has_layer_bit_map) {
        CHECK((unsigned)c->embedding_mode <= OB_MODE_BINARY, "%s: field 'layer_bit_map.embedding' is invalid",
              source);
        CHECK(!c->has_lm_head_mode || (unsigned)c->lm_head_mode <= OB_MODE_BINARY,
              "%s: field 'layer_bit_map.lm_head' is invalid", source);
        for (int i = 0; i < c->num_layers; i++)
            CHECK(c->layer_modes[i] <= OB_MODE_BINARY, "%s: field 'layer_bit_map.layer_modes[%d]' is invalid",
                  source, i);
    }
    return OB_OK;
}

ob_status ob_config_parse(const char *text, size_t len, const char *source, ob_config *cfg) {
    cJSON *root = NULL;
    ob_config_default(cfg);
    ob_status st = ob_json_parse(text, len, source, &root);
    if (st)
        return st;
    st = from_json(root, source, cfg);
    cJSON_Delete(root);
    if (st == OB_OK)
        st = ob_config_validate(cfg, source);
    if (st)
        ob_config_free(cfg);
    return st;
}

ob_status ob_config_load(const char *path, ob_config *cfg) {
    char *text;
    size_t len;
    ob_config_default(cfg);
    if (!ob_path_exists(path))
        return ob_error(OB_ERR_IO, "%s: config file not found (write the defaults with: onebit init-config %s)",
                        path, path);
    ob_status st = ob_read_file(path, &text, &len);
    if (st)
        return st;
    st = ob_config_parse(text, len, path, cfg);
    free(text);
    return st;
}

/* Builds the JSON tree to save; NULL when out of memory. Each cJSON_Add* call
 * returns NULL on failure, so `ok` collects them all. */
static cJSON *to_json(const ob_config *cfg) {
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    for (size_t i = 0; i < field_count && ok; i++) {
        const field *f = &fields[i];
        const void *src = (const char *)cfg + f->offset;
        switch (f->type) {
        case F_INT: ok = cJSON_AddNumberToObject(root, f->name, *(const int *)src); break;
        case F_I64: ok = cJSON_AddNumberToObject(root, f->name, (double)*(const int64_t *)src); break;
        case F_DOUBLE: ok = cJSON_AddNumberToObject(root, f->name, *(const double *)src); break;
        case F_BOOL: ok = cJSON_AddBoolToObject(root, f->name, *(const bool *)src); break;
        }
        if (ok && strcmp(f->name, "num_heads") == 0)
            ok = cJSON_AddNumberToObject(root, "num_kv_heads", cfg->num_kv_heads);
        if (ok && strcmp(f->name, "activation_bits") == 0)
            ok = cfg->has_arenas ? cJSON_AddNumberToObject(root, "arenas_initial", cfg->arenas_initial) != NULL
                                 : cJSON_AddNullToObject(root, "arenas_initial") != NULL;
    }
    if (ok && cfg->has_layer_bit_map) {
        cJSON *map = cJSON_AddObjectToObject(root, "layer_bit_map");
        ok = map && cJSON_AddStringToObject(map, "embedding", ob_quant_mode_name(cfg->embedding_mode));
        cJSON *modes = ok ? cJSON_AddArrayToObject(map, "layer_modes") : NULL;
        ok = modes != NULL;
        for (int i = 0; i < cfg->num_layers && ok; i++) {
            cJSON *name = cJSON_CreateString(ob_quant_mode_name((ob_quant_mode)cfg->layer_modes[i]));
            ok = name && cJSON_AddItemToArray(modes, name);
            if (!ok)
                cJSON_Delete(name);
        }
        if (ok && cfg->has_lm_head_mode)
            ok = cJSON_AddStringToObject(map, "lm_head", ob_quant_mode_name(cfg->lm_head_mode));
    }
    if (ok && cfg->extra)
        for (const cJSON *item = ((const cJSON *)cfg->extra)->child; item && ok; item = item->next) {
            cJSON *copy = cJSON_Duplicate(item, true);
            ok = copy && cJSON_AddItemToObject(root, item->string, copy);
            if (!ok)
                cJSON_Delete(copy);
        }
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

char *ob_config_to_json(const ob_config *cfg) {
    cJSON *root = to_json(cfg);
    if (!root) {
        ob_error(OB_ERR_NOMEM, "config: out of memory");
        return NULL;
    }
    char *text = ob_json_print(root, true);
    cJSON_Delete(root);
    return text;
}

ob_status ob_config_save(const ob_config *cfg, const char *path) {
    ob_status st = ob_config_validate(cfg, path);
    if (st)
        return st;
    cJSON *root = to_json(cfg);
    if (!root)
        return ob_error(OB_ERR_NOMEM, "%s: out of memory", path);
    st = ob_json_save_file(path, root);
    cJSON_Delete(root);
    return st;
}

ob_status ob_config_copy(ob_config *dst, const ob_config *src) {
    *dst = *src;
    dst->extra = NULL;
    if (src->extra && !(dst->extra = cJSON_Duplicate(src->extra, true)))
        return ob_error(OB_ERR_NOMEM, "config: out of memory");
    return OB_OK;
}

/* num_layers as an index bound even in a config that failed validation. */
static int ob_clamp_layers(int n) { return n < 0 ? 0 : n > OB_MAX_LAYERS ? OB_MAX_LAYERS : n; }

bool ob_config_equal(const ob_config *a, const ob_config *b) {
    for (size_t i = 0; i < field_count; i++) {
        const char *pa = (const char *)a + fields[i].offset, *pb = (const char *)b + fields[i].offset;
        switch (fields[i].type) {
        case F_INT: if (*(const int *)pa != *(const int *)pb) return false; break;
        case F_I64: if (*(const int64_t *)pa != *(const int64_t *)pb) return false; break;
        case F_DOUBLE: if (*(const double *)pa != *(const double *)pb) return false; break;
        case F_BOOL: if (*(const bool *)pa != *(const bool *)pb) return false; break;
        }
    }
    if (a->num_kv_heads != b->num_kv_heads || a->has_arenas != b->has_arenas ||
        (a->has_arenas && a->arenas_initial != b->arenas_initial))
        return false;
    if (a->has_layer_bit_map != b->has_layer_bit_map)
        return false;
    if (a->has_layer_bit_map) {
        if (a->embedding_mode != b->embedding_mode || a->has_lm_head_mode != b->has_lm_head_mode ||
            (a->has_lm_head_mode && a->lm_head_mode != b->lm_head_mode) ||
            memcmp(a->layer_modes, b->layer_modes, (size_t)ob_clamp_layers(a->num_layers)) != 0)
            return false;
    }
    if (!a->extra || !b->extra)
        return !a->extra == !b->extra;
    return cJSON_Compare(a->extra, b->extra, true);
}

int ob_config_head_dim(const ob_config *cfg) { return cfg->hidden_size / cfg->num_heads; }

ob_ffn_kind ob_config_ffn(const ob_config *cfg) {
    if (cfg->use_swiglu)
        return OB_FFN_SWIGLU;
    return cfg->use_relu2 ? OB_FFN_RELU2 : OB_FFN_SILU;
}

ob_quant_mode ob_config_layer_mode(const ob_config *cfg, int layer) {
    if (cfg->has_layer_bit_map)
        return (ob_quant_mode)cfg->layer_modes[layer];
    return cfg->use_ternary ? OB_MODE_TERNARY : OB_MODE_BINARY;
}

ob_quant_mode ob_config_embedding_mode(const ob_config *cfg) {
    return cfg->has_layer_bit_map ? cfg->embedding_mode : OB_MODE_F16;
}

ob_quant_mode ob_config_lm_head_mode(const ob_config *cfg) {
    if (cfg->has_layer_bit_map)
        return cfg->has_lm_head_mode ? cfg->lm_head_mode : cfg->embedding_mode;
    return OB_MODE_F16;
}

int64_t ob_config_param_count(const ob_config *c) {
    int64_t h = c->hidden_size, v = c->vocab_size, ff = c->intermediate_size;
    int64_t kv = (int64_t)c->num_kv_heads * ob_config_head_dim(c);
    int64_t per_layer = 2 * h + 2 * h * h + 2 * kv * h + (c->use_swiglu ? 3 : 2) * h * ff;
    if (c->use_qk_norm)
        per_layer += 2 * ob_config_head_dim(c);
    int64_t n = v * h + h + per_layer * c->num_layers;
    if (!c->use_rope)
        n += (int64_t)c->max_seq_len * h;
    if (!c->tie_embeddings)
        n += v * h;
    return n;
}
