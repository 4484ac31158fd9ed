/* How evenly two threads of this machine run the two row bands of one product, as BLAS.matmul
 * splits x[4096, 256] W[1024, 256]^T over two threads (bands of 2064 and 2032 rows, each one
 * single-threaded cblas_sgemm), started together at a barrier 40 times: each band's time per
 * round, and the mean gap between the two (the time the faster thread waits).
 *
 *     gcc -O2 benchmarks/band_imbalance.c -o /tmp/band_imbalance -lopenblas -lpthread
 *     OPENBLAS_NUM_THREADS=1 /tmp/band_imbalance [first band's rows, default 2064]
 *
 * Seen on the 2-vCPU Zen 2 VM of session 15 (BENCHMARKS.md): the two vCPUs ran equal work up
 * to 1.4x apart for stretches of seconds (17 ms against 24 ms a band), which a static split
 * turns into waiting. */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

enum { M = 4096, N = 1024, K = 256, ROUNDS = 40 };
static float *A, *B, *C;
static int split;
static pthread_barrier_t barrier;
static double seconds[2][ROUNDS];

static void *band(void *arg) {
    long id = (long)arg;
    int lo = id ? split : 0, hi = id ? M : split;
    for (int r = 0; r < ROUNDS; r++) {
        pthread_barrier_wait(&barrier);
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, hi - lo, N, K, 1, A + (long)lo * K, K, B, K, 0, C + (long)lo * N, N);
        seconds[id][r] = now() - t0;
    }
    return 0;
}

int main(int argc, char **argv) {
    openblas_set_num_threads(1);
    split = argc > 1 ? atoi(argv[1]) : 2064;
    if (split <= 0 || split >= M) { fprintf(stderr, "first band's rows must be in 1..%d\n", M - 1); return 2; }
    A = malloc(sizeof(float) * M * K); B = malloc(sizeof(float) * N * K); C = malloc(sizeof(float) * M * N);
    if (!A || !B || !C) { fprintf(stderr, "out of memory\n"); return 1; }
    srand(1);
    for (long i = 0; i < (long)M * K; i++) A[i] = rand() / (float)RAND_MAX - 0.5f;
    for (long i = 0; i < (long)N * K; i++) B[i] = rand() / (float)RAND_MAX - 0.5f;
    pthread_barrier_init(&barrier, 0, 2);
    pthread_t t;
    pthread_create(&t, 0, band, (void *)1);
    band(0);
    pthread_join(t, 0);
    double s0 = 0, s1 = 0, gap = 0;
    for (int r = 2; r < ROUNDS; r++) {   /* the first two rounds warm up */
        s0 += seconds[0][r]; s1 += seconds[1][r];
        gap += seconds[0][r] > seconds[1][r] ? seconds[0][r] - seconds[1][r] : seconds[1][r] - seconds[0][r];
    }
    int n = ROUNDS - 2;
    printf("bands %d / %d rows: %.2f / %.2f ms per round (%.2f / %.2f us per row); mean gap %.2f ms\n", split, M - split,
           s0 / n * 1e3, s1 / n * 1e3, s0 / n / split * 1e6, s1 / n / (M - split) * 1e6, gap / n * 1e3);
    for (int r = 2; r < ROUNDS; r++) printf("%s%.1f/%.1f", r == 2 ? "  " : " ", seconds[0][r] * 1e3, seconds[1][r] * 1e3);
    printf("\n");
    return 0;
}
