/* Mach VM scalar types as on a 64-bit Darwin kernel (osfmk/mach/vm_types.h). */
#ifndef KMBENCH_KPI_MACH_VM_TYPES_H
#define KMBENCH_KPI_MACH_VM_TYPES_H

#include <stddef.h>
#include <stdint.h>

typedef uintptr_t vm_offset_t;
typedef uintptr_t vm_size_t;
typedef vm_offset_t vm_address_t;
typedef uint64_t mach_vm_address_t;
typedef uint64_t mach_vm_offset_t;
typedef uint64_t mach_vm_size_t;
typedef uint64_t vm_map_offset_t;
typedef uint64_t vm_map_address_t;
typedef uint64_t vm_map_size_t;
typedef uint64_t addr64_t;
typedef uint32_t ppnum_t;
typedef int vm_prot_t;

#endif
