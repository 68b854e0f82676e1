// OSDictionary: pairs in an array from the active backend, found by a linear
// scan over symbol pointers (dictionaries in drivers are small), retained
// while held.
#include <libkern/c++/OSDictionary.h>

#include <IOKit/IOLib.h>

#include <cstring>

OSDefineMetaClassAndStructors(OSDictionary, OSObject);

OSDictionary* OSDictionary::withCapacity(unsigned int capacity) {
  OSDictionary* me = new OSDictionary;
  if (me != NULL && !me->initWithCapacity(capacity)) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

OSDictionary* OSDictionary::withDictionary(const OSDictionary* dict, unsigned int capacity) {
  if (dict == NULL) {
    return NULL;
  }
  OSDictionary* me = withCapacity(capacity > dict->count ? capacity : dict->count);
  if (me == NULL) {
    return NULL;
  }
  for (unsigned int i = 0; i < dict->count; i++) {
    if (!me->setObject(dict->dictionary[i].key, dict->dictionary[i].value)) {
      OSSafeReleaseNULL(me);
      break;
    }
  }
  return me;
}

bool OSDictionary::initWithCapacity(unsigned int inCapacity) {
  if (!OSObject::init()) {
    return false;
  }
  return inCapacity == 0 || ensureCapacity(inCapacity) >= inCapacity;
}

void OSDictionary::free() {
  flushCollection();
  if (dictionary != NULL) {
    IOFree(dictionary, capacity * sizeof(Entry));
    dictionary = NULL;
    capacity = 0;
  }
  OSObject::free();
}

unsigned int OSDictionary::getCount() const { return count; }
unsigned int OSDictionary::getCapacity() const { return capacity; }

unsigned int OSDictionary::ensureCapacity(unsigned int newCapacity) {
  if (newCapacity <= capacity) {
    return capacity;
  }
  unsigned int grown = capacity < 4 ? 4 : capacity;
  while (grown < newCapacity) {
    if (grown > 0x7fffffffu / sizeof(Entry)) {
      return capacity;
    }
    grown *= 2;
  }
  Entry* bigger = static_cast<Entry*>(IOMallocZero(grown * sizeof(Entry)));
  if (bigger == NULL) {
    return capacity;
  }
  if (dictionary != NULL) {
    std::memcpy(bigger, dictionary, count * sizeof(Entry));
    IOFree(dictionary, capacity * sizeof(Entry));
  }
  dictionary = bigger;
  capacity = grown;
  return capacity;
}

OSDictionary::Entry* OSDictionary::find(const OSSymbol* aKey) const {
  for (unsigned int i = 0; i < count; i++) {
    if (dictionary[i].key == aKey) {
      return &dictionary[i];
    }
  }
  return NULL;
}

bool OSDictionary::setObject(const OSSymbol* aKey, const OSMetaClassBase* anObject) {
  if (aKey == NULL || anObject == NULL) {
    return false;
  }
  if (Entry* e = find(aKey)) {
    anObject->retain();
    const OSMetaClassBase* old = e->value;
    e->value = anObject;
    old->release();
    return true;
  }
  if (count == capacity && ensureCapacity(count + 1) <= count) {
    return false;
  }
  aKey->retain();
  anObject->retain();
  dictionary[count++] = {aKey, anObject};
  return true;
}

bool OSDictionary::setObject(const OSString* aKey, const OSMetaClassBase* anObject) {
  const OSSymbol* key = OSSymbol::withString(aKey);
  const bool done = key != NULL && setObject(key, anObject);
  OSSafeReleaseNULL(key);
  return done;
}

bool OSDictionary::setObject(const char* aKey, const OSMetaClassBase* anObject) {
  const OSSymbol* key = OSSymbol::withCString(aKey);
  const bool done = key != NULL && setObject(key, anObject);
  OSSafeReleaseNULL(key);
  return done;
}

OSObject* OSDictionary::getObject(const OSSymbol* aKey) const {
  const Entry* e = aKey != NULL ? find(aKey) : NULL;
  return e != NULL ? const_cast<OSObject*>(OSDynamicCast(OSObject, e->value)) : NULL;
}

// A key that is no symbol yet cannot be in the dictionary: look it up without making one.
OSObject* OSDictionary::getObject(const OSString* aKey) const {
  return aKey != NULL ? getObject(aKey->getCStringNoCopy()) : NULL;
}

OSObject* OSDictionary::getObject(const char* aKey) const {
  const OSSymbol* key = OSSymbol::existingSymbolForCString(aKey);
  OSObject* value = getObject(key);
  OSSafeReleaseNULL(key);
  return value;
}

void OSDictionary::removeObject(const OSSymbol* aKey) {
  Entry* e = aKey != NULL ? find(aKey) : NULL;
  if (e == NULL) {
    return;
  }
  const Entry gone = *e;
  const unsigned int at = static_cast<unsigned int>(e - dictionary);
  std::memmove(e, e + 1, (count - at - 1) * sizeof(Entry));  // the others keep their order, as in XNU
  dictionary[--count] = {NULL, NULL};
  gone.value->release();
  gone.key->release();
}

void OSDictionary::removeObject(const OSString* aKey) {
  if (aKey != NULL) {
    removeObject(aKey->getCStringNoCopy());
  }
}

void OSDictionary::removeObject(const char* aKey) {
  const OSSymbol* key = OSSymbol::existingSymbolForCString(aKey);
  removeObject(key);
  OSSafeReleaseNULL(key);
}

void OSDictionary::flushCollection() {
  while (count > 0) {
    const Entry gone = dictionary[--count];
    dictionary[count] = {NULL, NULL};
    gone.value->release();
    gone.key->release();
  }
}
