/* Each CUDA kernel against the CPU reference kernels on fresh random inputs:
 * outputs are poisoned (NaN) before every launch so that an element left
 * unwritten fails, and compared by ‖gpu − cpu‖₂ / ‖cpu‖₂ within bf16 bounds.
 * Skipped (exit 77) when no GPU is visible. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#include "cuda/attention_mma.cuh"
#include "cuda/gemm.cuh"
#include "cuda/kernels.cuh"
extern "C" {
#include "cpu/kernels.h"
#include "onebit/quant.h"
}
/* Last: cmocka's macros (fail, ...) clash with names in C++ headers. */
#include "test_util.h"

static ob_rng rng;
static const double BF16_TOL = 1e-2;

static std::vector<float> randv(size_t n, float scale) {
    std::vector<float> v(n);
    for (auto &x : v)
        x = scale * (float)ob_rng_normal(&rng);
    return v;
}

/* Device buffers filled with NaN bytes (0xFF) so unwritten elements show. */
template <typename T> static T *dev(size_t n) {
    T *p = NULL;
    if (cudaMalloc(&p, n * sizeof(T) + 16) != cudaSuccess)
        fail_msg("cudaMalloc failed");
    cudaMemset(p, 0xFF, n * sizeof(T));
    return p;
}
static float *dev_f(const std::vector<float> &h) {
    float *p = dev<float>(h.size());
    cudaMemcpy(p, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice);
    return p;
}
static bf16 *dev_b(const std::vector<float> &h) {
    std::vector<bf16> t(h.size());
    for (size_t i = 0; i < h.size(); i++)
        t[i] = __float2bfloat16(h[i]);
    bf16 *p = dev<bf16>(h.size());
    cudaMemcpy(p, t.data(), t.size() * sizeof(bf16), cudaMemcpyHostToDevice);
    return p;
}
/* Host values of the bf16 the device sees (the CPU reference gets these). */
static std::vector<float> rounded(const std::vector<float> &h) {
    std::vector<float> r(h.size());
    for (size_t i = 0; i < h.size(); i++)
        r[i] = __bfloat162float(__float2bfloat16(h[i]));
    return r;
}
static std::vector<float> host_f(const float *d, size_t n) {
    std::vector<float> h(n);
    if (cudaDeviceSynchronize() != cudaSuccess)
        fail_msg("kernel failed: %s", cudaGetErrorString(cudaGetLastError()));
    cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    return h;
}
static std::vector<float> host_b(const bf16 *d, size_t n) {
    std::vector<bf16> t(n);
    if (cudaDeviceSynchronize() != cudaSuccess)
        fail_msg("kernel failed: %s", cudaGetErrorString(cudaGetLastError()));
    cudaMemcpy(t.data(), d, n * sizeof(bf16), cudaMemcpyDeviceToHost);
    std::vector<float> h(n);
    for (size_t i = 0; i < n; i++)
        h[i] = __bfloat162float(t[i]);
    return h;
}

static void expect_close(const char *what, const std::vector<float> &gpu, const std::vector<float> &cpu, double tol) {
    assert_int_equal(gpu.size(), cpu.size());
    double num = 0, den = 0;
    for (size_t i = 0; i < gpu.size(); i++) {
        if (!isfinite(gpu[i]))
            fail_msg("%s: element %zu is %g (unwritten or NaN)", what, i, gpu[i]);
        num += ((double)gpu[i] - cpu[i]) * ((double)gpu[i] - cpu[i]);
        den += (double)cpu[i] * cpu[i];
    }
    double err = sqrt(num) / (sqrt(den) + 1e-30);
    print_message("  %-40s relative error %.2e\n", what, err);
    if (!(err <= tol))
        fail_msg("%s: relative error %.3g above %.3g", what, err, tol);
}

#define OK(call) assert_ok(call)

/* Rows of `width` values at column `col` of rows `ld` wide, the layout of one
 * [N, q|k|v] product's output, and back. */
static void place(std::vector<float> &dst, const std::vector<float> &x, size_t width, size_t ld, size_t col) {
    for (size_t r = 0; r < x.size() / width; r++)
        memcpy(&dst[r * ld + col], &x[r * width], width * sizeof(float));
}
static std::vector<float> gather(const std::vector<float> &x, size_t width, size_t ld, size_t col) {
    std::vector<float> out(x.size() / ld * width);
    for (size_t r = 0; r < x.size() / ld; r++)
        memcpy(&out[r * width], &x[r * ld + col], width * sizeof(float));
    return out;
}

/* Bit-identical repeats: the trainer promises run-to-run exactness. */
static void expect_same(const char *what, const std::vector<float> &a, const std::vector<float> &b) {
    if (a.size() != b.size() || memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0)
        fail_msg("%s differs between two runs on the same inputs", what);
}

