/* OpenBLAS SGEMM on MiniLM fine-tuning shapes (M = 864 rows), one call or two row bands on two
   threads as the engine bands them, hot caches. Build and run:
     gcc -O2 -o gemm_banding benchmarks/gemm_banding.c -lopenblas -lpthread && ./gemm_banding 1 && ./gemm_banding 2 */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
void openblas_set_num_threads(int);
typedef struct { int ta, tb, m, n, k; float *a, *b, *c; int lda, ldb, ldc; float beta; } job;
static void *run(void *p) { job *j = p;
  cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, j->m, j->n, j->k, 1.f, j->a, j->lda, j->b, j->ldb, j->beta, j->c, j->ldc); return 0; }
static double now() { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
/* general: C[m,n] = op(A) op(B); split rows of C in 2 bands (A rows offset) */
static void g2(int ta, int tb, int m, int n, int k, float *a, float *b, float *c, float beta, int threads) {
  int lda = ta ? m : k, ldb = tb ? k : n;
  if (threads == 1) { job j = {ta, tb, m, n, k, a, b, c, lda, ldb, n, beta}; run(&j); return; }
  int h = (m / 2 + 47) / 48 * 48; if (h > m) h = m;
  float *a2 = ta ? a + h : a + (size_t)h * k;
  job j1 = {ta, tb, h, n, k, a, b, c, lda, ldb, n, beta}, j2 = {ta, tb, m - h, n, k, a2, b, c + (size_t)h * n, lda, ldb, n, beta};
  pthread_t t; pthread_create(&t, 0, run, &j2); run(&j1); pthread_join(t, 0);
}
int main(int argc, char **argv) {
  openblas_set_num_threads(1);
  int T = atoi(argv[1]);
  float *a = malloc(sizeof(float) * 4096 * 4096), *b = malloc(sizeof(float) * 4096 * 4096), *c = malloc(sizeof(float) * 4096 * 4096);
  for (int i = 0; i < 4096 * 4096; i++) { a[i] = (i % 7) * 0.1f; b[i] = (i % 5) * 0.1f; }
  struct { const char *name; int ta, tb, m, n, k; } s[] = {
    {"fwd x W^T 864x384x384", 0, 1, 864, 384, 384},
    {"fwd FFN up 864x1536x384", 0, 1, 864, 1536, 384},
    {"fwd FFN down 864x384x1536", 0, 1, 864, 384, 1536},
    {"dX 864x384 (k=384)", 0, 0, 864, 384, 384},
    {"dX FFN up 864x384 (k=1536)", 0, 0, 864, 384, 1536},
    {"dX FFN down 864x1536 (k=384)", 0, 0, 864, 1536, 384},
    {"dW 384x384 (k=864)", 1, 0, 384, 384, 864},
    {"dW FFN up 1536x384 (k=864)", 1, 0, 1536, 384, 864},
    {"dW FFN down 384x1536 (k=864)", 1, 0, 384, 1536, 864},
  };
  for (int r = 0; r < 2; r++)
  for (int i = 0; i < 9; i++) {
    int it = 100; double t0 = now();
    for (int q = 0; q < it; q++) g2(s[i].ta, s[i].tb, s[i].m, s[i].n, s[i].k, a, b, c, 1, T);
    double t1 = now();
    printf("%-32s %d thr: %6.1f GF/s\n", s[i].name, T, 2.0 * s[i].m * s[i].n * s[i].k * it / (t1 - t0) / 1e9);
  }
}
