/* The quantisers over `real` (float in the library, double in the gradient
 * tests); include/onebit/quant.h declares the float instances. */
#ifndef ONEBIT_QUANT_REAL_H
#define ONEBIT_QUANT_REAL_H

#include "cpu/real.h"
#include "onebit/quant.h"

void OB_R(ob_quant_weight_hard)(ob_quant_mode mode, bool dynamic_threshold, real clamp, const real *w, int rows,
                                int cols, int8_t *codes, real *row_scales, real *wq, ob_quant_stats *stats);
void OB_R(ob_quant_weight_soft)(ob_quant_mode mode, bool dynamic_threshold, real clamp, real sharpness,
                                const real *w, int rows, int cols, real *wq, ob_quant_stats *stats);
void OB_R(ob_quant_weight_soft_backward)(ob_quant_mode mode, bool dynamic_threshold, real clamp, real sharpness,
                                         const real *w, int rows, int cols, const ob_quant_stats *stats,
                                         const real *g, real *dw);
void OB_R(ob_quant_activations)(const real *x, int n, int d, int bits, real *xq);
real OB_R(ob_quant_activation_codes)(const real *x, int d, int bits, int8_t *codes);

#endif
