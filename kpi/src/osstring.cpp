// OSString and OSSymbol: characters from the active backend (IOMalloc), and
// symbols made unique by a pool that holds no reference of its own.
#include <libkern/c++/OSString.h>
#include <libkern/c++/OSSymbol.h>

#include <IOKit/IOLib.h>

#include <cstring>
#include <mutex>
#include <string_view>
#include <unordered_map>

// ---- OSString

OSDefineMetaClassAndStructors(OSString, OSObject);

OSString* OSString::withCString(const char* cString) {
  OSString* me = new OSString;
  if (me != NULL && !me->initWithCString(cString)) {
    OSSafeReleaseNULL(me);
  }
  return me;
}

bool OSString::initWithCString(const char* cString) {
  if (cString == NULL || !OSObject::init()) {
    return false;
  }
  const std::size_t n = std::strlen(cString);
  if (n >= 0xffffffffu) {
    return false;
  }
  string = static_cast<char*>(IOMalloc(n + 1));
  if (string == NULL) {
    return false;
  }
  std::memcpy(string, cString, n + 1);
  length = static_cast<unsigned int>(n);
  return true;
}

void OSString::free() {
  if (string != NULL) {
    IOFree(string, length + 1);
    string = NULL;
  }
  OSObject::free();
}

unsigned int OSString::getLength() const { return length; }
const char* OSString::getCStringNoCopy() const { return string; }

bool OSString::isEqualTo(const char* cString) const {
  return cString != NULL && string != NULL && std::strcmp(string, cString) == 0;
}

bool OSString::isEqualTo(const OSString* aString) const {
  return aString != NULL && aString->length == length && isEqualTo(aString->string);
}

bool OSString::isEqualTo(const OSMetaClassBase* anObject) const {
  const OSString* s = OSDynamicCast(OSString, anObject);
  return s != NULL && isEqualTo(s);
}

// ---- OSSymbol

OSDefineMetaClassAndStructors(OSSymbol, OSString);

namespace {

/// Every live symbol, by its characters. A symbol is taken from the pool and
/// retained, or leaves it on its last release, only under the pool's lock.
struct SymbolPool {
  std::mutex lock;
  std::unordered_map<std::string_view, const OSSymbol*> symbols;
};

SymbolPool& pool() {
  static SymbolPool* p = new SymbolPool;  // never destroyed: symbols may be released at exit
  return *p;
}

/// pre: the pool's lock is held.
const OSSymbol* pooled(SymbolPool& p, const char* cString) {
  const auto it = p.symbols.find(std::string_view(cString));
  if (it == p.symbols.end()) {
    return NULL;
  }
  it->second->retain();
  return it->second;
}

}  // namespace

const OSSymbol* OSSymbol::withCString(const char* cString) {
  if (cString == NULL) {
    return NULL;
  }
  SymbolPool& p = pool();
  std::lock_guard guard(p.lock);
  if (const OSSymbol* existing = pooled(p, cString)) {
    return existing;
  }
  OSSymbol* fresh = new OSSymbol;
  if (fresh == NULL) {
    return NULL;
  }
  if (!fresh->initWithCString(cString)) {
    // Not pooled yet: an OSString's release frees it.
    fresh->OSString::taggedRelease(NULL, 1);
    return NULL;
  }
  p.symbols.emplace(std::string_view(fresh->getCStringNoCopy(), fresh->getLength()), fresh);
  return fresh;
}

const OSSymbol* OSSymbol::withString(const OSString* aString) {
  if (aString == NULL) {
    return NULL;
  }
  if (const OSSymbol* s = OSDynamicCast(OSSymbol, aString)) {
    s->retain();
    return s;
  }
  return withCString(aString->getCStringNoCopy());
}

const OSSymbol* OSSymbol::existingSymbolForCString(const char* cString) {
  if (cString == NULL) {
    return NULL;
  }
  SymbolPool& p = pool();
  std::lock_guard guard(p.lock);
  return pooled(p, cString);
}

bool OSSymbol::isEqualTo(const char* cString) const { return OSString::isEqualTo(cString); }
bool OSSymbol::isEqualTo(const OSSymbol* aSymbol) const { return aSymbol == this; }

bool OSSymbol::isEqualTo(const OSMetaClassBase* anObject) const {
  if (const OSSymbol* s = OSDynamicCast(OSSymbol, anObject)) {
    return s == this;
  }
  const OSString* str = OSDynamicCast(OSString, anObject);
  return str != NULL && OSString::isEqualTo(str);
}

void OSSymbol::taggedRelease(const void* tag, const int when) const {
  SymbolPool& p = pool();
  std::lock_guard guard(p.lock);
  if (getRetainCount() - 1 < when) {
    p.symbols.erase(std::string_view(getCStringNoCopy(), getLength()));
  }
  OSString::taggedRelease(tag, when);
}

void OSSymbol::free() { OSString::free(); }