static void test_gemm(void **state) {
    (void)state;
    ob_gemm *g;
    OK(ob_gemm_create(0, &g));
    int n = 77, in = 96, out = 130;
    auto x = rounded(randv((size_t)n * in, 1)), w = rounded(randv((size_t)out * in, 1)),
         dy = rounded(randv((size_t)n * out, 1));
    bf16 *dx_ = dev_b(x), *dw_ = dev_b(w), *ddy = dev_b(dy);
    float *y = dev<float>((size_t)n * out), *dxo = dev<float>((size_t)n * in), *dwo = dev<float>((size_t)out * in);
    std::vector<float> ry((size_t)n * out), rdx((size_t)n * in), rdw((size_t)out * in);
    ob_gemm_args a = ob_gemm_xwt(y, CUDA_R_32F, dx_, dw_, n, in, out);
    a.alpha = 0.5f;
    OK(ob_gemm_run(g, &a));
    ob_cpu_matmul_xwt(ry.data(), x.data(), w.data(), n, in, out, 0.5f, 0);
    expect_close("gemm y = x Wt", host_f(y, ry.size()), ry, 1e-5);
    a = ob_gemm_dyw(dxo, CUDA_R_32F, ddy, dw_, n, in, out);
    OK(ob_gemm_run(g, &a));
    ob_cpu_matmul_dyw(rdx.data(), dy.data(), w.data(), n, in, out, 1, 0);
    expect_close("gemm dx = dy W", host_f(dxo, rdx.size()), rdx, 1e-5);
    cudaMemset(dwo, 0, rdw.size() * sizeof(float));
    a = ob_gemm_dytx(dwo, CUDA_R_32F, ddy, dx_, n, in, out);
    a.beta = 1.0f;
    OK(ob_gemm_run(g, &a));
    OK(ob_gemm_run(g, &a)); /* accumulates twice */
    ob_cpu_matmul_dytx(rdw.data(), dy.data(), x.data(), n, in, out, 2, 0);
    expect_close("gemm dW += dyT x (twice)", host_f(dwo, rdw.size()), rdw, 1e-5);
    /* A strided batch of three weight gradients of one input whose dy share
     * rows (the Q, K and V parts of one [n, q|k|v] block): three products. */
    auto dy3 = rounded(randv((size_t)n * 3 * out, 1));
    float *dw3 = dev<float>((size_t)3 * out * in);
    cudaMemset(dw3, 0, (size_t)3 * out * in * sizeof(float));
    a = ob_gemm_dytx(dw3, CUDA_R_32F, dev_b(dy3), dx_, n, in, out);
    a.lda = 3 * out;
    a.beta = 1.0f;
    a.batch = 3;
    a.stride_a = out;
    a.stride_d = (long long)out * in;
    OK(ob_gemm_run(g, &a));
    std::vector<float> r3((size_t)3 * out * in);
    for (int b = 0; b < 3; b++)
        ob_cpu_matmul_dytx(r3.data() + (size_t)b * out * in, gather(dy3, out, 3 * out, b * out).data(), x.data(), n,
                           in, out, 1, 0);
    expect_close("gemm batch of three dW += dyT x", host_f(dw3, r3.size()), r3, 1e-5);
    ob_gemm_free(g);
}

static void check_norms(int n, int d) {
    for (int ln = 0; ln < 2; ln++) {
        auto x = randv((size_t)n * d, 2), g = randv(d, 1), dy = rounded(randv((size_t)n * d, 1));
        float *dx_ = dev_f(x), *dg_ = dev_f(g), *mean = dev<float>(n), *rstd = dev<float>(n);
        bf16 *y = dev<bf16>((size_t)n * d), *yq = dev<bf16>((size_t)n * d);
        OK(ob_gpu_norm_forward(y, yq, mean, rstd, NULL, dx_, NULL, dg_, n, d, 1e-5f, ln, 8, 0));
        std::vector<float> ry((size_t)n * d), rm(n), rr(n), rq((size_t)n * d);
        ob_cpu_norm_forward(ry.data(), rm.data(), rr.data(), x.data(), g.data(), n, d, 1e-5f, ln);
        ob_quant_activations(ry.data(), n, d, 8, rq.data());
        expect_close(ln ? "layernorm forward" : "rmsnorm forward", host_b(y, ry.size()), ry, BF16_TOL);
        expect_close("norm + 8-bit activation quantiser", host_b(yq, rq.size()), rq, BF16_TOL);
        expect_close("norm rstd", host_f(rstd, n), rr, 1e-5);
        std::vector<float> rdx((size_t)n * d), rdg(d, 0.0f);
        ob_cpu_norm_backward(rdx.data(), rdg.data(), dy.data(), x.data(), g.data(), rm.data(), rr.data(), n, d, ln);
        float *partials = dev<float>(ob_gpu_norm_partials(n, d));
        bf16 *ddy = dev_b(dy);
        /* 16-byte rows, then gains at an odd offset (the scalar path), then
         * accumulating into a random dx with its bf16 copy; each twice, bit for bit. */
        float *g_odd = dev<float>(d + 1) + 1;
        cudaMemcpy(g_odd, g.data(), d * sizeof(float), cudaMemcpyHostToDevice);
        OK(ob_gpu_norm_forward(y, yq, mean, rstd, NULL, dx_, NULL, g_odd, n, d, 1e-5f, ln, 8, 0));
        expect_close("norm forward, gains unaligned", host_b(y, ry.size()), ry, BF16_TOL);
        expect_close("norm + quantiser, gains unaligned", host_b(yq, rq.size()), rq, BF16_TOL);
        /* A block's bf16 branch added on the way in: x + branch stored, then normalised. */
        auto branch = rounded(randv((size_t)n * d, 1));
        std::vector<float> xs(x.size()), rys(x.size()), rqs(x.size()), rms(n), rrs(n);
        for (size_t i = 0; i < xs.size(); i++)
            xs[i] = x[i] + branch[i];
        ob_cpu_norm_forward(rys.data(), rms.data(), rrs.data(), xs.data(), g.data(), n, d, 1e-5f, ln);
        ob_quant_activations(rys.data(), n, d, 8, rqs.data());
        float *sum = dev<float>(xs.size());
        OK(ob_gpu_norm_forward(yq, yq, dev<float>(n), dev<float>(n), sum, dx_, dev_b(branch), dg_, n, d, 1e-5f, ln, 8,
                               0));
        expect_same("stream plus branch", host_f(sum, xs.size()), xs);
        expect_close("norm + quantiser of stream plus branch", host_b(yq, rqs.size()), rqs, BF16_TOL);
        auto dx0 = randv((size_t)n * d, 1);
        std::vector<float> rdx_acc(rdx.size()), rdx16(rdx.size());
        for (size_t i = 0; i < rdx.size(); i++) {
            rdx_acc[i] = dx0[i] + rdx[i];
            rdx16[i] = 0.7f * rdx_acc[i];
        }
        for (int variant = 0; variant < 3; variant++) {
            std::vector<float> first_dx, first_dg;
            for (int rep = 0; rep < 2; rep++) {
                float *ddx = variant == 2 ? dev_f(dx0) : dev<float>((size_t)n * d);
                float *ddg = dev_f(std::vector<float>(d, 0.0f));
                bf16 *dx16 = variant == 2 ? dev<bf16>((size_t)n * d) : NULL;
                OK(ob_gpu_norm_backward(ddx, variant == 2, dx16, 0.7f, ddg, partials, ddy, dx_,
                                        variant == 1 ? g_odd : dg_, mean, rstd, n, d, ln, 0));
                if (dx16 && rep == 0)
                    expect_close("norm backward bf16 copy", host_b(dx16, rdx16.size()), rdx16, BF16_TOL);
                auto hdx = host_f(ddx, rdx.size()), hdg = host_f(ddg, d);
                if (rep == 0) {
                    expect_close("norm backward dx", hdx, variant == 2 ? rdx_acc : rdx, 1e-4);
                    expect_close("norm backward dgain", hdg, rdg, 1e-4);
                    first_dx = hdx, first_dg = hdg;
                } else {
                    expect_same("norm backward dx", hdx, first_dx);
                    expect_same("norm backward dgain", hdg, first_dg);
                }
            }
        }
    }
}

