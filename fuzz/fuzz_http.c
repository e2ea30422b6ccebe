/*
 * fuzz_http.c — libFuzzer target for what rstated's HTTP side parses
 * itself: request bodies as JSON (one value, an object of values) and the
 * numbers and lists of headers and query arguments (tools/http/jsonin.c,
 * tools/http/parse.c). The first byte picks the parser; the rest is the
 * input. Every outcome must be a clean return: no crash, no leak, no read
 * past the input, and a decoded string must hold exactly its length.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tools/http/jsonin.c"
#include "../tools/http/parse.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t which = data[0] % 4;
  const char *p = (const char *)data + 1;
  size_t n = size - 1;
  char err[256];
  jin_doc d;
  switch (which) {
    case 0:
    case 1: {
      /* an exact-size heap copy: ASan catches a read past the body */
      char *body = malloc(n ? n : 1);
      if (!body) return 0;
      memcpy(body, p, n);
      int r = which == 0 ? jin_parse_value(body, n, &d, err, sizeof err) : jin_parse_object(body, n, &d, err, sizeof err);
      if (r == JIN_OK)
        for (size_t i = 0; i < d.n; i++) {
          const rstate_value *v = &d.items[i].value;
          if (v->kind == RSTATE_STRING && v->u.s.ptr[v->u.s.len] != '\0') abort();
          if (which == 1 && !d.items[i].name) abort();
        }
      else if (!err[0])
        abort(); /* every failure has a sentence */
      jin_free(&d);
      free(body);
      break;
    }
    case 2:
    case 3: {
      char *s = malloc(n + 1);
      if (!s) return 0;
      memcpy(s, p, n);
      s[n] = '\0';
      uint64_t v;
      http_parse_u64(s, &v);
      http_parse_if_match(s, &v);
      const char *names[64];
      size_t k = http_split_names(s, names, 64);
      for (size_t i = 0; i < k; i++)
        if (!names[i][0]) abort();
      free(s);
      break;
    }
  }
  return 0;
}
