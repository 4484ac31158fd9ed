#ifndef GRAFT_CUTF8PROC_SHIM_H
#define GRAFT_CUTF8PROC_SHIM_H
#include <utf8proc.h>
#endif
