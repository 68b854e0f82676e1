/* Internal to harness/trace: a C interface to libtracecmd, whose headers are
 * not valid C++. Formats each kmem and dma record as a trace-cmd report line. */
#ifndef KMBENCH_TRACEDAT_READER_H
#define KMBENCH_TRACEDAT_READER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Receives one line (no newline): first "cpus=N", then one for each kmem:* /
 * dma:* record and each loss of records, in time order. */
typedef void (*kmb_tracedat_line_fn)(void *ctx, const char *line, size_t len);

/* Reads the trace.dat at `path`. Returns 0, or -1 with a message in `err`.
 * post: *cpus holds the capture's CPU count on success. */
int kmb_tracedat_read(const char *path, kmb_tracedat_line_fn fn, void *ctx, int *cpus, char *err, size_t err_size);

/* For tests: how many records of each kmem event are written both ways and
 * compared before the fields alone write them (64); below 0, libtraceevent
 * writes every record. Not thread-safe: set it before reading. */
void kmb_tracedat_set_checked(int records);

#ifdef __cplusplus
}
#endif

#endif
