// The backend types compiled into this executable, in `kmbench list` order.
// A new backend: include its header and add its class to InProcessBackends.
//
// A worker executable (cmake/KmbenchWorkers.cmake) is compiled with
// KMBENCH_WORKER_<NAME> and adds the backends of the allocator that owns its
// malloc; the plain kmbench lists them from the registry's worker table.
#pragma once

#include "allocators/buddy/buddy.h"
#include "allocators/slab/slab.h"
#include "allocators/system/system.h"
#include "allocators/zones/zones.h"

#if defined(KMBENCH_WORKER_JEMALLOC)
#include "allocators/jemalloc/jemalloc.h"
#define KMBENCH_WORKER_BACKENDS , JemallocBackend
#elif defined(KMBENCH_WORKER_MIMALLOC)
#include "allocators/mimalloc/mimalloc.h"
#define KMBENCH_WORKER_BACKENDS , MimallocBackend, MimallocNonumaBackend
#else
#define KMBENCH_WORKER_BACKENDS
#endif

namespace kmbench {

template <class... Bs>
struct BackendList {};

using InProcessBackends =
    BackendList<SystemBackend, BuddyBackend, ZonesBackend, SlabBackend KMBENCH_WORKER_BACKENDS>;

}  // namespace kmbench
