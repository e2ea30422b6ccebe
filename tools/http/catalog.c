/*
 * catalog.c — descriptions and constraints read back from schema files,
 * for display. See catalog.h.
 */
#include "catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const catalog_keys[CAT_N] = {"description", "min",     "max",     "min_length",
                                         "max_length",  "pattern", "choices", "namespace"};

typedef struct item {
  char *name;
  char *v[CAT_N];
} item;

struct catalog {
  item *items;
  size_t n, cap;
};

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = '\0';
  if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
    s[n - 1] = '\0';
    s++;
  }
  return s;
}

static item *section(catalog *c, const char *name) {
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->items[i].name, name) == 0) return &c->items[i];
  if (c->n == c->cap) {
    size_t nc = c->cap ? c->cap * 2 : 16;
    item *a = realloc(c->items, nc * sizeof *a);
    if (!a) return NULL;
    c->items = a;
    c->cap = nc;
  }
  item *it = &c->items[c->n];
  memset(it, 0, sizeof *it);
  if (!(it->name = strdup(name))) return NULL;
  c->n++;
  return it;
}

catalog *catalog_load(const char *const *paths, size_t n) {
  catalog *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  for (size_t f = 0; f < n; f++) {
    FILE *fp = fopen(paths[f], "r");
    if (!fp) continue;
    char *line = NULL;
    size_t cap = 0;
    item *cur = NULL;
    while (getline(&line, &cap, fp) >= 0) {
      char *s = trim(line);
      if (!*s || *s == '#' || *s == ';') continue;
      if (*s == '[') {
        char *e = strchr(s, ']');
        if (!e) {
          cur = NULL;
          continue;
        }
        *e = '\0';
        cur = section(c, trim(s + 1));
        continue;
      }
      char *eq = strchr(s, '=');
      if (!cur || !eq) continue;
      *eq = '\0';
      char *k = trim(s), *v = trim(eq + 1);
      for (int i = 0; i < CAT_N; i++)
        if (strcmp(k, catalog_keys[i]) == 0) {
          free(cur->v[i]);
          cur->v[i] = strdup(v);
        }
    }
    free(line);
    fclose(fp);
  }
  return c;
}

const char *catalog_get(const catalog *c, const char *name, int key) {
  if (!c || key < 0 || key >= CAT_N) return NULL;
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->items[i].name, name) == 0) return c->items[i].v[key];
  return NULL;
}

void catalog_free(catalog *c) {
  if (!c) return;
  for (size_t i = 0; i < c->n; i++) {
    free(c->items[i].name);
    for (int k = 0; k < CAT_N; k++) free(c->items[i].v[k]);
  }
  free(c->items);
  free(c);
}
