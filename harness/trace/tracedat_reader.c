#include "harness/trace/tracedat_reader.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <trace-cmd/trace-cmd.h>

#include "harness/trace/tracedat_file.h"

/* A kmem record is written as trace-cmd report writes it. libtraceevent's
 * tep_print_event evaluates the event's whole print format for each record
 * (the gfp flag table alone is a long expression), which took nine tenths of
 * an import's time. The events of a 6.x kmem.h are therefore written from
 * their fields here; the strings libtraceevent works out (a call site's
 * symbol, the gfp flags' names) are asked of it once per distinct value and
 * kept. The first kChecked records of each event are also written by
 * libtraceevent and compared: an event whose lines differ (another kernel's
 * format) is left to libtraceevent for the rest of the file. */

enum { kChecked = 64, kMaxItems = 10, kLine = 4096 };
static int g_checked = kChecked;

void kmb_tracedat_set_checked(int records) { g_checked = records; }

enum item_kind {
  ITEM_SYM,      /* a value libtraceevent names (call_site): asked once per value */
  ITEM_GFP,      /* gfp flags: the names, asked once per value */
  ITEM_BY_GFP,   /* a word derived from the gfp flags (kmalloc's accounted=) */
  ITEM_HEX,      /* a pointer: 0x%llx, or (nil) */
  ITEM_HEX_BARE, /* %llx */
  ITEM_UDEC,
  ITEM_SDEC,
  ITEM_STR,  /* a __data_loc string */
  ITEM_BOOL, /* true or false */
  ITEM_LIT   /* the key alone: a constant the format prints */
};

struct item {
  const char *key; /* as the print format writes it, with the space before it */
  const char *field_name;
  enum item_kind kind;
  struct tep_format_field *field;
};

/* PLAN_NAME: a kmem event the ftrace importer does not read (it counts
 * them by name): its head and name alone. PLAN_SKIP: an event of neither kmem
 * nor dma, not written. */
enum plan_state { PLAN_UNKNOWN, PLAN_FAST, PLAN_SLOW, PLAN_NAME, PLAN_SKIP };

struct plan {
  enum plan_state state;
  int checked;
  int n;
  struct item items[kMaxItems];
  size_t key_len[kMaxItems];
  struct tep_format_field *pfn; /* page events: a failed allocation (pfn -1) is left to libtraceevent */
  size_t name_len;              /* the event's */
  /* libtraceevent's kmem plugin writes "(CALL_SITE) " before the fields: 1 if
   * it does for this event, 0 if not, -1 before the first record says. */
  int paren;
};

/* Strings libtraceevent worked out, by (value, what) */
struct cached {
  uint64_t value;
  uint32_t what; /* event id << 4 | item index */
  uint32_t used;
  char *text;
  size_t len;
};

/* The task names of recent pids, libtraceevent's strings */
enum { kComms = 1024 };
struct comm {
  int pid;
  size_t len;
  const char *name;
};

struct kmb_ctx {
  struct tep_handle *tep;
  struct trace_seq seq;  /* libtraceevent's line */
  struct trace_seq info; /* libtraceevent's fields of the record being written */
  kmb_tracedat_line_fn fn;
  void *user;
  struct plan *plans; /* by event id */
  int nplans;
  struct cached *cache; /* open addressing; a power of two */
  size_t cache_cap, cache_used;
  int info_ready;
  int same_endian; /* the file's numbers are the host's: fields are read as they lie */
  struct comm comms[kComms];
  char line[kLine];
};

static const struct item kKmalloc[] = {
    {"call_site=", "call_site", ITEM_SYM, NULL},  {" ptr=", "ptr", ITEM_HEX, NULL},
    {" bytes_req=", "bytes_req", ITEM_UDEC, NULL}, {" bytes_alloc=", "bytes_alloc", ITEM_UDEC, NULL},
    {" gfp_flags=", "gfp_flags", ITEM_GFP, NULL},  {" node=", "node", ITEM_SDEC, NULL},
    {" accounted=", "gfp_flags", ITEM_BY_GFP, NULL}};
