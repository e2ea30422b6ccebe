/*
 * library.c — the Redis Function library every write of a redis: store runs
 * in, shipped as a string and loaded (FUNCTION LOAD REPLACE) by a client
 * that finds it missing. Its name carries its version (Versions, below):
 * clients of an older one keep theirs while a newer one is loaded beside it.
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
 * Failures: Redis does not undo a function's writes when it raises, so
 * every write of a change comes after everything that can raise. A change
 * first reads what it decides on (which also proves each hash it will
 * write is a hash), then appends its log entry (XADD: a log of another
 * type, or one that moved past the head, raises here, before anything of
 * the change is written), then writes the records, which cannot raise.
 * The head (rev, tok; fmt and epoch for a new store) is kept in a local
 * while the call runs and written back last, so the head, the log and the
 * records agree whatever raised.
 *
 * Permissions: Redis checks the user's ACL at each command a function
 * runs, and a command it refuses raises like any other. The reads come
 * first, so one refused has written nothing; the writes are checked
 * before the first of them (redis.acl_check_cmd, once per call: the ACL
 * cannot change while a function runs), and a change the user may not
 * write whole is answered NOPERM, naming the command and the key refused,
 * having written nothing. A change that writes nothing (a set of the
 * stored value, a refused check) needs no write permission.
 *
 * Sets: rstate_3_sets takes several independent requests (group commit,
 * commit.c) and decides each alone, in order, in a protected call (pcall):
 * a request that raises (a key of another type, a record this library did
 * not write, anything) is answered {'ERR', Redis's sentence, the item to
 * blame when there is one}, has changed nothing, and the requests before
 * and after it keep their answers and changes. A call whose arguments do
 * not parse runs nothing.
 *
 * Versions: the name (RSTATE_REDIS_LIB, "rstate_N") carries the version of
 * the functions' arguments, answers and behaviour; it changes with any of
 * them, so a client never runs a library of another version, and a client
 * with a fixed library finds its functions missing ("Function not found")
 * on a server that has only the older one and loads its own beside it.
 * Clients of both versions then share a store: the keys' layout is
 * versioned apart (fmt in rs:{S}:meta, still 1). rstate_3 (this one): the
 * writes are checked against the user's ACL before the first (NOPERM).
 * rstate_2: a user allowed some of a change's writes and not others could
 * leave a log entry without its records; a request that raises is
 * answered ERR alone; the single set is gone (every set goes through
 * sets). rstate_1: a raise inside a call could leave part of it written.
 */
#include "redis.h"

