// The KPI record log: what a program linked with kmbench::kpi writes while it
// runs with KMBENCH_RECORD=FILE (kpi/src/record.cpp), and what the trace
// importers read back (harness/trace/kpi_record.cpp). docs/kmt-format.md
// describes it byte by byte.
//
// The file is a sequence of blocks, each written by one write(2) on a file
// opened for appending, so blocks of different threads never interleave and a
// crash leaves every block written before it whole: a reader takes the blocks
// up to the first one that is cut or fails its checksum, and says so.
#pragma once

#include <cstdint>

#include "ops/calls.h"

namespace kmbench::ops::kpirec {

/// The file's first bytes, then the version (u32) and the header block.
inline constexpr char kMagic[8] = {'K', 'M', 'B', 'K', 'P', 'I', 'R', 'C'};
inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::uint32_t kFileHeaderBytes = 16;  // magic, version, reserved u32

enum class BlockType : std::uint8_t {
  header = 1,   // the program: text "key=value" lines (pid, program, page_size, cpus, backend, mode)
  records = 2,  // Record[] of one thread
  names = 3,    // (u64 key, u16 length, bytes)*: tag and class names by their pointer
  modules = 4,  // the loaded ELF objects (Module, then path and build id)*
  end = 5,      // the program stopped recording: empty
};

/// Before each block's payload. The CRC-32C (base/crc32c.h) covers the payload.
struct BlockHeader {
  BlockType type;
  std::uint8_t reserved[3];
  std::uint32_t bytes;   // payload length
  std::uint32_t crc;
  std::uint32_t thread;  // records: the recording thread's index (0, 1, ... in order of first call)
  // records blocks: the clock pair taken at the flush, so a reader can convert
  // ticks to nanoseconds without trusting a rate measured elsewhere.
  std::uint64_t ticks;    // base::ticks() at the flush
  std::uint64_t mono_ns;  // CLOCK_MONOTONIC at the flush
};
static_assert(sizeof(BlockHeader) == 32);

/// What a record is besides an op's call (Record::call >= kFirstEvent).
enum Event : std::uint8_t {
  kFirstEvent = 0x80,
  kClassOf = 0x80,  // the OSObject at `address` was constructed as the class named by `aux` (names block key)
};

/// IODMACommand::prepare's aux2 bits.
inline constexpr std::uint32_t kPrepareBounced = 1u << 0;  // some of the transfer went through a bounce buffer
inline constexpr std::uint32_t kPrepareIn = 1u << 1;       // direction: device -> memory
inline constexpr std::uint32_t kPrepareOut = 1u << 2;      // memory -> device
inline constexpr std::uint32_t kPrepare32 = 1u << 3;       // the command addresses 32 bits or fewer
inline constexpr unsigned kPrepareRunsShift = 8;            // physical runs (segments before merging), at most 2^24 - 1

/// One KPI call. 48 bytes, filled on the calling thread without a lock.
struct Record {
  std::uint64_t ticks;    // base::ticks() (the time stamp counter) at the call's return
  std::uint64_t address;  // the block returned or freed (0: a failed allocation); the
                          // IOBufferMemoryDescriptor or IODMACommand object for those
  std::uint64_t size;     // bytes asked for (frees: bytes given); prepare: bytes transferred
  std::uint64_t site;     // the call's return address in the caller
  std::uint64_t aux;      // OSMalloc*/OSFree: the tag (names key); aligned, pageable and
                          // contiguous: the alignment; IOBufferMemoryDescriptor: the
                          // physical mask; prepare: the memory descriptor; kClassOf: the class
  std::uint32_t aux2;     // IOBufferMemoryDescriptor: its options; OSMalloc*, OSFree: the
                          // tag's flags; IOMallocPageable: 1 when zeroed; IOMallocContiguous:
                          // 1 when the physical address was asked for; prepare: kPrepare* bits,
                          // and the transfer's physical runs from bit kPrepareRunsShift on
  std::uint16_t cpu;      // the CPU the call ran on
  std::uint8_t call;      // ops::Call, or an Event
  std::uint8_t align_log2;  // IOBufferMemoryDescriptor: log2 of its alignment; else 0
};
static_assert(sizeof(Record) == 48);

/// One loaded ELF object, followed by path_bytes of its path and build_id_bytes of its GNU build id.
struct Module {
  std::uint64_t base;  // load bias: run-time address = link-time address + base
  std::uint64_t lo, hi;  // its executable segments' run-time range [lo, hi)
  std::uint16_t path_bytes;
  std::uint8_t build_id_bytes;
  std::uint8_t reserved[5];
};
static_assert(sizeof(Module) == 32);

}  // namespace kmbench::ops::kpirec
