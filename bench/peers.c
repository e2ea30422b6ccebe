/*
 * peers.c — what users would pick instead, measured with the same harness:
 * GLib's GSettings with the memory backend (GSETTINGS_BACKEND=memory, a
 * schema compiled into a temporary directory) and a plain GObject property
 * with "notify". Built and run only by `make bench-peers`.
 *
 *   peer.gs.get      g_settings_get_double                  (ours: get.float)
 *   peer.gs.set      g_settings_set_double, no handler      (ours: set.value)
 *   peer.gs.set1     ... one "changed::temperature" handler (ours: set.watch1)
 *   peer.gs.fan1000  ... 1,000 handlers, per delivered event (ours: fanout.1000)
 *   peer.go.set      g_object_set, no handler                (ours: set.value)
 *   peer.go.notify   g_object_set(o, "value", x) -> one "notify::value"
 *                    handler                                  (ours: set.watch1)
 *   peer.go.pspec    a typed setter calling g_object_notify_by_pspec -> one
 *                    handler (the fastest GObject idiom)      (ours: set.watch1)
 * Every handler counts its calls; the program checks each set reached each
 * handler before it returned (both deliver synchronously on this thread).
 */
#include "bench.h"

#include <gio/gio.h>
#include <glib-object.h>

/* ---- a GObject with one double property ---------------------------------- */

typedef struct {
  GObject parent;
  double value;
} BenchObj;
typedef struct {
  GObjectClass parent;
} BenchObjClass;

G_DEFINE_TYPE(BenchObj, bench_obj, G_TYPE_OBJECT)

enum { PROP_0, PROP_VALUE, N_PROPS };
static GParamSpec *props[N_PROPS];

static void bench_obj_set_value(BenchObj *o, double x) {
  if (o->value == x) return;
  o->value = x;
  g_object_notify_by_pspec(G_OBJECT(o), props[PROP_VALUE]);
}

static void bench_obj_set_property(GObject *obj, guint id, const GValue *v, GParamSpec *pspec) {
  if (id == PROP_VALUE)
    bench_obj_set_value((BenchObj *)obj, g_value_get_double(v));
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, pspec);
}

static void bench_obj_get_property(GObject *obj, guint id, GValue *v, GParamSpec *pspec) {
  if (id == PROP_VALUE)
    g_value_set_double(v, ((BenchObj *)obj)->value);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID(obj, id, pspec);
}

static void bench_obj_class_init(BenchObjClass *c) {
  GObjectClass *oc = G_OBJECT_CLASS(c);
  oc->set_property = bench_obj_set_property;
  oc->get_property = bench_obj_get_property;
  props[PROP_VALUE] = g_param_spec_double("value", "value", "value", -G_MAXDOUBLE, G_MAXDOUBLE, 0,
                                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties(oc, N_PROPS, props);
}

static void bench_obj_init(BenchObj *o) { o->value = 0; }

static void on_notify(GObject *o, GParamSpec *p, gpointer ud) {
  (void)o;
  (void)p;
  (*(uint64_t *)ud)++;
}

static void on_changed(GSettings *s, const char *key, gpointer ud) {
  (void)s;
  (void)key;
  (*(uint64_t *)ud)++;
}

/* ---- GSettings with the memory backend --------------------------------- */

static char schema_dir[64];

static void schema_setup(void) {
  strcpy(schema_dir, "/tmp/rstate-bench-XXXXXX");
  if (!mkdtemp(schema_dir)) bench_die("mkdtemp");
  char path[128], cmd[192];
  snprintf(path, sizeof path, "%s/org.reactivestate.bench.gschema.xml", schema_dir);
  FILE *f = fopen(path, "w");
  if (!f) bench_die("cannot write the schema");
  fputs("<schemalist>\n"
        "  <schema id=\"org.reactivestate.bench\" path=\"/org/reactivestate/bench/\">\n"
        "    <key name=\"temperature\" type=\"d\"><default>0.0</default></key>\n"
        "  </schema>\n"
        "</schemalist>\n",
        f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "glib-compile-schemas %s", schema_dir);
  if (system(cmd) != 0) bench_die("glib-compile-schemas failed (package libglib2.0-bin)");
  setenv("GSETTINGS_SCHEMA_DIR", schema_dir, 1);
  setenv("GSETTINGS_BACKEND", "memory", 1);
}

static void schema_cleanup(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/org.reactivestate.bench.gschema.xml", schema_dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/gschemas.compiled", schema_dir);
  unlink(path);
  rmdir(schema_dir);
}

