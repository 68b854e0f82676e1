// KPI record logs (ops/kpi_record.h), as the recorder writes them and a user
// carries them to another machine: any bytes either import or are refused
// with InputError, and what imports is a valid trace (the .kmt encoder, which
// checks what the decoder checks, takes it). Each whole block's checksum is
// made right first, so that mutations reach the records behind it; call
// sites are left unnamed, as the modules' paths name files of the recording
// machine.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/crc32c.h"
#include "base/errors.h"
#include "harness/trace/trace.h"
#include "ops/kpi_record.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kmbench;
  using ops::kpirec::BlockHeader;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  for (std::size_t at = ops::kpirec::kFileHeaderBytes; at <= bytes.size() && bytes.size() - at >= sizeof(BlockHeader);) {
    BlockHeader h;
    std::memcpy(&h, bytes.data() + at, sizeof h);
    if (bytes.size() - at - sizeof h < h.bytes) break;
    h.crc = base::crc32c(bytes.data() + at + sizeof h, h.bytes);
    std::memcpy(bytes.data() + at, &h, sizeof h);
    at += sizeof h + h.bytes;
  }
  trace::ImportOptions o;
  o.symbols = false;
  ops::Trace t;
  try {
    t = trace::import_kpi_record(bytes, "fuzz.kmr", o);
  } catch (const InputError&) {
    return 0;
  }
  try {
    (void)trace::encode(t);
  } catch (const InputError& e) {
    std::fprintf(stderr, "fuzz_kpirec: an imported record is not a valid trace: %s\n", e.what());
    std::abort();
  }
  return 0;
}
