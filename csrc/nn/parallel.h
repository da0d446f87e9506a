/* parallel.h: the OpenMP, SIMD and multiversioning annotations of the nn kernels, in one
 * place. Without OpenMP every one is empty and the loops run serially, unchanged.
 *   LC_OMP_FOR             a parallel for, static schedule
 *   LC_OMP_FOR_IF(work)    the same, serial when work < PAR_MIN_WORK (each file defines its
 *                          own threshold: below it starting the threads costs more)
 *   LC_SIMD, LC_SIMD_SUM(v)  a vector loop, one with a + reduction into v
 *   LC_PRAGMA(x)           any other OpenMP pragma, e.g. LC_PRAGMA(omp parallel for simd)
 *   LC_CLONES_AVX2, LC_CLONES_AVX512  build a hot function for AVX2+FMA (and AVX-512) too,
 *                          picked at load time: the build itself targets plain x86-64. */
#ifndef LC_NN_PARALLEL_H
#define LC_NN_PARALLEL_H

#ifdef _OPENMP
#include <omp.h>
#define LC_PRAGMA(x) _Pragma(#x)
#else
#define LC_PRAGMA(x)
#endif

#define LC_OMP_FOR LC_PRAGMA(omp parallel for schedule(static))
#define LC_OMP_FOR_IF(work) LC_PRAGMA(omp parallel for schedule(static) if ((work) >= PAR_MIN_WORK))
#define LC_SIMD LC_PRAGMA(omp simd)
#define LC_SIMD_SUM(v) LC_PRAGMA(omp simd reduction(+:v))

/* The clones are x86-64 levels: v3 is AVX2 with FMA (the "avx2" target alone has no FMA,
 * so a * b + c stays two instructions), v4 adds AVX-512 F/BW/CD/DQ/VL. The files built with
 * -ffp-contract=fast (Makefile) turn a * b + c into one FMA there. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LC_CLONES_AVX2 __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define LC_CLONES_AVX2 __attribute__((target_clones("avx2", "default")))
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define LC_CLONES_AVX512 __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LC_CLONES_AVX512
#endif

#endif
