// Misuse of the DMA layer "panics" as the kernel would.
#include <IOKit/IOBufferMemoryDescriptor.h>
#include <IOKit/IODMACommand.h>

#include "tests/dma/dma_test.h"

namespace kmbench::testing {
namespace {

using DmaDeath = DmaTest;

TEST_P(DmaDeath, CompleteWhileDMAIsActivePanics) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(
      {
        IOBufferMemoryDescriptor* buf = IOBufferMemoryDescriptor::withCapacity(8192, kIODirectionIn);
        IODMACommand* cmd = IODMACommand::withSpecification(kIODMACommandOutputHost64, 64, 0);
        cmd->setMemoryDescriptor(buf);  // prepares: the memory is wired, DMA active
        buf->complete();
      },
      "panic: IOMemoryDescriptor::complete: complete\\(\\) while dma active");
}

TEST_P(DmaDeath, CompleteAfterTheCommandCompletedIsFine) {
  IOBufferMemoryDescriptor* buf = IOBufferMemoryDescriptor::withCapacity(8192, kIODirectionIn);
  IODMACommand* cmd = IODMACommand::withSpecification(kIODMACommandOutputHost64, 64, 0);
  buf->prepare();
  cmd->setMemoryDescriptor(buf);
  cmd->complete();
  EXPECT_EQ(buf->complete(), kIOReturnSuccess);
  cmd->release();
  buf->release();
}

INSTANTIATE_TEST_SUITE_P(AllBackends, DmaDeath, ::testing::ValuesIn(dma_backends()), dma_test_name);

}  // namespace
}  // namespace kmbench::testing
