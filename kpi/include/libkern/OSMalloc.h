/* OSMalloc: tagged kernel allocation (libkern/libkern/OSMalloc.h), with Apple's
 * names and signatures. Tags are required; using a NULL or freed tag panics. */
#ifndef KMBENCH_KPI_LIBKERN_OSMALLOC_H
#define KMBENCH_KPI_LIBKERN_OSMALLOC_H

#include <stdint.h>
#include <sys/cdefs.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct __OSMallocTag__* OSMallocTag;
typedef struct __OSMallocTag__* OSMallocTag_t;

#define OSMT_DEFAULT 0x00
#define OSMT_PAGEABLE 0x01

/* post: a new tag; the name is cut to 63 characters; the same name twice gives two tags. */
OSMallocTag OSMalloc_Tagalloc(const char* name, uint32_t flags);
/* pre: no block of the tag is live (strict mode; the xnu mode defers the release). */
void OSMalloc_Tagfree(OSMallocTag tag);

/* Pageable when the tag has OSMT_PAGEABLE and size is a page or more; otherwise wired. */
void* OSMalloc(uint32_t size, OSMallocTag tag);
/* Never waits. post: NULL for an OSMT_PAGEABLE tag. */
void* OSMalloc_noblock(uint32_t size, OSMallocTag tag);
void* OSMalloc_nowait(uint32_t size, OSMallocTag tag);
/* pre: addr came from OSMalloc*(size, tag), or is NULL. */
void OSFree(void* addr, uint32_t size, OSMallocTag tag);

#ifdef __cplusplus
}
#endif

#endif
