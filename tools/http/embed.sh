#!/bin/sh
# embed.sh FILE SYMBOL — writes C source holding FILE's bytes as
#   const unsigned char SYMBOL[]; const size_t SYMBOL_len;
# (used for the live page, tools/http/page.html, at build time).
set -e
printf '/* generated from %s by tools/http/embed.sh: do not edit */\n#include <stddef.h>\n' "$1"
printf 'const unsigned char %s[] = {\n' "$2"
od -An -v -tx1 "$1" | sed -e 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g' -e 's/^/ /'
printf '0x00};\nconst size_t %s_len = sizeof %s - 1;\n' "$2" "$2"
