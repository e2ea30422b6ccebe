#!/bin/sh
# mk/layering.sh [ROOT] — fails when a file of ROOT/src (default: .) includes
# a header of a subsystem its line in ROOT/mk/layering does not name, names
# a header by a path the rule does not allow (its own folder's by the bare
# name, another folder's only as "other/other.h", that folder's one header),
# or when the table has a cycle.
# make layering runs it; make layering-selftest proves it fails on a bad tree.
root=${1:-.}
table=$root/mk/layering
[ -f "$table" ] || { echo "layering: $table is missing"; exit 1; }
rules=$(grep -v '^[[:space:]]*#' "$table" | grep -v '^[[:space:]]*$')
status=0

# The table is acyclic: tsort reports a loop otherwise.
pairs=$(echo "$rules" | awk '{ print $1, $1; for (i = 2; i <= NF; i++) print $i, $1 }')
if ! echo "$pairs" | tsort >/dev/null 2>&1; then
  loop=$(echo "$pairs" | tsort 2>&1 >/dev/null | sed -n 's/^tsort: \([^ :]*\)$/\1/p' | awk '!seen[$0]++' | tr '\n' ' ')
  echo "layering: mk/layering has a cycle (dependencies must point one way): $loop"
  status=1
fi

for dir in "$root"/src/*/; do
  folder=$(basename "$dir")
  line=$(echo "$rules" | awk -v f="$folder" '$1 == f')
  if [ -z "$line" ]; then
    echo "layering: src/$folder/ has no line in mk/layering (say which folders it may include)"
    status=1; continue
  fi
  deps=$(echo "$line" | tr -s ' \t' '  ' | cut -s -d' ' -f2-)
  allowed=" $deps "
  for file in "$dir"*.c "$dir"*.h; do
    [ -f "$file" ] || continue
    rel=src/$folder/$(basename "$file")
    # every #include "..." (not <...>) with its line number
    grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" |
      sed 's/^\([0-9]*\):[^"]*"\([^"]*\)".*/\1 \2/' > "${TMPDIR:-/tmp}/layering.$$"
    while read -r num inc; do
      case $inc in
        reactivestate.h|reactivestate/*.h) ;; # the public headers: anyone
        */*/*|../*|./*)
          echo "$rel:$num: includes \"$inc\": name another folder's header as \"folder/folder.h\""; status=1 ;;
        */*)
          other=${inc%%/*}
          if [ "$other" = "$folder" ]; then
            echo "$rel:$num: includes \"$inc\": name a header of its own folder by its bare name"; status=1
          elif [ ! -d "$root/src/$other" ]; then
            echo "$rel:$num: includes \"$inc\": src/$other/ does not exist"; status=1
          else
            case $allowed in
              *" $other "*)
                if [ "$inc" != "$other/$other.h" ]; then
                  echo "$rel:$num: includes \"$inc\": another folder is seen through its one header, \"$other/$other.h\""; status=1
                fi ;;
              *) echo "$rel:$num: includes \"$inc\": $folder/ may not depend on $other/ (mk/layering: $folder may include ${deps:-no other folder})"; status=1 ;;
            esac
          fi ;;
        *)
          if [ ! -f "$dir$inc" ]; then
            echo "$rel:$num: includes \"$inc\": not a header of src/$folder/; name another folder's as \"folder/folder.h\""; status=1
          fi ;;
      esac
    done < "${TMPDIR:-/tmp}/layering.$$"
    rm -f "${TMPDIR:-/tmp}/layering.$$"
  done
done
[ $status -eq 0 ] && echo "layering: every include in src/ follows mk/layering"
exit $status
