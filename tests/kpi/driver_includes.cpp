// What a driver's translation unit includes: compiled by driver_headers.sh,
// which checks that no backend's header comes with it.
#include <IOKit/IOLib.h>
#include <kmbench/kpi.h>

int main() {
  void* p = IOMalloc(64);
  IOFree(p, 64);
  return 0;
}