/* 67 rows: one partial gain sum per 32 rows, fewer than the column sum's
 * threads; 9000 rows: more, which take its eight-loads-at-once path. */
static void test_norms(void **state) {
    (void)state;
    check_norms(67, 200);
    check_norms(9000, 40);
    check_norms(67, 768); /* rows in registers */
    check_norms(67, 1024);
}

/* Head sizes whose hd/8 divides 32 take the 16-byte kernels, others (12) the
 * warp-per-vector ones; 900 vectors span eight blocks of the backward. The
 * input vectors (and the gradient written back) sit in the middle third of
 * rows three times as wide (k in a q|k|v product output); the other columns
 * of the gradient must stay as they were. */
static void check_qk(int B, int T, int heads, int hd, bool qk_norm, bool rope) {
    int rows = B * T * heads;
    size_t width = (size_t)heads * hd, ld = 3 * width, tokens = (size_t)B * T;
    auto x = rounded(randv((size_t)rows * hd, 1)), g = randv(hd, 1), dy = rounded(randv((size_t)rows * hd, 1));
    std::vector<float> cs((size_t)T * hd / 2), sn((size_t)T * hd / 2);
    ob_cpu_rope_table(cs.data(), sn.data(), T, hd, 10000.0);
    std::vector<float> ry = x, rr(rows), rdy = dy, rdx, rdg(hd, 0.0f);
    if (qk_norm)
        ob_cpu_norm_forward(ry.data(), NULL, rr.data(), x.data(), g.data(), rows, hd, 1e-5f, false);
    if (rope) {
        ob_cpu_rope(ry.data(), cs.data(), sn.data(), B, T, heads, hd, false);
        ob_cpu_rope(rdy.data(), cs.data(), sn.data(), B, T, heads, hd, true);
    }
    rdx = rdy;
    if (qk_norm)
        ob_cpu_norm_backward(rdx.data(), rdg.data(), rdy.data(), x.data(), g.data(), NULL, rr.data(), rows, hd, false);
    float *dg = dev_f(g), *dcs = dev_f(cs), *dsn = dev_f(sn);
    float *partials = dev<float>(ob_gpu_qk_partials(rows, hd));
    std::vector<float> first_y, first_dx, first_dg;
    for (int rep = 0; rep < 2; rep++) {
        std::vector<float> xs(tokens * ld, 0.5f), dxs(tokens * ld, 0.5f);
        place(xs, x, width, ld, width);
        bf16 *xbuf = dev_b(xs), *dxbuf = dev_b(dxs), *dyv = dev_b(dy), *out = dev<bf16>(x.size());
        float *rstd = dev<float>(rows), *dgain = dev_f(std::vector<float>(hd, 0.0f));
        OK(ob_gpu_qk_forward(out, xbuf + width, ld, rstd, dg, dcs, dsn, B, T, heads, hd, 1e-5f, qk_norm, rope, 0));
        auto y = host_b(out, x.size());
        OK(ob_gpu_qk_backward(dxbuf + width, ld, dyv, dgain, partials, xbuf + width, rstd, dg, dcs, dsn, B, T, heads,
                              hd, qk_norm, rope, 0));
        auto dxall = host_b(dxbuf, dxs.size()), dx = gather(dxall, width, ld, width), dgv = host_f(dgain, hd);
        for (size_t col : {(size_t)0, 2 * width})
            expect_same("qk-norm + rope: columns beside the gradient", gather(dxall, width, ld, col),
                        std::vector<float>(tokens * width, 0.5f));
        for (void *p : {(void *)xbuf, (void *)dxbuf, (void *)dyv, (void *)out, (void *)rstd, (void *)dgain})
            cudaFree(p);
        if (rep == 0) {
            print_message("  hd %d, qk-norm %d, rope %d\n", hd, qk_norm, rope);
            expect_close("qk-norm + rope forward", y, ry, BF16_TOL);
            expect_close("qk-norm + rope backward dx", dx, rdx, BF16_TOL);
            if (qk_norm)
                expect_close("qk-norm backward dgain", dgv, rdg, BF16_TOL);
            first_y = y, first_dx = dx, first_dg = dgv;
        } else {
            expect_same("qk-norm + rope forward", y, first_y);
            expect_same("qk-norm + rope backward dx", dx, first_dx);
            expect_same("qk-norm backward dgain", dgv, first_dg);
        }
    }
}

static void test_qk_norm_rope(void **state) {
    (void)state;
    check_qk(2, 37, 3, 16, true, true);
    check_qk(2, 150, 3, 64, true, true);
    check_qk(2, 150, 3, 64, false, true);
    check_qk(2, 150, 3, 64, true, false);
    check_qk(1, 150, 6, 128, true, true);
    check_qk(2, 37, 3, 12, true, true);
    check_qk(2, 37, 3, 16, false, false); /* a copy into the dense rows */
}

/* amp scales q and k: amp 2 gives scores of standard deviation 4, peaked
 * softmax rows like those of a trained model. v (and dv) sit in rows as wide
 * as the model's q|k|v product output; q, k (dq, dk) are dense. */
