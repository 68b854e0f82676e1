// Plays the kernel around KmRxRing: loads the driver (a tag and a ring), lets a
// simulated NIC DMA frames into the receive buffers by physical address, has
// the driver service the ring, unloads, and checks that everything the driver
// allocated was given back. Runs on the backend KMBENCH_BACKEND names.
// Exit status: 0 ok, 1 a check failed.
#include <cstdio>

#include "KmRxRing.h"
#include "kmbench/kpi.h"

namespace {

/// The device side: writes a frame (payload + checksum byte) through physical memory.
void device_receive(KmRxDescriptor* d, UInt32 length, UInt32 seed) {
  UInt8 sum = 0;
  for (UInt32 i = 0; i + 1 < length; i++) {
    const UInt8 byte = (UInt8)(seed * 31 + i);
    IOMappedWrite8(d->bufferPhys + i, byte);
    sum = (UInt8)(sum + byte);
  }
  IOMappedWrite8(d->bufferPhys + length - 1, sum);
  d->length = length;
  d->flags = 0;  // handed back to the driver
}

int fail(const char* what) {
  std::fprintf(stderr, "rx_driver: FAILED: %s\n", what);
  return 1;
}

}  // namespace

int main() {
  constexpr UInt32 kSlots = 64;
  constexpr UInt32 kBufferSize = 2048;
  constexpr UInt32 kPackets = 5000;

  // start(): the driver's tag and ring.
  OSMallocTag tag = OSMalloc_Tagalloc("com.kmbench.example.rx", OSMT_DEFAULT);
  KmRxRing* ring = KmRxRing::withParams(tag, kSlots, kBufferSize);
  if (ring == NULL) {
    return fail("KmRxRing::withParams");
  }
  if (KmRxRing::withParams(tag, 0, kBufferSize) != NULL) {
    return fail("a ring of 0 slots was accepted");
  }

  // Traffic: bursts of frames, each burst serviced like an interrupt.
  UInt32 sent = 0;
  UInt32 tail = 0;
  UInt64 bytes = 0;
  while (sent < kPackets) {
    const UInt32 burst = 1 + sent % (kSlots - 1);
    for (UInt32 i = 0; i < burst && sent < kPackets; i++, sent++) {
      const UInt32 length = 60 + (sent * 97) % (kBufferSize - 60);
      device_receive(ring->descriptor(tail), length, sent);
      tail = (tail + 1) % kSlots;
      bytes += length;
    }
    ring->service();
  }

  const KmRxControlBlock* cb = ring->control();
  const kmbench::kpi::TagUsage live = kmbench::kpi::tag_usage().back();
  const UInt32 packets = cb->packets;
  const UInt64 received = cb->bytes;
  const UInt32 errors = cb->checksumErrors;
  const std::int64_t instances = kmbench::kpi::class_usage("KmRxRing").live_instances;

  // stop(): release the ring, free the tag.
  OSSafeReleaseNULL(ring);
  OSMalloc_Tagfree(tag);

  std::printf("rx_driver: backend %s: %u packets, %llu bytes, %u checksum errors\n",
              kmbench::kpi::backend().name().c_str(), packets, (unsigned long long)received,
              errors);
  if (packets != kPackets || received != bytes || errors != 0) {
    return fail("the driver did not receive what the device sent");
  }
  // Strict mode counts the bytes asked for; xnu mode, as XNU, the kalloc class that holds them.
  const std::int64_t asked = (std::int64_t)sizeof(KmRxControlBlock);
  const bool bytes_ok =
      kmbench::kpi::mode() == kmbench::kpi::Mode::strict ? live.live_bytes == asked : live.live_bytes >= asked;
  if (live.name != "com.kmbench.example.rx" || live.live_blocks != 1 || !bytes_ok) {
    return fail("tag accounting while running");
  }
  if (instances != 1) {
    return fail("KmRxRing instance count while running");
  }
  for (const kmbench::kpi::TagUsage& t : kmbench::kpi::tag_usage()) {
    if (t.live_blocks != 0 || t.live_bytes != 0 || t.state != kmbench::kpi::TagUsage::State::released) {
      return fail("a tag still holds memory after unload");
    }
  }
  if (kmbench::kpi::live_blocks() != 0 ||
      kmbench::kpi::class_usage("KmRxRing").live_instances != 0) {
    return fail("blocks or objects still live after unload");
  }
  // What the driver made, family by family: a recording of this run (KMBENCH_RECORD) holds the same.
  for (const kmbench::kpi::FamilyUsage& f : kmbench::kpi::family_usage()) {
    if (f.allocs != 0 || f.frees != 0) {
      std::printf("rx_driver: family %s: %llu allocs, %llu frees\n", f.family.c_str(),
                  (unsigned long long)f.allocs, (unsigned long long)f.frees);
    }
  }
  std::printf("rx_driver: unloaded cleanly\n");
  return 0;
}
