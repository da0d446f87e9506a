/* parallel.h: the OpenMP, SIMD and multiversioning annotations of the nn kernels, in one
 * place. Without OpenMP every one is empty and the loops run serially, unchanged.
 *   LC_OMP_FOR             a parallel for, static schedule
 *   LC_OMP_FOR_IF(work)    the same, serial when work < PAR_MIN_WORK (each file defines its
 *                          own threshold: below it starting the threads costs more)
 *   LC_SIMD, LC_SIMD_SUM(v)  a vector loop, one with a + reduction into v
 *   LC_PRAGMA(x)           any other OpenMP pragma, e.g. LC_PRAGMA(omp parallel for simd)
 *   LC_CLONES_AVX2, LC_CLONES_AVX512  build a hot function for AVX2 (and AVX-512) too,
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

#define LC_CLONES_AVX2 __attribute__((target_clones("avx2", "default")))
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define LC_CLONES_AVX512 __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LC_CLONES_AVX512
#endif

#endif
