/* OpenBLAS SGEMM on MiniLM fine-tuning shapes: one thread, two row bands, two column bands, a K split
   plus an add, and OpenBLAS's own two threads (GF/s, hot caches, a thread created per call for the bands).
     gcc -O2 -o gemm_split benchmarks/gemm_split.c -lopenblas -lpthread && ./gemm_split */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
void openblas_set_num_threads(int);
typedef struct { int ta, tb, m, n, k; const float *a, *b; float *c; int lda, ldb, ldc; float beta; } job;
static void *run(void *p) { job *j = p;
  cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, j->m, j->n, j->k, 1.f, j->a, j->lda, j->b, j->ldb, j->beta, j->c, j->ldc); return 0; }
static double now() { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static float *tmp;
static void two(job *j1, job *j2) { pthread_t t; pthread_create(&t, 0, run, j2); run(j1); pthread_join(t, 0); }
/* mode 0: 1 thread; 1: row bands (48-aligned); 2: column bands (N split); 3: K split + add; 4: OpenBLAS 2 threads */
static void g(int mode, int ta, int tb, int m, int n, int k, const float *a, const float *b, float *c) {
  int lda = ta ? m : k, ldb = tb ? k : n;
  if (mode == 0 || mode == 4) { job j = {ta, tb, m, n, k, a, b, c, lda, ldb, n, 1}; run(&j); return; }
  if (mode == 1) { int h = (m / 2 + 24) / 48 * 48;
    job j1 = {ta, tb, h, n, k, a, b, c, lda, ldb, n, 1}, j2 = {ta, tb, m - h, n, k, ta ? a + h : a + (size_t)h * k, b, c + (size_t)h * n, lda, ldb, n, 1};
    two(&j1, &j2); return; }
  if (mode == 2) { int h = (n / 2 + 8) / 16 * 16;
    job j1 = {ta, tb, m, h, k, a, b, c, lda, ldb, n, 1}, j2 = {ta, tb, m, n - h, k, a, tb ? b + (size_t)h * k : b + h, c + h, lda, ldb, n, 1};
    two(&j1, &j2); return; }
  if (mode == 3) { int h = k / 2;
    job j1 = {ta, tb, m, n, h, a, b, c, lda, ldb, n, 1}, j2 = {ta, tb, m, n, k - h, ta ? a + (size_t)h * m : a + h, tb ? b + h : b + (size_t)h * n, tmp, lda, ldb, n, 0};
    two(&j1, &j2); for (int i = 0; i < m * n; i++) c[i] += tmp[i]; return; }
}
int main(int argc, char **argv) {
  float *a = malloc(sizeof(float) * 2048 * 2048), *b = malloc(sizeof(float) * 2048 * 2048), *c = malloc(sizeof(float) * 2048 * 2048);
  tmp = malloc(sizeof(float) * 2048 * 2048);
  for (int i = 0; i < 2048 * 2048; i++) { a[i] = (i % 7) * 0.01f; b[i] = (i % 5) * 0.01f; c[i] = 0; }
  struct { const char *name; int ta, tb, m, n, k; } s[] = {
    {"fwd xW^T 864x384x384", 0, 1, 864, 384, 384}, {"fwd up 864x1536x384", 0, 1, 864, 1536, 384},
    {"fwd down 864x384x1536", 0, 1, 864, 384, 1536}, {"dX 864x384 k384", 0, 0, 864, 384, 384},
    {"dX(up) 864x384 k1536", 0, 0, 864, 384, 1536}, {"dX(down) 864x1536 k384", 0, 0, 864, 1536, 384},
    {"dW 384x384 k864", 1, 0, 384, 384, 864}, {"dW up 1536x384 k864", 1, 0, 1536, 384, 864},
    {"dW down 384x1536 k864", 1, 0, 384, 1536, 864},
  };
  printf("%-24s %8s %8s %8s %8s %8s\n", "GF/s", "1thr", "rows", "cols", "ksplit", "oblas2");
  for (int r = 0; r < 2; r++) for (int i = 0; i < 9; i++) {
    printf("%-24s", s[i].name);
    for (int mode = 0; mode < 5; mode++) {
      openblas_set_num_threads(mode == 4 ? 2 : 1);
      int it = 60; g(mode, s[i].ta, s[i].tb, s[i].m, s[i].n, s[i].k, a, b, c);
      double t0 = now();
      for (int q = 0; q < it; q++) g(mode, s[i].ta, s[i].tb, s[i].m, s[i].n, s[i].k, a, b, c);
      printf(" %8.1f", 2.0 * s[i].m * s[i].n * s[i].k * it / (now() - t0) / 1e9);
    }
    printf("\n");
  }
}