static void check_attention(int B, int T, int nh, int nkv, int hd, float amp = 1) {
    char name[96];
    size_t nq = (size_t)B * T * nh * hd, nk = (size_t)B * T * nkv * hd;
    size_t wq = (size_t)nh * hd, wk = (size_t)nkv * hd, ld = wq + 2 * wk, tokens = (size_t)B * T;
    auto q = rounded(randv(nq, amp)), k = rounded(randv(nk, amp)), v = rounded(randv(nk, 1)), dout = rounded(randv(nq, 1));
    std::vector<float> vrows(tokens * ld);
    place(vrows, v, wk, ld, wq + wk);
    bf16 *dq_ = dev_b(q), *dk_ = dev_b(k), *vbuf = dev_b(vrows), *ddo = dev_b(dout), *gvbuf = dev<bf16>(tokens * ld);
    const bf16 *dv_ = vbuf + wq + wk;
    bf16 *o = dev<bf16>(nq), *gq = dev<bf16>(nq), *gk = dev<bf16>(nk), *gv = gvbuf + wq + wk;
    ob_qkv_ld lds = {wq, wk, ld};
    float *lse = dev<float>((size_t)B * nh * T), *delta = dev<float>((size_t)B * nh * T);
    OK(ob_gpu_attention_forward(o, lse, dq_, dk_, dv_, lds, B, T, nh, nkv, hd, 0));
    std::vector<float> ro(nq), att((size_t)B * nh * T * T), rdq(nq), rdk(nk), rdv(nk),
        scratch((size_t)OB_CPU_ATTENTION_BLOCK * T);
    ob_cpu_attention_forward(ro.data(), att.data(), q.data(), k.data(), v.data(), B, T, nh, nkv, hd);
    snprintf(name, sizeof name, "attention forward hd=%d B=%d T=%d gqa %d/%d amp %g", hd, B, T, nh, nkv, amp);
    auto go = host_b(o, nq);
    expect_close(name, go, ro, BF16_TOL);
    /* The backward uses the GPU's own o (as in training). */
    OK(ob_gpu_attention_backward(gq, gk, gv, ddo, o, lse, dq_, dk_, dv_, lds, delta, B, T, nh, nkv, hd, 0));
    ob_cpu_attention_backward(rdq.data(), rdk.data(), rdv.data(), scratch.data(), dout.data(), att.data(), q.data(),
                              k.data(), v.data(), B, T, nh, nkv, hd);
    auto g1q = host_b(gq, nq), g1k = host_b(gk, nk), g1v = gather(host_b(gvbuf, tokens * ld), wk, ld, wq + wk);
    snprintf(name, sizeof name, "attention backward dq hd=%d T=%d", hd, T);
    expect_close(name, g1q, rdq, 2 * BF16_TOL);
    snprintf(name, sizeof name, "attention backward dk hd=%d T=%d", hd, T);
    expect_close(name, g1k, rdk, 2 * BF16_TOL);
    snprintf(name, sizeof name, "attention backward dv hd=%d T=%d", hd, T);
    expect_close(name, g1v, rdv, 2 * BF16_TOL);
    /* Again into freshly poisoned buffers: the same bytes. */
    cudaMemset(o, 0xFF, nq * sizeof(bf16));
    cudaMemset(gq, 0xFF, nq * sizeof(bf16));
    cudaMemset(gk, 0xFF, nk * sizeof(bf16));
    cudaMemset(gvbuf, 0xFF, tokens * ld * sizeof(bf16));
    OK(ob_gpu_attention_forward(o, lse, dq_, dk_, dv_, lds, B, T, nh, nkv, hd, 0));
    OK(ob_gpu_attention_backward(gq, gk, gv, ddo, o, lse, dq_, dk_, dv_, lds, delta, B, T, nh, nkv, hd, 0));
    expect_same("attention forward", host_b(o, nq), go);
    expect_same("attention backward dq", host_b(gq, nq), g1q);
    expect_same("attention backward dk", host_b(gk, nk), g1k);
    expect_same("attention backward dv", gather(host_b(gvbuf, tokens * ld), wk, ld, wq + wk), g1v);
    for (void *p : {(void *)dq_, (void *)dk_, (void *)vbuf, (void *)ddo, (void *)o, (void *)gq, (void *)gk,
                    (void *)gvbuf, (void *)lse, (void *)delta})
        cudaFree(p);
}

static void test_attention(void **state) {
    (void)state;
    /* Tensor cores (head size 64 on wgmma where the device runs sm_90a code):
     * ragged last tiles, T under one tile, GQA 4/2 and 4/1, B > 1, and the
     * trained length. */
    print_message("  head size 64 on %s\n", ob_attention_wg_available() ? "wgmma" : "mma.sync");
    check_attention(2, 150, 4, 2, 64);
    check_attention(2, 77, 4, 4, 64);
    check_attention(1, 64, 2, 2, 128);
    check_attention(2, 200, 4, 2, 128);
    check_attention(1, 200, 4, 1, 64);
    check_attention(1, 77, 4, 1, 128);
    check_attention(1, 1024, 4, 2, 64);
    check_attention(1, 1024, 2, 1, 128);
    check_attention(8, 64, 2, 2, 64, 2); /* the shape of tests/integration/test_gpu_train.sh */
    check_attention(1, 300, 4, 2, 128, 2);
    /* Simple path: other head sizes, and a tensor-core size when switched. */
    check_attention(2, 33, 6, 3, 8);
    check_attention(1, 130, 4, 1, 32);
    check_attention(1, 40, 2, 1, 12); /* delta a warp a row: hd/8 is no whole number */
    setenv("ONEBIT_CUDA_ATTENTION", "simple", 1);
    check_attention(1, 100, 4, 2, 64);
    check_attention(8, 64, 2, 2, 64, 2);
    /* mma.sync at head size 64, which wgmma replaces on Hopper. */
    setenv("ONEBIT_CUDA_ATTENTION", "mma", 1);
    check_attention(2, 150, 4, 2, 64);
    check_attention(1, 1024, 4, 2, 64);
    unsetenv("ONEBIT_CUDA_ATTENTION");
}

/* f = 96: 16-byte accesses; f = 100: one element at a time. Under SwiGLU the
 * gate and up values (and their gradients) share rows, [n, gate|up], as the
 * model's one product writes them. */
