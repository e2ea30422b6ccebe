/*
 * library.c — the Redis Function library every write of a redis: store runs
 * in, shipped as a string and loaded (FUNCTION LOAD REPLACE) by a client
 * that finds it missing. Its name carries its format version, so clients of
 * an older format keep theirs while a newer one is loaded beside it.
 *
 * Keys (one hash tag per store, so a cluster keeps a store on one shard):
 *   rs:{S}:meta  hash: fmt, epoch (set once, random), rev, tok (last change's)
 *   rs:{S}:defs  hash: name -> the definition as the client encoded it
 *   rs:{S}:vars  hash: name -> "VERSION REVISION TIME_NS TYPE DEFREV VALUE"
 *   rs:{S}:log   stream, id "REV-0": t (token), p (previous token), ts,
 *                c (the changes), s (source, when given), m (meta, when given)
 *
 * A change's token is drawn by the writing client; the log entry names the
 * previous change's token too, so a reader that resumes after revision R
 * with token T sees whether what follows R still follows what it saw. The
 * epoch is the token of the store's first write: a store flushed and made
 * again has another one. DEFREV, the revision that defined the variable,
 * identifies its definition: a client checked a value against the
 * definition of that revision, and a set names it, so a value checked
 * against a definition since replaced is refused (STALE) and checked again.
 *
 * Numbers are doubles in Lua: revisions and versions stay below 2^53 and are
 * written back with %.0f; times come from TIME as strings.
 *
 * Sets: rstate_1_sets takes several independent requests (group commit,
 * commit.c) and decides each as rstate_1_set decides one; rstate_1_set
 * stays for clients of the previous release, which share the library.
 */
#include "redis.h"

