# report.awk — the tables of bench/RESULTS.md, from bench/results/summary.tsv
# (see summarize.awk for its columns).
#
#   awk -v notes=bench/notes.md -v prev=PREV_SUMMARY -f bench/report.awk \
#       bench/notes.md PREV_SUMMARY bench/results/summary.tsv
#
# notes.md holds one "## <figure id>" section per target, with the diagnosis
# shown when that target is MISSED (its first line is the short reason in
# the targets table). PREV_SUMMARY is the previous run's summary (or
# /dev/null): the noise section compares the two runs. POSIX awk (mawk).

BEGIN { FS = OFS = "\t" }

FILENAME == notes {
  if ($0 ~ /^## /) { nid = substr($0, 4); sub(/[ \t]+$/, "", nid); next }
  if (nid == "") next
  if (!(nid in short) && $0 != "") short[nid] = $0
  note[nid] = note[nid] $0 "\n"
  next
}

FILENAME == prev { prevval[$1] = $7; next }

{
  key = $1; order[++nkeys] = key
  prog[key] = $2; id[key] = $3; label[key] = $4; unit[key] = $5; runs[key] = $6
  val[key] = $7; wall[key] = $8; p50[key] = $9; p99[key] = $10; mx[key] = $11
  floor_id[key] = $12; fv[key] = $13; ratio[key] = $14; spread[key] = $15
  cmp[key] = $16; target[key] = $17; status[key] = $18
  if (!(prog[key] in progseen)) { progseen[prog[key]] = 1; progs[++nprogs] = prog[key] }
}

function abs(x) { return x < 0 ? -x : x }

# A time in ns, three significant digits, in ns or us.
function t(x) {
  if (x == "-" || x == "") return "-"
  x += 0
  if (x >= 1e6) return sprintf("%.2f ms", x / 1e6)
  if (x >= 1e4) return sprintf("%.1f µs", x / 1e3)
  if (x >= 100) return sprintf("%.0f ns", x)
  if (x >= 10) return sprintf("%.1f ns", x)
  return sprintf("%.2f ns", x)
}

# A figure in its unit.
function f(x, u,    rest) {
  if (x == "-" || x == "") return "-"
  x += 0
  if (u ~ /^ns/) {
    rest = substr(u, 3)
    return t(x) rest
  }
  if (u ~ /\/s$/) {
    if (x >= 1e6) return sprintf("%.2f M %s", x / 1e6, u)
    return sprintf("%.0f k %s", x / 1e3, u)
  }
  if (u == "B") return sprintf("%.0f B", x)
  if (u == "x") return sprintf("%.2f×", x)
  return sprintf("%.4g %s", x, u)
}

function target_cell(key,    c) {
  if (cmp[key] != "<" && cmp[key] != ">") return ""
  c = (cmp[key] == "<" ? "≤ " : "≥ ") f(target[key], unit[key])
  return c " " (status[key] == "MET" ? "MET" : "**MISSED**")
}

function floor_cell(key) {
  if (floor_id[key] == "-" || floor_id[key] == "") return ""
  if (floor_id[key] == "payload") return "payload " f(fv[key], "B")
  return floor_id[key] " " t(fv[key])
}

function ratio_cell(key) {
  return ratio[key] == "-" ? "" : sprintf("%.1f×", ratio[key])
}

function spread_cell(key) {
  return spread[key] == "-" ? "" : sprintf("%.1f %%", spread[key])
}

function find(p, i,    k) {
  for (k = 1; k <= nkeys; k++) if (order[k] == p "/" i) return order[k]
  return ""
}

function peer_row(what, ours_key, peer_name, peer_key,    r, cmpw) {
  if (ours_key == "" || peer_key == "") return
  r = val[peer_key] / val[ours_key]
  cmpw = r >= 1 ? sprintf("ours %.1f× faster", r) : sprintf("theirs %.1f× faster", 1 / r)
  printf "| %s | %s (p50 %s) | %s | %s (p50 %s) | %s |\n", what, f(val[ours_key], unit[ours_key]), t(p50[ours_key]),
         peer_name, f(val[peer_key], unit[peer_key]), t(p50[peer_key]), cmpw
}

# A row of the remote peers' table: our figure as its remote_* program
# measured it (oprog, id oid), ours and a peer's as peers_remote measured
# them in turns (ids hid, pid), the ratio of those two (in cost terms: time,
# or time per event for a rate), and the floor its own run measured beside
# each of the two programs.
function remote_row(what, oprog, oid, hid, peer_name, pid,    ok, hk, pk, r, cmpw, fl) {
  pk = find("peers_remote", pid)
  if (pk == "") return
  ok = find(oprog, oid)
  hk = find("peers_remote", hid)
  cmpw = ""
  if (hk != "" && val[hk] != "-" && val[pk] != "-" && val[hk] + 0 > 0 && val[pk] + 0 > 0) {
    r = unit[pk] ~ /\/s$/ ? val[hk] / val[pk] : val[pk] / val[hk]
    if (r < 1.05 && r > 1 / 1.05) cmpw = "the same within 5 %"
    else cmpw = r >= 1 ? sprintf("ours %.1f× faster", r) : sprintf("theirs %.1f× faster", 1 / r)
  }
  fl = ""
  if (floor_id[pk] != "-" && floor_id[pk] != "")
    fl = "`" floor_id[pk] "` " (ok != "" && floor_id[ok] == floor_id[pk] ? t(fv[ok]) : "-") " / " t(fv[pk])
  printf "| %s | %s | %s | %s | %s | %s | %s |\n", what, ok == "" ? "-" : f(val[ok], unit[ok]),
         hk == "" ? "-" : f(val[hk], unit[hk]), peer_name, f(val[pk], unit[pk]), cmpw, fl
}

# A row of the durable peers' table: ours in process, ours through a
# server, Redis (peers_file.c); the ratio of Redis's cost to ours over the
# socket (time per set, or per set of a rate).
function durable_row(what, oid, uid, pid,    ok, uk, pk, r, cmpw, cell) {
  pk = find("peers_file", pid)
  if (pk == "") return
  ok = find("peers_file", oid)
  uk = find("peers_file", uid)
  cmpw = ""
  if (uk != "" && val[uk] + 0 > 0 && val[pk] + 0 > 0) {
    r = unit[pk] ~ /\/s$/ ? val[uk] / val[pk] : val[pk] / val[uk]
    if (r < 1.05 && r > 1 / 1.05) cmpw = "the same within 5 %"
    else cmpw = r >= 1 ? sprintf("ours %.1f× faster", r) : sprintf("Redis %.1f× faster", 1 / r)
  }
  printf "| %s | %s | %s | %s | %s |\n", what, durable_cell(ok), durable_cell(uk), durable_cell(pk), cmpw
}

function durable_cell(k) {
  if (k == "") return "-"
  if (unit[k] ~ /\/s$/) return f(val[k], unit[k])
  return t(val[k]) " (p99 " t(p99[k]) ")"
}

END {
  # ---- targets
  print "## Targets"
  print ""
  print "| Figure | Ours (mean) | p50 | Target | Why, when missed |"
  print "|---|---|---|---|---|"
  for (k = 1; k <= nkeys; k++) {
    key = order[k]
    if (cmp[key] != "<" && cmp[key] != ">") continue
    why = ""
    if (status[key] == "MISSED") why = (id[key] in short) ? short[id[key]] " (notes: `" id[key] "`)" : "no note yet"
    printf "| %s | %s | %s | %s | %s |\n", label[key], f(val[key], unit[key]), t(p50[key]), target_cell(key), why
  }
  print ""

  # ---- peers
  pk = find("peers", "peer.gs.get")
  if (pk != "") {
    print "## Beside the peers (same machine, same run)"
    print ""
    print "Our figure and what a user would pick instead, measured by `bench/peers.c` with the same harness"
    print "(batches of 100, CPU-time mean, wall-clock percentiles). GSettings uses its memory backend"
    print "(`GSETTINGS_BACKEND=memory`, a schema compiled into a temporary directory); both peers deliver"
    print "synchronously on the setting thread, as our inline watchers do."
    print ""
    print "| Operation | libreactivestate | Peer | Peer's figure | Ratio |"
    print "|---|---|---|---|---|"
    peer_row("get of a float", find("get", "get.float"), "GSettings `g_settings_get_double`", pk)
    peer_row("set, no watcher", find("set", "set.value"), "GSettings `g_settings_set_double`, no handler", find("peers", "peer.gs.set"))
    peer_row("set, no watcher", find("set", "set.value"), "GObject `g_object_set`, no handler", find("peers", "peer.go.set"))
    peer_row("set + one watcher", find("set_watch", "set.watch1"), "GSettings set → `changed::key` handler", find("peers", "peer.gs.set1"))
    peer_row("set + one watcher", find("set_watch", "set.watch1"), "GObject `g_object_set` → `notify::value`", find("peers", "peer.go.notify"))
    peer_row("set + one watcher", find("set_watch", "set.watch1"), "GObject setter + `g_object_notify_by_pspec`", find("peers", "peer.go.pspec"))
    peer_row("fan-out to 1,000 watchers, per event", find("fanout", "fanout.1000"), "GSettings, 1,000 `changed` handlers", find("peers", "peer.gs.fan1000"))
    print ""
  }

  # ---- remote peers
  if (find("peers_remote", "peer.redis.unix.p50") != "") {
    print "## Beside the remote peers (same machine, same run)"
    print ""
    print "The peers issue 5 quotes, measured by `bench/peers_remote.c` the way the `remote_*` programs measure"
    print "us: the program starts its own servers (Debian's packages, loopback or a socket in /tmp, nothing"
    print "persisted) and talks to them with minimal clients of its own, each subscriber's connection read by"
    print "a blocked thread of its own, whose clock read on the whole parsed message is the arrival. A latency"
    print "sample is one change, the setter waiting for its reply and for the arrival before the next."
    print "The same program measures ours again **in turns** with the peers (one sample each, round after"
    print "round): on this guest a wakeup costs several times more while the vCPUs are idle than while they"
    print "are busy, and the state changes between and within programs, so the `remote_*` figure (second"
    print "column) can come from another state than the peers'; the ratio compares the two figures taken in"
    print "turns. Floor: as measured beside the `remote_*` figure / beside the figures taken in turns."
    print "NATS has no Unix socket: its figures are over tcp: only."
    print ""
    print "| Figure | Ours (`remote_*`) | Ours, in turns | Peer, in turns | Peer's figure | Ratio (in turns) | Floor |"
    print "|---|---|---|---|---|---|---|"
    remote_row("set on A → B notified, unix:, p50", "remote_latency", "remote.unix.p50", "ours.unix.p50", "Redis SET → keyspace message", "peer.redis.unix.p50")
    remote_row("set on A → B notified, unix:, p99", "remote_latency", "remote.unix.p99", "ours.unix.p99", "Redis SET → keyspace message", "peer.redis.unix.p99")
    remote_row("set on A → B notified, tcp:, p50", "remote_latency", "remote.tcp.p50", "ours.tcp.p50", "Redis SET → keyspace message", "peer.redis.tcp.p50")
    remote_row("set on A → B notified, tcp:, p50", "remote_latency", "remote.tcp.p50", "ours.tcp.p50", "NATS JetStream KV put → watch", "peer.nats.kv.tcp.p50")
    remote_row("set on A → B notified, tcp:, p50", "remote_latency", "remote.tcp.p50", "ours.tcp.p50", "NATS core PUB → SUB", "peer.nats.core.tcp.p50")
    remote_row("set on A, call to its reply, unix:", "remote_latency", "remote.unix.set", "ours.unix.set", "Redis SET → +OK", "peer.redis.unix.set")
    remote_row("set on A, call to its reply, tcp:", "remote_latency", "remote.tcp.set", "ours.tcp.set", "Redis SET → +OK", "peer.redis.tcp.set")
    remote_row("set on A, call to its reply, tcp:", "remote_latency", "remote.tcp.set", "ours.tcp.set", "NATS KV put → JetStream ack", "peer.nats.kv.tcp.set")
    remote_row("change events/s to one watching client", "remote_throughput", "remote.stream", "ours.stream", "Redis, SETs pipelined 100 a write, unix:", "peer.redis.stream")
    remote_row("change events/s to one watching client", "remote_throughput", "remote.stream", "ours.stream", "NATS core, PUBs 100 a write, tcp:", "peer.nats.stream")
    remote_row("CPU per streamed event, server and clients", "remote_throughput", "remote.stream.cpu", "ours.stream.cpu", "Redis", "peer.redis.stream.cpu")
    remote_row("CPU per streamed event, server and clients", "remote_throughput", "remote.stream.cpu", "ours.stream.cpu", "NATS core", "peer.nats.stream.cpu")
    remote_row("one change → last of 100 clients, p50", "remote_fanout", "remote.fanout100", "ours.fan100", "Redis, 100 subscribers, unix:", "peer.redis.fan100")
    remote_row("one change → last of 100 clients, p50", "remote_fanout", "remote.fanout100", "ours.fan100", "NATS core, 100 subscribers, tcp:", "peer.nats.fan100")
    remote_row("one change → first of 100 clients, p50", "remote_fanout", "remote.fanout100.first", "ours.fan100.first", "Redis, unix:", "peer.redis.fan100.first")
    remote_row("one change → first of 100 clients, p50", "remote_fanout", "remote.fanout100.first", "ours.fan100.first", "NATS core, tcp:", "peer.nats.fan100.first")
    print ""
  }

  # ---- durable writes beside Redis
  if (find("peers_file", "peer.redis.always.set") != "") {
    print "## Durable writes beside Redis (same machine, same run)"
    print ""
    print "Measured by `bench/peers_file.c`: it starts Debian's redis-server in a temporary directory (a Unix"
    print "socket only, `appendonly yes`, `appendfsync` switched between `always` and `everysec`) and our"
    print "`file:` stores in the same directory, ours called in process and through a server on a `unix:`"
    print "socket (the code rstated runs), all three **in turns** (a few samples of each per round). One"
    print "set: each timed alone, wall clock, p50 (p99 beside it). 16 clients: sets/s, each client its own"
    print "connection and thread (in process: 16 threads on the store), median of 3 rounds."
    print "Ratio: Redis's time per set over ours, through the server (the same socket hop as Redis's)."
    print ""
    print "| Figure | Ours, in process | Ours, unix: | Redis, unix: | Ratio (unix:) |"
    print "|---|---|---|---|---|"
    durable_row("one set, SYNC_ALWAYS / appendfsync always, p50", "ours.always.set", "ours.always.unix.set", "peer.redis.always.set")
    durable_row("one set, SYNC_INTERVAL / appendfsync everysec, p50", "ours.interval.set", "ours.interval.unix.set", "peer.redis.everysec.set")
    durable_row("16 clients, SYNC_ALWAYS / always", "ours.always.t16", "ours.always.unix.t16", "peer.redis.always.t16")
    durable_row("16 clients, SYNC_INTERVAL / everysec", "ours.interval.t16", "ours.interval.unix.t16", "peer.redis.everysec.t16")
    ik = find("peers_file", "ours.always.t16.per_sync"); uk = find("peers_file", "ours.always.unix.t16.per_sync")
    if (ik != "" && uk != "") printf "\nSets per fdatasync, 16 clients with SYNC_ALWAYS: %.1f in process, %.1f through the server (notes: `peers_file`).\n", val[ik], val[uk]
    fk = find("peers_file", "floor.fdatasync")
    if (fk != "") printf "\nThe disk's floor in the same run: a pwrite of 64 bytes appended + fdatasync, p50 %s (p99 %s).\n", t(p50[fk]), t(p99[fk])
    print ""
  }

  # ---- every figure
  print "## Every figure"
  print ""
  print "Per program, in the order they ran. mean: CPU time per operation (see Method); p50 / p99 / max:"
  print "wall-clock time per operation of each batch; floor: the machine's own cost for that operation,"
  print "measured in the same process; ratio: mean / floor; spread: (largest - smallest) / median of the"
  print "figure over the measured runs."
  for (p = 1; p <= nprogs; p++) {
    print ""
    printf "### %s (`bench/%s.c`)\n\n", progs[p], progs[p]
    print "| Figure | mean | wall mean | p50 | p99 | max | floor | ratio | spread | target |"
    print "|---|---|---|---|---|---|---|---|---|---|"
    for (k = 1; k <= nkeys; k++) {
      key = order[k]
      if (prog[key] != progs[p]) continue
      lab = id[key] ~ /^floor\./ ? "*" label[key] "*" : label[key]
      w = (wall[key] == "-" || wall[key] == val[key]) ? "" : t(wall[key])
      printf "| %s `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", lab, id[key], f(val[key], unit[key]), w,
             t(p50[key]), t(p99[key]), t(mx[key]), floor_cell(key), ratio_cell(key), spread_cell(key), target_cell(key)
    }
  }
  print ""

  # ---- noise
  print "## Noise"
  print ""
  ns = 0
  for (k = 1; k <= nkeys; k++) {
    key = order[k]
    if (spread[key] == "-" || unit[key] == "B") continue
    s[++ns] = spread[key] + 0
  }
  for (i = 2; i <= ns; i++) { x = s[i]; for (j = i - 1; j >= 1 && s[j] > x; j--) s[j + 1] = s[j]; s[j + 1] = x }
  if (ns) {
    i90 = int(ns * 0.9 + 0.5); if (i90 < 1) i90 = 1
    printf "- Within this run: the spread (largest - smallest) / median of a figure over its %d measured runs\n", runs[order[1]]
    printf "  is %.1f %% at the median, %.1f %% at the 90th percentile and %.1f %% at worst, over %d figures.\n", s[int((ns + 1) / 2)], s[i90], s[ns], ns
  }
  nd = 0
  for (k = 1; k <= nkeys; k++) {
    key = order[k]
    if (!(key in prevval) || prevval[key] == "-" || val[key] == "-" || prevval[key] + 0 == 0 || unit[key] == "B") continue
    d = (val[key] - prevval[key]) / prevval[key] * 100
    dd[++nd] = abs(d)
  }
  for (i = 2; i <= nd; i++) { x = dd[i]; for (j = i - 1; j >= 1 && dd[j] > x; j--) dd[j + 1] = dd[j]; dd[j + 1] = x }
  if (nd) {
    i90 = int(nd * 0.9 + 0.5); if (i90 < 1) i90 = 1
    printf "- Against the previous run (%s): the medians moved by\n", prev_desc
    printf "  %.1f %% at the median, %.1f %% at the 90th percentile and %.1f %% at worst, over %d figures.\n", dd[int((nd + 1) / 2)], dd[i90], dd[nd], nd
  } else {
    print "- No previous run to compare with: run `make bench` again to see the run-to-run noise."
  }
  print "- Memory figures (bytes) are exact and do not move."
  print ""
  print "| Target figure | This run | Spread within the run | Previous run | Change |"
  print "|---|---|---|---|---|"
  for (k = 1; k <= nkeys; k++) {
    key = order[k]
    if ((cmp[key] != "<" && cmp[key] != ">") || unit[key] == "B") continue
    pv = (key in prevval) ? prevval[key] : "-"
    ch = (pv != "-" && pv + 0 != 0 && val[key] != "-") ? sprintf("%+.1f %%", (val[key] - pv) / pv * 100) : ""
    printf "| %s `%s` | %s | %s | %s | %s |\n", label[key], id[key], f(val[key], unit[key]), spread_cell(key), f(pv, unit[key]), ch
  }
  print ""

  # ---- notes for the missed targets
  any = 0
  for (k = 1; k <= nkeys; k++) {
    key = order[k]
    if (status[key] != "MISSED") continue
    if (!any) { print "## Notes on the missed targets"; print ""; any = 1 }
    printf "### `%s`: %s, %s against %s\n\n", id[key], label[key], f(val[key], unit[key]), target_cell(key)
    if (id[key] in note) printf "%s\n", note[id[key]]
    else print "No diagnosis written yet (bench/notes.md).\n"
  }
}
