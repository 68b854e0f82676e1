// libkern C++ on every in-process backend: OSObject reference counting,
// metaclasses, per-class instance counts, and memory from the backend.
#include <IOKit/IOLib.h>
#include <libkern/c++/OSObject.h>

#include <type_traits>

#include "tests/kpi/kpi_test.h"

// Test classes, declared as a driver would.
class KmTestBuffer : public OSObject {
  OSDeclareDefaultStructors(KmTestBuffer);

 public:
  static KmTestBuffer* withCapacity(unsigned capacity);
  bool initWithCapacity(unsigned capacity);
  unsigned capacity() const { return capacity_; }
  char* bytes() const { return bytes_; }
  static int frees;

 protected:
  void free() override;

 private:
  char* bytes_ = nullptr;
  unsigned capacity_ = 0;
};

class KmTestBigBuffer : public KmTestBuffer {
  OSDeclareDefaultStructors(KmTestBigBuffer);

 public:
  char extra[512];
};

class KmTestShape : public OSObject {
  OSDeclareAbstractStructors(KmTestShape);

 public:
  virtual int sides() const = 0;
};

OSDefineMetaClassAndStructors(KmTestBuffer, OSObject);
OSDefineMetaClassAndStructors(KmTestBigBuffer, KmTestBuffer);
OSDefineMetaClassAndAbstractStructors(KmTestShape, OSObject);

int KmTestBuffer::frees = 0;

