// What IOMemoryMap costs driver code: map() and release of descriptors whose
// memory is one virtual run (the memory's own address) against descriptors of
// 2 and 16 non-adjacent page buffers, gathered into one new range
// (kpi/src/dma/gathered_view.h), side by side in one run.
//
//   build/kpi/bench_map --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Each iteration makes one map of the whole descriptor and releases it. The
// buffers are page-layer IOBufferMemoryDescriptors of 2 pages each, with a
// page of another buffer between two pieces. map/gathered/first-view: no
// other map shows the pieces, so each map moves their pages to shared memory
// and its release moves them back. map/gathered/second-view: another map is
// live, so the pages are already shared and only the range is mapped.
#include <benchmark/benchmark.h>

#include <IOKit/IOBufferMemoryDescriptor.h>
#include <IOKit/IOMultiMemoryDescriptor.h>

#include <vector>

namespace {

constexpr vm_size_t kPieceBytes = 2 * 4096;

/// `pieces` buffers apart in memory, and a descriptor of them end to end.
class Pieces {
 public:
  explicit Pieces(int pieces) {
    for (int i = 0; i < pieces; ++i) {
      buffers_.push_back(IOBufferMemoryDescriptor::withCapacity(kPieceBytes, kIODirectionInOut));
      spacers_.push_back(IOBufferMemoryDescriptor::withCapacity(4096, kIODirectionInOut));
    }
    std::vector<IOMemoryDescriptor*> parts(buffers_.begin(), buffers_.end());
    multi_ = IOMultiMemoryDescriptor::withDescriptors(parts.data(), static_cast<UInt32>(pieces),
                                                      kIODirectionInOut);
  }
  ~Pieces() {
    multi_->release();
    for (auto* b : buffers_) b->release();
    for (auto* b : spacers_) b->release();
  }
  IOMemoryDescriptor* descriptor() { return multi_; }

 private:
  std::vector<IOBufferMemoryDescriptor*> buffers_, spacers_;
  IOMultiMemoryDescriptor* multi_ = nullptr;
};

void map_and_release(benchmark::State& state, IOMemoryDescriptor* md) {
  for (auto _ : state) {
    IOMemoryMap* map = md->map();
    if (map == nullptr) {
      state.SkipWithError("map() failed");
      return;
    }
    benchmark::DoNotOptimize(*reinterpret_cast<volatile char*>(map->getVirtualAddress()));
    map->release();
  }
}

void one_run(benchmark::State& state) {
  IOBufferMemoryDescriptor* b = IOBufferMemoryDescriptor::withCapacity(
      kPieceBytes * static_cast<vm_size_t>(state.range(0)), kIODirectionInOut);
  map_and_release(state, b);
  b->release();
}

void gathered_first_view(benchmark::State& state) {
  Pieces pieces(static_cast<int>(state.range(0)));
  map_and_release(state, pieces.descriptor());
}

void gathered_second_view(benchmark::State& state) {
  Pieces pieces(static_cast<int>(state.range(0)));
  IOMemoryMap* held = pieces.descriptor()->map();
  map_and_release(state, pieces.descriptor());
  held->release();
}

BENCHMARK(one_run)->Name("map/one-run")->Arg(2)->Arg(16);
BENCHMARK(gathered_first_view)->Name("map/gathered/first-view")->Arg(2)->Arg(16);
BENCHMARK(gathered_second_view)->Name("map/gathered/second-view")->Arg(2)->Arg(16);

}  // namespace

BENCHMARK_MAIN();
