// OSByteOrder (libkern/OSByteOrder.h): byte swapping between host, big- and little-endian.
#ifndef KMBENCH_KPI_LIBKERN_OSBYTEORDER_H
#define KMBENCH_KPI_LIBKERN_OSBYTEORDER_H

#include <libkern/OSTypes.h>

#define OSSwapInt16(x) ((UInt16)__builtin_bswap16((UInt16)(x)))
#define OSSwapInt32(x) ((UInt32)__builtin_bswap32((UInt32)(x)))
#define OSSwapInt64(x) ((UInt64)__builtin_bswap64((UInt64)(x)))

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define OSSwapHostToBigInt16(x) OSSwapInt16(x)
#define OSSwapHostToBigInt32(x) OSSwapInt32(x)
#define OSSwapHostToBigInt64(x) OSSwapInt64(x)
#define OSSwapHostToLittleInt16(x) ((UInt16)(x))
#define OSSwapHostToLittleInt32(x) ((UInt32)(x))
#define OSSwapHostToLittleInt64(x) ((UInt64)(x))
#else
#define OSSwapHostToBigInt16(x) ((UInt16)(x))
#define OSSwapHostToBigInt32(x) ((UInt32)(x))
#define OSSwapHostToBigInt64(x) ((UInt64)(x))
#define OSSwapHostToLittleInt16(x) OSSwapInt16(x)
#define OSSwapHostToLittleInt32(x) OSSwapInt32(x)
#define OSSwapHostToLittleInt64(x) OSSwapInt64(x)
#endif
#define OSSwapBigToHostInt16(x) OSSwapHostToBigInt16(x)
#define OSSwapBigToHostInt32(x) OSSwapHostToBigInt32(x)
#define OSSwapBigToHostInt64(x) OSSwapHostToBigInt64(x)
#define OSSwapLittleToHostInt16(x) OSSwapHostToLittleInt16(x)
#define OSSwapLittleToHostInt32(x) OSSwapHostToLittleInt32(x)
#define OSSwapLittleToHostInt64(x) OSSwapHostToLittleInt64(x)

#endif