static const struct item kCacheAlloc[] = {
    {"call_site=", "call_site", ITEM_SYM, NULL},  {" ptr=", "ptr", ITEM_HEX, NULL},
    {" name=", "name", ITEM_STR, NULL},           {" bytes_req=", "bytes_req", ITEM_UDEC, NULL},
    {" bytes_alloc=", "bytes_alloc", ITEM_UDEC, NULL}, {" gfp_flags=", "gfp_flags", ITEM_GFP, NULL},
    {" node=", "node", ITEM_SDEC, NULL},          {" accounted=", "accounted", ITEM_BOOL, NULL}};
static const struct item kKfree[] = {{"call_site=", "call_site", ITEM_SYM, NULL}, {" ptr=", "ptr", ITEM_HEX, NULL}};
static const struct item kCacheFree[] = {
    {"call_site=", "call_site", ITEM_SYM, NULL}, {" ptr=", "ptr", ITEM_HEX, NULL}, {" name=", "name", ITEM_STR, NULL}};
static const struct item kPageAlloc[] = {
    {"page=", "pfn", ITEM_HEX, NULL},           {" pfn=0x", "pfn", ITEM_HEX_BARE, NULL},
    {" order=", "order", ITEM_UDEC, NULL},      {" migratetype=", "migratetype", ITEM_SDEC, NULL},
    {" gfp_flags=", "gfp_flags", ITEM_GFP, NULL}};
static const struct item kPageFree[] = {
    {"page=", "pfn", ITEM_HEX, NULL}, {" pfn=0x", "pfn", ITEM_HEX_BARE, NULL}, {" order=", "order", ITEM_UDEC, NULL}};
static const struct item kPageFreeBatched[] = {
    {"page=", "pfn", ITEM_HEX, NULL}, {" pfn=0x", "pfn", ITEM_HEX_BARE, NULL}, {" order=0", NULL, ITEM_LIT, NULL}};

struct shape {
  const char *event;
  const struct item *items;
  int n;
};
#define SHAPE(name, items) {name, items, (int)(sizeof items / sizeof items[0])}
static const struct shape kShapes[] = {
    SHAPE("kmalloc", kKmalloc),          SHAPE("kmem_cache_alloc", kCacheAlloc), SHAPE("kfree", kKfree),
    SHAPE("kmem_cache_free", kCacheFree), SHAPE("mm_page_alloc", kPageAlloc),      SHAPE("mm_page_free", kPageFree),
    SHAPE("mm_page_free_batched", kPageFreeBatched)};

/* ---- the plan of an event ---- */

/* The kmem events the ftrace importer reads (harness/trace/ftrace_events.h)
 * that have no shape here: older kernels' names, written by libtraceevent. */
static const char *const kOtherRead[] = {"kmalloc_node", "kmem_cache_alloc_node"};

/* The event systems whose records are written; the own reader parses no other formats. */
static const char *const kWritten[] = {"kmem", "dma", NULL};

static int written(const char *system) {
  for (const char *const *w = kWritten; *w; ++w) {
    if (strcmp(*w, system) == 0) return 1;
  }
  return 0;
}