KmTestBuffer* KmTestBuffer::withCapacity(unsigned capacity) {
  KmTestBuffer* me = OSTypeAlloc(KmTestBuffer);
  if (me != nullptr && !me->initWithCapacity(capacity)) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

bool KmTestBuffer::initWithCapacity(unsigned capacity) {
  if (!OSObject::init() || capacity == 0) {
    return false;
  }
  bytes_ = static_cast<char*>(IOMallocZero(capacity));
  capacity_ = capacity;
  return bytes_ != nullptr;
}

void KmTestBuffer::free() {
  ++frees;
  if (bytes_ != nullptr) {
    IOFree(bytes_, capacity_);
  }
  OSObject::free();
}

namespace kmbench::testing {
namespace {

static_assert(!std::is_destructible_v<OSObject>, "OSObject has no public delete");
static_assert(!std::is_destructible_v<KmTestBuffer>, "subclasses neither");

using OSObjectTest = KpiTest;

TEST_P(OSObjectTest, RetainReleaseAndTheLastReleaseFrees) {
  const int frees = KmTestBuffer::frees;
  KmTestBuffer* b = KmTestBuffer::withCapacity(100);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->getRetainCount(), 1);
  EXPECT_EQ(b->capacity(), 100u);
  b->retain();
  b->retain();
  EXPECT_EQ(b->getRetainCount(), 3);
  b->release();
  b->release();
  EXPECT_EQ(b->getRetainCount(), 1);
  EXPECT_EQ(KmTestBuffer::frees, frees);
  EXPECT_EQ(kpi::class_usage("KmTestBuffer").live_instances, 1);
  OSSafeReleaseNULL(b);
  EXPECT_EQ(b, nullptr);
  EXPECT_EQ(KmTestBuffer::frees, frees + 1);
  EXPECT_EQ(kpi::class_usage("KmTestBuffer").live_instances, 0);
  OSSafeReleaseNULL(b);  // NULL: nothing happens
}

TEST_P(OSObjectTest, FailedInitReleasesTheObject) {
  EXPECT_EQ(KmTestBuffer::withCapacity(0), nullptr);
  EXPECT_EQ(kpi::class_usage("KmTestBuffer").live_instances, 0);
}

TEST_P(OSObjectTest, InstanceCountsPerClassFollowXnu) {
  KmTestBuffer* a = KmTestBuffer::withCapacity(8);
  KmTestBuffer* b = KmTestBuffer::withCapacity(8);
  KmTestBigBuffer* big = OSTypeAlloc(KmTestBigBuffer);
  ASSERT_NE(big, nullptr);
  ASSERT_TRUE(big->init());
  EXPECT_EQ(kpi::class_usage("KmTestBuffer").live_instances, 2);
  EXPECT_EQ(kpi::class_usage("KmTestBigBuffer").live_instances, 1);
  // XNU: a class's count is its instances plus one per subclass with instances.
  EXPECT_EQ(KmTestBuffer::metaClass->getInstanceCount(), 3u);
  EXPECT_EQ(KmTestBigBuffer::metaClass->getInstanceCount(), 1u);
  EXPECT_EQ(kpi::class_usage("KmTestBigBuffer").superclass, "KmTestBuffer");
  EXPECT_EQ(kpi::class_usage("KmTestBigBuffer").class_size, sizeof(KmTestBigBuffer));
  big->release();
  EXPECT_EQ(KmTestBuffer::metaClass->getInstanceCount(), 2u);
  a->release();
  b->release();
  EXPECT_EQ(KmTestBuffer::metaClass->getInstanceCount(), 0u);
  EXPECT_EQ(kpi::class_usage("KmTestBuffer").live_instances, 0);
  EXPECT_GE(kpi::class_usage("KmTestBuffer").constructed, 2u);
}

TEST_P(OSObjectTest, ObjectMemoryComesFromTheActiveBackend) {
  const std::int64_t before = backend_live_blocks();
  KmTestBigBuffer* big = OSTypeAlloc(KmTestBigBuffer);
  ASSERT_NE(big, nullptr);
  if (before >= 0) {
    EXPECT_GE(backend_live_blocks(), 1);  // slab's count holds its CPU caches too
  }
  EXPECT_EQ(family("OSObject").live_bytes, static_cast<std::int64_t>(sizeof(KmTestBigBuffer)));
  big->release();
  EXPECT_EQ(family("OSObject").live_blocks, 0);
}

TEST_P(OSObjectTest, MetaclassesCastAndAllocByName) {
  KmTestBigBuffer* big = OSTypeAlloc(KmTestBigBuffer);
  OSObject* as_object = big;
  EXPECT_EQ(OSDynamicCast(KmTestBuffer, as_object), big);
  EXPECT_EQ(OSDynamicCast(KmTestBigBuffer, as_object), big);
  EXPECT_EQ(OSDynamicCast(KmTestShape, as_object), nullptr);
  EXPECT_EQ(OSDynamicCast(KmTestBuffer, static_cast<OSObject*>(nullptr)), nullptr);
  EXPECT_STREQ(big->getMetaClass()->getClassName(), "KmTestBigBuffer");
  EXPECT_TRUE(big->getMetaClass()->isSubclassOf(OSTypeID(OSObject)));
  big->release();

  OSObject* by_name = OSMetaClass::allocClassWithName("KmTestBuffer");
  ASSERT_NE(by_name, nullptr);
  EXPECT_NE(OSDynamicCast(KmTestBuffer, by_name), nullptr);
  EXPECT_EQ(OSDynamicCast(KmTestBigBuffer, by_name), nullptr);
  by_name->release();
  EXPECT_EQ(OSMetaClass::allocClassWithName("NoSuchClass"), nullptr);
}

TEST_P(OSObjectTest, AbstractClassesCannotBeAllocated) {
  EXPECT_EQ(OSTypeAlloc(KmTestShape), nullptr);
  EXPECT_EQ(OSMetaClass::allocClassWithName("OSObject"), nullptr);
}

TEST_P(OSObjectTest, ClassUsageListsEveryClass) {
  int found = 0;
  for (const kpi::ClassUsage& c : kpi::class_usage()) {
    found += c.name == "OSObject" || c.name == "KmTestBuffer" || c.name == "KmTestBigBuffer" ||
             c.name == "KmTestShape";
  }
  EXPECT_EQ(found, 4);
  EXPECT_TRUE(kpi::class_usage("NoSuchClass").name.empty());
}

KMBENCH_KPI_ON_EVERY_BACKEND(OSObjectTest);

}  // namespace
}  // namespace kmbench::testing