static void test_ffn(void **state) {
    (void)state;
    int n = 33;
    for (int f : {96, 100, 1024, 2048, 3072}) { /* eight elements a lane or one; whole rows in registers */
        for (int act = 0; act < 3; act++) {
            size_t cnt = (size_t)n * f, ld = act == 2 ? 2 * f : f;
            auto u = rounded(randv(cnt, 2)), g = rounded(randv(cnt, 2)), dh = rounded(randv(cnt, 1));
            std::vector<float> gu_rows((size_t)n * ld);
            place(gu_rows, g, f, ld, 0);
            place(gu_rows, u, f, ld, ld - f);
            bf16 *dgu = dev_b(gu_rows), *dg_ = dgu, *du_ = dgu + (ld - f), *ddh = dev_b(dh);
            bf16 *h = dev<bf16>(cnt), *hq = dev<bf16>(cnt), *grads = dev<bf16>((size_t)n * ld);
            bf16 *gg = grads, *gu = grads + (ld - f);
            OK(ob_gpu_ffn_forward(h, hq, du_, dg_, ld, n, f, act, 8, 0));
            std::vector<float> rh(cnt), rq(cnt), rdu(cnt), rdg(cnt);
            ob_cpu_ffn_act_forward(rh.data(), u.data(), g.data(), cnt, (ob_cpu_act)act);
            ob_quant_activations(rh.data(), n, f, 8, rq.data());
            expect_close(act == 0 ? "silu" : act == 1 ? "relu2" : "swiglu", host_b(h, cnt), rh, BF16_TOL);
            expect_close("ffn activation quantiser", host_b(hq, cnt), rq, BF16_TOL);
            bf16 *hq2 = dev<bf16>(cnt);
            OK(ob_gpu_act_quant(hq2, h, n, f, 8, 0));
            expect_same("activation quantiser of h", host_b(hq2, cnt), host_b(hq, cnt));
            OK(ob_gpu_ffn_forward(hq2, hq2, du_, dg_, ld, n, f, act, 8, 0));
            expect_same("activation quantiser in place", host_b(hq2, cnt), host_b(hq, cnt));
            OK(ob_gpu_ffn_backward(gu, gg, ddh, du_, dg_, ld, n, f, act, 0));
            ob_cpu_ffn_act_backward(rdu.data(), rdg.data(), dh.data(), u.data(), g.data(), cnt, (ob_cpu_act)act);
            auto back = host_b(grads, (size_t)n * ld);
            expect_close("ffn backward du", gather(back, f, ld, ld - f), rdu, BF16_TOL);
            if (act == 2)
                expect_close("ffn backward dgate", gather(back, f, ld, 0), rdg, BF16_TOL);
            for (void *p : {(void *)dgu, (void *)ddh, (void *)h, (void *)hq, (void *)hq2, (void *)grads})
                cudaFree(p);
        }
    }
}

/* The gradient overwrites the logits in place (bf16 rows of stride 2·ld):
 * V = 3001 leaves a tail of one logit past the last 16-byte group. */
static void check_cross_entropy(int n, int V, bool bf16_logits) {
    size_t ld = ((size_t)V + 3) / 4 * 4;
    auto z = randv((size_t)n * V, 3);
    if (bf16_logits)
        z = rounded(z);
    std::vector<int32_t> t(n);
    for (auto &y : t)
        y = (int32_t)ob_rng_below(&rng, (uint64_t)V);
    int32_t *dt;
    cudaMalloc(&dt, n * sizeof(int32_t));
    cudaMemcpy(dt, t.data(), n * sizeof(int32_t), cudaMemcpyHostToDevice);
    std::vector<float> rz = z;
    double rp = 0;
    double rl = ob_cpu_cross_entropy(rz.data(), t.data(), n, V, 0.1f, 0.5f, true, &rp);
    std::vector<float> first;
    for (int rep = 0; rep < 2; rep++) {
        float *dz = dev<float>((size_t)n * ld), *loss = dev<float>(n), *plain = dev<float>(n);
        if (bf16_logits) {
            /* bf16 rows of stride 2·ld in the same buffer, as the head writes them. */
            std::vector<bf16> zb(z.size());
            for (size_t i = 0; i < z.size(); i++)
                zb[i] = __float2bfloat16(z[i]);
            cudaMemcpy2D(dz, 2 * ld * sizeof(bf16), zb.data(), V * sizeof(bf16), V * sizeof(bf16), n,
                         cudaMemcpyHostToDevice);
            OK(ob_gpu_cross_entropy((bf16 *)dz, 2 * ld, true, loss, plain, dt, n, V, 0.1f, 0.5f, 0));
        } else {
            cudaMemcpy2D(dz, ld * sizeof(float), z.data(), V * sizeof(float), V * sizeof(float), n,
                         cudaMemcpyHostToDevice);
            OK(ob_gpu_cross_entropy(dz, ld, true, loss, plain, dt, n, V, 0.1f, 0.5f, 0));
        }
        auto gl = host_f(loss, n), gp = host_f(plain, n);
        double sl = 0, sp = 0;
        for (int i = 0; i < n; i++)
            sl += gl[i], sp += gp[i];
        assert_true(fabs(sl - rl) < 1e-4 * fabs(rl));
        assert_true(fabs(sp - rp) < 1e-4 * fabs(rp));
        std::vector<bf16> raw((size_t)n * V);
        cudaMemcpy2D(raw.data(), V * sizeof(bf16), dz, 2 * ld * sizeof(bf16), V * sizeof(bf16), n,
                     cudaMemcpyDeviceToHost);
        std::vector<float> grad(raw.size());
        for (size_t i = 0; i < raw.size(); i++)
            grad[i] = __bfloat162float(raw[i]);
        if (rep == 0)
            expect_close("cross-entropy gradient", grad, rz, BF16_TOL);
        else
            expect_same("cross-entropy gradient", grad, first);
        first = grad;
        cudaFree(dz);
    }
    cudaFree(dt);
}

static void test_cross_entropy(void **state) {
    (void)state;
    for (int narrow = 0; narrow < 2; narrow++) {
        check_cross_entropy(45, 3001, narrow);
        check_cross_entropy(7, 4100, narrow);
        check_cross_entropy(3, 60001 + 60000 * narrow, narrow); /* too wide for shared memory: read twice */
    }
}

