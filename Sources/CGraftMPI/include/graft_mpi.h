// Graft's run-time binding to Open MPI: the library is loaded with dlopen only under mpirun, so
// Graft builds and runs without MPI installed (no link-time dependency).
#ifndef GRAFT_MPI_H
#define GRAFT_MPI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Loads libmpi (`path`, else libmpi.so.40, libmpi.so) and resolves every function and Open MPI
/// handle Graft uses. 0 on success; otherwise a message in `error`.
int graft_mpi_load(const char *path, char *error, size_t error_length);
/// MPI_Init_thread (MPI_THREAD_SERIALIZED) and the world's rank and size. 0 on success.
int graft_mpi_init(int *rank, int *size);
int graft_mpi_finalize(void);
/// MPI_Abort on MPI_COMM_WORLD: ends every rank of the job.
void graft_mpi_abort(int code);
int graft_mpi_barrier(void);

/// In-place sums over all ranks (`count` fits an int).
int graft_mpi_allreduce_float_sum(float *buffer, int count);
int graft_mpi_allreduce_double_sum(double *buffer, int count);
int graft_mpi_allreduce_double_max(double *buffer, int count);
/// Starts an in-place float sum; `request` receives the handle for test/wait.
int graft_mpi_iallreduce_float_sum(float *buffer, int count, void **request);
/// MPI_Test: `done` is set to 1 when the request completed (the handle is then freed).
int graft_mpi_test(void **request, int *done);
int graft_mpi_wait(void **request);

int graft_mpi_bcast_bytes(void *buffer, int count, int root);
int graft_mpi_send_bytes(const void *buffer, int count, int destination, int tag);
int graft_mpi_recv_bytes(void *buffer, int count, int source, int tag);

/// The MPI error string of `code`.
void graft_mpi_error_string(int code, char *out, size_t length);

#ifdef __cplusplus
}
#endif
#endif
