// The backend types compiled into this executable, in `kmbench list` order.
// A new backend: include its header and add its class to InProcessBackends.
#pragma once

#include "allocators/buddy/buddy.h"
#include "allocators/slab/slab.h"
#include "allocators/system/system.h"
#include "allocators/zones/zones.h"

namespace kmbench {

template <class... Bs>
struct BackendList {};

using InProcessBackends = BackendList<SystemBackend, BuddyBackend, ZonesBackend, SlabBackend>;

}  // namespace kmbench
