// See include/graft_mpi.h. Speaks Open MPI's ABI: its handles (MPI_COMM_WORLD, MPI_FLOAT,
// MPI_SUM, ...) are the addresses of exported globals (ompi_mpi_comm_world, ompi_mpi_float,
// ompi_mpi_op_sum, ...), MPI_IN_PLACE is (void *)1 and MPI_STATUS_IGNORE is NULL.
#include "graft_mpi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef void *Handle;
#define GRAFT_IN_PLACE ((void *)1)
#define GRAFT_STATUS_IGNORE ((void *)0)
#define GRAFT_THREAD_SERIALIZED 2

static void *library;
static Handle comm_world, type_float, type_double, type_byte, op_sum, op_max;

static int (*p_init_thread)(int *, char ***, int, int *);
static int (*p_finalize)(void);
static int (*p_abort)(Handle, int);
static int (*p_comm_rank)(Handle, int *);
static int (*p_comm_size)(Handle, int *);
static int (*p_barrier)(Handle);
static int (*p_allreduce)(const void *, void *, int, Handle, Handle, Handle);
static int (*p_iallreduce)(const void *, void *, int, Handle, Handle, Handle, void **);
static int (*p_test)(void **, int *, void *);
static int (*p_wait)(void **, void *);
static int (*p_bcast)(void *, int, Handle, int, Handle);
static int (*p_send)(const void *, int, Handle, int, int, Handle);
static int (*p_recv)(void *, int, Handle, int, int, Handle, void *);
static int (*p_error_string)(int, char *, int *);

#define RESOLVE(var, name)                                                                   \
    do {                                                                                     \
        *(void **)(&var) = dlsym(library, name);                                             \
        if (!var) {                                                                          \
            snprintf(error, error_length, "%s: symbol %s not found (Graft needs Open MPI)",  \
                     loaded, name);                                                          \
            return 1;                                                                        \
        }                                                                                    \
    } while (0)

int graft_mpi_load(const char *path, char *error, size_t error_length) {
    if (library) return 0;
    const char *candidates[] = {path, "libmpi.so.40", "libmpi.so", NULL};
    const char *loaded = NULL;
    char tried[1024] = "";
    for (int i = 0; i < 3; i++) {
        if (!candidates[i] || !*candidates[i]) continue;
        // RTLD_GLOBAL: Open MPI's own plugins (mca_*.so) resolve libmpi's symbols through it.
        library = dlopen(candidates[i], RTLD_NOW | RTLD_GLOBAL);
        if (library) { loaded = candidates[i]; break; }
        const char *why = dlerror();
        size_t used = strlen(tried);
        snprintf(tried + used, sizeof tried - used, "%s%s (%s)", used ? "; " : "", candidates[i], why ? why : "?");
        if (path && *path) break;   // an explicit library is the only one tried
    }
    if (!library) {
        snprintf(error, error_length, "cannot load the MPI library: %s", tried);
        return 1;
    }
    RESOLVE(comm_world, "ompi_mpi_comm_world");
    RESOLVE(type_float, "ompi_mpi_float");
    RESOLVE(type_double, "ompi_mpi_double");
    RESOLVE(type_byte, "ompi_mpi_byte");
    RESOLVE(op_sum, "ompi_mpi_op_sum");
    RESOLVE(op_max, "ompi_mpi_op_max");
    RESOLVE(p_init_thread, "MPI_Init_thread");
    RESOLVE(p_finalize, "MPI_Finalize");
    RESOLVE(p_abort, "MPI_Abort");
    RESOLVE(p_comm_rank, "MPI_Comm_rank");
    RESOLVE(p_comm_size, "MPI_Comm_size");
    RESOLVE(p_barrier, "MPI_Barrier");
    RESOLVE(p_allreduce, "MPI_Allreduce");
    RESOLVE(p_iallreduce, "MPI_Iallreduce");
    RESOLVE(p_test, "MPI_Test");
    RESOLVE(p_wait, "MPI_Wait");
    RESOLVE(p_bcast, "MPI_Bcast");
    RESOLVE(p_send, "MPI_Send");
    RESOLVE(p_recv, "MPI_Recv");
    RESOLVE(p_error_string, "MPI_Error_string");
    return 0;
}

int graft_mpi_init(int *rank, int *size) {
    int provided = 0;
    int rc = p_init_thread(NULL, NULL, GRAFT_THREAD_SERIALIZED, &provided);
    if (rc) return rc;
    if ((rc = p_comm_rank(comm_world, rank))) return rc;
    return p_comm_size(comm_world, size);
}

int graft_mpi_finalize(void) { return p_finalize(); }
void graft_mpi_abort(int code) { p_abort(comm_world, code); }
int graft_mpi_barrier(void) { return p_barrier(comm_world); }

int graft_mpi_allreduce_float_sum(float *buffer, int count) {
    return p_allreduce(GRAFT_IN_PLACE, buffer, count, type_float, op_sum, comm_world);
}
int graft_mpi_allreduce_double_sum(double *buffer, int count) {
    return p_allreduce(GRAFT_IN_PLACE, buffer, count, type_double, op_sum, comm_world);
}
int graft_mpi_allreduce_double_max(double *buffer, int count) {
    return p_allreduce(GRAFT_IN_PLACE, buffer, count, type_double, op_max, comm_world);
}
int graft_mpi_iallreduce_float_sum(float *buffer, int count, void **request) {
    return p_iallreduce(GRAFT_IN_PLACE, buffer, count, type_float, op_sum, comm_world, request);
}
int graft_mpi_test(void **request, int *done) { return p_test(request, done, GRAFT_STATUS_IGNORE); }
int graft_mpi_wait(void **request) { return p_wait(request, GRAFT_STATUS_IGNORE); }

int graft_mpi_bcast_bytes(void *buffer, int count, int root) {
    return p_bcast(buffer, count, type_byte, root, comm_world);
}
int graft_mpi_send_bytes(const void *buffer, int count, int destination, int tag) {
    return p_send(buffer, count, type_byte, destination, tag, comm_world);
}
int graft_mpi_recv_bytes(void *buffer, int count, int source, int tag) {
    return p_recv(buffer, count, type_byte, source, tag, comm_world, GRAFT_STATUS_IGNORE);
}

void graft_mpi_error_string(int code, char *out, size_t length) {
    if (!p_error_string || length == 0) { if (length) snprintf(out, length, "MPI error %d", code); return; }
    char buffer[512];   // MPI_MAX_ERROR_STRING is 256 in Open MPI
    int n = 0;
    if (p_error_string(code, buffer, &n) != 0) { snprintf(out, length, "MPI error %d", code); return; }
    snprintf(out, length, "%.*s", n, buffer);
}
