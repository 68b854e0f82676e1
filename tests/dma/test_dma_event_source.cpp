// IODMAEventSource on KmbenchDMAController, on every in-process backend: a
// driver queues transfers, the simulated engine completes them on its own
// thread, and the completion action runs on the driver's work loop, where it
// frees the buffers as a driver's completion does.
#include <IOKit/IOBufferMemoryDescriptor.h>
#include <IOKit/IODMACommand.h>
#include <IOKit/IODMAController.h>
#include <IOKit/IODMAEventSource.h>
#include <IOKit/IOWorkLoop.h>
#include <kmbench/dma_controller.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "tests/dma/dma_test.h"

/// The driver: what its actions saw, and a wait for the completions it expects.
class KmTestDMADriver : public OSObject {
  OSDeclareDefaultStructors(KmTestDMADriver);

 public:
  struct Completion {
    IODMACommand* command;
    IOReturn status;
    IOByteCount bytes;
    AbsoluteTime time;
    bool onWorkLoop;
    bool dataRight;
  };
  IOWorkLoop* workLoop = nullptr;
  bool freeOnCompletion = true;
  std::mutex lock;
  std::condition_variable changed;
  std::vector<Completion> completions;
  std::atomic<int> notifications{0}, notificationsOnWorkLoop{0};

  bool waitFor(std::size_t n) {
    std::unique_lock l(lock);
    return changed.wait_for(l, std::chrono::seconds(20), [&] { return completions.size() >= n; });
  }

  static void completed(OSObject* owner, IODMAEventSource*, IODMACommand* cmd, IOReturn status, IOByteCount bytes,
                        AbsoluteTime time) {
    auto* me = static_cast<KmTestDMADriver*>(owner);
    bool dataRight = true;
    auto* buf = const_cast<IOBufferMemoryDescriptor*>(
        OSDynamicCast(IOBufferMemoryDescriptor, cmd->getMemoryDescriptor()));
    if (me->freeOnCompletion && buf != nullptr) {
      buf->retain();
      cmd->clearMemoryDescriptor();  // completes (bounce buffers copy back) and drops the command's hold
      const auto* bytesIn = static_cast<const unsigned char*>(buf->getBytesNoCopy());
      for (IOByteCount i = 0; i < bytes; ++i) {
        dataRight = dataRight && bytesIn[i] == static_cast<unsigned char>(i & 0xff);
      }
      buf->release();
      cmd->release();
    }
    std::lock_guard l(me->lock);
    me->completions.push_back({cmd, status, bytes, time, me->workLoop->onThread(), dataRight});
    me->changed.notify_all();
  }
  static void notified(OSObject* owner, IODMAEventSource*, IODMACommand*, IOReturn, IOByteCount, AbsoluteTime) {
    auto* me = static_cast<KmTestDMADriver*>(owner);
    me->notifications++;
    if (me->workLoop->onThread()) me->notificationsOnWorkLoop++;
  }
};
OSDefineMetaClassAndStructors(KmTestDMADriver, OSObject);

class KmTestCounter : public OSObject {
  OSDeclareDefaultStructors(KmTestCounter);

 public:
  int value = 0;
  static IOReturn bump(OSObject* target, void* wl, void*, void*, void*) {
    auto* me = static_cast<KmTestCounter*>(target);
    me->value += static_cast<IOWorkLoop*>(wl)->inGate() ? 1 : 100;
    return kIOReturnSuccess;
  }
};
OSDefineMetaClassAndStructors(KmTestCounter, OSObject);

namespace kmbench::testing {
namespace {

class DmaEventSource : public DmaTest {
 protected:
  void SetUp() override {
    DmaTest::SetUp();
    provider = new IOService;
    ASSERT_TRUE(provider->init());
    KmbenchDMAController::Timing timing;
    timing.latencyNs = 1000;
    timing.bytesPerSecond = 8000000000ull;
    controller = KmbenchDMAController::withChannels(4, 0x2a, timing);
    ASSERT_NE(controller, nullptr);
    ASSERT_TRUE(controller->start(provider));
    driver = new KmTestDMADriver;
    ASSERT_TRUE(driver->init());
    driver->workLoop = IOWorkLoop::workLoop();
    ASSERT_NE(driver->workLoop, nullptr);
  }
  void TearDown() override {
    if (driver != nullptr) {
      driver->workLoop->release();
      driver->release();
    }
    if (controller != nullptr) {
      controller->stop(provider);
      controller->release();
    }
    OSSafeReleaseNULL(provider);
    EXPECT_EQ(kpi::class_usage("IODMAEventSource").live_instances, 0);
    EXPECT_EQ(kpi::class_usage("IOWorkLoop").live_instances, 0);
    DmaTest::TearDown();
  }