static void check_weight_quant(ob_quant_mode mode, bool dynamic, bool soft) {
    int rows = 70, cols = 300; /* two statistics blocks per matrix: 21000 > 16384? no: one block; see below */
    /* The second matrix folds its scale into the weights, as Q, K and V do. */
    ob_gpu_matrix mats[2] = {{0, rows, cols, mode, 0, 0}, {(int64_t)rows * cols + 64, 300, 260, mode, 0, 1}};
    size_t total = (size_t)rows * cols + 64 + 300 * 260;
    auto w = randv(total, 0.05f);
    float *dw = dev_f(w);
    bf16 *weff = dev<bf16>(total);
    ob_gpu_qstats *stats = dev<ob_gpu_qstats>(2);
    ob_gpu_wquant *q;
    OK(ob_gpu_wquant_create(mats, 2, &q));
    float clamp = 0.08f, a = 3.0f;
    OK(ob_gpu_wquant_run(q, dw, weff, NULL, stats, dynamic, clamp, a, true, soft, 0.5f, 0));
    std::vector<ob_gpu_qstats> hs(2);
    cudaDeviceSynchronize();
    cudaMemcpy(hs.data(), stats, sizeof(ob_gpu_qstats) * 2, cudaMemcpyDeviceToHost);
    for (int k = 0; k < 2; k++) {
        const ob_gpu_matrix &m = mats[k];
        size_t n = (size_t)m.rows * m.cols;
        std::vector<float> ref(n);
        ob_quant_stats st;
        if (soft)
            ob_quant_weight_soft(mode, dynamic, clamp, a, w.data() + m.offset, m.rows, m.cols, ref.data(), &st);
        else
            ob_quant_weight_hard(mode, dynamic, clamp, w.data() + m.offset, m.rows, m.cols, NULL, NULL, ref.data(), &st);
        auto got = host_b(weff + m.offset, n);
        for (auto &v : got)
            v *= hs[k].scale; /* hard binary/ternary hold codes; the scale is the GEMM's alpha */
        char name[96];
        snprintf(name, sizeof name, "%s %s%s weights%s", soft ? "soft" : "hard", ob_quant_mode_name(mode),
                 dynamic ? "" : " (absmean)", m.fold ? ", scale folded" : "");
        /* Codes are exact; folded codes, soft and per-row 8/4-bit values are
         * rounded to bf16. */
        bool hard = !soft && (mode == OB_MODE_TERNARY || mode == OB_MODE_BINARY), exact = hard && !m.fold;
        expect_close(name, got, ref, exact ? 1e-5 : BF16_TOL);
        if (m.fold)
            assert_true(hs[k].scale == 1.0f);
        if (hard || soft)
            assert_true(fabs(hs[k].beta - st.beta) <= 1e-5 * st.beta);
        assert_true(fabs(hs[k].scale_r - 0.5f * hs[k].scale) <= 1e-6f * fabs(hs[k].scale));
        if (soft) {
            auto g = randv(n, 1);
            std::vector<float> rdw(n, 0.0f);
            ob_quant_weight_soft_backward(mode, dynamic, clamp, a, w.data() + m.offset, m.rows, m.cols, &st, g.data(),
                                          rdw.data());
            float *dg = dev_f(g), *ddw = dev_f(std::vector<float>(total, 0.0f));
            OK(ob_gpu_soft_backward(q, k, dw, dg, ddw, stats, dynamic, clamp, a, 0));
            expect_close("soft backward", host_f(ddw + m.offset, n), rdw, 1e-4);
        }
    }
    ob_gpu_wquant_free(q);
}

static void test_weight_quantisers(void **state) {
    (void)state;
    check_weight_quant(OB_MODE_TERNARY, true, false);
    check_weight_quant(OB_MODE_TERNARY, false, false);
    check_weight_quant(OB_MODE_BINARY, true, false);
    check_weight_quant(OB_MODE_EIGHTBIT, true, false);
    check_weight_quant(OB_MODE_FOURBIT, true, false);
    check_weight_quant(OB_MODE_TERNARY, true, true);
    check_weight_quant(OB_MODE_TERNARY, false, true);
    check_weight_quant(OB_MODE_BINARY, true, true);
}

/* Gradients of weights beyond the clamp are zeroed in quantised matrices
 * only: one ternary matrix with such weights, one without (its block is
 * skipped), an f16 matrix with them (left alone). */
static void test_mask_clamped(void **state) {
    (void)state;
    float clamp = 0.08f;
    ob_gpu_matrix mats[3] = {{0, 40, 64, OB_MODE_TERNARY, 0, 0},
                             {2560, 40, 64, OB_MODE_TERNARY, 0, 0},
                             {5120, 40, 64, OB_MODE_F16, 0, 0}};
    size_t total = 7680;
    auto w = randv(total, 0.05f), g = randv(total, 1);
    for (size_t i = 2560; i < 5120; i++)
        w[i] = fminf(fmaxf(w[i], -clamp), clamp);
    float *dw = dev_f(w), *dg = dev_f(g);
    bf16 *weff = dev<bf16>(total);
    ob_gpu_qstats *stats = dev<ob_gpu_qstats>(3);
    ob_gpu_wquant *q;
    OK(ob_gpu_wquant_create(mats, 3, &q));
    OK(ob_gpu_wquant_run(q, dw, weff, NULL, stats, false, clamp, 1.0f, true, false, 1.0f, 0));
    OK(ob_gpu_mask_clamped(q, dw, dg, clamp, 0));
    auto got = host_f(dg, total);
    size_t zeroed = 0;
    for (size_t i = 0; i < total; i++) {
        float want = i < 5120 && fabsf(w[i]) > clamp ? 0.0f : g[i];
        zeroed += want == 0.0f;
        if (got[i] != want)
            fail_msg("masked gradient %zu: %g, want %g (weight %g)", i, got[i], want, w[i]);
    }
    assert_true(zeroed > 100);
    ob_gpu_wquant_free(q);
    for (void *p : {(void *)dw, (void *)dg, (void *)weff, (void *)stats})
        cudaFree(p);
}