const char *const rstate__redis_library[] = {
    "#!lua name=" RSTATE_REDIS_LIB "\n",
    "local function num(n) return string.format('%.0f', n) end\n",
    /* A variable's record by its parts; one this library did not write raises. */
    "local function rec(K, name, r)\n",
    "  local ver, rev, ts, ty, drev, enc = string.match(r, '^(%d+) (%d+) (%d+) (%d) (%d+) (.*)$')\n",
    "  if not ver then error({err = 'ERR the record of ' .. name .. ' in ' .. K[3] .. ' is malformed'}) end\n",
    "  return ver, rev, ts, ty, drev, enc\n",
    "end\n",
    "local function same(a, b)\n",
    "  if a == b then return true end\n",
    "  if string.byte(a, 1) == 102 and string.byte(b, 1) == 102 then\n",
    "    return tonumber(string.sub(a, 2)) == tonumber(string.sub(b, 2))\n",
    "  end\n",
    "  return false\n",
    "end\n",
    /* The store's head into st, read once per call: rev, prev (the last change's token), ts (one TIME reading),
     * fresh (no head yet: the first change's token becomes the epoch). Written back by flush, once, last. */
    "local function head(K, st)\n",
    "  local m = redis.call('HMGET', K[1], 'rev', 'tok', 'epoch')\n",
    "  local t = redis.call('TIME')\n",
    "  local rev = 0\n",
    "  if m[3] then rev = tonumber(m[1]) end\n",
    "  if not rev then error({err = 'ERR the revision in ' .. K[1] .. ' is malformed'}) end\n",
    "  st.rev, st.prev, st.fresh = rev, m[3] and m[2] or '', not m[3]\n",
    "  st.ts = t[1] .. string.format('%06d', tonumber(t[2])) .. '000'\n",
    "end\n",
    /* A change's log entry, revision st.rev + 1, c its changes packed (each field LEN:BYTES, six per change:
     * kind, type, new version, name, old value, new value): the first write of every change. It is the write that can
     * raise (a log of another type, a log that moved past the head): then nothing of the change is written.
     * The writes after it cannot raise: they go to hashes this call has read already. */
    "local function append(K, st, maxlen, tok, src, meta, c)\n",
    "  local r = num(st.rev + 1)\n",
    "  local id = r .. '-0'\n",
    "  if src == '-' and meta == '' then\n",
    "    redis.call('XADD', K[4], 'MAXLEN', '~', maxlen, id, 't', tok, 'p', st.prev, 'ts', st.ts, 'c', c)\n",
    "  elseif meta == '' then\n",
    "    redis.call('XADD', K[4], 'MAXLEN', '~', maxlen, id, 't', tok, 'p', st.prev, 'ts', st.ts, 'c', c, 's', src)\n",
    "  elseif src == '-' then\n",
    "    redis.call('XADD', K[4], 'MAXLEN', '~', maxlen, id, 't', tok, 'p', st.prev, 'ts', st.ts, 'c', c, 'm', meta)\n",
    "  else\n",
    "    redis.call('XADD', K[4], 'MAXLEN', '~', maxlen, id, 't', tok, 'p', st.prev, 'ts', st.ts, 'c', c, 's', src,\n",
    "               'm', meta)\n",
    "  end\n",
    "  st.rev, st.prev, st.dirty = st.rev + 1, tok, true\n",
    "  if st.fresh and not st.epoch then st.epoch = tok end\n",
    "  return r\n",
    "end\n",
    /* The writes a change makes (command, key, arguments of the right arity), checked with redis.acl_check_cmd
     * before its first: Redis keeps what a function wrote before a command the user's ACL refuses, so a user
     * who may not make them all gets NOPERM, naming the first one refused, with nothing written. The reads
     * come first and write nothing: one refused raises Redis's own error before any write. */
    "local W_SET = {{'XADD', 4, '1-1', 't', ''}, {'HSET', 3, 'n', ''}, {'HSET', 1, 'rev', ''}}\n",
    "local W_DEFINE = {{'XADD', 4, '1-1', 't', ''}, {'HSET', 2, 'n', ''}, {'HSET', 3, 'n', ''}, {'HSET', 1, 'rev', ''}}\n",
    "local W_UNDEFINE = {{'XADD', 4, '1-1', 't', ''}, {'HDEL', 2, 'n'}, {'HDEL', 3, 'n'}, {'HSET', 1, 'rev', ''}}\n",
    "local function refused(K, w, what)\n",
    "  for i = 1, #w do\n",
    "    local c = w[i]\n",
    "    if not redis.acl_check_cmd(c[1], K[c[2]], unpack(c, 3)) then\n",
    "      return {err = 'NOPERM this user may not run ' .. c[1] .. ' on ' .. K[c[2]] .. ', which ' .. what ..\n",
    "                    ' writes: nothing was written'}\n",
    "    end\n",
    "  end\n",
    "  return nil\n",
    "end\n",
    "local function flush(K, st)\n",
    "  if not st.dirty then return end\n",
    "  if st.epoch then\n",
    "    redis.call('HSET', K[1], 'fmt', '1', 'epoch', st.epoch, 'rev', num(st.rev), 'tok', st.prev)\n",
    "  else\n",
    "    redis.call('HSET', K[1], 'rev', num(st.rev), 'tok', st.prev)\n",
    "  end\n",
    "end\n",
    /* A: 1 token, 2 source ('-' none, '+' text), 3 meta (packed), 4 log length, 5 name, 6 definition, 7 type,
     * 8 initial value */
    "local function define(K, A)\n",
    "  local cur = redis.call('HGET', K[3], A[5])\n",
    "  local def = redis.call('HGET', K[2], A[5])\n",
    "  if cur then\n",
    "    if def == A[6] then return {'SAME'} end\n",
    "    local _, _, _, ty = rec(K, A[5], cur)\n",
    "    return {'EEXIST', ty}\n",
    "  end\n",
    "  local no = refused(K, W_DEFINE, 'a define')\n",
    "  if no then return no end\n",
    "  local st = {}\n",
    "  head(K, st)\n",
    "  local r = append(K, st, A[4], A[1], A[2], A[3], '1:D' .. #A[7] .. ':' .. A[7] .. '1:1' .. #A[5] .. ':' ..\n",
    "                   A[5] .. '0:' .. #A[8] .. ':' .. A[8])\n",
    "  redis.call('HSET', K[2], A[5], A[6])\n",
    "  redis.call('HSET', K[3], A[5], '1 ' .. r .. ' ' .. st.ts .. ' ' .. A[7] .. ' ' .. r .. ' ' .. A[8])\n",
    "  flush(K, st)\n",
    "  return {'OK', r}\n",
    "end\n",
    /* A: 1-4 as define's, 5 name */
    "local function undefine(K, A)\n",
    "  local cur = redis.call('HGET', K[3], A[5])\n",
    "  if not cur then return {'NOTFOUND', '0'} end\n",
    "  redis.call('HEXISTS', K[2], A[5])\n",
    "  local ver, _, _, ty, _, enc = rec(K, A[5], cur)\n",
    "  local no = refused(K, W_UNDEFINE, 'an undefine')\n",
    "  if no then return no end\n",
    "  local st = {}\n",
    "  head(K, st)\n",
    "  local r = append(K, st, A[4], A[1], A[2], A[3],\n",
    "                   '1:X1:' .. ty .. #ver .. ':' .. ver .. #A[5] .. ':' .. A[5] .. #enc .. ':' .. enc .. '0:')\n",
    "  redis.call('HDEL', K[2], A[5])\n",
    "  redis.call('HDEL', K[3], A[5])\n",
    "  flush(K, st)\n",
    "  return {'OK', r}\n",
    "end\n",
    /* One set request at A[b0]: token, source, meta, count, then per item: name, defrev, expected version ('0'
     * any), value, bad ('1': the client refused the value: answer BAD once the item passed the checks made
     * here). Every check first, then the log entry, then the records. st: the call's head. ch: six slots per
     * change (name, new version, type, defrev, new value, the change packed for the log entry), one table for
     * the request rather than one per change; seen only when there are several items. */
    "local function set1(K, st, maxlen, A, b0)\n",
    "  local n, m, ch = tonumber(A[b0 + 3]), 0, {}\n",
    "  local seen = n > 1 and {} or nil\n",
    "  for i = 0, n - 1 do\n",
    "    local b = b0 + 4 + i * 5\n",
    "    local name = A[b]\n",
    "    local cur = redis.call('HGET', K[3], name)\n",
    "    if not cur then return {'NOTFOUND', tostring(i)} end\n",
    "    if seen then\n",
    "      if seen[name] then return {'TWICE', tostring(i)} end\n",
    "      seen[name] = true\n",
    "    end\n",
    "    st.blame = i\n",
    "    local ver, _, _, ty, drev, enc = rec(K, name, cur)\n",
    "    st.blame = nil\n",
    "    if drev ~= A[b + 1] then return {'STALE', tostring(i)} end\n",
    "    local want, new = A[b + 2], A[b + 3]\n",
    "    if want ~= '0' and want ~= ver then return {'CONFLICT', tostring(i), ver} end\n",
    "    if A[b + 4] == '1' then return {'BAD', tostring(i)} end\n",
    "    if new ~= enc and not same(enc, new) then\n",
    "      local v = num(tonumber(ver) + 1)\n",
    "      ch[m + 1], ch[m + 2], ch[m + 3], ch[m + 4], ch[m + 5] = name, v, ty, drev, new\n",
    "      ch[m + 6] = '1:C1:' .. ty .. #v .. ':' .. v .. #name .. ':' .. name .. #enc .. ':' .. enc ..\n",
    "                  #new .. ':' .. new\n",
    "      m = m + 6\n",
    "    end\n",
    "  end\n",
    "  if m == 0 then return {'SAME'} end\n",
    "  if st.no == nil then st.no = refused(K, W_SET, 'a set') or false end\n",
    "  if st.no then error(st.no) end\n",
    "  if not st.ts then head(K, st) end\n",
    "  local c = ch[6]\n",
    "  if m > 6 then\n",
    "    local p = {}\n",
    "    for j = 6, m, 6 do p[#p + 1] = ch[j] end\n",
    "    c = table.concat(p)\n",
    "  end\n",
    "  local r, ts = append(K, st, maxlen, A[b0], A[b0 + 1], A[b0 + 2], c), st.ts\n",
    "  for j = 0, m - 1, 6 do\n",
    "    redis.call('HSET', K[3], ch[j + 1],\n",
    "               ch[j + 2] .. ' ' .. r .. ' ' .. ts .. ' ' .. ch[j + 3] .. ' ' .. ch[j + 4] .. ' ' .. ch[j + 5])\n",
    "  end\n",
    "  return {'OK', r}\n",
    "end\n",
    /* What raised in a request (Redis's sentence, this library's or Lua's; pcall hands over a string, or a
     * table with err), and the item to blame when there is one. */
    "local function failed(e, i)\n",
    "  return {'ERR', type(e) == 'table' and tostring(e.err) or tostring(e), i and tostring(i)}\n",
    "end\n",
    /* Group commit: A: 1 log length, 2 the number of requests, then the requests (set1's). The requests'
     * places are found first: a call that does not parse runs nothing. Then each request is decided alone,
     * in order, with its own revision and answer: one refused, or one that raised (its answer ERR, the
     * sentence, the item to blame when there is one), changes nothing and does not refuse the others. The
     * head is written back last, whatever failed. The answers, in the order of the requests. */
    "local function sets(K, A)\n",
    "  local q, at, b = tonumber(A[2]), {}, 3\n",
    "  if q and (q < 0 or q % 1 ~= 0) then q = nil end\n",
    "  for i = 1, q or 0 do\n",
    "    local n = tonumber(A[b + 3])\n",
    "    if not n or n < 0 or n % 1 ~= 0 then q = nil; break end\n",
    "    at[i], b = b, b + 4 + n * 5\n",
    "  end\n",
    "  if not q or b ~= #A + 1 then error({err = 'ERR malformed call of ' .. '" RSTATE_REDIS_LIB "_sets'}) end\n",
    "  local st, out = {}, {}\n",
    "  for i = 1, q do\n",
    "    st.blame = nil\n",
    "    local ok, res = pcall(set1, K, st, A[1], A, at[i])\n",
    "    out[i] = ok and res or failed(res, st.blame)\n",
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
    "redis.register_function('" RSTATE_REDIS_LIB "_sets', sets)\n",
    "redis.register_function{function_name='" RSTATE_REDIS_LIB "_get', callback=get, flags={'no-writes'}}\n",
    "redis.register_function{function_name='" RSTATE_REDIS_LIB "_snap', callback=snap, flags={'no-writes'}}\n",
    "redis.register_function{function_name='" RSTATE_REDIS_LIB "_defs', callback=defs, flags={'no-writes'}}\n",
    NULL,
};
