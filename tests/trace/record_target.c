/* A small program whose allocations the recorder test knows exactly: sizes
 * chosen not to occur elsewhere in a C program's start-up. */
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void *worker(void *arg) {
  void **blocks = arg;
  for (int i = 0; i < 100; ++i) free(blocks[i]); /* frees of blocks allocated by the main thread */
  for (int i = 0; i < 50; ++i) free(malloc(777));
  return NULL;
}

int main(void) {
  void *blocks[100];
  for (int i = 0; i < 100; ++i) blocks[i] = malloc(12345);
  pthread_t t;
  pthread_create(&t, NULL, worker, blocks);
  pthread_join(t, NULL);

  void *z = calloc(3, 1211);
  void *r = malloc(2221);
  r = realloc(r, 2223);
  /* A buffer grown 40 times, as a parser grows its input: realloc(NULL, n)
   * first (an allocation only), then 39 reallocs of a live block. */
  char *grown = NULL;
  for (int i = 1; i <= 40; ++i) {
    grown = realloc(grown, (size_t)i * 1000 + 7);
    if (grown == NULL) return 1;
    grown[(size_t)i * 1000 + 6] = (char)i;
  }
  free(grown);
  void *a = NULL;
  if (posix_memalign(&a, 4096, 3333) != 0) return 1;
  void *b = aligned_alloc(256, 4444);
  void *m = memalign(64, 5555);
  free(NULL);
  free(z);
  free(r);
  free(a);
  free(b);
  /* m is never freed */
  (void)m;
  void *map = mmap(NULL, 3 * 4096 + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) return 1;
  memset(map, 1, 4096);
  munmap(map, 3 * 4096 + 1);
  return 0;
}