/* H 24 takes the eight-column forward, 20 the one-column one. */
static void check_embedding(int H, int tokens) {
    int V = 50, B = 3, T = 7, N = B * T;
    auto e = rounded(randv((size_t)V * H, 1)), pos = randv((size_t)T * H, 1), dx = randv((size_t)N * H, 1);
    std::vector<int32_t> tok(N);
    for (auto &t : tok)
        t = (int32_t)ob_rng_below(&rng, (uint64_t)tokens); /* repeats */
    /* Positions grouped by token, as the backend prepares them. */
    std::vector<int32_t> order, starts, ids;
    for (int v = 0; v < V; v++) {
        bool any = false;
        for (int i = 0; i < N; i++)
            if (tok[i] == v) {
                if (!any)
                    ids.push_back(v), starts.push_back((int32_t)order.size());
                any = true;
                order.push_back(i);
            }
    }
    starts.push_back((int32_t)order.size());
    int32_t *dt, *dord, *dst, *dids;
    cudaMalloc(&dt, N * 4), cudaMalloc(&dord, N * 4), cudaMalloc(&dst, starts.size() * 4), cudaMalloc(&dids, ids.size() * 4);
    cudaMemcpy(dt, tok.data(), N * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dord, order.data(), N * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dst, starts.data(), starts.size() * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dids, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice);
    bf16 *de = dev_b(e);
    float *dpos = dev_f(pos), *x = dev<float>((size_t)N * H), *scale = dev_f(std::vector<float>(1, 2.0f));
    OK(ob_gpu_embed_forward(x, dt, de, scale, dpos, N, T, H, 0));
    std::vector<float> rx((size_t)N * H), rde((size_t)V * H, 0.0f), rdp((size_t)T * H, 0.0f);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < H; j++) {
            rx[(size_t)i * H + j] = 2.0f * e[(size_t)tok[i] * H + j] + pos[(size_t)(i % T) * H + j];
            rde[(size_t)tok[i] * H + j] += 3.0f * dx[(size_t)i * H + j];
            rdp[(size_t)(i % T) * H + j] += dx[(size_t)i * H + j];
        }
    expect_close("embedding forward", host_f(x, rx.size()), rx, 1e-6);
    float *ddx = dev_f(dx), *gde = dev_f(std::vector<float>(rde.size(), 0.0f)), *gdp = dev_f(std::vector<float>(rdp.size(), 0.0f));
    OK(ob_gpu_embed_backward(gde, gdp, ddx, dord, dst, dids, (int)ids.size(), N, T, H, 3.0f, 0));
    expect_close("embedding backward", host_f(gde, rde.size()), rde, 1e-6);
    expect_close("positions backward", host_f(gdp, rdp.size()), rdp, 1e-6);
}

static void test_embedding(void **state) {
    (void)state;
    check_embedding(24, 9);
    check_embedding(20, 3); /* seven repeats a token: rows four at a time */
    check_embedding(21, 9); /* a column a thread */
}

/* Segments end inside a group of four floats (4998) and before the end of the
 * buffer (5098); the gaps between them must stay untouched. */
static void test_adamw(void **state) {
    (void)state;
    size_t n = 5100;
    auto w = randv(n, 1), g = randv(n, 1), m = randv(n, 0.1f), v = randv(n, 0.1f);
    for (auto &x : v)
        x = x * x;
    ob_gpu_param_seg segs[3] = {{0, 3000, 0, 1, 1}, {3008, 1990, 0, 0, 0}, {5008, 90, 0, 1, 0}};
    int64_t packed = ob_gpu_param_segs_pack(segs, 3);
    assert_true(packed == 3000 + 1992 + 92);
    ob_gpu_param_seg *dsegs;
    cudaMalloc(&dsegs, sizeof segs);
    cudaMemcpy(dsegs, segs, sizeof segs, cudaMemcpyHostToDevice);
    std::vector<float> rw = w;
    float bc1 = 1 - powf(0.9f, 3), bc2 = sqrtf(1 - powf(0.95f, 3));
    for (int s = 0; s < 3; s++)
        for (int64_t k = 0; k < segs[s].numel; k++) {
            size_t i = (size_t)(segs[s].offset + k);
            float gk = g[i] * 0.5f, mk = 0.9f * m[i] + 0.1f * gk, vk = 0.95f * v[i] + 0.05f * gk * gk;
            float wk = w[i] * (segs[s].decay ? 1 - 1e-2f * 0.1f : 1.0f) - 1e-2f / bc1 * mk / (sqrtf(vk) / bc2 + 1e-8f);
            rw[i] = segs[s].clamp ? fminf(fmaxf(wk, -0.9f), 0.9f) : wk;
        }
    std::vector<float> first;
    for (int rep = 0; rep < 2; rep++) {
        float *dw = dev_f(w), *dg = dev_f(g), *dm = dev_f(m), *dv = dev_f(v);
        ob_gpu_adamw_step a = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 0.9f, 3};
        OK(ob_gpu_adamw(dw, dg, dm, dv, dsegs, 3, packed, &a, 0));
        auto got = host_f(dw, n);
        for (size_t i : {3000, 3007, 4998, 5007, 5098, 5099})
            if (got[i] != w[i])
                fail_msg("adamw changed float %zu between segments", i);
        if (rep == 0)
            expect_close("adamw", got, rw, 1e-6);
        else
            expect_same("adamw", got, first);
        first = got;
    }
}

/* AdamW over the quantiser's matrices, against the host's AdamW; the
 * statistics and f16 effective weights it leaves behind must give the next
 * quantiser run the very bits (effective weights, scales, the clamp mask) that
 * a run making its own gives. Matrices of two and three statistics blocks, one
 * with an odd size at an offset not a multiple of four floats (scalar path);
 * f16 matrices on both paths; weight decay and the latent clamp on some
 * matrices only, so that some weights stay beyond the clamp. */