  /// A prepared command over a fresh buffer of `bytes`.
  static IODMACommand* transfer(IOByteCount bytes, UInt8 addressBits = 64) {
    IOBufferMemoryDescriptor* buf = IOBufferMemoryDescriptor::withCapacity(bytes, kIODirectionIn);
    IODMACommand* cmd = IODMACommand::withSpecification(kIODMACommandOutputHost64, addressBits, 0);
    if (buf == nullptr || cmd == nullptr || cmd->setMemoryDescriptor(buf) != kIOReturnSuccess) {
      ADD_FAILURE() << "no buffer or command";
      return nullptr;
    }
    buf->release();  // the command holds it
    return cmd;
  }

  IOService* provider = nullptr;
  KmbenchDMAController* controller = nullptr;
  KmTestDMADriver* driver = nullptr;
};

TEST_P(DmaEventSource, CompletionsRunOnTheWorkLoopAndFreeThere) {
  IODMAEventSource* es = IODMAEventSource::dmaEventSource(driver, provider, KmTestDMADriver::completed,
                                                          KmTestDMADriver::notified, 1);
  ASSERT_NE(es, nullptr);
  ASSERT_EQ(driver->workLoop->addEventSource(es), kIOReturnSuccess);
  constexpr int kTransfers = 48;
  const IOByteCount sizes[] = {512, 4096, 9000, 65536};
  IOByteCount expected = 0;
  for (int i = 0; i < kTransfers; ++i) {
    const IOByteCount n = sizes[i % 4];
    IODMACommand* cmd = transfer(n);
    ASSERT_NE(cmd, nullptr);
    ASSERT_EQ(es->startDMACommand(cmd, kIODirectionIn), kIOReturnSuccess);
    expected += n;
  }
  ASSERT_TRUE(driver->waitFor(kTransfers)) << "only " << driver->completions.size() << " completions";
  AbsoluteTime last = 0;
  IOByteCount moved = 0;
  for (const KmTestDMADriver::Completion& c : driver->completions) {
    EXPECT_EQ(c.status, kIOReturnSuccess);
    EXPECT_TRUE(c.onWorkLoop) << "the completion action runs on the work loop's thread";
    EXPECT_TRUE(c.dataRight) << "the device's bytes reached the buffer";
    EXPECT_GE(c.time, last) << "one channel completes in order";
    last = c.time;
    moved += c.bytes;
  }
  EXPECT_EQ(moved, expected);
  EXPECT_EQ(driver->notifications.load(), kTransfers);
  EXPECT_EQ(driver->notificationsOnWorkLoop.load(), 0) << "notifications run in the controller's context";
  EXPECT_EQ(controller->getCompletedTransfers(), static_cast<UInt64>(kTransfers));
  EXPECT_EQ(controller->getCompletedBytes(), expected);
  ASSERT_EQ(driver->workLoop->removeEventSource(es), kIOReturnSuccess);
  es->release();
}

TEST_P(DmaEventSource, WithoutACompletionActionStartWaitsForTheTransfer) {
  IODMAEventSource* es = IODMAEventSource::dmaEventSource(driver, provider);
  ASSERT_NE(es, nullptr);
  IODMACommand* cmd = transfer(16384, 32);  // a 32-bit device
  ASSERT_NE(cmd, nullptr);
  ASSERT_EQ(es->startDMACommand(cmd, kIODirectionIn, 1000, 24), kIOReturnSuccess);
  EXPECT_EQ(controller->getCompletedTransfers(), 1u) << "returned only once the transfer ended";
  EXPECT_EQ(cmd->kmbenchDMAResult.actualByteCount, 1000u);
  auto* buf = const_cast<IOMemoryDescriptor*>(cmd->getMemoryDescriptor());
  buf->retain();
  cmd->clearMemoryDescriptor();
  unsigned char got[1024];
  ASSERT_EQ(buf->readBytes(0, got, sizeof(got)), sizeof(got));
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(got[24 + i], static_cast<unsigned char>(i & 0xff)) << "byte " << i;
  }
  buf->release();
  cmd->release();
  es->release();
}

TEST_P(DmaEventSource, AFlushAbortsWhatIsStillQueued) {
  KmbenchDMAController::Timing slow;
  slow.latencyNs = 20'000'000;  // 20 ms a transfer: the queue is still full when the flush comes
  KmbenchDMAController* c = KmbenchDMAController::withChannels(1, 0x2b, slow);
  IOService* nub = new IOService;
  ASSERT_TRUE(nub->init());
  ASSERT_TRUE(c->start(nub));
  const OSSymbol* name = IODMAController::createControllerName(0x2b);
  ASSERT_TRUE(nub->setProperty("dma-parent", const_cast<OSSymbol*>(name)));
  name->release();
  IODMAEventSource* es =
      IODMAEventSource::dmaEventSource(driver, nub, KmTestDMADriver::completed, nullptr, 0);
  ASSERT_NE(es, nullptr) << "found through the provider's dma-parent";
  ASSERT_EQ(driver->workLoop->addEventSource(es), kIOReturnSuccess);
  constexpr int kTransfers = 6;
  for (int i = 0; i < kTransfers; ++i) {
    IODMACommand* cmd = transfer(4096);
    ASSERT_EQ(es->startDMACommand(cmd, kIODirectionIn), kIOReturnSuccess);
  }
  ASSERT_EQ(es->stopDMACommand(true), kIOReturnSuccess);
  ASSERT_TRUE(driver->waitFor(kTransfers));
  int aborted = 0;
  for (const KmTestDMADriver::Completion& c2 : driver->completions) {
    EXPECT_TRUE(c2.status == kIOReturnSuccess || c2.status == kIOReturnAborted);
    aborted += c2.status == kIOReturnAborted;
    EXPECT_EQ(c2.bytes, c2.status == kIOReturnAborted ? 0u : 4096u);
  }
  EXPECT_GE(aborted, kTransfers - 1) << "at most the transfer under way finishes";
  ASSERT_EQ(driver->workLoop->removeEventSource(es), kIOReturnSuccess);
  es->release();
  c->stop(nub);
  c->release();
  nub->release();
}

TEST_P(DmaEventSource, MisuseIsRefusedWithTheKernelsCodes) {
  IODMAEventSource* es = IODMAEventSource::dmaEventSource(driver, provider, KmTestDMADriver::completed, nullptr, 0);
  ASSERT_NE(es, nullptr);
  EXPECT_EQ(IODMAEventSource::dmaEventSource(driver, provider, KmTestDMADriver::completed, nullptr, 0), nullptr)
      << "a channel serves one event source";
  EXPECT_EQ(IODMAEventSource::dmaEventSource(driver, provider, KmTestDMADriver::completed, nullptr, 9), nullptr)
      << "the controller has 4 channels";
  EXPECT_EQ(IODMAEventSource::dmaEventSource(driver, nullptr), nullptr);

  IODMACommand* idle = IODMACommand::withSpecification(kIODMACommandOutputHost64, 64, 0);
  EXPECT_EQ(es->startDMACommand(idle, kIODirectionIn), kIOReturnNotReady) << "no prepared memory";
  idle->release();
  IODMACommand* cmd = transfer(4096);
  EXPECT_EQ(es->startDMACommand(cmd, kIODirectionIn, 8192), kIOReturnBadArgument) << "past the prepared length";
  EXPECT_EQ(es->startDMACommand(cmd, kIODirectionNone), kIOReturnBadArgument);
  EXPECT_EQ(es->setFIFODepth(0), kIOReturnBadArgument);
  EXPECT_EQ(es->setFIFODepth(8), kIOReturnSuccess);
  EXPECT_EQ(es->getFIFODepth(), 8u);
  EXPECT_EQ(es->validFIFODepth(100000, kIODirectionIn), 1024u);
  EXPECT_EQ(es->setFrameSize(3), kIOReturnBadArgument);
  EXPECT_EQ(es->setFrameSize(4), kIOReturnSuccess);
  EXPECT_TRUE(es->validDMAConfig(3));
  EXPECT_FALSE(es->validDMAConfig(4));
  cmd->clearMemoryDescriptor();
  cmd->release();
  es->release();
}

TEST_P(DmaEventSource, ASecondControllerNeedsTheProvidersDmaParent) {
  KmbenchDMAController* other = KmbenchDMAController::withChannels(1, 0x30);
  ASSERT_TRUE(other->start(provider));
  EXPECT_EQ(IODMAController::getController(provider, 0), nullptr) << "two controllers and no dma-parent";
  OSString* parent = OSString::withCString("IODMAController00000030");
  ASSERT_TRUE(provider->setProperty("dma-parent", parent));
  parent->release();
  EXPECT_EQ(IODMAController::getController(provider, 0), other);
  other->stop(provider);
  EXPECT_EQ(IODMAController::getController(provider, 0), nullptr) << "a stopped controller is not found";
  other->release();
  provider->removeProperty("dma-parent");
  EXPECT_EQ(IODMAController::getController(provider, 0), controller);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, DmaEventSource, ::testing::ValuesIn(dma_backends()), dma_test_name);

// ---- the work loop itself

TEST(IOWorkLoop, RunActionHoldsTheGate) {
  kpi::use_backend("system");
  IOWorkLoop* wl = IOWorkLoop::workLoop();
  KmTestCounter* counter = new KmTestCounter;
  ASSERT_TRUE(counter->init());
  EXPECT_FALSE(wl->inGate());
  EXPECT_FALSE(wl->onThread());
  ASSERT_EQ(wl->runAction(KmTestCounter::bump, counter, wl), kIOReturnSuccess);
  EXPECT_EQ(counter->value, 1);
  EXPECT_EQ(wl->runAction(nullptr, counter), kIOReturnBadArgument);
  wl->closeGate();
  EXPECT_TRUE(wl->inGate());
  EXPECT_TRUE(wl->tryCloseGate()) << "the gate is recursive";
  wl->openGate();
  wl->openGate();
  EXPECT_FALSE(wl->inGate());
  counter->release();
  wl->release();
  EXPECT_EQ(kpi::class_usage("IOWorkLoop").live_instances, 0);
}

}  // namespace
}  // namespace kmbench::testing
