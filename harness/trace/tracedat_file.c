/* trace-cmd's trace.dat, version 7, read without libtracecmd
 * (tracedat_file.h). The layout is trace-cmd.dat.v7(5): a header, then
 * sections found through chained options sections; each CPU's ring-buffer
 * pages, compressed in chunks when the file is. Every size and offset the file
 * gives is checked against the file and the section it lies in before it is
 * used: a damaged file is an error that names what is wrong and where. */
#include "harness/trace/tracedat_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <traceevent/event-parse.h>
#include <traceevent/kbuffer.h>
#include <unistd.h>
#include <zstd.h>

enum option_id {
  OPT_DONE = 0,
  OPT_DATE = 1,
  OPT_BUFFER = 3,
  OPT_OFFSET = 7,
  OPT_CPUCOUNT = 8,
  OPT_TIME_SHIFT = 12,
  OPT_GUEST = 13,
  OPT_TSC2NSEC = 14,
  OPT_HEADER_INFO = 16,
  OPT_FTRACE_EVENTS = 17,
  OPT_EVENT_FORMATS = 18,
  OPT_KALLSYMS = 19,
  OPT_PRINTK = 20,
  OPT_CMDLINES = 21,
  OPT_BUFFER_TEXT = 22,
  OPT_SECTIONS = 23 /* one past the last section an option points to */
};

enum {
  kSectionHeader = 16,         /* id 2, flags 2, string id 4, size 8 */
  kSectionCompressed = 1,      /* section flag */
  kMaxOptionsSections = 4096,  /* a chain longer than this loops */
  kMaxCpus = 1 << 16,          /* per buffer */
  kPageSlack = 64,             /* zeroed bytes after the last page: kbuffer may read a missed-events count there */
  kReadBytes = 1 << 18,        /* an uncompressed CPU's pages are read this many bytes at a time */
  kCommitMask = (1 << 27) - 1, /* a page's data length, below its flags */
};
/* Bounds on what a file may ask to be allocated: a section (kallsyms is the
 * largest, some MB) and a chunk of trace data (trace-cmd writes tens of KB). */
static const uint64_t kMaxSection = (uint64_t)1 << 28;
static const uint64_t kMaxChunk = (uint64_t)1 << 26;

enum compression { COMP_NONE, COMP_ZSTD };

/* One CPU's data in one buffer, and where reading it has got to. */
struct cpu_data {
  int cpu;
  uint64_t offset, size; /* in the file */
  uint64_t at;           /* the next chunk header or raw bytes to read */
  uint32_t chunks_left;  /* compressed: chunks not yet read */
  char *data;            /* the decompressed chunk, or the raw pages read */
  size_t data_size, data_cap, page_at;
  uint64_t data_from; /* the data's first byte, counted in the CPU's (decompressed) data */
  char *packed;       /* a compressed chunk as read */
  size_t packed_cap;
  struct kbuffer *kbuf;
  char *page;             /* the page kbuf holds, or NULL */
  struct tep_record head; /* the next record, while the CPU is in the merge's heap */
  const struct buffer *buffer;
};

struct buffer {
  char *name;
  int compressed; /* its data section's flag, read when the records are */
  uint64_t section;
  uint32_t page_size;
  int ncpus;
  struct cpu_data *cpus;
};

struct kmb_tdfile {
  int fd;
  uint64_t file_size;
  uint32_t page_size;
  enum compression comp;
  ZSTD_DCtx *zstd;
  struct tep_handle *tep;
  struct tep_plugin_list *plugins;
  int kbuf_long; /* the kernel's long, from the header page: 4 or 8 */
  int old_format;
  uint64_t section_at[OPT_SECTIONS]; /* by option id; 0: not in the file */
  struct buffer *buffers;            /* the top buffer ("") first, then the others as the options list them */
  int nbuffers;
  int cpu_count;              /* CPUCOUNT; 0 if absent */
  const char *const *systems; /* the event systems whose formats are parsed (NULL: all) */
};

static int say(char *why, size_t n, int result, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, n, fmt, ap);
  va_end(ap);
  return result;
}

