/* The CPU backend is written once over the type `real` and compiled twice:
 * as float in libonebit (the reference backend), and as double (-DOB_REAL_DOUBLE,
 * every function name suffixed _f64) inside the finite-difference tests, which
 * need double precision to check gradients tightly. <tgmath.h> picks expf or
 * exp from the argument type, so literals must be written as (real)0.5. */
#ifndef ONEBIT_CPU_REAL_H
#define ONEBIT_CPU_REAL_H

#include <cblas.h>
#include <tgmath.h>

#include "cpu/fast_exp.h"

/* OB_EXP: the exponential of the softmaxes and sigmoids; in float, a version
 * that vectorises. */
#ifdef OB_REAL_DOUBLE
typedef double real;
#define OB_R(name) name##_f64
#define OB_GEMM cblas_dgemm
#define OB_EXP(x) exp(x)
#else
typedef float real;
#define OB_R(name) name
#define OB_GEMM cblas_sgemm
#define OB_EXP(x) ob_fast_expf(x)
#endif

#endif
