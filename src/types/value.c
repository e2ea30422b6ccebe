/*
 * value.c — rstate_value helpers: copy, clear, compare, format, and the UTF-8
 * check every string goes through.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "types.h"

int rstate_value_copy(rstate_value *dst, const rstate_value *src) {
  if (!dst) return rstate__err(RSTATE_EINVAL, "rstate_value_copy: dst is NULL");
  if (!src) {
    dst->kind = RSTATE_NONE;
    return rstate__err(RSTATE_EINVAL, "rstate_value_copy: src is NULL");
  }
  switch (src->kind) {
    case RSTATE_NONE:
    case RSTATE_FLOAT:
    case RSTATE_INT:
    case RSTATE_BOOL:
      *dst = *src;
      return RSTATE_OK;
    case RSTATE_STRING: {
      if (!src->u.s.ptr) {
        dst->kind = RSTATE_NONE;
        return rstate__err(RSTATE_EINVAL, "rstate_value_copy: string value with a NULL pointer");
      }
      char *p = malloc(src->u.s.len + 1);
      if (!p) {
        dst->kind = RSTATE_NONE;
        return rstate__err(RSTATE_ENOMEM, "rstate_value_copy: out of memory copying %zu bytes", src->u.s.len);
      }
      if (src->u.s.len) memcpy(p, src->u.s.ptr, src->u.s.len);
      p[src->u.s.len] = '\0';
      dst->kind = RSTATE_STRING;
      dst->u.s.ptr = p;
      dst->u.s.len = src->u.s.len;
      return RSTATE_OK;
    }
  }
  dst->kind = RSTATE_NONE;
  return rstate__err(RSTATE_EINVAL, "rstate_value_copy: unknown value kind %d", (int)src->kind);
}

void rstate_value_clear(rstate_value *v) {
  if (!v) return;
  if (v->kind == RSTATE_STRING) free((char *)v->u.s.ptr);
  memset(v, 0, sizeof *v);
}

bool rstate_value_equal(const rstate_value *a, const rstate_value *b) {
  if (!a || !b) return a == b;
  if (a->kind != b->kind) return false;
  switch (a->kind) {
    case RSTATE_NONE:
      return true;
    case RSTATE_FLOAT:
      return a->u.f == b->u.f;
    case RSTATE_INT:
      return a->u.i == b->u.i;
    case RSTATE_BOOL:
      return a->u.b == b->u.b;
    case RSTATE_STRING:
      return a->u.s.len == b->u.s.len && (a->u.s.len == 0 || memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0);
  }
  return false;
}

void rstate_free(void *p) { free(p); }

bool rstate__utf8_valid(const char *p, size_t len) {
  const unsigned char *s = (const unsigned char *)p;
  size_t i = 0;
  if (len && !s) return false;
  while (i < len) {
    unsigned c = s[i];
    if (c == 0) return false;
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      min = 0x10000;
    } else {
      return false;
    }
    if (len - i <= n) return false;
    unsigned cp = c & (0x3F >> n);
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

bool rstate__strdup_opt(char **dst, const char *src) {
  *dst = NULL;
  if (!src) return true;
  *dst = strdup(src);
  return *dst != NULL;
}

const char *rstate__value_format(const rstate_value *v, char *buf, size_t size) {
  if (!v) {
    snprintf(buf, size, "(null)");
    return buf;
  }
  switch (v->kind) {
    case RSTATE_NONE:
      snprintf(buf, size, "(none)");
      break;
    case RSTATE_FLOAT:
      /* the shortest of %.15g and %.17g that reads back as the same double */
      snprintf(buf, size, "%.15g", v->u.f);
      if (strtod(buf, NULL) != v->u.f) snprintf(buf, size, "%.17g", v->u.f);
      break;
    case RSTATE_INT:
      snprintf(buf, size, "%lld", (long long)v->u.i);
      break;
    case RSTATE_BOOL:
      snprintf(buf, size, "%s", v->u.b ? "true" : "false");
      break;
    case RSTATE_STRING: {
      size_t max = size > 8 ? size - 8 : 0;
      if (v->u.s.len <= max)
        snprintf(buf, size, "\"%.*s\"", (int)v->u.s.len, v->u.s.ptr ? v->u.s.ptr : "");
      else
        snprintf(buf, size, "\"%.*s...\"", (int)max, v->u.s.ptr);
      break;
    }
    default:
      snprintf(buf, size, "(kind %d)", (int)v->kind);
  }
  return buf;
}

/* A name or other caller text for a sentence: printable ASCII as is, other
 * bytes as \xNN, shortened with "..." when long. */
const char *rstate__quote_bytes(char *buf, size_t size, const char *p, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)p[i];
    size_t need = (c >= 0x20 && c < 0x7f && c != '\\') ? 1 : (c == '\\' ? 2 : 4);
    if (o + need + 4 > size) {
      memcpy(buf + o, "...", 3);
      o += 3;
      break;
    }
    if (need == 1) {
      buf[o++] = (char)c;
    } else if (need == 2) {
      buf[o++] = '\\';
      buf[o++] = '\\';
    } else {
      buf[o++] = '\\';
      buf[o++] = 'x';
      buf[o++] = hex[c >> 4];
      buf[o++] = hex[c & 15];
    }
  }
  buf[o] = '\0';
  return buf;
}

void rstate__history_entry_free(rstate_history_entry *e) {
  rstate_value_clear(&e->value);
  free((char *)e->source);
  for (size_t i = 0; i < e->n_meta; i++) {
    free((char *)e->meta[i].key);
    free((char *)e->meta[i].value);
  }
  free((rstate_meta *)e->meta);
}