static void make_plan(struct plan *p, struct tep_event *event) {
  p->name_len = strlen(event->name);
  p->state = PLAN_SKIP;
  if (!event->system || !written(event->system)) return;
  p->state = PLAN_SLOW;
  if (strcmp(event->system, "kmem") != 0) return;
  p->state = PLAN_NAME;
  for (size_t i = 0; i < sizeof kOtherRead / sizeof kOtherRead[0]; ++i) {
    if (strcmp(kOtherRead[i], event->name) == 0) p->state = PLAN_SLOW;
  }
  for (size_t s = 0; s < sizeof kShapes / sizeof kShapes[0]; ++s) {
    if (strcmp(kShapes[s].event, event->name) != 0) continue;
    p->n = kShapes[s].n;
    for (int i = 0; i < p->n; ++i) {
      p->items[i] = kShapes[s].items[i];
      p->key_len[i] = strlen(p->items[i].key);
      if (p->items[i].kind == ITEM_LIT) continue;
      p->items[i].field = tep_find_field(event, p->items[i].field_name);
      if (!p->items[i].field || p->items[i].field->size > 8) return; /* another kernel's event: libtraceevent */
      if (p->items[i].kind == ITEM_STR && !(p->items[i].field->flags & TEP_FIELD_IS_DYNAMIC)) return;
    }
    if (strncmp(event->name, "mm_page", 7) == 0) p->pfn = tep_find_field(event, "pfn");
    p->paren = p->items[0].kind == ITEM_SYM ? -1 : 0;
    p->state = PLAN_FAST;
    return;
  }
}

static struct plan *plan_of(struct kmb_ctx *c, struct tep_event *event) {
  if (event->id < 0) return NULL;
  if (event->id >= c->nplans) {
    int n = c->nplans ? c->nplans : 64;
    while (n <= event->id) n *= 2;
    struct plan *wider = realloc(c->plans, (size_t)n * sizeof *wider);
    if (!wider) return NULL;
    memset(wider + c->nplans, 0, (size_t)(n - c->nplans) * sizeof *wider);
    c->plans = wider;
    c->nplans = n;
  }
  struct plan *p = &c->plans[event->id];
  if (p->state == PLAN_UNKNOWN) make_plan(p, event);
  return p;
}

/* ---- writing ---- */

static char *put(char *at, const char *end, const char *s, size_t n) {
  if (!at || (size_t)(end - at) < n) return NULL;
  memcpy(at, s, n);
  return at + n;
}

static char *put_udec(char *at, const char *end, unsigned long long v) {
  static const char kPairs[] =
      "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  char digits[24];
  char *d = digits + sizeof digits;
  while (v >= 100) { /* two digits a division */
    const unsigned pair = (unsigned)(v % 100);
    v /= 100;
    *--d = kPairs[2 * pair + 1];
    *--d = kPairs[2 * pair];
  }
  if (v >= 10) {
    *--d = kPairs[2 * v + 1];
    *--d = kPairs[2 * v];
  } else {
    *--d = (char)('0' + v);
  }
  const size_t n = (size_t)(digits + sizeof digits - d);
  if (!at || (size_t)(end - at) < n) return NULL;
  memcpy(at, d, n);
  return at + n;
}

static char *put_hex(char *at, const char *end, unsigned long long v) {
  char digits[20];
  int n = 0;
  do digits[n++] = "0123456789abcdef"[v & 15]; while ((v >>= 4) != 0);
  if (!at || end - at < n) return NULL;
  while (n > 0) *at++ = digits[--n];
  return at;
}

/* libtraceevent's fields of the record being written, in c->info: written once a record. */
static const char *render_info(struct kmb_ctx *c, struct tep_record *record) {
  if (!c->info_ready) {
    trace_seq_reset(&c->info);
    tep_print_event(c->tep, &c->info, record, "%s", TEP_PRINT_INFO);
    trace_seq_terminate(&c->info);
    c->info_ready = 1;
  }
  return c->info.buffer;
}

/* The word after `key` in libtraceevent's fields of this record. */
static const char *info_word(struct kmb_ctx *c, struct tep_record *record, const char *key, size_t *len) {
  const char *at = strstr(render_info(c, record), key);
  if (!at) return NULL;
  at += strlen(key);
  *len = strcspn(at, " ");
  return at;
}

static uint64_t mix(uint64_t v, uint32_t what) {
  v ^= (uint64_t)what * 0x9E3779B97F4A7C15ull;
  v ^= v >> 29;
  v *= 0xBF58476D1CE4E5B9ull;
  return v ^ (v >> 32);
}