static void test_wquant_adamw(void **state) {
    (void)state;
    ob_gpu_matrix mats[5] = {{0, 128, 300, OB_MODE_TERNARY, 0, 1, 1, 1},
                             {38400, 33, 333, OB_MODE_BINARY, 0, 0, 0, 0},
                             {49391, 200, 210, OB_MODE_TERNARY, 0, 0, 1, 0},
                             {91391, 30, 77, OB_MODE_F16, 0, 0, 0, 0},
                             {93704, 300, 257, OB_MODE_F16, 0, 0, 1, 1}};
    size_t n = 93704 + 300 * 257;
    float clamp = 0.08f;
    auto w = randv(n, 0.1f), g = randv(n, 1), m = randv(n, 0.1f), v = randv(n, 0.1f);
    for (auto &x : v)
        x = x * x;
    ob_gpu_adamw_step a = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, clamp, 3};
    std::vector<float> rw = w;
    float bc1 = 1 - powf(0.9f, 3), bc2 = sqrtf(1 - powf(0.95f, 3));
    for (const auto &mat : mats)
        for (int64_t k = 0; k < (int64_t)mat.rows * mat.cols; k++) {
            size_t i = (size_t)(mat.offset + k);
            float gk = g[i] * 0.5f, mk = 0.9f * m[i] + 0.1f * gk, vk = 0.95f * v[i] + 0.05f * gk * gk;
            float wk = w[i] * (mat.decay ? 1 - 1e-2f * 0.1f : 1.0f) - 1e-2f / bc1 * mk / (sqrtf(vk) / bc2 + 1e-8f);
            rw[i] = mat.clamp ? fminf(fmaxf(wk, -clamp), clamp) : wk;
        }
    ob_gpu_wquant *q;
    OK(ob_gpu_wquant_create(mats, 5, &q));
    float *dw = dev_f(w), *dg = dev_f(g), *dm = dev_f(m), *dv = dev_f(v);
    bf16 *weff[3] = {dev<bf16>(n), dev<bf16>(n), dev<bf16>(n)};
    OK(ob_gpu_wquant_adamw(q, dw, weff[0], dg, dm, dv, &a, 0));
    expect_close("quantiser's adamw", host_f(dw, n), rw, 1e-6);
    ob_gpu_qstats *stats[3] = {dev<ob_gpu_qstats>(5), dev<ob_gpu_qstats>(5), dev<ob_gpu_qstats>(5)};
    float *masked[3] = {dev_f(g), dev_f(g), dev_f(g)};
    /* Into the buffer the AdamW wrote, into another (the f16 weights its own),
     * then making every statistic afresh. */
    for (int k = 0; k < 3; k++) {
        if (k == 2)
            ob_gpu_wquant_forget(q);
        OK(ob_gpu_wquant_run(q, dw, weff[k], NULL, stats[k], false, clamp, 1.0f, true, false, 1.0f, 0));
        OK(ob_gpu_mask_clamped(q, dw, masked[k], clamp, 0));
    }
    std::vector<ob_gpu_qstats> hs(15);
    for (int k = 0; k < 3; k++)
        cudaMemcpy(hs.data() + 5 * k, stats[k], 5 * sizeof(ob_gpu_qstats), cudaMemcpyDeviceToHost);
    for (int k = 0; k < 2; k++) {
        expect_same("effective weights after the quantiser's adamw", host_b(weff[k], n), host_b(weff[2], n));
        expect_same("clamp mask after the quantiser's adamw", host_f(masked[k], n), host_f(masked[2], n));
        assert_true(memcmp(hs.data() + 5 * k, hs.data() + 10, 5 * sizeof(ob_gpu_qstats)) == 0);
    }
    auto gm = host_f(masked[2], n);
    size_t zeroed = 0;
    for (size_t i = 0; i < n; i++)
        zeroed += gm[i] == 0.0f && g[i] != 0.0f;
    assert_true(zeroed > 0); /* the unclamped matrices keep weights beyond the clamp */
    ob_gpu_wquant_free(q);
}

/* Sums and sums of squares against double sums on the host: lengths with and
 * without a tail after the runs of four, from aligned and unaligned starts,
 * shorter and longer than one float per thread; repeats are bit-identical. */
static void test_sum(void **state) {
    (void)state;
    double *out, *partials;
    cudaMalloc(&out, sizeof(double));
    cudaMalloc(&partials, OB_GPU_SUM_BLOCKS * sizeof(double));
    for (size_t n : {(size_t)1, (size_t)7, (size_t)1003, (size_t)3000001}) {
        auto x = randv(n + 1, 1);
        float *d = dev_f(x);
        for (int offset = 0; offset < 2; offset++)
            for (int squares = 0; squares < 2; squares++) {
                double want = 0, got[2];
                for (size_t i = 0; i < n; i++)
                    want += squares ? (double)x[offset + i] * x[offset + i] : (double)x[offset + i];
                for (int rep = 0; rep < 2; rep++) {
                    OK(ob_gpu_sum(out, d + offset, n, partials, squares, 0));
                    if (cudaMemcpy(&got[rep], out, sizeof(double), cudaMemcpyDeviceToHost) != cudaSuccess)
                        fail_msg("sum of %zu floats failed", n);
                }
                if (!(fabs(got[0] - want) <= 1e-12 * (fabs(want) + sqrt((double)n))))
                    fail_msg("sum%s of %zu floats from offset %d: %.17g, want %.17g", squares ? " of squares" : "", n,
                             offset, got[0], want);
                if (memcmp(&got[0], &got[1], sizeof(double)) != 0)
                    fail_msg("sum of %zu floats differs between two runs", n);
            }
        cudaFree(d);
    }
    cudaFree(out);
    cudaFree(partials);
}

int main(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        printf("no CUDA GPU visible: skipped\n");
        return 77;
    }
    ob_rng_seed(&rng, tu_seed("test_gpu_kernels"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),          cmocka_unit_test(test_norms),
        cmocka_unit_test(test_qk_norm_rope),  cmocka_unit_test(test_attention),
        cmocka_unit_test(test_ffn),           cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_weight_quantisers), cmocka_unit_test(test_mask_clamped),
        cmocka_unit_test(test_embedding),     cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_wquant_adamw),
        cmocka_unit_test(test_sum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
