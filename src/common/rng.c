/* xoshiro256** (Blackman and Vigna) seeded by splitmix64. Integer-only state
 * updates make streams identical across platforms; the normal deviates use the
 * Marsaglia polar method in double precision. */
#include <math.h>

#include "onebit/common.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void ob_rng_seed(ob_rng *rng, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

void ob_rng_seed_stream(ob_rng *rng, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull);
    uint64_t mixed = splitmix64(&x);
    ob_rng_seed(rng, mixed ^ seed);
}

uint64_t ob_rng_u64(ob_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t ob_rng_u32(ob_rng *rng) { return (uint32_t)(ob_rng_u64(rng) >> 32); }

uint64_t ob_rng_below(ob_rng *rng, uint64_t n) {
    /* Rejection on the top of the range removes modulo bias. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = ob_rng_u64(rng);
    } while (x >= limit);
    return x % n;
}

double ob_rng_uniform(ob_rng *rng) { return (double)(ob_rng_u64(rng) >> 11) * 0x1.0p-53; }

float ob_rng_uniformf(ob_rng *rng) { return (float)(ob_rng_u64(rng) >> 40) * 0x1.0p-24f; }

double ob_rng_normal(ob_rng *rng) {
    double u, v, s;
    do {
        u = 2.0 * ob_rng_uniform(rng) - 1.0;
        v = 2.0 * ob_rng_uniform(rng) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    /* The second deviate of the pair is dropped so that the stream position
     * depends only on how many normals were drawn. */
    return u * sqrt(-2.0 * log(s) / s);
}

void ob_rng_fill_normal(ob_rng *rng, float *out, size_t n, float mean, float stddev) {
    for (size_t i = 0; i < n; i++)
        out[i] = (float)(mean + stddev * ob_rng_normal(rng));
}
