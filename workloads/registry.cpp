#include <cerrno>
#include <cstdlib>

#include "base/errors.h"
#include "workloads/builder.h"
#include "workloads/workloads.h"

namespace kmbench::workloads {

const std::vector<WorkloadInfo>& all_workloads() {
  static const std::vector<WorkloadInfo> list = {
      {"nic",
       "NIC RX ring refill and TX completion: 2 KiB/9 KiB buffers per queue per CPU, bursts, packets freed on another CPU",
       {{"queues", "2", "RX/TX queue pairs, one per CPU stream"},
        {"packets", "50000", "packets received (all queues)"},
        {"tx_ratio", "0.5", "packets sent per packet received"},
        {"ring", "256", "RX buffers posted per queue"},
        {"jumbo", "0.5", "fraction of queues with 9 KiB buffers (others 2 KiB)"},
        {"burst", "32", "packets per interrupt (NAPI budget)"},
        {"pps", "1000000", "packets per second, all queues"},
        {"remote_free", "0.5", "fraction of packets freed on another CPU"},
        {"consume_us", "20", "mean time from receive to free"},
        {"skb", "256", "per-packet metadata object (sk_buff) bytes"}},
       generate_nic},
      {"nvme",
       "NVMe SQ/CQ pairs: 4 KiB-1 MiB I/O buffers with PRP lists, one DMA command per I/O, queue depth",
       {{"queues", "2", "submission/completion queue pairs, one per CPU stream"},
        {"depth", "32", "queue depth (I/Os in flight per queue)"},
        {"ios", "20000", "I/Os (all queues)"},
        {"min_io", "4k", "smallest I/O"},
        {"max_io", "1m", "largest I/O"},
        {"read_ratio", "0.7", "fraction of reads (device to memory)"},
        {"iops", "200000", "offered I/Os per second, all queues"},
        {"service_us", "80", "mean device time per I/O"},
        {"remote_complete", "0", "fraction of completions handled on another CPU"}},
       generate_nvme},
      {"usb32",
       "USB device limited to 32-bit DMA addresses: transfers whose buffers must lie below 4 GiB (bounce pressure)",
       {{"streams", "2", "CPU streams submitting transfers"},
        {"transfers", "20000", "transfers (all streams)"},
        {"min", "512", "smallest transfer"},
        {"max", "64k", "largest transfer"},
        {"dma32_buffers", "0.5", "fraction of buffers allocated as 32-bit DMA memory (others: ordinary memory, mapped for a 32-bit device)"},
        {"inflight", "8", "transfers in flight per stream"},
        {"rate", "8000", "transfers per second per stream"},
        {"service_us", "125", "mean transfer time (one microframe)"},
        {"irq_stream", "0", "stream that handles completions (host controller interrupt CPU)"}},
       generate_usb32},
      {"gpu",
       "GPU-style large physically contiguous buffers (2-256 MiB) under a memory budget, random frees: fragmentation",
       {{"streams", "2", "CPU streams allocating buffers"},
        {"buffers", "200", "large buffers allocated (all streams)"},
        {"min", "2m", "smallest buffer (and size granule)"},
        {"max", "256m", "largest buffer"},
        {"budget", "768m", "live bytes above which random buffers are freed"},
        {"small_ratio", "2", "command buffers (64 KiB-1 MiB) per large buffer"},
        {"interval_us", "500", "mean time between allocations per stream"}},
       generate_gpu},
      {"larson",
       "larson-like server: threads replace random blocks in their slot arrays and hand the arrays on to the next thread",
       {{"threads", "2", "server threads (streams)"},
        {"rounds", "100000", "replacements per thread"},
        {"slots", "1000", "blocks per thread's array"},
        {"min", "16", "smallest block"},
        {"max", "512", "largest block"},
        {"epochs", "4", "array hand-offs per run"},
        {"op_ns", "100", "time per replacement"}},
       generate_larson},
      {"xmalloc",
       "xmalloc-like producer/consumer: producers allocate batches that consumers on other CPUs free",
       {{"threads", "2", "streams; even streams produce, the next stream consumes"},
        {"items", "200000", "blocks produced (all producers)"},
        {"min", "16", "smallest block"},
        {"max", "1024", "largest block"},
        {"batch", "64", "blocks handed over at once"},
        {"delay_us", "5", "mean hand-over delay"},
        {"op_ns", "50", "time per allocation"}},
       generate_xmalloc},
      {"churn",
       "random-size churn: mixed small/large/page blocks, live set oscillating between phases (fragmentation)",
       {{"streams", "1", "CPU streams"},
        {"ops", "200000", "operations (all streams)"},
        {"live", "10000", "live blocks at the high phase"},
        {"phases", "8", "high/low phases of the live set"},
        {"small_max", "1024", "largest small block"},
        {"large_max", "64k", "largest large block"},
        {"large_fraction", "0.05", "fraction of large blocks (1 KiB to large_max)"},
        {"page_fraction", "0.01", "fraction of page allocations (1-16 pages)"},
        {"cross", "0.2", "fraction of frees done by another stream"},
        {"op_ns", "100", "time per operation"}},
       generate_churn},
      {"osmalloc",
       "OSMalloc tag churn: drivers allocate under their tags (noblock, pageable), unload and free everything, tags recreated",
       {{"streams", "2", "CPU streams"},
        {"tags", "32", "drivers (tags) loaded at once"},
        {"ops", "200000", "operations (all streams)"},
        {"live", "4000", "live blocks in steady state"},
        {"noblock", "0.1", "fraction of OSMalloc_noblock allocations"},
        {"pageable", "0.05", "fraction of allocations from pageable tags (page-level, >= 1 page)"},
        {"unload_every", "20000", "operations between driver unloads (0: never)"},
        {"op_ns", "100", "time per operation"}},
       generate_osmalloc},
  };
  return list;
}

const WorkloadInfo* find_workload(std::string_view name) {
  for (const WorkloadInfo& w : all_workloads()) {
    if (w.name == name) return &w;
  }
  return nullptr;
}

Params resolve_params(std::string_view workload, const std::map<std::string, std::string>& overrides) {
  const WorkloadInfo* w = find_workload(workload);
  if (w == nullptr) {
    std::string known;
    for (const WorkloadInfo& x : all_workloads()) known += (known.empty() ? "" : ", ") + std::string(x.name);
    throw UsageError("unknown workload '" + std::string(workload) + "' (known: " + known + ")");
  }
  std::map<std::string, std::string> values;
  for (const ParamSpec& p : w->params) values[std::string(p.key)] = std::string(p.default_value);
  for (const auto& [key, value] : overrides) {
    if (values.find(key) == values.end()) {
      std::string known;
      for (const ParamSpec& p : w->params) known += (known.empty() ? "" : ", ") + std::string(p.key);
      throw UsageError("workload " + std::string(workload) + " has no parameter '" + key + "' (parameters: " +
                       known + ")");
    }
    values[key] = value;
  }
  Params params(workload, values);
  for (const ParamSpec& p : w->params) {
    params.real(p.key);  // every value must at least be a number
  }
  return params;
}

ops::Trace generate(std::string_view workload, const std::map<std::string, std::string>& overrides,
                    std::uint64_t seed) {
  const Params params = resolve_params(workload, overrides);
  ops::Trace trace = find_workload(workload)->generate(params, seed);
  for (const auto& [key, value] : params.values()) trace.header.metadata["param." + key] = value;
  trace.header.metadata["workload"] = std::string(workload);
  trace.header.metadata["seed"] = std::to_string(seed);
  return trace;
}

const std::string& Params::raw(std::string_view key) const {
  auto it = values_.find(std::string(key));
  if (it == values_.end()) {
    throw UsageError("workload " + workload_ + " has no parameter '" + std::string(key) + "'");
  }
  return it->second;
}

double Params::real(std::string_view key) const {
  const std::string& text = raw(key);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  std::string rest = end;
  if (end == text.c_str() || errno != 0 || !(rest.empty() || rest == "k" || rest == "m" || rest == "g" ||
                                            rest == "K" || rest == "M" || rest == "G") ||
      v < 0) {
    throw UsageError("workload " + workload_ + ": parameter " + std::string(key) + "='" + text +
                     "' is not a non-negative number");
  }
  return rest.empty() ? v : static_cast<double>(bytes(key));
}

std::uint64_t Params::u64(std::string_view key) const {
  const double v = real(key);
  if (v != static_cast<double>(static_cast<std::uint64_t>(v))) {
    throw UsageError("workload " + workload_ + ": parameter " + std::string(key) + "='" + raw(key) +
                     "' is not a whole number");
  }
  return static_cast<std::uint64_t>(v);
}

std::uint64_t Params::bytes(std::string_view key) const {
  const std::string& text = raw(key);
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  const std::string suffix = end;
  int shift = -1;
  if (suffix.empty()) shift = 0;
  if (suffix == "k" || suffix == "K") shift = 10;
  if (suffix == "m" || suffix == "M") shift = 20;
  if (suffix == "g" || suffix == "G") shift = 30;
  if (end == text.c_str() || errno != 0 || shift < 0 || text[0] == '-') {
    throw UsageError("workload " + workload_ + ": parameter " + std::string(key) + "='" + text +
                     "' is not a byte count (digits with an optional k, m or g)");
  }
  return static_cast<std::uint64_t>(v) << shift;
}

}  // namespace kmbench::workloads
