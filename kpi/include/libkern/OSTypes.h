/* libkern's fixed-width types (libkern/libkern/OSTypes.h, 64-bit kernel). */
#ifndef KMBENCH_KPI_LIBKERN_OSTYPES_H
#define KMBENCH_KPI_LIBKERN_OSTYPES_H

#include <stdint.h>

typedef unsigned int UInt;
typedef signed int SInt;

typedef unsigned char UInt8;
typedef unsigned short UInt16;
typedef unsigned int UInt32;
typedef unsigned long long UInt64;
typedef signed char SInt8;
typedef signed short SInt16;
typedef signed int SInt32;
typedef signed long long SInt64;

typedef SInt32 OSStatus;
typedef UInt32 OptionBits;
typedef unsigned char Boolean;

/* The 64-bit kernel's scalar AbsoluteTime: here, nanoseconds of CLOCK_MONOTONIC. */
#ifndef ABSOLUTETIME_SCALAR_TYPE
#define ABSOLUTETIME_SCALAR_TYPE 1
#endif
typedef UInt64 AbsoluteTime;

#ifndef __cplusplus
#include <stdbool.h>
#endif

#endif