static void gs_fanout(GSettings *gs, size_t handlers, size_t events, double floor_ns, double *x) {
  uint64_t *counts = calloc(handlers, sizeof *counts);
  gulong *ids = calloc(handlers, sizeof *ids);
  for (size_t i = 0; i < handlers; i++)
    ids[i] = g_signal_connect(gs, "changed::temperature", G_CALLBACK(on_changed), &counts[i]);
  size_t per_sample = handlers >= BENCH_BATCH ? 1 : BENCH_BATCH / handlers;
  size_t samples = events / (per_sample * handlers);
  if (samples < 100) samples = 100;
  bstats st = {0};
  BENCH_LOOP(&st, samples, per_sample, g_settings_set_double(gs, "temperature", *x += 1));
  for (size_t i = 0; i < st.n; i++) st.v[i] /= (double)handlers;
  st.ops *= (double)handlers;
  for (size_t i = 0; i < handlers; i++) bench_expect("peer.gs.fan1000", counts[i], (uint64_t)samples * per_sample);
  bench_latency("peer.gs.fan1000", "GSettings set, 1,000 changed handlers (per event)", "ns/event", bs_sum(&st),
                "floor.call", floor_ns, 0, 0);
  bs_free(&st);
  for (size_t i = 0; i < handlers; i++) g_signal_handler_disconnect(gs, ids[i]);
  free(counts);
  free(ids);
}

int main(int argc, char **argv) {
  bench_init(argc, argv, "peers");
  schema_setup();
  size_t samples = bench_n(5000, 200);

  bsum fm = floor_mutex(samples * 4);
  bsum fi = floor_indirect(samples * 4);
  bench_floor_row("floor.mutex", "floor: uncontended mutex lock+unlock", fm);
  bench_floor_row("floor.call", "floor: indirect call", fi);

  GSettings *gs = g_settings_new("org.reactivestate.bench");
  double x = 0, sum = 0;
  bstats st = {0};

  size_t gs_samples = bench_n(1500, 100); /* GSettings calls take microseconds */
  BENCH_LOOP(&st, gs_samples, BENCH_BATCH, sum += g_settings_get_double(gs, "temperature"));
  bench_latency("peer.gs.get", "GSettings get (g_settings_get_double)", "ns/op", bs_sum(&st), "floor.mutex", fm.mean,
                0, 0);
  bs_free(&st);

  BENCH_LOOP(&st, gs_samples / 10, BENCH_BATCH, g_settings_set_double(gs, "temperature", x += 1)); /* warm-up */
  bs_free(&st);
  BENCH_LOOP(&st, gs_samples, BENCH_BATCH, g_settings_set_double(gs, "temperature", x += 1));
  bench_latency("peer.gs.set", "GSettings set, no handler (memory backend)", "ns/op", bs_sum(&st), "floor.mutex",
                fm.mean, 0, 0);
  bs_free(&st);

  uint64_t count = 0;
  gulong id = g_signal_connect(gs, "changed::temperature", G_CALLBACK(on_changed), &count);
  BENCH_LOOP(&st, gs_samples, BENCH_BATCH, g_settings_set_double(gs, "temperature", x += 1));
  bench_expect("peer.gs.set1", count, (uint64_t)gs_samples * BENCH_BATCH);
  bench_latency("peer.gs.set1", "GSettings set -> one changed handler", "ns/op", bs_sum(&st), "floor.mutex", fm.mean,
                0, 0);
  bs_free(&st);
  g_signal_handler_disconnect(gs, id);

  gs_fanout(gs, 1000, bench_n(1000000, 20000), fi.mean, &x);
  g_object_unref(gs);

  BenchObj *o = g_object_new(bench_obj_get_type(), NULL);
  BENCH_LOOP(&st, samples, BENCH_BATCH, g_object_set(o, "value", x += 1, NULL));
  bench_latency("peer.go.set", "GObject g_object_set, no handler", "ns/op", bs_sum(&st), "floor.mutex", fm.mean, 0,
                0);
  bs_free(&st);

  count = 0;
  g_signal_connect(o, "notify::value", G_CALLBACK(on_notify), &count);
  BENCH_LOOP(&st, samples, BENCH_BATCH, g_object_set(o, "value", x += 1, NULL));
  bench_expect("peer.go.notify", count, (uint64_t)samples * BENCH_BATCH);
  bench_latency("peer.go.notify", "GObject g_object_set -> one notify handler", "ns/op", bs_sum(&st), "floor.mutex",
                fm.mean, 0, 0);
  bs_free(&st);

  count = 0;
  BENCH_LOOP(&st, samples, BENCH_BATCH, bench_obj_set_value(o, x += 1));
  bench_expect("peer.go.pspec", count, (uint64_t)samples * BENCH_BATCH);
  bench_latency("peer.go.pspec", "GObject setter + g_object_notify_by_pspec -> one handler", "ns/op", bs_sum(&st),
                "floor.mutex", fm.mean, 0, 0);
  bs_free(&st);
  g_object_unref(o);

  schema_cleanup();
  if (sum != sum) return 1;
  return 0;
}
