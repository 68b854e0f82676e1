// CRC-32C (Castagnoli), the checksum of the KPI record log's blocks: the
// SSE4.2 crc32 instruction where the CPU has it (about 8 bytes a cycle, so a
// recorder can checksum a full buffer for a few ns a record), a table
// otherwise. Both give the same value: CRC-32C of "123456789" is 0xE3069283.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kmbench::base {

/// The CRC-32C of n bytes, continuing from `crc` (0 to start).
std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc = 0) noexcept;

/// The same, always by table (for tests to compare against).
std::uint32_t crc32c_table(const void* data, std::size_t n, std::uint32_t crc = 0) noexcept;

}  // namespace kmbench::base
