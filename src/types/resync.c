/*
 * resync.c — the one rule for what a watch is told after a gap it could not
 * replay: it compares what the watch last saw of a variable with what the
 * variable is now. Shared by the backends that rebuild a watch's view, the
 * remote one (src/remote/subscription.c) and the Redis one
 * (src/redis/backend.c), so both tell the same story.
 */
#include "types.h"

/* Two times of a variable's last change that tell it changed again: 0 is
 * unknown (a backend may not keep them). */
static bool other_time(int64_t seen_ns, int64_t now_ns) { return seen_ns && now_ns && seen_ns != now_ns; }

rstate_event_kind rstate__resync_event(const rstate__seen *was, const rstate__seen *now, uint32_t *coalesced) {
  *coalesced = 1;
  if (!was) return RSTATE_EVENT_DEFINED;
  if (!now) return RSTATE_EVENT_DELETED;
  if (!now->redefined && was->version == now->version && was->type == now->type &&
      !other_time(was->updated_ns, now->updated_ns) && rstate_value_equal(was->value, now->value))
    return 0; /* nothing happened that the watch has not seen */
  /* changed since (a change of the same version, value and type shows only
   * in when it was made). Re-defined, as far as can be known, when the
   * backend says so, the type changed or the version did not grow: 1 */
  if (!now->redefined && was->type == now->type && now->version > was->version)
    *coalesced = (uint32_t)(now->version - was->version);
  return RSTATE_EVENT_RESYNC;
}
