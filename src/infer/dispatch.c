/* Run-time choice of the kernel table from CPUID (and XGETBV: the OS must save
 * the wider registers), overridable with $ONEBIT_KERNELS so that tests and
 * benchmarks can force the portable path on any machine. */
#include <stdlib.h>
#include <string.h>

#include "infer/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define OB_X86 1
#endif

static const char *const isa_names[] = {"auto", "scalar", "avx2", "avxvnni"};

const char *ob_kernel_isa_name(ob_kernel_isa isa) {
    return (unsigned)isa < sizeof isa_names / sizeof *isa_names ? isa_names[isa] : "?";
}

bool ob_kernel_isa_parse(const char *name, ob_kernel_isa *out) {
    for (size_t i = 0; i < sizeof isa_names / sizeof *isa_names; i++)
        if (strcmp(name, isa_names[i]) == 0) {
            *out = (ob_kernel_isa)i;
            return true;
        }
    return false;
}

#ifdef OB_X86
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

typedef struct {
    bool avx2, avxvnni;
} cpu_features;

static cpu_features detect_features(void) {
    cpu_features f = {false, false};
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return f;
    bool fma = c >> 12 & 1, osxsave = c >> 27 & 1, avx = c >> 28 & 1, f16c = c >> 29 & 1;
    if (!osxsave || !avx)
        return f;
    uint64_t xcr0 = xgetbv0();
    bool ymm_state = (xcr0 & 0x6) == 0x6;
    if (!ymm_state || !__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return f;
    f.avx2 = (b >> 5 & 1) && fma && f16c;
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d))
        f.avxvnni = f.avx2 && (a >> 4 & 1);
    return f;
}
#endif

bool ob_kernel_isa_supported(ob_kernel_isa isa) {
    switch (isa) {
    case OB_ISA_AUTO:
    case OB_ISA_SCALAR: return true;
#ifdef OB_X86
    case OB_ISA_AVX2: return detect_features().avx2;
    case OB_ISA_AVXVNNI: return detect_features().avxvnni;
#endif
    default: return false;
    }
}

ob_kernel_isa ob_kernel_isa_detect(void) {
    const char *env = getenv("ONEBIT_KERNELS");
    ob_kernel_isa isa;
    if (env && *env && ob_kernel_isa_parse(env, &isa) && isa != OB_ISA_AUTO && ob_kernel_isa_supported(isa))
        return isa;
    if (env && *env && (!ob_kernel_isa_parse(env, &isa) || !ob_kernel_isa_supported(isa)))
        ob_log(OB_LOG_WARN, "ONEBIT_KERNELS=%s is not a supported kernel set here; choosing from CPUID", env);
    const ob_kernel_isa best[] = {OB_ISA_AVXVNNI, OB_ISA_AVX2};
    for (size_t i = 0; i < sizeof best / sizeof *best; i++)
        if (ob_kernel_isa_supported(best[i]))
            return best[i];
    return OB_ISA_SCALAR;
}

const ob_kernels *ob_kernels_get(ob_kernel_isa isa) {
    if (isa == OB_ISA_AUTO)
        isa = ob_kernel_isa_detect();
    if (!ob_kernel_isa_supported(isa))
        return NULL;
    switch (isa) {
#ifdef OB_X86
    case OB_ISA_AVX2: return &ob_kernels_avx2;
    case OB_ISA_AVXVNNI: return &ob_kernels_avxvnni;
#endif
    default: return &ob_kernels_scalar;
    }
}
