/* C driver code: IOLib and OSMalloc are C interfaces. */
#include <IOKit/IOLib.h>
#include <libkern/OSMalloc.h>

int c_driver_run(void) {
  OSMallocTag tag = OSMalloc_Tagalloc("com.kmbench.consumer.c", OSMT_DEFAULT);
  UInt32* words = IONewZero(UInt32, 16);
  char* block = (char*)OSMalloc(100, tag);
  int ok = words != NULL && block != NULL && words[15] == 0;
  IODelete(words, UInt32, 16);
  OSFree(block, 100, tag);
  OSMalloc_Tagfree(tag);
  return ok;
}
