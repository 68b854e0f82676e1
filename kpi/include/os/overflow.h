/* Checked arithmetic as libkern/os/overflow.h spells it; true means the result overflowed. */
#ifndef KMBENCH_KPI_OS_OVERFLOW_H
#define KMBENCH_KPI_OS_OVERFLOW_H

#define os_add_overflow(a, b, res) __builtin_add_overflow((a), (b), (res))
#define os_sub_overflow(a, b, res) __builtin_sub_overflow((a), (b), (res))
#define os_mul_overflow(a, b, res) __builtin_mul_overflow((a), (b), (res))

#endif
