// OSDictionary (libkern/c++/OSDictionary.h): a collection of objects keyed by
// OSSymbol. As in XNU it retains what it holds, keys and values: setObject
// retains the value (and releases the one it replaces), removeObject and the
// dictionary's own free release them. Keys given as C strings or OSStrings are
// turned into symbols. Storage grows by doubling and comes from the active
// backend (IOMalloc), as kalloc serves XNU's.
#ifndef KMBENCH_KPI_LIBKERN_OSDICTIONARY_H
#define KMBENCH_KPI_LIBKERN_OSDICTIONARY_H

#include <libkern/c++/OSSymbol.h>

class OSDictionary : public OSObject {
  OSDeclareDefaultStructors(OSDictionary);

 public:
  /// post: an empty dictionary with room for `capacity` pairs, or NULL.
  static OSDictionary* withCapacity(unsigned int capacity);
  /// post: a shallow copy of dict (every pair retained again), with room for capacity pairs.
  static OSDictionary* withDictionary(const OSDictionary* dict, unsigned int capacity = 0);
  virtual bool initWithCapacity(unsigned int capacity);

  virtual unsigned int getCount() const;
  virtual unsigned int getCapacity() const;
  /// Grows to at least newCapacity pairs; returns the capacity reached (the old one when memory runs out).
  virtual unsigned int ensureCapacity(unsigned int newCapacity);

  /// post: true when stored; false for a NULL key or value, or no memory.
  virtual bool setObject(const OSSymbol* aKey, const OSMetaClassBase* anObject);
  virtual bool setObject(const OSString* aKey, const OSMetaClassBase* anObject);
  virtual bool setObject(const char* aKey, const OSMetaClassBase* anObject);

  /// The value for the key, not retained for the caller; NULL when absent.
  virtual OSObject* getObject(const OSSymbol* aKey) const;
  virtual OSObject* getObject(const OSString* aKey) const;
  virtual OSObject* getObject(const char* aKey) const;

  virtual void removeObject(const OSSymbol* aKey);
  virtual void removeObject(const OSString* aKey);
  virtual void removeObject(const char* aKey);
  /// Releases every pair; the capacity stays.
  virtual void flushCollection();

 protected:
  void free() override;

 private:
  struct Entry {
    const OSSymbol* key;
    const OSMetaClassBase* value;
  };
  Entry* find(const OSSymbol* aKey) const;

  Entry* dictionary = NULL;
  unsigned int count = 0;
  unsigned int capacity = 0;
};

#endif