static int cache_grow(struct kmb_ctx *c) {
  size_t cap = c->cache_cap ? c->cache_cap * 2 : 1024;
  struct cached *wider = calloc(cap, sizeof *wider);
  if (!wider) return -1;
  for (size_t i = 0; i < c->cache_cap; ++i) {
    if (!c->cache[i].used) continue;
    size_t j = mix(c->cache[i].value, c->cache[i].what) & (cap - 1);
    while (wider[j].used) j = (j + 1) & (cap - 1);
    wider[j] = c->cache[i];
  }
  free(c->cache);
  c->cache = wider;
  c->cache_cap = cap;
  return 0;
}

/* The string libtraceevent writes after `key` for `value`, asked once. */
static const char *named(struct kmb_ctx *c, struct tep_event *event, struct tep_record *record, int item,
                         const char *key, uint64_t value, size_t *text_len) {
  const uint32_t what = (uint32_t)event->id << 4 | (uint32_t)item;
  if (c->cache_used * 2 >= c->cache_cap && cache_grow(c) != 0) return NULL;
  size_t j = mix(value, what) & (c->cache_cap - 1);
  for (; c->cache[j].used; j = (j + 1) & (c->cache_cap - 1)) {
    if (c->cache[j].value == value && c->cache[j].what == what) {
      *text_len = c->cache[j].len;
      return c->cache[j].text;
    }
  }
  size_t len = 0;
  const char *word = info_word(c, record, key[0] == ' ' ? key + 1 : key, &len);
  if (!word) return NULL;
  char *text = malloc(len + 1);
  if (!text) return NULL;
  memcpy(text, word, len);
  text[len] = 0;
  c->cache[j] = (struct cached){value, what, 1, text, len};
  ++c->cache_used;
  *text_len = len;
  return text;
}

static int read_field(const struct kmb_ctx *c, struct tep_format_field *f, struct tep_record *record,
                      unsigned long long *v) {
  if (f->offset + f->size > record->size) return -1;
  const unsigned char *at = (const unsigned char *)record->data + f->offset;
  if (c->same_endian && f->size == 8) {
    uint64_t x;
    memcpy(&x, at, 8);
    *v = x;
  } else if (c->same_endian && f->size == 4) {
    uint32_t x;
    memcpy(&x, at, 4);
    *v = x;
  } else if (tep_read_number_field(f, record->data, v) != 0) {
    return -1;
  }
  if ((f->flags & TEP_FIELD_IS_SIGNED) && f->size < 8 && (*v >> (f->size * 8 - 1)) & 1) {
    *v |= ~0ull << (f->size * 8);
  }
  return 0;
}

/* The head trace-cmd report writes: "COMM-PID [CPU] SECONDS: EVENT: ". */
static char *put_head(struct kmb_ctx *c, char *at, const char *end, struct tep_event *event, size_t name_len,
                      struct tep_record *record, int cpu) {
  const int pid = tep_data_pid(c->tep, record);
  struct comm *known = &c->comms[(unsigned)pid % kComms];
  if (!known->name || known->pid != pid) {
    known->pid = pid;
    known->name = tep_data_comm_from_pid(c->tep, pid);
    known->len = strlen(known->name);
  }
  at = put(at, end, known->name, known->len);
  at = put(at, end, "-", 1);
  if (pid < 0) at = put(at, end, "-", 1);
  at = put_udec(at, end, (unsigned long long)(pid < 0 ? -(long long)pid : pid));
  at = put(at, end, " [", 2);
  if (cpu >= 0 && cpu < 100) at = put(at, end, cpu < 10 ? "00" : "0", cpu < 10 ? 2 : 1); /* %03d */
  if (cpu < 0) return NULL;
  at = put_udec(at, end, (unsigned long long)cpu);
  at = put(at, end, "] ", 2);
  at = put_udec(at, end, record->ts / 1000000000ull);
  char ns[10];
  unsigned long long frac = record->ts % 1000000000ull;
  for (int i = 8; i >= 0; --i, frac /= 10) ns[i] = (char)('0' + frac % 10);
  at = put(at, end, ".", 1);
  at = put(at, end, ns, 9);
  at = put(at, end, ": ", 2);
  at = put(at, end, event->name, name_len);
  return put(at, end, ": ", 2);
}

