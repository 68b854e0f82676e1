// libkern C++: OSMetaClass bookkeeping and OSObject, whose memory comes from
// the active backend through the KPI core.
#include <libkern/c++/OSObject.h>

#include <cstring>
#include <mutex>

#include "core.h"
#include "record.h"

using kmbench::kpi::detail::Family;
namespace kd = kmbench::kpi::detail;

namespace kmbench::kpi::detail {

/// kmbench's list of every metaclass, linked as their static constructors run.
struct ClassAccess {
  static std::atomic<const OSMetaClass*>& head() {
    static std::atomic<const OSMetaClass*> h{nullptr};
    return h;
  }
  static void link(OSMetaClass* meta) {
    const OSMetaClass* old = head().load(std::memory_order_relaxed);
    do {
      meta->nextClass_ = old;
    } while (!head().compare_exchange_weak(old, meta, std::memory_order_release,
                                           std::memory_order_relaxed));
  }
  static ClassUsage usage(const OSMetaClass* m) {
    ClassUsage u;
    u.name = m->className_;
    u.superclass = m->superClass_ != nullptr ? m->superClass_->className_ : "";
    u.class_size = m->classSize_;
    u.live_instances = m->directInstances_.load(std::memory_order_relaxed);
    u.instance_count = m->instanceCount_.load(std::memory_order_relaxed);
    u.constructed = m->constructed_.load(std::memory_order_relaxed);
    return u;
  }
  static const OSMetaClass* next(const OSMetaClass* m) { return m->nextClass_; }
  static void add_direct(const OSMetaClass* m, long delta) {
    m->directInstances_.fetch_add(delta, std::memory_order_relaxed);
    if (delta > 0) {
      m->constructed_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  static std::atomic<unsigned int>& count(const OSMetaClass* m) { return m->instanceCount_; }
};

}  // namespace kmbench::kpi::detail

using kmbench::kpi::detail::ClassAccess;

void kmbench::kpi::detail::record_class_names() noexcept {
  for (const OSMetaClass* m = ClassAccess::head().load(std::memory_order_acquire); m != nullptr;
       m = ClassAccess::next(m)) {
    record_name(m, m->getClassName());
  }
}

// ---- OSMetaClassBase

OSMetaClassBase* OSMetaClassBase::safeMetaCast(const OSMetaClassBase* me, const OSMetaClass* to) {
  return me != nullptr ? me->metaCast(to) : nullptr;
}

OSMetaClassBase* OSMetaClassBase::metaCast(const OSMetaClass* to) const {
  const OSMetaClass* mine = getMetaClass();
  return mine != nullptr && to != nullptr && mine->isSubclassOf(to)
             ? const_cast<OSMetaClassBase*>(this)
             : nullptr;
}

OSMetaClassBase* OSMetaClassBase::metaCast(const char* to_name) const {
  return metaCast(OSMetaClass::getMetaClassWithName(to_name));
}

bool OSMetaClassBase::checkTypeInst(const OSMetaClassBase* inst, const OSMetaClassBase* typeinst) {
  const OSMetaClass* to = typeinst != nullptr ? typeinst->getMetaClass() : nullptr;
  return inst != nullptr && to != nullptr && inst->metaCast(to) != nullptr;
}

// ---- OSMetaClass

OSMetaClass::OSMetaClass(const char* className, const OSMetaClass* superClass,
                         unsigned int classSize)
    : className_(className), superClass_(superClass), classSize_(classSize) {
  ClassAccess::link(this);
}

unsigned int OSMetaClass::getInstanceCount() const {
  return instanceCount_.load(std::memory_order_relaxed);
}

const OSMetaClass* OSMetaClass::getMetaClassWithName(const char* name) {
  if (name == nullptr) {
    return nullptr;
  }
  for (const OSMetaClass* m = ClassAccess::head().load(std::memory_order_acquire); m != nullptr;
       m = ClassAccess::next(m)) {
    if (std::strcmp(m->className_, name) == 0) {
      return m;
    }
  }
  return nullptr;
}

OSObject* OSMetaClass::allocClassWithName(const char* name) {
  const OSMetaClass* m = getMetaClassWithName(name);
  return m != nullptr ? m->alloc() : nullptr;
}

bool OSMetaClass::isSubclassOf(const OSMetaClass* other) const {
  for (const OSMetaClass* m = this; m != nullptr; m = m->superClass_) {
    if (m == other) {
      return true;
    }
  }
  return false;
}

// As XNU: a class counts its own instances plus one per subclass that has any.
void OSMetaClass::instanceConstructed() const {
  ClassAccess::add_direct(this, +1);
  for (const OSMetaClass* m = this; m != nullptr; m = m->superClass_) {
    if (ClassAccess::count(m).fetch_add(1, std::memory_order_relaxed) != 0) {
      break;
    }
  }
}

void OSMetaClass::kmbenchConstructed(const void* object) const {
  instanceConstructed();
  if (kd::recording()) {
    kd::record_call(kmbench::ops::kpirec::kClassOf, object, 0, reinterpret_cast<std::uintptr_t>(this), 0,
                    nullptr);
  }
}

void OSMetaClass::instanceDestructed() const {
  ClassAccess::add_direct(this, -1);
  for (const OSMetaClass* m = this; m != nullptr; m = m->superClass_) {
    const unsigned before = ClassAccess::count(m).fetch_sub(1, std::memory_order_relaxed);
    if (before == 0) {
      kd::panic("OSMetaClass::instanceDestructed", this, 0, nullptr,
                "instance count of class %s would go negative", m->className_);
    }
    if (before != 1) {
      break;
    }
  }
}

const OSMetaClass* OSMetaClass::getMetaClass() const { return nullptr; }

// ---- OSObject (the root: its superclass link is null)

OSObject::MetaClass OSObject::gMetaClass;
const OSMetaClass* const OSObject::metaClass = &OSObject::gMetaClass;
const OSMetaClass* const OSObject::superClass = nullptr;
OSObject::MetaClass::MetaClass() : OSMetaClass("OSObject", nullptr, sizeof(OSObject)) {}
OSObject* OSObject::MetaClass::alloc() const { return nullptr; }  // abstract
const OSMetaClass* OSObject::getMetaClass() const { return &gMetaClass; }
OSObject::OSObject(const OSMetaClass*) : retainCount(1) {}
OSObject::~OSObject() {}

namespace {

// OSObject's new and delete before the hot path is known and while the calls
// are recorded (kd::HotCalls; record.h): the object's block; its class follows
// from the constructors (kmbenchConstructed), the most derived one last.
void* object_new_general(std::uint64_t size, __OSMallocTag__*, const void* site) noexcept {
  void* p = kd::allocate(Family::os_object, size, kmbench::kMinAlign, nullptr);
  KMBENCH_KPI_RECORD_AT(site, kmbench::ops::Call::os_object_new, p, size, 0, 0);
  return p;
}

void object_delete_general(void* mem, std::uint64_t size, __OSMallocTag__*, const void* site) noexcept {
  KMBENCH_KPI_RECORD_AT(site, kmbench::ops::Call::os_object_delete, mem, size, 0, 0);
  kd::release(Family::os_object, kd::hot_free_name(Family::os_object), mem, size, nullptr);
}

}  // namespace

constinit const kd::HotEntries kd::kOSObjectEntries =
    kd::kHeapEntries<Family::os_object, &object_new_general, &object_delete_general>;
constinit kd::HotCalls kd::g_os_object_calls{&object_new_general, &object_delete_general};

bool OSObject::init() { return true; }

void OSObject::free() {
  if (const OSMetaClass* meta = getMetaClass()) {
    meta->instanceDestructed();
  }
  delete this;
}

int OSObject::getRetainCount() const {
  return __atomic_load_n(&retainCount, __ATOMIC_RELAXED);
}

void OSObject::retain() const { taggedRetain(nullptr); }
void OSObject::release() const { taggedRelease(nullptr, 1); }
void OSObject::release(int when) const { taggedRelease(nullptr, when); }
void OSObject::taggedRelease(const void* tag) const { taggedRelease(tag, 1); }

void OSObject::taggedRetain(const void*) const {
  const SInt32 before = __atomic_fetch_add(&retainCount, 1, __ATOMIC_RELAXED);
  if (before <= 0) {
    kd::panic("OSObject::retain", this, 0, nullptr, "retain of an object with count %d (freed?)",
              static_cast<int>(before));
  }
}

void OSObject::taggedRelease(const void*, const int when) const {
  const SInt32 before = __atomic_fetch_sub(&retainCount, 1, __ATOMIC_ACQ_REL);
  if (before <= 0) {
    kd::panic("OSObject::release", this, 0, nullptr, "over-release: count was %d",
              static_cast<int>(before));
  }
  if (before - 1 < when) {
    const_cast<OSObject*>(this)->free();
  }
}

namespace kmbench::kpi {

std::vector<ClassUsage> class_usage() {
  std::vector<ClassUsage> out;
  for (const OSMetaClass* m = ClassAccess::head().load(std::memory_order_acquire); m != nullptr;
       m = ClassAccess::next(m)) {
    out.push_back(ClassAccess::usage(m));
  }
  return out;
}

ClassUsage class_usage(std::string_view name) {
  const std::string n(name);
  const OSMetaClass* m = OSMetaClass::getMetaClassWithName(n.c_str());
  return m != nullptr ? ClassAccess::usage(m) : ClassUsage{};
}

}  // namespace kmbench::kpi
