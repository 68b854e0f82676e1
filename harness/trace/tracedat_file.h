/* Internal to harness/trace (tracedat_reader.c): trace-cmd's trace.dat,
 * version 7, read without libtracecmd. libtraceevent still parses the event
 * formats, kallsyms and saved command lines, and kbuffer the ring-buffer pages;
 * this reads the file's sections and options, decompresses each CPU's data a
 * chunk at a time, and merges the CPUs' records in time order as
 * tracecmd_iterate_events_multi does (earliest first; a tie goes to the
 * earlier buffer, then the lower CPU). Memory is a chunk and a page per CPU,
 * whatever the file's size.
 *
 * A file this reader does not cover returns KMB_TD_NOT_HERE with the reason,
 * and libtracecmd reads it: version 6, big endian, a compression other than
 * zstd (the only one Debian's trace-cmd 3.1.6 writes), a latency buffer, and
 * the options that move timestamps (DATE, OFFSET, TIME_SHIFT, TSC2NSEC,
 * GUEST). */
#ifndef KMBENCH_TRACEDAT_FILE_H
#define KMBENCH_TRACEDAT_FILE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tep_handle;
struct tep_record;
struct kmb_tdfile;

enum { KMB_TD_OPENED = 0, KMB_TD_NOT_HERE = 1, KMB_TD_BAD = -1 };

/* Opens `path` and reads everything but the trace data. Only the event
 * formats of `systems` (NULL-terminated; NULL: all) are parsed: the others,
 * a thousand formats, were most of the time of opening a file, and their
 * records then have no event. `systems` must outlive the file. Returns
 * KMB_TD_OPENED with *out set, else KMB_TD_NOT_HERE or KMB_TD_BAD with the
 * reason in `why`. */
int kmb_tdfile_open(const char *path, const char *const *systems, struct kmb_tdfile **out, char *why,
                    size_t why_size);

/* The file's event formats, symbols and command lines, with libtraceevent's plugins. */
struct tep_handle *kmb_tdfile_tep(struct kmb_tdfile *f);

/* Calls fn(record, ctx) for every record of every buffer, in time order.
 * A record is valid during its call only. Returns 0, or -1 with the reason in
 * `why` (a damaged chunk or page, named by buffer, CPU and file offset). */
int kmb_tdfile_iterate(struct kmb_tdfile *f, void (*fn)(struct tep_record *record, void *ctx), void *ctx, char *why,
                       size_t why_size);

void kmb_tdfile_close(struct kmb_tdfile *f);

/* For fuzzing this reader alone: 0 leaves the text of the file's sections
 * (event formats, kallsyms, printk formats, command lines, the header page)
 * unparsed, as libtraceevent's parsers crash on some damaged formats (an
 * import's child reports that as a damaged file). 1, the default, parses
 * them. Not thread-safe: set it before opening. */
void kmb_tdfile_parse_text(int parse);

#ifdef __cplusplus
}
#endif

#endif