/* Writes the record's line from its fields; its length, or -1 to leave it to libtraceevent. */
static int write_fast(struct kmb_ctx *c, struct plan *p, struct tep_event *event, struct tep_record *record, int cpu) {
  char *const start = c->line;
  const char *const end = c->line + sizeof c->line;
  unsigned long long v;
  if (p->pfn && (read_field(c, p->pfn, record, &v) != 0 || v == ~0ull)) return -1;
  char *at = put_head(c, start, end, event, p->name_len, record, cpu);
  c->info_ready = 0;
  const char *site = NULL; /* the call site's name, once the "(CALL_SITE) " before the fields asked for it */
  size_t site_len = 0;
  if (p->paren != 0) {
    if (p->paren < 0) p->paren = render_info(c, record)[0] == '(';
    if (p->paren) {  /* the call site, as the item that prints it names it */
      if (read_field(c, p->items[0].field, record, &v) != 0) return -1;
      site = named(c, event, record, 0, p->items[0].key, v, &site_len);
      if (!site) return -1;
      at = put(at, end, "(", 1);
      at = put(at, end, site, site_len);
      at = put(at, end, ") ", 2);
    }
  }
  for (int i = 0; i < p->n && at; ++i) {
    const struct item *it = &p->items[i];
    at = put(at, end, it->key, p->key_len[i]);
    if (it->kind == ITEM_LIT) continue;
    if (it->kind == ITEM_STR) {
      unsigned long long loc;
      if (read_field(c, it->field, record, &loc) != 0) return -1;
      unsigned off = (unsigned)(loc & 0xffff), len = (unsigned)(loc >> 16) & 0xffff;
      if (it->field->flags & TEP_FIELD_IS_RELATIVE) off += (unsigned)(it->field->offset + it->field->size);
      if (off + len > (unsigned)record->size) return -1;
      const char *s = (const char *)record->data + off;
      at = put(at, end, s, strnlen(s, len));
      continue;
    }
    if (read_field(c, it->field, record, &v) != 0) return -1;
    switch (it->kind) {
      case ITEM_SYM:
      case ITEM_GFP:
      case ITEM_BY_GFP: {
        size_t text_len = site_len;
        const char *text = i == 0 && site ? site : named(c, event, record, i, it->key, v, &text_len);
        if (!text) return -1;
        at = put(at, end, text, text_len);
        break;
      }
      case ITEM_HEX:
        if (v == 0) {
          at = put(at, end, "(nil)", 5);
          break;
        }
        at = put(at, end, "0x", 2);
        at = put_hex(at, end, v);
        break;
      case ITEM_HEX_BARE:
        at = put_hex(at, end, v);
        break;
      case ITEM_UDEC:
        at = put_udec(at, end, v);
        break;
      case ITEM_SDEC:
        if ((long long)v < 0) at = put(at, end, "-", 1);
        at = put_udec(at, end, (long long)v < 0 ? -(unsigned long long)v : v);
        break;
      case ITEM_BOOL:
        at = v ? put(at, end, "true", 4) : put(at, end, "false", 5);
        break;
      default:
        return -1;
    }
  }
  return at ? (int)(at - start) : -1;
}

