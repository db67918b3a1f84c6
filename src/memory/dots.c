/*
 * dots.c - the int8 first stage of the memory index's exact scan: the dot
 * products of one query code with a block of entry codes (index_internal.h).
 *
 * 1. Every kernel returns exactly the same integers (Σ codes·q over dim);
 *    they differ only in speed.  The best one this CPU runs is chosen once
 *    at run time, so the binary stays portable (built without -march).
 * 2. The scalar kernel is the reference; SSE2 (every x86-64) sign-extends
 *    16 bytes to int16 and multiply-adds pairs into int32 (pmaddwd);
 *    AVX2 does the same on 32 bytes.  |Σ| ≤ dim × 127² fits in int32.
 * 3. The scan is bound by memory bandwidth, not by these instructions: at
 *    100k × 384 an AVX-512 VNNI kernel (vpdpbusd, 64 bytes per
 *    instruction) measured no faster than AVX2 on this project's machine
 *    (bench/memory/blend.sh), so there is none.
 */
#include "memory/index_internal.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

static int32_t dot_scalar(const int8_t *a, const int8_t *b, int dim) {
    int32_t s = 0;
    for (int d = 0; d < dim; d++) s += (int16_t)a[d] * (int16_t)b[d];
    return s;
}

static void dots_scalar(const int8_t *codes, int n, const int8_t *q, int dim, int32_t *out) {
    for (int i = 0; i < n; i++) out[i] = dot_scalar(codes + (size_t)i * dim, q, dim);
}

#ifdef __SSE2__
static int32_t dot_sse2(const int8_t *a, const int8_t *b, int dim) {
    const __m128i zero = _mm_setzero_si128();
    __m128i acc = zero;
    int d = 0;
    for (; d + 16 <= dim; d += 16) {
        __m128i va = _mm_loadu_si128((const __m128i *)(const void *)(a + d));
        __m128i vb = _mm_loadu_si128((const __m128i *)(const void *)(b + d));
        __m128i sa = _mm_cmpgt_epi8(zero, va), sb = _mm_cmpgt_epi8(zero, vb);
        acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_unpacklo_epi8(va, sa), _mm_unpacklo_epi8(vb, sb)));
        acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_unpackhi_epi8(va, sa), _mm_unpackhi_epi8(vb, sb)));
    }
    int32_t t[4];
    _mm_storeu_si128((__m128i *)(void *)t, acc);
    int32_t s = t[0] + t[1] + t[2] + t[3];
    return s + dot_scalar(a + d, b + d, dim - d);
}

static void dots_sse2(const int8_t *codes, int n, const int8_t *q, int dim, int32_t *out) {
    for (int i = 0; i < n; i++) out[i] = dot_sse2(codes + (size_t)i * dim, q, dim);
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#define AP_HAVE_X86_KERNELS 1

__attribute__((target("avx2"))) static int32_t dot_avx2(const int8_t *a, const int8_t *b,
                                                        int dim) {
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    int d = 0;
    for (; d + 32 <= dim; d += 32) {
        __m256i a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(a + d)));
        __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(b + d)));
        __m256i a1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(a + d + 16)));
        __m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(b + d + 16)));
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(a0, b0));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(a1, b1));
    }
    acc0 = _mm256_add_epi32(acc0, acc1);
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(acc0), _mm256_extracti128_si256(acc0, 1));
    int32_t t[4];
    _mm_storeu_si128((__m128i *)(void *)t, s4);
    int32_t s = t[0] + t[1] + t[2] + t[3];
    return s + dot_scalar(a + d, b + d, dim - d);
}

__attribute__((target("avx2"))) static void dots_avx2(const int8_t *codes, int n, const int8_t *q,
                                                      int dim, int32_t *out) {
    for (int i = 0; i < n; i++) out[i] = dot_avx2(codes + (size_t)i * dim, q, dim);
}
#endif

int ap_mem_dots_kernels(const char **names, ap_mem_dots_fn *fns, int max) {
    int n = 0;
#define ADD(nm, fn)          \
    if (n < max) {           \
        names[n] = nm;       \
        fns[n] = fn;         \
    }                        \
    n++
    ADD("scalar", dots_scalar);
#ifdef __SSE2__
    ADD("sse2", dots_sse2);
#endif
#ifdef AP_HAVE_X86_KERNELS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        ADD("avx2", dots_avx2);
    }
#endif
#undef ADD
    return n < max ? n : max;
}

ap_mem_dots_fn ap_mem_dots_best(const char **name) {
    const char *names[8];
    ap_mem_dots_fn fns[8];
    int n = ap_mem_dots_kernels(names, fns, 8);
    if (name) *name = names[n - 1];
    return fns[n - 1];
}
