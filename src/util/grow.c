/*
 * grow.c — the library's one way of growing an array: capacity doubles (at
 * least to what is needed), so appending n elements costs O(n) in all.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

bool rstate__grow_to(void *arrayp, size_t *cap, size_t need, size_t size, size_t first) {
  if (need <= *cap) return true;
  size_t c = *cap ? *cap : (first ? first : 1);
  while (c < need) {
    if (c > SIZE_MAX / 2) {
      c = need;
      break;
    }
    c *= 2;
  }
  if (c > SIZE_MAX / size) return false;
  void *old;
  memcpy(&old, arrayp, sizeof old);
  void *p = realloc(old, c * size);
  if (!p) return false;
  memcpy(arrayp, &p, sizeof p);
  *cap = c;
  return true;
}