/* libtraceevent's line for the record, in c->seq. */
static void write_slow(struct kmb_ctx *c, struct tep_record *record) {
  trace_seq_reset(&c->seq);
  tep_print_event(c->tep, &c->seq, record, "%s-%d [%03d] ", TEP_PRINT_COMM, TEP_PRINT_PID, TEP_PRINT_CPU);
  trace_seq_printf(&c->seq, "%llu.%09llu: ", record->ts / 1000000000ull, record->ts % 1000000000ull);
  tep_print_event(c->tep, &c->seq, record, "%s: %s", TEP_PRINT_NAME, TEP_PRINT_INFO);
  trace_seq_terminate(&c->seq);
}

/* Writes the line of one record (and one of the events lost before it). */
static void on_record(struct tep_record *record, void *data) {
  struct kmb_ctx *c = data;
  const int cpu = record->cpu;
  if (record->missed_events != 0) { /* below 0: events were lost, how many is not known */
    char lost[96];
    int n = record->missed_events > 0
                ? snprintf(lost, sizeof lost, "CPU:%d [LOST %lld EVENTS]", cpu, record->missed_events)
                : snprintf(lost, sizeof lost, "CPU:%d [EVENTS DROPPED]", cpu);
    c->fn(c->user, lost, (size_t)n);
  }
  struct tep_event *event = tep_find_event_by_record(c->tep, record);
  if (!event || !event->system) return;
  struct plan *p = plan_of(c, event);
  if (p ? p->state == PLAN_SKIP : !written(event->system)) return;
  if (p && p->state == PLAN_NAME) {
    char *at = put_head(c, c->line, c->line + sizeof c->line, event, p->name_len, record, cpu);
    if (at) {
      c->fn(c->user, c->line, (size_t)(at - c->line) - 1); /* without the space after "NAME:" */
      return;
    }
  }
  if (p && p->state == PLAN_FAST && g_checked >= 0) {
    const int len = write_fast(c, p, event, record, cpu);
    if (len >= 0 && p->checked >= g_checked) {
      c->fn(c->user, c->line, (size_t)len);
      return;
    }
    write_slow(c, record);
    if (len >= 0 && ++p->checked <= g_checked &&
        ((size_t)len != c->seq.len || memcmp(c->line, c->seq.buffer, (size_t)len) != 0)) {
      p->state = PLAN_SLOW; /* this kernel prints the event otherwise */
    }
    c->fn(c->user, c->seq.buffer, c->seq.len);
    return;
  }
  write_slow(c, record);
  c->fn(c->user, c->seq.buffer, c->seq.len);
  return;
}

static int on_libtracecmd_record(struct tracecmd_input *handle, struct tep_record *record, int slot, void *data) {
  (void)handle;
  (void)slot; /* across several buffers, a slot of all their CPUs: the record knows its own */
  on_record(record, data);
  return 0;
}

/* The writer's state for the records of `tep`; the first line ("cpus=N") written. */
static struct kmb_ctx *start_lines(struct tep_handle *tep, kmb_tracedat_line_fn fn, void *user, int *cpus) {
  struct kmb_ctx *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->tep = tep;
  c->fn = fn;
  c->user = user;
  trace_seq_init(&c->seq);
  trace_seq_init(&c->info);
  c->same_endian = tep_is_file_bigendian(tep) == tep_is_local_bigendian(tep);
  *cpus = tep_get_cpus(tep);
  char head[32];
  const int len = snprintf(head, sizeof head, "cpus=%d", *cpus > 0 ? *cpus : 1); /* as trace-cmd report begins */
  fn(user, head, (size_t)len);
  return c;
}

static void end_lines(struct kmb_ctx *c) {
  trace_seq_destroy(&c->seq);
  trace_seq_destroy(&c->info);
  for (size_t i = 0; i < c->cache_cap; ++i) free(c->cache[i].text);
  free(c->cache);
  free(c->plans);
  free(c);
}

static int g_reader = KMB_TRACEDAT_ANY;

void kmb_tracedat_set_reader(int reader) { g_reader = reader; }

/* libtracecmd's reading of the file; `left_why` says why the own reader left it
 * to libtracecmd ("" when it was not asked). */
