#ifndef GRAFT_COPENBLAS_SHIM_H
#define GRAFT_COPENBLAS_SHIM_H
// pkg-config (openblas) adds -I.../openblas-pthread, where Debian keeps cblas.h.
#include <cblas.h>
// Exposed by OpenBLAS itself; declared in cblas.h on recent versions, repeated here for older ones.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);
#endif
