# summarize.awk — folds the lines every benchmark run appended to
# bench/results/raw.tsv into one line per figure (bench/results/summary.tsv).
#
#   awk -v warmup=N -f bench/summarize.awk bench/results/raw.tsv
#
# Input columns (bench.h, bench_row): prog pid id label unit value wall p50
# p99 max floor floor_value ratio cmp target. Each program invocation is one
# pid; hyperfine runs a program `warmup` times before its measured runs, so
# the first `warmup` pids of each program are skipped.
#
# Output columns: key prog id label unit runs value wall p50 p99 max floor
# floor_value ratio spread cmp target status — the median over the runs of
# each figure (max: the largest), spread = (largest - smallest) / median of
# the runs' values, in percent; status MET / MISSED / "-".
# POSIX awk (mawk): no asort, so medians sort by insertion.

BEGIN { FS = OFS = "\t" }

{
  prog = $1
  if (!((prog, $2) in seen)) seen[prog, $2] = ++invocations[prog]
  if (seen[prog, $2] <= warmup) next
  key = prog "/" $3
  if (!(key in label)) {
    order[++nkeys] = key
    progof[key] = prog; idof[key] = $3; label[key] = $4; unit[key] = $5
    floor_id[key] = $11; cmp[key] = $14; target[key] = $15
  }
  n = ++count[key]
  v[key, n] = $6; wall[key, n] = $7; p50[key, n] = $8; p99[key, n] = $9
  mx[key, n] = $10; fv[key, n] = $12; rt[key, n] = $13
}

# Median of arr[key, 1..n], "-" entries ignored; "-" when none.
function median(arr, key, n,    a, m, i, j, t) {
  m = 0
  for (i = 1; i <= n; i++) if (arr[key, i] != "-") a[++m] = arr[key, i] + 0
  if (m == 0) return "-"
  for (i = 2; i <= m; i++) {
    t = a[i]
    for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
    a[j + 1] = t
  }
  return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}

function extreme(arr, key, n, want_max,    i, x, have) {
  have = 0
  for (i = 1; i <= n; i++) {
    if (arr[key, i] == "-") continue
    if (!have || (want_max ? arr[key, i] + 0 > x : arr[key, i] + 0 < x)) x = arr[key, i] + 0
    have = 1
  }
  return have ? x : "-"
}

function num(x) { return x == "-" ? "-" : sprintf("%.6g", x) }

END {
  for (k = 1; k <= nkeys; k++) {
    key = order[k]; n = count[key]
    val = median(v, key, n)
    hi = extreme(v, key, n, 1); lo = extreme(v, key, n, 0)
    spread = (val != "-" && val + 0 != 0) ? (hi - lo) / val * 100 : "-"
    status = "-"
    if (cmp[key] == "<") status = (val + 0 <= target[key] + 0) ? "MET" : "MISSED"
    if (cmp[key] == ">") status = (val + 0 >= target[key] + 0) ? "MET" : "MISSED"
    print key, progof[key], idof[key], label[key], unit[key], n, num(val), num(median(wall, key, n)),
          num(median(p50, key, n)), num(median(p99, key, n)), num(extreme(mx, key, n, 1)), floor_id[key],
          num(median(fv, key, n)), num(median(rt, key, n)), num(spread), cmp[key], target[key], status
  }
}
