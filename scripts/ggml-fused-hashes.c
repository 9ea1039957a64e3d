// Hashes of ggml's reference quantizers as llama.cpp's GCC build compiles them (FMA contracted),
// on rows generated here: the expected values of quant/tests/golden_vectors.rs's
// fused_quantizers_match_llama_cpps_gcc_build, which generates the same rows and hashes
// eddy_quant::quantize_fused's bytes.
//
// Build against tools/llama-bench's ggml (the one its llama-quantize links) and run:
//   gcc -O2 -ffp-contract=off scripts/ggml-fused-hashes.c \
//       tools/llama-bench/target/release/build/llama-cpp-sys-2-*/out/lib/libggml-base.a \
//       -lm -lstdc++ -lpthread -o /tmp/ggml-fused-hashes && /tmp/ggml-fused-hashes
// -ffp-contract=off keeps this file's own row generator exact (the same bits as the Rust one);
// the quantizers come precompiled from the library. Prints one line per type: name, FNV-1a 64
// of the quantized bytes in hex.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

void quantize_row_q4_0_ref(const float *x, void *y, int64_t k);
void quantize_row_q4_1_ref(const float *x, void *y, int64_t k);
void quantize_row_q5_0_ref(const float *x, void *y, int64_t k);
void quantize_row_q5_1_ref(const float *x, void *y, int64_t k);
void quantize_row_q2_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q3_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q4_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q5_K_ref(const float *x, void *y, int64_t k);
void quantize_row_q6_K_ref(const float *x, void *y, int64_t k);
size_t quantize_iq4_nl(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *qw);
size_t quantize_iq4_xs(const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *qw);

#define N_BLOCKS 4096 /* of 256 weights */
#define N (N_BLOCKS * 256)

static uint64_t state = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) { /* xorshift64* */
  state ^= state >> 12; state ^= state << 25; state ^= state >> 27;
  return state * 0x2545f4914f6cdd1dull;
}

/* Block b of 256 weights: cubes of uniform values at one of four scales, every fifth block
 * small multiples of 1/8 (ties), block 7 zeros, block 11 one spike. Exact in any IEEE build. */
static void rows(float *x) {
  static const float scale[4] = {0.02f, 1.0f, 1e-3f, 50.0f};
  for (int b = 0; b < N_BLOCKS; b++) {
    for (int i = 0; i < 256; i++) {
      float u = (float)(next() >> 40) / 16777216.0f;
      float t = 2.0f * u - 1.0f;
      float v = t * t * t * scale[b % 4];
      if (b % 5 == 4) v = (float)(i % 13 - 6) * 0.125f;
      if (b == 7) v = 0.0f;
      if (b == 11) v = i == 100 ? 3.0f : 0.0f;
      x[256 * b + i] = v;
    }
  }
}

static uint64_t fnv1a(const unsigned char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ull; }
  return h;
}

int main(void) {
  static float x[N];
  static unsigned char y[N]; /* at most 1 byte per weight for these types */
  rows(x);
  struct { const char *name; void (*row)(const float *, void *, int64_t); size_t bytes; } t[] = {
    {"Q4_0", quantize_row_q4_0_ref, N / 32 * 18}, {"Q4_1", quantize_row_q4_1_ref, N / 32 * 20},
    {"Q5_0", quantize_row_q5_0_ref, N / 32 * 22}, {"Q5_1", quantize_row_q5_1_ref, N / 32 * 24},
    {"Q2_K", quantize_row_q2_K_ref, N / 256 * 84}, {"Q3_K", quantize_row_q3_K_ref, N / 256 * 110},
    {"Q4_K", quantize_row_q4_K_ref, N / 256 * 144}, {"Q5_K", quantize_row_q5_K_ref, N / 256 * 176},
    {"Q6_K", quantize_row_q6_K_ref, N / 256 * 210},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    t[i].row(x, y, N);
    printf("%s %016llx\n", t[i].name, (unsigned long long)fnv1a(y, t[i].bytes));
  }
  size_t n = quantize_iq4_nl(x, y, N / 256, 256, NULL);
  printf("IQ4_NL %016llx\n", (unsigned long long)fnv1a(y, n));
  n = quantize_iq4_xs(x, y, N / 256, 256, NULL);
  printf("IQ4_XS %016llx\n", (unsigned long long)fnv1a(y, n));
  return 0;
}
