#!/bin/sh
# mk/layering-test.sh — proves mk/layering.sh catches what it must: on a
# scratch copy of src/ and mk/layering, each bad change below must make it
# fail with its sentence, and the copy as it is must pass.
# make layering-selftest runs it (part of make check).
here=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/layering-test.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
fails=0

fresh() {
  rm -rf "$scratch/src" "$scratch/mk"
  mkdir -p "$scratch/mk"
  cp -R "$here/src" "$scratch/src"
  cp "$here/mk/layering" "$scratch/mk/layering"
}

# expect WHAT SENTENCE: the check must fail and print SENTENCE
expect() {
  if out=$(sh "$here/mk/layering.sh" "$scratch" 2>&1); then
    echo "layering-selftest: FAIL: $1 passed the check"; fails=$((fails + 1))
  elif ! echo "$out" | grep -qF -- "$2"; then
    echo "layering-selftest: FAIL: $1: expected \"$2\", got: $out"; fails=$((fails + 1))
  else
    echo "layering-selftest: ok: $1 -> $(echo "$out" | grep -F -- "$2" | head -1)"
  fi
}

fresh
if ! out=$(sh "$here/mk/layering.sh" "$scratch" 2>&1); then
  echo "layering-selftest: FAIL: the tree as it is fails: $out"; fails=$((fails + 1))
fi

fresh; printf '#include "core/core.h"\n' >> "$scratch/src/wire/codec.c"
n=$(wc -l < "$scratch/src/wire/codec.c" | tr -d ' ')
expect "the codec including the front end" \
  "src/wire/codec.c:$n: includes"' "core/core.h": wire/ may not depend on core/'

fresh; printf '#include "server/history.h"\n' >> "$scratch/src/core/core.h"
expect "the front end including the server" \
  'core/ may not depend on server/'

fresh; printf '#include "store.h"\n' >> "$scratch/src/server/request.c"
expect "another folder's header by its bare name" \
  'includes "store.h": not a header of src/server/'

fresh; printf '#include "core/store.h"\n' >> "$scratch/src/server/request.c"
expect "another folder's inner header (the store object)" \
  'includes "core/store.h": another folder is seen through its one header, "core/core.h"'

fresh; printf '#include "../core/core.h"\n' >> "$scratch/src/net/sock.c"
expect "a relative path" 'includes "../core/core.h": name another folder'\''s header as "folder/folder.h"'

fresh; mkdir "$scratch/src/newpart"; printf 'int x;\n' > "$scratch/src/newpart/x.c"
expect "a folder with no line" 'src/newpart/ has no line in mk/layering'

fresh; sed 's/^util$/util core/' "$here/mk/layering" > "$scratch/mk/layering"
expect "a table with a cycle" 'has a cycle'

if [ $fails -ne 0 ]; then echo "layering-selftest: $fails failed"; exit 1; fi
echo "layering-selftest: the check fails on each bad include and passes on the tree"
