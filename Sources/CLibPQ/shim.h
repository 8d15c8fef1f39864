#ifndef TASKYARD_CLIBPQ_SHIM_H
#define TASKYARD_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