static int read_with_libtracecmd(const char *path, kmb_tracedat_line_fn fn, void *ctx, int *cpus, const char *left_why,
                                 char *err, size_t err_size) {
  tracecmd_set_loglevel(TEP_LOG_NONE);
  struct tracecmd_input *handle = tracecmd_open(path, 0);
  if (!handle) {
    /* No errno here: libtracecmd leaves one of whatever it tried last (a plugin
     * folder, say), not a word about this file. */
    if (*left_why) {
      snprintf(err, err_size, "not a readable trace-cmd trace.dat: libtracecmd cannot open it (%s)", left_why);
    } else {
      snprintf(err, err_size, "not a readable trace-cmd trace.dat: libtracecmd cannot open it");
    }
    return -1;
  }
  /* The top buffer and every instance's (trace-cmd record -B NAME), merged
   * in time order as trace-cmd report shows them. */
  int instances = tracecmd_buffer_instances(handle);
  if (instances < 0) instances = 0;
  struct tracecmd_input **handles = calloc((size_t)instances + 1, sizeof *handles);
  if (!handles) {
    tracecmd_close(handle);
    snprintf(err, err_size, "out of memory for %d buffers", instances + 1);
    return -1;
  }
  int n = 0;
  handles[n++] = handle;
  for (int i = 0; i < instances; ++i) {
    struct tracecmd_input *instance = tracecmd_buffer_instance_handle(handle, i);
    if (!instance) {
      const char *name = tracecmd_buffer_instance_name(handle, i);
      snprintf(err, err_size, "libtracecmd could not open buffer '%s'", name ? name : "?");
      for (int k = n - 1; k >= 0; --k) tracecmd_close(handles[k]);
      free(handles);
      return -1;
    }
    handles[n++] = instance;
  }
  struct kmb_ctx *c = start_lines(tracecmd_get_tep(handle), fn, ctx, cpus);
  int r = -1;
  if (c) {
    r = n == 1 ? tracecmd_iterate_events(handle, NULL, 0, on_libtracecmd_record, c)
               : tracecmd_iterate_events_multi(handles, n, on_libtracecmd_record, c);
    end_lines(c);
  }
  for (int k = n - 1; k >= 0; --k) tracecmd_close(handles[k]);
  free(handles);
  if (r < 0) {
    snprintf(err, err_size, c ? "libtracecmd could not read the events" : "out of memory");
    return -1;
  }
  return 0;
}

int kmb_tracedat_read(const char *path, kmb_tracedat_line_fn fn, void *ctx, int *cpus, int *reader, char *err,
                      size_t err_size) {
  char why[256] = {0};
  if (g_reader != KMB_TRACEDAT_LIBTRACECMD) {
    struct kmb_tdfile *f = NULL;
    const int opened = kmb_tdfile_open(path, kWritten, &f, why, sizeof why);
    if (opened == KMB_TD_OPENED) {
      *reader = KMB_TRACEDAT_OWN;
      struct kmb_ctx *c = start_lines(kmb_tdfile_tep(f), fn, ctx, cpus);
      const int r = c ? kmb_tdfile_iterate(f, on_record, c, why, sizeof why) : -1;
      if (c) end_lines(c);
      kmb_tdfile_close(f);
      if (r == 0) return 0;
      snprintf(err, err_size, "trace.dat damaged: %s", c ? why : "out of memory");
      return -1;
    }
    if (opened == KMB_TD_BAD) {
      snprintf(err, err_size, "not a readable trace-cmd trace.dat: %s", why);
      return -1;
    }
    if (g_reader == KMB_TRACEDAT_OWN) {
      snprintf(err, err_size, "a trace.dat only libtracecmd reads (%s)", why);
      return -1;
    }
  }
  *reader = KMB_TRACEDAT_LIBTRACECMD;
  return read_with_libtracecmd(path, fn, ctx, cpus, why, err, err_size);
}
