/* Internal to harness/trace: a C interface to the trace.dat readers (libtracecmd's
 * headers are not valid C++). Formats each kmem and dma record as a trace-cmd
 * report line. */
#ifndef KMBENCH_TRACEDAT_READER_H
#define KMBENCH_TRACEDAT_READER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Receives one line (no newline): first "cpus=N", then one for each kmem:* /
 * dma:* record and each loss of records, in time order. */
typedef void (*kmb_tracedat_line_fn)(void *ctx, const char *line, size_t len);

/* Who reads the records: kmbench's own version 7 reader (tracedat_file.h),
 * or libtracecmd; by default the own reader, and libtracecmd for the files it
 * does not cover. */
enum { KMB_TRACEDAT_ANY = 0, KMB_TRACEDAT_OWN = 1, KMB_TRACEDAT_LIBTRACECMD = 2 };

/* Reads the trace.dat at `path`. Returns 0, or -1 with a message in `err`.
 * post: *cpus holds the capture's CPU count on success; *reader who read it. */
int kmb_tracedat_read(const char *path, kmb_tracedat_line_fn fn, void *ctx, int *cpus, int *reader, char *err,
                      size_t err_size);

/* Chooses the reader (KMB_TRACEDAT_ANY by default). Not thread-safe: set it before reading. */
void kmb_tracedat_set_reader(int reader);

/* For tests: how many records of each kmem event are written both ways and
 * compared before the fields alone write them (64); below 0, libtraceevent
 * writes every record. Not thread-safe: set it before reading. */
void kmb_tracedat_set_checked(int records);

#ifdef __cplusplus
}
#endif

#endif
