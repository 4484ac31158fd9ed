#ifndef GRAFT_COPENBLAS_SHIM_H
#define GRAFT_COPENBLAS_SHIM_H
// pkg-config (openblas) adds -I.../openblas-pthread, where Debian keeps cblas.h.
#include <cblas.h>
// Exposed by OpenBLAS itself; declared in cblas.h on recent versions, repeated here for older ones.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);
// LAPACK, which Debian's libopenblas carries (nm -D: ssyevd_, ssygvd_): symmetric and
// symmetric-definite eigen-decompositions, Fortran calling convention (arguments by pointer,
// the CHARACTER arguments' hidden lengths last).
#include <stddef.h>
void ssyevd_(char *jobz, char *uplo, int *n, float *a, int *lda, float *w, float *work, int *lwork,
             int *iwork, int *liwork, int *info, size_t jobz_len, size_t uplo_len);
void ssygvd_(int *itype, char *jobz, char *uplo, int *n, float *a, int *lda, float *b, int *ldb, float *w,
             float *work, int *lwork, int *iwork, int *liwork, int *info, size_t jobz_len, size_t uplo_len);
void dposv_(char *uplo, int *n, int *nrhs, double *a, int *lda, double *b, int *ldb, int *info, size_t uplo_len);
#endif
