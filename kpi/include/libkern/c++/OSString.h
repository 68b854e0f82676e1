// OSString (libkern/c++/OSString.h): an immutable C string as an OSObject.
// Its characters live in memory from the active backend, as the object does.
#ifndef KMBENCH_KPI_LIBKERN_OSSTRING_H
#define KMBENCH_KPI_LIBKERN_OSSTRING_H

#include <libkern/c++/OSObject.h>

class OSString : public OSObject {
  OSDeclareDefaultStructors(OSString);

 public:
  /// post: a new string holding a copy of cString, or NULL (NULL argument, no memory).
  static OSString* withCString(const char* cString);
  virtual bool initWithCString(const char* cString);

  virtual unsigned int getLength() const;
  /// The characters, NUL-terminated; valid while the string lives.
  virtual const char* getCStringNoCopy() const;
  virtual bool isEqualTo(const char* cString) const;
  virtual bool isEqualTo(const OSString* aString) const;
  bool isEqualTo(const OSMetaClassBase* anObject) const override;

 protected:
  void free() override;

  char* string = NULL;
  unsigned int length = 0;  // bytes, without the NUL
};

#endif
