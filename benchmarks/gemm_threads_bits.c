/* Does OpenBLAS with two threads give the bits of its one-thread call? C = A op B + 0.25, per shape.
     gcc -O2 -o gemm_threads_bits benchmarks/gemm_threads_bits.c -lopenblas && ./gemm_threads_bits */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
void openblas_set_num_threads(int);
int main() {
  int shapes[][5] = {{0,1,864,384,384},{0,1,864,1536,384},{0,1,864,384,1536},{0,0,864,384,384},{0,0,864,384,1536},{1,0,384,384,864},{1,0,1536,384,864},{1,0,384,1536,864},{0,1,4096,256,1024},{0,1,100,384,384},{0,1,37,1536,384},{1,0,384,384,77},{0,1,1000,384,384}};
  int ns = sizeof(shapes)/sizeof(shapes[0]);
  float *a = malloc(4*4096*1536), *b = malloc(4*1536*1536), *c1 = malloc(4*4096*1536), *c2 = malloc(4*4096*1536);
  srand(1); for (int i = 0; i < 4096*1536; i++) a[i] = rand() / (float)RAND_MAX - 0.5f;
  for (int i = 0; i < 1536*1536; i++) b[i] = rand() / (float)RAND_MAX - 0.5f;
  for (int s = 0; s < ns; s++) {
    int ta = shapes[s][0], tb = shapes[s][1], m = shapes[s][2], n = shapes[s][3], k = shapes[s][4];
    int lda = ta ? m : k, ldb = tb ? k : n;
    for (int th = 1; th <= 2; th++) {
      openblas_set_num_threads(th);
      float *c = th == 1 ? c1 : c2;
      for (int i = 0; i < m*n; i++) c[i] = 0.25f;
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.f, a, lda, b, ldb, 1.f, c, n);
    }
    printf("%d %d %dx%dx%d: %s\n", ta, tb, m, n, k, memcmp(c1, c2, 4*m*n) ? "DIFFER" : "same bits");
  }
}
