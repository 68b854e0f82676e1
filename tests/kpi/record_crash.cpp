// Dies in the middle of its work, as a crashing driver does: 10000 IOMalloc
// calls, recorded when KMBENCH_RECORD is set, then abort() with the last
// buffer of records still in memory. tests/kpi/record_cli.cmake reads what it left.
#include <IOKit/IOLib.h>

#include <cstdlib>

int main() {
  for (int i = 0; i < 10000; ++i) {
    void* volatile p = IOMalloc(64);
    (void)p;
  }
  std::abort();
}
