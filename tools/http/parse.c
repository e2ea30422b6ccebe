/*
 * parse.c — numbers and lists in request headers and query arguments. See
 * parse.h.
 */
#include "parse.h"

#include <string.h>

static int digits(const char *s, size_t n, uint64_t *out) {
  if (n == 0) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

int http_parse_u64(const char *s, uint64_t *out) { return s ? digits(s, strlen(s), out) : -1; }

int http_parse_if_match(const char *h, uint64_t *out) {
  if (!h) return -1;
  if (strncmp(h, "W/", 2) == 0) h += 2;
  size_t n = strlen(h);
  if (n >= 2 && h[0] == '"' && h[n - 1] == '"') {
    h++;
    n -= 2;
  }
  return digits(h, n, out);
}

size_t http_split_names(char *list, const char **out, size_t max) {
  size_t n = 0;
  char *p = list;
  while (*p && n < max) {
    char *e = strchr(p, ',');
    if (e) *e = '\0';
    while (*p == ' ') p++;
    size_t len = strlen(p);
    while (len && p[len - 1] == ' ') p[--len] = '\0';
    if (len) out[n++] = p;
    if (!e) break;
    p = e + 1;
  }
  return n;
}