const char *const rstate__redis_library[] = {
    "#!lua name=" RSTATE_REDIS_LIB "\n",
    "local function pk(t, s) t[#t+1] = #s .. ':' .. s end\n",
    "local function num(n) return string.format('%.0f', n) end\n",
    "local function rec(r) return string.match(r, '^(%d+) (%d+) (%d+) (%d) (%d+) (.*)$') end\n",
    "local function same(a, b)\n",
    "  if a == b then return true end\n",
    "  if string.byte(a, 1) == 102 and string.byte(b, 1) == 102 then\n",
    "    return tonumber(string.sub(a, 2)) == tonumber(string.sub(b, 2))\n",
    "  end\n",
    "  return false\n",
    "end\n",
    "local function head(K, tok)\n",
    "  local m = redis.call('HMGET', K[1], 'rev', 'tok', 'epoch')\n",
    "  if not m[3] then\n",
    "    redis.call('HSET', K[1], 'fmt', '1', 'epoch', tok, 'rev', '0', 'tok', '')\n",
    "    return 0, ''\n",
    "  end\n",
    "  return tonumber(m[1]), m[2]\n",
    "end\n",
    "local function now()\n",
    "  local t = redis.call('TIME')\n",
    "  return t[1] .. string.format('%06d', tonumber(t[2])) .. '000'\n",
    "end\n",
    /* A: 1 token, 2 source ('-' none, '+' text), 3 meta (packed), 4 log length */
    "local function commit(K, A, rev, prev, ts, c)\n",
    "  local r = num(rev)\n",
    "  redis.call('HSET', K[1], 'rev', r, 'tok', A[1])\n",
    "  local x = {'XADD', K[4], 'MAXLEN', '~', A[4], r .. '-0', 't', A[1], 'p', prev, 'ts', ts,\n",
    "             'c', table.concat(c)}\n",
    "  if A[2] ~= '-' then x[#x+1] = 's'; x[#x+1] = A[2] end\n",
    "  if A[3] ~= '' then x[#x+1] = 'm'; x[#x+1] = A[3] end\n",
    "  redis.call(unpack(x))\n",
    "  return r\n",
    "end\n",
    /* 5 name, 6 definition, 7 type, 8 initial value */
    "local function define(K, A)\n",
    "  local cur = redis.call('HGET', K[3], A[5])\n",
    "  if cur then\n",
    "    if redis.call('HGET', K[2], A[5]) == A[6] then return {'SAME'} end\n",
    "    local _, _, _, ty = rec(cur)\n",
    "    return {'EEXIST', ty}\n",
    "  end\n",
    "  local rev, prev = head(K, A[1])\n",
    "  rev = rev + 1\n",
    "  local ts, r = now(), num(rev)\n",
    "  redis.call('HSET', K[2], A[5], A[6])\n",
    "  redis.call('HSET', K[3], A[5], '1 ' .. r .. ' ' .. ts .. ' ' .. A[7] .. ' ' .. r .. ' ' .. A[8])\n",
    "  local c = {}\n",
    "  pk(c, 'D'); pk(c, A[7]); pk(c, '1'); pk(c, A[5]); pk(c, ''); pk(c, A[8])\n",
    "  return {'OK', commit(K, A, rev, prev, ts, c)}\n",
    "end\n",
    /* 5 name */
    "local function undefine(K, A)\n",
    "  local cur = redis.call('HGET', K[3], A[5])\n",
    "  if not cur then return {'NOTFOUND', '0'} end\n",
    "  local ver, _, _, ty, _, enc = rec(cur)\n",
    "  local rev, prev = head(K, A[1])\n",
    "  rev = rev + 1\n",
    "  local ts = now()\n",
    "  redis.call('HDEL', K[2], A[5])\n",
    "  redis.call('HDEL', K[3], A[5])\n",
    "  local c = {}\n",
    "  pk(c, 'X'); pk(c, ty); pk(c, ver); pk(c, A[5]); pk(c, enc); pk(c, '')\n",
    "  return {'OK', commit(K, A, rev, prev, ts, c)}\n",
    "end\n",
    /* One set request: A[b] count, then per item: name, defrev, expected version ('0' any), value, bad ('1': the
     * client refused the value: answer BAD once the item passed the checks made here). st carries the head of
     * the store (rev, prev, ts) across the requests of one call: read once, written back once (flush). */
    "local function set1(K, st, tok, src, meta, maxlen, A, b0)\n",
    "  local n, seen, ch = tonumber(A[b0]), {}, {}\n",
    "  for i = 0, n - 1 do\n",
    "    local b = b0 + 1 + i * 5\n",
    "    local name = A[b]\n",
    "    local cur = redis.call('HGET', K[3], name)\n",
    "    if not cur then return {'NOTFOUND', tostring(i)} end\n",
    "    if seen[name] then return {'TWICE', tostring(i)} end\n",
    "    seen[name] = true\n",
    "    local ver, _, _, ty, drev, enc = rec(cur)\n",
    "    if drev ~= A[b + 1] then return {'STALE', tostring(i)} end\n",
    "    if A[b + 2] ~= '0' and A[b + 2] ~= ver then return {'CONFLICT', tostring(i), ver} end\n",
    "    if A[b + 4] == '1' then return {'BAD', tostring(i)} end\n",
    "    if not same(enc, A[b + 3]) then ch[#ch + 1] = {name, ver, ty, drev, enc, A[b + 3]} end\n",
    "  end\n",
    "  if #ch == 0 then return {'SAME'} end\n",
    "  if not st.rev then st.rev, st.prev = head(K, tok); st.ts = now() end\n",
    "  st.rev = st.rev + 1\n",
    "  local ts, r, c = st.ts, num(st.rev), {}\n",
    "  for j = 1, #ch do\n",
    "    local x = ch[j]\n",
    "    local v = num(tonumber(x[2]) + 1)\n",
    "    redis.call('HSET', K[3], x[1], v .. ' ' .. r .. ' ' .. ts .. ' ' .. x[3] .. ' ' .. x[4] .. ' ' .. x[6])\n",
    "    pk(c, 'C'); pk(c, x[3]); pk(c, v); pk(c, x[1]); pk(c, x[5]); pk(c, x[6])\n",
    "  end\n",
    "  local x = {'XADD', K[4], 'MAXLEN', '~', maxlen, r .. '-0', 't', tok, 'p', st.prev, 'ts', ts, 'c', table.concat(c)}\n",
    "  if src ~= '-' then x[#x+1] = 's'; x[#x+1] = src end\n",
    "  if meta ~= '' then x[#x+1] = 'm'; x[#x+1] = meta end\n",
    "  redis.call(unpack(x))\n",
    "  st.prev, st.dirty = tok, true\n",
    "  return {'OK', r}\n",
    "end\n",
    "local function flush(K, st)\n",
    "  if st.dirty then redis.call('HSET', K[1], 'rev', num(st.rev), 'tok', st.prev) end\n",
    "end\n",
    /* A: 1 token, 2 source ('-' none, '+' text), 3 meta (packed), 4 log length, 5.. one request */
    "local function set(K, A)\n",
    "  local st = {}\n",
    "  local out = set1(K, st, A[1], A[2], A[3], A[4], A, 5)\n",
    "  flush(K, st)\n",
    "  return out\n",
    "end\n",
    /* Group commit: A: 1 log length, 2 the number of requests, then each request: token, source, meta, count,
     * items (as set's). Each request is decided alone, in order, with its own revision and answer: one refused
     * does not refuse the others. The answers, in the order of the requests. */
    "local function sets(K, A)\n",
    "  local st, out, b = {}, {}, 3\n",
    "  for q = 1, tonumber(A[2]) do\n",
    "    out[q] = set1(K, st, A[b], A[b + 1], A[b + 2], A[1], A, b + 3)\n",
    "    b = b + 4 + tonumber(A[b + 3]) * 5\n",
    "  end\n",
    "  flush(K, st)\n",
    "  return out\n",
    "end\n",
    /* the revision, then each variable's record (nil when absent) */
    "local function get(K, A)\n",
    "  local out = {redis.call('HGET', K[1], 'rev') or '0'}\n",
    "  for i = 1, #A do out[i + 1] = redis.call('HGET', K[3], A[i]) end\n",
    "  return out\n",
    "end\n",
    /* rev, token, epoch, then name, record pairs */
    "local function snap(K, A)\n",
    "  local m = redis.call('HMGET', K[1], 'rev', 'tok', 'epoch')\n",
    "  return {m[1] or '0', m[2] or '', m[3] or '', redis.call('HGETALL', K[3])}\n",
    "end\n",
    /* per name: definition, record (nil when absent) */
    "local function defs(K, A)\n",
    "  local out = {}\n",
    "  for i = 1, #A do\n",
    "    out[2 * i - 1] = redis.call('HGET', K[2], A[i])\n",
    "    out[2 * i] = redis.call('HGET', K[3], A[i])\n",
    "  end\n",
    "  return out\n",
    "end\n",
    "redis.register_function('" RSTATE_REDIS_LIB "_define', define)\n",
    "redis.register_function('" RSTATE_REDIS_LIB "_undefine', undefine)\n",
    "redis.register_function('" RSTATE_REDIS_LIB "_set', set)\n",
    "redis.register_function('" RSTATE_REDIS_LIB "_sets', sets)\n",
    "redis.register_function{function_name='" RSTATE_REDIS_LIB "_get', callback=get, flags={'no-writes'}}\n",
    "redis.register_function{function_name='" RSTATE_REDIS_LIB "_snap', callback=snap, flags={'no-writes'}}\n",
    "redis.register_function{function_name='" RSTATE_REDIS_LIB "_defs', callback=defs, flags={'no-writes'}}\n",
    NULL,
};
