// OSSymbol (libkern/c++/OSSymbol.h): a unique string. Two symbols with the
// same characters are the same object, so symbols compare by pointer. The
// pool holds no reference: a symbol leaves it on its last release.
#ifndef KMBENCH_KPI_LIBKERN_OSSYMBOL_H
#define KMBENCH_KPI_LIBKERN_OSSYMBOL_H

#include <libkern/c++/OSString.h>

class OSSymbol : public OSString {
  OSDeclareDefaultStructors(OSSymbol);

 public:
  /// post: the symbol for cString, retained for the caller (a new one or the pooled one).
  static const OSSymbol* withCString(const char* cString);
  static const OSSymbol* withString(const OSString* aString);
  /// The pooled symbol for cString, retained, or NULL when none lives.
  static const OSSymbol* existingSymbolForCString(const char* cString);

  bool isEqualTo(const char* cString) const override;
  bool isEqualTo(const OSMetaClassBase* anObject) const override;
  virtual bool isEqualTo(const OSSymbol* aSymbol) const;

  void taggedRelease(const void* tag, const int when) const override;

 protected:
  void free() override;
};

#endif
