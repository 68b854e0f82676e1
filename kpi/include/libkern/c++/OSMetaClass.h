// libkern's run-time type system (libkern/c++/OSMetaClass.h): a metaclass per
// OSObject subclass, made by the structor macros, which knows the class's name,
// size and superclass, allocates instances (OSTypeAlloc) and counts them.
#ifndef KMBENCH_KPI_LIBKERN_OSMETACLASS_H
#define KMBENCH_KPI_LIBKERN_OSMETACLASS_H

#include <libkern/OSTypes.h>
#include <stddef.h>

#include <atomic>

namespace kmbench::kpi::detail {
struct ClassAccess;  // kmbench's class list and per-class counters (kpi/src/osobject.cpp)
}

class OSObject;
class OSMetaClass;

/// The root of libkern's classes: reference counting and the metaclass link.
class OSMetaClassBase {
 public:
  virtual const OSMetaClass* getMetaClass() const = 0;
  virtual void retain() const = 0;
  virtual void release() const = 0;
  virtual int getRetainCount() const = 0;
  virtual void taggedRetain(const void* tag = NULL) const = 0;
  virtual void taggedRelease(const void* tag = NULL) const = 0;

  /// The object if it is an instance of `to` or one of its subclasses, else NULL.
  static OSMetaClassBase* safeMetaCast(const OSMetaClassBase* me, const OSMetaClass* to);
  OSMetaClassBase* metaCast(const OSMetaClass* to) const;
  OSMetaClassBase* metaCast(const char* to_name) const;
  /// True when inst's class is typeinst's class or a subclass of it.
  static bool checkTypeInst(const OSMetaClassBase* inst, const OSMetaClassBase* typeinst);
  virtual bool isEqualTo(const OSMetaClassBase* other) const { return this == other; }

 protected:
  OSMetaClassBase() = default;
  virtual ~OSMetaClassBase() = default;

 private:
  OSMetaClassBase(const OSMetaClassBase&) = delete;
  OSMetaClassBase& operator=(const OSMetaClassBase&) = delete;
};

/// One per class. Instances are static objects made by OSDefineMetaClassAndStructors.
class OSMetaClass : public OSMetaClassBase {
 public:
  const char* getClassName() const { return className_; }
  unsigned int getClassSize() const { return classSize_; }
  const OSMetaClass* getSuperClass() const { return superClass_; }
  /// Live instances of this class plus one for each subclass that has live instances (as in XNU).
  unsigned int getInstanceCount() const;
  /// A new instance (retain count 1, not yet init'ed), or NULL for an abstract class.
  virtual OSObject* alloc() const = 0;
  static const OSMetaClass* getMetaClassWithName(const char* name);
  static OSObject* allocClassWithName(const char* name);
  bool isSubclassOf(const OSMetaClass* other) const;

  void instanceConstructed() const;
  void instanceDestructed() const;
  /// kmbench: instanceConstructed(), and the object's class to a KPI recording (KMBENCH_RECORD).
  void kmbenchConstructed(const void* object) const;

  const OSMetaClass* getMetaClass() const override;
  void retain() const override {}
  void release() const override {}
  int getRetainCount() const override { return 0; }
  void taggedRetain(const void*) const override {}
  void taggedRelease(const void*) const override {}

 protected:
  OSMetaClass(const char* className, const OSMetaClass* superClass, unsigned int classSize);
  ~OSMetaClass() override = default;

 private:
  friend struct kmbench::kpi::detail::ClassAccess;
  const char* className_;
  const OSMetaClass* superClass_;
  unsigned int classSize_;
  const OSMetaClass* nextClass_ = NULL;                    // kmbench's list of every class
  mutable std::atomic<unsigned int> instanceCount_{0};     // getInstanceCount()
  mutable std::atomic<long> directInstances_{0};           // instances whose class is exactly this
  mutable std::atomic<unsigned long long> constructed_{0};
};

#define OSTypeID(type) (type::metaClass)
#define OSTypeIDInst(typeinst) ((typeinst)->getMetaClass())
#define OSTypeAlloc(type) ((type*)((type::metaClass)->alloc()))
#define OSDynamicCast(type, inst) \
  ((type*)OSMetaClassBase::safeMetaCast((inst), OSTypeID(type)))
#define OSCheckTypeInst(typeinst, inst) OSMetaClassBase::checkTypeInst(inst, typeinst)
#define OSSafeReleaseNULL(inst) \
  do {                          \
    if (NULL != (inst)) {       \
      (inst)->release();        \
      (inst) = NULL;            \
    }                           \
  } while (0)
#define OSSafeRelease(inst) \
  do {                      \
    if (inst) {             \
      (inst)->release();    \
    }                       \
  } while (0)

#define OSDeclareCommonStructors(className)                          \
 private:                                                            \
  static const OSMetaClass* const superClass;                        \
                                                                     \
 public:                                                             \
  static const OSMetaClass* const metaClass;                         \
  static class MetaClass : public OSMetaClass {                      \
   public:                                                           \
    MetaClass();                                                     \
    OSObject* alloc() const override;                                \
  } gMetaClass;                                                      \
  friend class className::MetaClass;                                 \
  const OSMetaClass* getMetaClass() const override;                  \
                                                                     \
 protected:                                                          \
  className(const OSMetaClass*);                                     \
  ~className() override

#define OSDeclareDefaultStructors(className) \
  OSDeclareCommonStructors(className);       \
                                             \
 public:                                     \
  className();                               \
                                             \
 protected:                                  \
  static_assert(true, "")

#define OSDeclareAbstractStructors(className) \
  OSDeclareCommonStructors(className);        \
                                              \
 private:                                     \
  className();                                \
                                              \
 protected:                                   \
  static_assert(true, "")

#define OSDeclareFinalStructors(className) OSDeclareDefaultStructors(className)

#define OSDefineMetaClassWithInit(className, superclassName, alloc_body)               \
  className::MetaClass className::gMetaClass;                                          \
  const OSMetaClass* const className::metaClass = &className::gMetaClass;             \
  const OSMetaClass* const className::superClass = &superclassName::gMetaClass;       \
  className::MetaClass::MetaClass()                                                    \
      : OSMetaClass(#className, className::superClass, sizeof(className)) {}           \
  OSObject* className::MetaClass::alloc() const { alloc_body }                          \
  const OSMetaClass* className::getMetaClass() const { return &gMetaClass; }           \
  className::className(const OSMetaClass* meta) : superclassName(meta) {}              \
  className::~className() {}

#define OSDefineMetaClassAndStructors(className, superclassName)                       \
  OSDefineMetaClassWithInit(className, superclassName, return new className;)          \
  className::className() : superclassName(&gMetaClass) { gMetaClass.kmbenchConstructed(this); } \
  static_assert(true, "")

#define OSDefineMetaClassAndAbstractStructors(className, superclassName)                \
  OSDefineMetaClassWithInit(className, superclassName, return NULL;)                   \
  static_assert(true, "")

#define OSDefineMetaClassAndFinalStructors(className, superclassName) \
  OSDefineMetaClassAndStructors(className, superclassName)

#define OSMetaClassDeclareReservedUnused(className, index)
#define OSMetaClassDeclareReservedUsed(className, index)
#define OSMetaClassDefineReservedUnused(className, index)
#define OSMetaClassDefineReservedUsed(className, index)

#endif
