/* The Mach object types a driver names: task_t and kernel_task (the kernel's own task). */
#ifndef KMBENCH_KPI_MACH_MACH_TYPES_H
#define KMBENCH_KPI_MACH_MACH_TYPES_H

#include <mach/kern_return.h>
#include <mach/vm_types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct task* task_t;
typedef struct thread* thread_t;
typedef struct _vm_map* vm_map_t;
typedef int boolean_t;

#define TASK_NULL ((task_t)0)

/* The emulated kernel's task: the only task kmbench's KPI serves. */
extern task_t kernel_task;

#ifdef __cplusplus
}
#endif

#endif
