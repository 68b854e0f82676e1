/* kern_return_t and the codes IOKit builds on (osfmk/mach/kern_return.h). */
#ifndef KMBENCH_KPI_MACH_KERN_RETURN_H
#define KMBENCH_KPI_MACH_KERN_RETURN_H

typedef int kern_return_t;

#define KERN_SUCCESS 0
#define KERN_INVALID_ADDRESS 1
#define KERN_PROTECTION_FAILURE 2
#define KERN_NO_SPACE 3
#define KERN_INVALID_ARGUMENT 4
#define KERN_FAILURE 5
#define KERN_RESOURCE_SHORTAGE 6

#endif