static uint64_t le(const void *at, int bytes) {
  const unsigned char *p = at;
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

/* Reads exactly n bytes at `off`; 0, or -1 (short or failed). */
static int read_at(const struct kmb_tdfile *f, uint64_t off, void *dst, size_t n) {
  if (off > f->file_size || n > f->file_size - off) return -1;
  size_t done = 0;
  while (done < n) {
    const ssize_t got = pread(f->fd, (char *)dst + done, n - done, (off_t)(off + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return -1;
    done += (size_t)got;
  }
  return 0;
}

static int decompress(struct kmb_tdfile *f, const char *src, size_t n, char *dst, size_t want) {
  const size_t got = ZSTD_decompressDCtx(f->zstd, dst, want, src, n);
  return !ZSTD_isError(got) && got == want ? 0 : -1;
}

/* The section at `off` (of id `id`), decompressed, with a 0 after it; NULL and `why` if damaged. */
static char *read_section(struct kmb_tdfile *f, uint64_t off, unsigned id, const char *what, size_t *size, char *why,
                          size_t wn) {
  unsigned char h[kSectionHeader];
  if (read_at(f, off, h, sizeof h) != 0) {
    say(why, wn, 0, "the %s section at byte %llu lies past the end of the file", what, (unsigned long long)off);
    return NULL;
  }
  const unsigned got_id = (unsigned)le(h, 2), flags = (unsigned)le(h + 2, 2);
  const uint64_t bytes = le(h + 8, 8);
  if (got_id != id) {
    say(why, wn, 0, "byte %llu should begin the %s section (id %u) but begins a section of id %u",
        (unsigned long long)off, what, id, got_id);
    return NULL;
  }
  if (bytes > f->file_size - off - kSectionHeader || bytes > kMaxSection) {
    say(why, wn, 0, "the %s section at byte %llu says it holds %llu bytes, more than the file has", what,
        (unsigned long long)off, (unsigned long long)bytes);
    return NULL;
  }
  char *raw = malloc((size_t)bytes + 1);
  if (!raw || read_at(f, off + kSectionHeader, raw, (size_t)bytes) != 0) {
    free(raw);
    say(why, wn, 0, "cannot read the %s section at byte %llu", what, (unsigned long long)off);
    return NULL;
  }
  raw[bytes] = 0;
  if (!(flags & kSectionCompressed)) {
    *size = (size_t)bytes;
    return raw;
  }
  const uint64_t packed = bytes >= 8 ? le(raw, 4) : 0, plain = bytes >= 8 ? le(raw + 4, 4) : 0;
  char *out = bytes >= 8 && packed <= bytes - 8 && plain <= kMaxSection && f->comp != COMP_NONE
                  ? malloc((size_t)plain + 1)
                  : NULL;
  if (!out || decompress(f, raw + 8, (size_t)packed, out, (size_t)plain) != 0) {
    free(raw);
    free(out);
    say(why, wn, 0, "the compressed %s section at byte %llu does not decompress", what, (unsigned long long)off);
    return NULL;
  }
  free(raw);
  out[plain] = 0;
  *size = (size_t)plain;
  return out;
}

/* A cursor over a section's bytes: every read is checked against its end. */
struct cursor {
  char *p;
  size_t left;
  int ok;
};

static uint64_t take(struct cursor *c, int bytes) {
  if (!c->ok || c->left < (size_t)bytes) {
    c->ok = 0;
    return 0;
  }
  const uint64_t v = le(c->p, bytes);
  c->p += bytes;
  c->left -= (size_t)bytes;
  return v;
}

/* A 0-terminated string, or NULL (and !ok) if it does not end in the section. */
static const char *take_string(struct cursor *c) {
  const char *end = c->ok ? memchr(c->p, 0, c->left) : NULL;
  if (!end) {
    c->ok = 0;
    return NULL;
  }
  const char *s = c->p;
  c->left -= (size_t)(end - s) + 1;
  c->p += (end - s) + 1;
  return s;
}

/* `n` bytes of the section, or NULL (and !ok). */
static char *take_bytes(struct cursor *c, uint64_t n) {
  if (!c->ok || n > c->left) {
    c->ok = 0;
    return NULL;
  }
  char *s = c->p;
  c->p += n;
  c->left -= (size_t)n;
  return s;
}

/* Calls fn(tep, text, ...) on `n` bytes as a 0-terminated string, the byte after restored. */
static void as_string(char *text, size_t n, void (*fn)(struct tep_handle *, char *), struct tep_handle *tep) {
  const char kept = text[n];
  text[n] = 0;
  fn(tep, text);
  text[n] = kept;
}
static void parse_kallsyms(struct tep_handle *tep, char *s) { tep_parse_kallsyms(tep, s); }
static void parse_printk(struct tep_handle *tep, char *s) { tep_parse_printk_formats(tep, s); }
static void parse_cmdlines(struct tep_handle *tep, char *s) { tep_parse_saved_cmdlines(tep, s); }

static int add_buffer(struct kmb_tdfile *f, struct cursor *c, char *why, size_t wn) {
  struct buffer b = {0};
  b.section = take(c, 8);
  const char *name = take_string(c);
  take_string(c); /* the clock: timestamps are printed as recorded, as libtracecmd prints them */
  b.page_size = (uint32_t)take(c, 4);
  const uint64_t ncpus = take(c, 4);
  if (!c->ok) return say(why, wn, KMB_TD_BAD, "a BUFFER option is cut short");
  if (b.page_size < 64 || b.page_size > (1u << 24) || (b.page_size & (b.page_size - 1)) != 0)
    return say(why, wn, KMB_TD_BAD, "buffer '%s' has pages of %u bytes", name, b.page_size);
  if (ncpus > kMaxCpus) return say(why, wn, KMB_TD_BAD, "buffer '%s' has %llu CPUs", name, (unsigned long long)ncpus);
  b.cpus = calloc(ncpus ? (size_t)ncpus : 1, sizeof *b.cpus);
  b.name = strdup(name);
  if (!b.cpus || !b.name) {
    free(b.cpus);
    free(b.name);
    return say(why, wn, KMB_TD_BAD, "out of memory");
  }
  b.ncpus = (int)ncpus;
  for (int i = 0; i < b.ncpus; ++i) {
    struct cpu_data *d = &b.cpus[i];
    d->cpu = (int)take(c, 4);
    d->offset = take(c, 8);
    d->size = take(c, 8);
    if (c->ok && (d->offset > f->file_size || d->size > f->file_size - d->offset)) {
      say(why, wn, 0, "CPU %d of buffer '%s' lies past the end of the file (it is cut short)", d->cpu, name);
      free(b.cpus);
      free(b.name);
      return KMB_TD_BAD;
    }
  }
  if (!c->ok) {
    free(b.cpus);
    free(b.name);
    return say(why, wn, KMB_TD_BAD, "a BUFFER option is cut short");
  }
  /* libtracecmd keeps each buffer's CPUs by CPU id */
  for (int i = 1; i < b.ncpus; ++i) {
    for (int j = i; j > 0 && b.cpus[j - 1].cpu > b.cpus[j].cpu; --j) {
      const struct cpu_data t = b.cpus[j];
      b.cpus[j] = b.cpus[j - 1];
      b.cpus[j - 1] = t;
    }
  }
  struct buffer *wider = realloc(f->buffers, (size_t)(f->nbuffers + 1) * sizeof *wider);
  if (!wider) {
    free(b.cpus);
    free(b.name);
    return say(why, wn, KMB_TD_BAD, "out of memory");
  }
  f->buffers = wider;
  if (b.name[0] == 0) { /* the top buffer goes first */
    memmove(f->buffers + 1, f->buffers, (size_t)f->nbuffers * sizeof *f->buffers);
    f->buffers[0] = b;
  } else {
    f->buffers[f->nbuffers] = b;
  }
  ++f->nbuffers;
  return KMB_TD_OPENED;
}

/* Reads the chain of options sections from `off`. */
static int read_options(struct kmb_tdfile *f, uint64_t off, char *why, size_t wn) {
  for (int n = 0; off != 0; ++n) {
    if (n == kMaxOptionsSections) return say(why, wn, KMB_TD_BAD, "the options sections loop");
    size_t size = 0;
    char *s = read_section(f, off, OPT_DONE, "options", &size, why, wn);
    if (!s) return KMB_TD_BAD;
    struct cursor c = {s, size, 1};
    uint64_t next = 0;
    int done = 0, r = KMB_TD_OPENED;
    while (r == KMB_TD_OPENED && !done) {
      const unsigned id = (unsigned)take(&c, 2);
      const uint64_t bytes = take(&c, 4);
      char *data = take_bytes(&c, bytes);
      if (!c.ok) {
        r = say(why, wn, KMB_TD_BAD, "the options section at byte %llu is cut short", (unsigned long long)off);
        break;
      }
      struct cursor o = {data, (size_t)bytes, 1};
      switch (id) {
        case OPT_DONE:
          next = take(&o, 8);
          done = 1;
          break;
        case OPT_BUFFER:
          r = add_buffer(f, &o, why, wn);
          break;
        case OPT_CPUCOUNT:
          f->cpu_count = (int)take(&o, 4);
          break;
        case OPT_HEADER_INFO:
        case OPT_FTRACE_EVENTS:
        case OPT_EVENT_FORMATS:
        case OPT_KALLSYMS:
        case OPT_PRINTK:
        case OPT_CMDLINES:
          f->section_at[id] = take(&o, 8);
          break;
        case OPT_DATE:
        case OPT_OFFSET:
        case OPT_TIME_SHIFT:
        case OPT_TSC2NSEC:
        case OPT_GUEST:
          r = say(why, wn, KMB_TD_NOT_HERE, "option %u moves the timestamps", id);
          break;
        case OPT_BUFFER_TEXT:
          r = say(why, wn, KMB_TD_NOT_HERE, "a latency trace");
          break;
        default: /* what libtracecmd does not use to read records either */
          break;
      }
      if (r == KMB_TD_OPENED && !o.ok)
        r = say(why, wn, KMB_TD_BAD, "option %u in the options section at byte %llu is cut short", id,
                (unsigned long long)off);
    }
    free(s);
    if (r != KMB_TD_OPENED) return r;
    if (!done) return say(why, wn, KMB_TD_BAD, "the options section at byte %llu has no end", (unsigned long long)off);
    off = next;
  }
  return KMB_TD_OPENED;
}

static int g_parse_text = 1;

/* Whether `system` is one the caller asked for (NULL: all). */
static int wanted(const char *const *systems, const char *system) {
  if (!systems) return 1;
  for (; *systems; ++systems) {
    if (strcmp(*systems, system) == 0) return 1;
  }
  return 0;
}

void kmb_tdfile_parse_text(int parse) { g_parse_text = parse; }

/* The sections libtraceevent parses, in the order libtracecmd parses them. */
static int read_formats(struct kmb_tdfile *f, char *why, size_t wn) {
  static const struct {
    unsigned id;
    const char *what;
  } kSections[] = {{OPT_HEADER_INFO, "header"},    {OPT_FTRACE_EVENTS, "ftrace events"},
                   {OPT_EVENT_FORMATS, "events"},  {OPT_KALLSYMS, "kallsyms"},
                   {OPT_PRINTK, "printk formats"}, {OPT_CMDLINES, "saved command lines"}};
  if (!f->section_at[OPT_HEADER_INFO]) return say(why, wn, KMB_TD_BAD, "the file has no header section");
  for (size_t k = 0; k < sizeof kSections / sizeof kSections[0]; ++k) {
    const unsigned id = kSections[k].id;
    if (!f->section_at[id]) continue;
    size_t size = 0;
    char *s = read_section(f, f->section_at[id], id, kSections[k].what, &size, why, wn);
    if (!s) return KMB_TD_BAD;
    struct cursor c = {s, size, 1};
    switch (id) {
      case OPT_HEADER_INFO: {
        char *page_name = take_bytes(&c, 12);
        const uint64_t n = take(&c, 8);
        char *page = take_bytes(&c, n);
        if (c.ok && memcmp(page_name, "header_page", 12) == 0) {
          if (g_parse_text) {
            if (tep_parse_header_page(f->tep, page, (unsigned long)n, f->kbuf_long) < 0) c.ok = 0;
            f->kbuf_long = tep_get_header_page_size(f->tep); /* the kernel's long: the page's commit field */
            f->old_format = tep_is_old_format(f->tep);
          }
        } else {
          c.ok = 0;
        }
        break;
      }
      case OPT_FTRACE_EVENTS:
      case OPT_EVENT_FORMATS: {
        const uint64_t systems = id == OPT_FTRACE_EVENTS ? 1 : take(&c, 4);
        for (uint64_t i = 0; i < systems && c.ok; ++i) {
          const char *system = id == OPT_FTRACE_EVENTS ? "ftrace" : take_string(&c);
          const uint64_t events = take(&c, 4);
          for (uint64_t e = 0; e < events && c.ok; ++e) {
            const uint64_t n = take(&c, 8);
            const char *format = take_bytes(&c, n);
            /* As libtracecmd does, a format libtraceevent refuses is skipped. */
            if (format && g_parse_text && wanted(f->systems, system))
              tep_parse_event(f->tep, format, (unsigned long)n, system);
          }
        }
        break;
      }
      case OPT_KALLSYMS:
      case OPT_PRINTK: {
        const uint64_t n = take(&c, 4);
        char *text = take_bytes(&c, n);
        if (text && g_parse_text)
          as_string(text, (size_t)n, id == OPT_KALLSYMS ? parse_kallsyms : parse_printk, f->tep);
        break;
      }
      case OPT_CMDLINES: {
        const uint64_t n = take(&c, 8);
        char *text = take_bytes(&c, n);
        if (text && g_parse_text) as_string(text, (size_t)n, parse_cmdlines, f->tep);
        break;
      }
    }
    free(s);
    if (!c.ok)
      return say(why, wn, KMB_TD_BAD, "the %s section at byte %llu is damaged", kSections[k].what,
                 (unsigned long long)f->section_at[id]);
  }
  return KMB_TD_OPENED;
}

int kmb_tdfile_open(const char *path, const char *const *systems, struct kmb_tdfile **out, char *why, size_t wn) {
  *out = NULL;
  struct kmb_tdfile *f = calloc(1, sizeof *f);
  if (!f) return say(why, wn, KMB_TD_BAD, "out of memory");
  f->fd = -1;
  f->systems = systems;
  int r = KMB_TD_BAD;
  struct stat st;
  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f->fd < 0 || fstat(f->fd, &st) != 0) {
    r = say(why, wn, KMB_TD_BAD, "cannot open it: %s", strerror(errno));
    goto fail;
  }
  f->file_size = (uint64_t)st.st_size;

  /* magic, "7\0", endian, long size, page size, "name\0version\0", the first options section */
  unsigned char h[512] = {0};
  const size_t hn = f->file_size < sizeof h ? (size_t)f->file_size : sizeof h;
  if (read_at(f, 0, h, hn) != 0 || hn < 12 || memcmp(h, "\x17\x08\x44tracing", 10) != 0) {
    r = say(why, wn, KMB_TD_BAD, "no trace-cmd magic");
    goto fail;
  }
  if (memcmp(h + 10, "7", 2) != 0) {
    r = say(why, wn, KMB_TD_NOT_HERE, "not version 7");
    goto fail;
  }
  struct cursor c = {(char *)h + 12, hn - 12, 1};
  const unsigned big_endian = (unsigned)take(&c, 1), long_size = (unsigned)take(&c, 1);
  f->page_size = (uint32_t)take(&c, 4);
  const char *zname = take_string(&c);
  const char *zversion = take_string(&c);
  const uint64_t options = take(&c, 8);
  if (!c.ok) {
    r = say(why, wn, KMB_TD_BAD, "its header is cut short or its compression has no name");
    goto fail;
  }
  (void)zversion;
  if (big_endian) {
    r = say(why, wn, KMB_TD_NOT_HERE, "big endian");
    goto fail;
  }
  if (long_size != 4 && long_size != 8) {
    r = say(why, wn, KMB_TD_BAD, "its long is %u bytes", long_size);
    goto fail;
  }
  if (strcmp(zname, "none") == 0) {
    f->comp = COMP_NONE;
  } else if (strcmp(zname, "zstd") == 0) {
    f->comp = COMP_ZSTD;
    f->zstd = ZSTD_createDCtx();
    if (!f->zstd) {
      r = say(why, wn, KMB_TD_BAD, "out of memory");
      goto fail;
    }
  } else {
    r = say(why, wn, KMB_TD_NOT_HERE, "compressed with %s", zname);
    goto fail;
  }

  f->tep = tep_alloc();
  if (!f->tep) {
    r = say(why, wn, KMB_TD_BAD, "out of memory");
    goto fail;
  }
  tep_set_file_bigendian(f->tep, TEP_LITTLE_ENDIAN);
  tep_set_local_bigendian(f->tep, TEP_LITTLE_ENDIAN);
  tep_set_long_size(f->tep, (int)long_size);
  tep_set_page_size(f->tep, (int)f->page_size);
  f->kbuf_long = (int)long_size;
  if (g_parse_text) f->plugins = tep_load_plugins(f->tep);

  if ((r = read_options(f, options, why, wn)) != KMB_TD_OPENED) goto fail;
  if ((r = read_formats(f, why, wn)) != KMB_TD_OPENED) goto fail;
  if (f->kbuf_long != 4 && f->kbuf_long != 8) {
    r = say(why, wn, KMB_TD_BAD, "its header page gives a kernel long of %d bytes", f->kbuf_long);
    goto fail;
  }
  int cpus = f->cpu_count;
  for (int b = 0; b < f->nbuffers; ++b) cpus = cpus > f->buffers[b].ncpus ? cpus : f->buffers[b].ncpus;
  tep_set_cpus(f->tep, cpus);
  *out = f;
  return KMB_TD_OPENED;
fail:
  kmb_tdfile_close(f);
  return r;
}

struct tep_handle *kmb_tdfile_tep(struct kmb_tdfile *f) {
  return f->tep;
}

/* ---- the records ---- */

/* Makes room for `n` bytes (and a page's slack) in *buf. */
static int room(char **buf, size_t *cap, size_t n) {
  if (n + kPageSlack <= *cap) return 0;
  char *wider = realloc(*buf, n + kPageSlack);
  if (!wider) return -1;
  *buf = wider;
  *cap = n + kPageSlack;
  return 0;
}

/* Loads the CPU's next data: a chunk, or raw pages. 1, 0 at the end, -1 if damaged. */
static int next_data(struct kmb_tdfile *f, struct cpu_data *d, char *why, size_t wn) {
  const int compressed = d->buffer->compressed;
  const char *name = d->buffer->name;
  /* A compressed CPU's size leaves out the chunk count before its chunks (trace-cmd 3.1 writes it so). */
  const uint64_t end = d->offset + d->size + (compressed ? 4 : 0);
  d->data_from += d->data_size;
  d->data_size = d->page_at = 0;
  if (!compressed) {
    if (d->at >= end) return 0;
    const uint64_t n = end - d->at < kReadBytes ? end - d->at : kReadBytes;
    if (room(&d->data, &d->data_cap, (size_t)n + d->buffer->page_size) != 0 || read_at(f, d->at, d->data, (size_t)n))
      return say(why, wn, -1, "cannot read CPU %d of buffer '%s' at byte %llu", d->cpu, name,
                 (unsigned long long)d->at);
    d->at += n;
    d->data_size = (size_t)n;
    memset(d->data + n, 0, d->buffer->page_size + kPageSlack); /* a last page cut short reads as empty */
    return 1;
  }
  if (d->chunks_left == 0) return 0;
  unsigned char h[8];
  if (d->at + sizeof h > end || read_at(f, d->at, h, sizeof h) != 0)
    return say(why, wn, -1, "CPU %d of buffer '%s' is cut short: its chunk at byte %llu is missing", d->cpu, name,
               (unsigned long long)d->at);
  const uint64_t packed = le(h, 4), plain = le(h + 4, 4);
  if (packed > end - d->at - sizeof h || plain == 0 || plain > kMaxChunk)
    return say(why, wn, -1, "CPU %d of buffer '%s': the chunk at byte %llu says %llu bytes packed, %llu plain", d->cpu,
               name, (unsigned long long)d->at, (unsigned long long)packed, (unsigned long long)plain);
  if (room(&d->packed, &d->packed_cap, (size_t)packed) != 0 ||
      room(&d->data, &d->data_cap, (size_t)plain + d->buffer->page_size) != 0 ||
      read_at(f, d->at + sizeof h, d->packed, (size_t)packed) != 0 ||
      decompress(f, d->packed, (size_t)packed, d->data, (size_t)plain) != 0)
    return say(why, wn, -1, "CPU %d of buffer '%s': the chunk at byte %llu does not decompress", d->cpu, name,
               (unsigned long long)d->at);
  d->at += sizeof h + packed;
  --d->chunks_left;
  d->data_size = (size_t)plain;
  memset(d->data + plain, 0, d->buffer->page_size + kPageSlack);
  return 1;
}

/* Puts the CPU's next record in d->head. 1, 0 at the end of its data, -1 if damaged. */
static int advance(struct kmb_tdfile *f, struct cpu_data *d, char *why, size_t wn) {
  const size_t page_size = d->buffer->page_size;
  for (;;) {
    if (d->page) {
      unsigned long long ts;
      void *data = kbuffer_read_event(d->kbuf, &ts);
      if (data) {
        const int size = kbuffer_event_size(d->kbuf);
        if (size < 0 || (char *)data < d->page || (size_t)((char *)data - d->page) + (size_t)size > page_size)
          return say(why, wn, -1, "CPU %d of buffer '%s': a record runs past its page (byte %llu of the CPU's data)",
                     d->cpu, d->buffer->name, (unsigned long long)(d->data_from + (size_t)(d->page - d->data)));
        struct tep_record *r = &d->head;
        memset(r, 0, sizeof *r);
        r->ts = ts;
        r->data = data;
        r->size = size;
        r->record_size = kbuffer_curr_size(d->kbuf);
        r->missed_events = kbuffer_missed_events(d->kbuf); /* on the page's first record only */
        r->offset = d->data_from + (size_t)(d->page - d->data) + (size_t)kbuffer_curr_offset(d->kbuf);
        r->cpu = d->cpu;
        r->ref_count = 1;
        r->locked = 1;
        kbuffer_next_event(d->kbuf, NULL);
        return 1;
      }
      d->page = NULL;
    }
    if (d->page_at >= d->data_size) {
      const int r = next_data(f, d, why, wn);
      if (r <= 0) return r;
    }
    char *page = d->data + d->page_at;
    d->page_at += page_size;
    /* The page's header: a timestamp, then its data's length (a kernel long, flags in bits 27 and up),
     * checked before kbuffer reads by it. */
    const size_t header = 8 + (size_t)f->kbuf_long;
    if (header + (le(page + 8, f->kbuf_long) & kCommitMask) > page_size || kbuffer_load_subbuffer(d->kbuf, page) < 0)
      return say(why, wn, -1, "CPU %d of buffer '%s': the page at byte %llu of the CPU's data holds more than a page",
                 d->cpu, d->buffer->name, (unsigned long long)(d->data_from + (size_t)(page - d->data)));
    d->page = page;
  }
}

/* The heap's order: the earlier record first; a tie goes to the earlier slot (buffer, then CPU). */
static int before(struct cpu_data *const *slots, int a, int b) {
  const unsigned long long ta = slots[a]->head.ts, tb = slots[b]->head.ts;
  return ta < tb || (ta == tb && a < b);
}

static void sift_down(struct cpu_data *const *slots, int *heap, int n, int i) {
  for (;;) {
    int least = i;
    const int l = 2 * i + 1, r = l + 1;
    if (l < n && before(slots, heap[l], heap[least])) least = l;
    if (r < n && before(slots, heap[r], heap[least])) least = r;
    if (least == i) return;
    const int t = heap[i];
    heap[i] = heap[least];
    heap[least] = t;
    i = least;
  }
}

int kmb_tdfile_iterate(struct kmb_tdfile *f, void (*fn)(struct tep_record *, void *), void *ctx, char *why, size_t wn) {
  int nslots = 0;
  for (int b = 0; b < f->nbuffers; ++b) nslots += f->buffers[b].ncpus;
  struct cpu_data **slots = calloc(nslots ? (size_t)nslots : 1, sizeof *slots);
  int *heap = calloc(nslots ? (size_t)nslots : 1, sizeof *heap);
  int r = 0, n = 0;
  if (!slots || !heap) {
    r = say(why, wn, -1, "out of memory");
    goto out;
  }
  nslots = 0;
  for (int b = 0; b < f->nbuffers && r == 0; ++b) {
    struct buffer *buf = &f->buffers[b];
    if (buf->ncpus > 0) { /* the buffer's section header says whether its data is compressed */
      unsigned char h[kSectionHeader];
      if (read_at(f, buf->section, h, sizeof h) != 0) {
        r = say(why, wn, -1, "the data section of buffer '%s' lies past the end of the file", buf->name);
        break;
      }
      buf->compressed = (le(h + 2, 2) & kSectionCompressed) != 0;
      if (buf->compressed && f->comp == COMP_NONE) {
        r = say(why, wn, -1, "buffer '%s' is compressed in a file that names no compression", buf->name);
        break;
      }
    }
    for (int i = 0; i < buf->ncpus; ++i) {
      struct cpu_data *d = &buf->cpus[i];
      d->buffer = buf;
      d->at = d->offset;
      d->kbuf = kbuffer_alloc(f->kbuf_long == 8 ? KBUFFER_LSIZE_8 : KBUFFER_LSIZE_4, KBUFFER_ENDIAN_LITTLE);
      if (!d->kbuf) {
        r = say(why, wn, -1, "out of memory");
        break;
      }
      if (f->old_format) kbuffer_set_old_format(d->kbuf);
      if (d->size > 0 && buf->compressed) {
        unsigned char count[4];
        if (d->offset + d->size + 4 > f->file_size || read_at(f, d->offset, count, 4) != 0) {
          r = say(why, wn, -1, "CPU %d of buffer '%s' has no chunk count", d->cpu, buf->name);
          break;
        }
        d->chunks_left = (uint32_t)le(count, 4);
        d->at += 4;
      }
      slots[nslots++] = d;
    }
  }
  for (int s = 0; s < nslots && r == 0; ++s) {
    if (slots[s]->size == 0) continue;
    const int got = advance(f, slots[s], why, wn);
    if (got < 0) r = -1;
    if (got > 0) heap[n++] = s;
  }
  for (int i = n / 2 - 1; i >= 0; --i) sift_down(slots, heap, n, i);
  while (r == 0 && n > 0) {
    const int s = heap[0];
    fn(&slots[s]->head, ctx);
    const int got = advance(f, slots[s], why, wn);
    if (got < 0) {
      r = -1;
      break;
    }
    if (got == 0) heap[0] = heap[--n];
    sift_down(slots, heap, n, 0);
  }
out:
  free(slots);
  free(heap);
  return r;
}

void kmb_tdfile_close(struct kmb_tdfile *f) {
  if (!f) return;
  for (int b = 0; b < f->nbuffers; ++b) {
    for (int i = 0; i < f->buffers[b].ncpus; ++i) {
      struct cpu_data *d = &f->buffers[b].cpus[i];
      if (d->kbuf) kbuffer_free(d->kbuf);
      free(d->data);
      free(d->packed);
    }
    free(f->buffers[b].cpus);
    free(f->buffers[b].name);
  }
  free(f->buffers);
  if (f->plugins) tep_unload_plugins(f->plugins, f->tep);
  if (f->tep) tep_free(f->tep);
  if (f->zstd) ZSTD_freeDCtx(f->zstd);
  if (f->fd >= 0) close(f->fd);
  free(f);
}
