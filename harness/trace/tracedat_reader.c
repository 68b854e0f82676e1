#include "harness/trace/tracedat_reader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <trace-cmd/trace-cmd.h>

struct kmb_ctx {
  struct tep_handle *tep;
  struct trace_seq seq;
  kmb_tracedat_line_fn fn;
  void *user;
};

static int on_record(struct tracecmd_input *handle, struct tep_record *record, int cpu, void *data) {
  struct kmb_ctx *c = data;
  (void)handle;
  if (record->missed_events != 0) { /* below 0: events were lost, how many is not known */
    char lost[96];
    int n = record->missed_events > 0
                ? snprintf(lost, sizeof lost, "CPU:%d [LOST %lld EVENTS]", cpu, record->missed_events)
                : snprintf(lost, sizeof lost, "CPU:%d [EVENTS DROPPED]", cpu);
    c->fn(c->user, lost, (size_t)n);
  }
  struct tep_event *event = tep_find_event_by_record(c->tep, record);
  if (!event || !event->system || (strcmp(event->system, "kmem") != 0 && strcmp(event->system, "dma") != 0)) {
    return 0;
  }
  trace_seq_reset(&c->seq);
  tep_print_event(c->tep, &c->seq, record, "%s-%d [%03d] ", TEP_PRINT_COMM, TEP_PRINT_PID, TEP_PRINT_CPU);
  trace_seq_printf(&c->seq, "%llu.%09llu: ", record->ts / 1000000000ull, record->ts % 1000000000ull);
  tep_print_event(c->tep, &c->seq, record, "%s: %s", TEP_PRINT_NAME, TEP_PRINT_INFO);
  trace_seq_terminate(&c->seq);
  c->fn(c->user, c->seq.buffer, c->seq.len);
  return 0;
}

int kmb_tracedat_read(const char *path, kmb_tracedat_line_fn fn, void *ctx, int *cpus, char *err, size_t err_size) {
  tracecmd_set_loglevel(TEP_LOG_NONE);
  errno = 0;
  struct tracecmd_input *handle = tracecmd_open(path, 0);
  if (!handle) {
    snprintf(err, err_size, "not a readable trace-cmd trace.dat%s%s", errno ? ": " : "", errno ? strerror(errno) : "");
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
  struct kmb_ctx c;
  c.tep = tracecmd_get_tep(handle);
  c.fn = fn;
  c.user = ctx;
  trace_seq_init(&c.seq);
  *cpus = tep_get_cpus(c.tep);
  char head[32];
  int len = snprintf(head, sizeof head, "cpus=%d", *cpus > 0 ? *cpus : 1); /* as trace-cmd report begins */
  fn(ctx, head, (size_t)len);
  int r = n == 1 ? tracecmd_iterate_events(handle, NULL, 0, on_record, &c)
                 : tracecmd_iterate_events_multi(handles, n, on_record, &c);
  trace_seq_destroy(&c.seq);
  for (int k = n - 1; k >= 0; --k) tracecmd_close(handles[k]);
  free(handles);
  if (r < 0) {
    snprintf(err, err_size, "libtracecmd could not read the events");
    return -1;
  }
  return 0;
}
