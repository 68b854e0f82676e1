// OSObject (libkern/c++/OSObject.h): the reference-counted root class of
// libkern and IOKit. Instances come from OSTypeAlloc / new + init(), die on the
// last release() via free(); there is no public delete. Their memory comes
// from the active kmbench backend.
#ifndef KMBENCH_KPI_LIBKERN_OSOBJECT_H
#define KMBENCH_KPI_LIBKERN_OSOBJECT_H

#include <libkern/c++/OSMetaClass.h>

class OSObject : public OSMetaClassBase {
  OSDeclareAbstractStructors(OSObject);

 public:
  /// post: the object's memory, from the active backend; NULL when it has none.
  static void* operator new(size_t size) noexcept;
  /// pre: size is the size of the most-derived class (the virtual destructor sees to it).
  static void operator delete(void* mem, size_t size);

  virtual bool init();

  int getRetainCount() const override;
  void retain() const override;
  void release() const override;
  void taggedRetain(const void* tag = NULL) const override;
  void taggedRelease(const void* tag = NULL) const override;
  /// Releases; frees the object when the count falls below `when`.
  virtual void taggedRelease(const void* tag, const int when) const;
  virtual void release(int when) const;

 protected:
  /// Called on the last release: counts the instance gone and deletes it.
  virtual void free();

 private:
  mutable volatile SInt32 retainCount;
};

#endif
