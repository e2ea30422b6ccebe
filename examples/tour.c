#include <stdio.h>
#include <reactivestate.h>

/* A value as text; an event's old_value is empty (RSTATE_NONE) for INITIAL. */
static const char *text(const rstate_value *v) { return v->kind == RSTATE_STRING ? v->u.s.ptr : "-"; }

static int on_change(const rstate_event *ev, void *userdata) {
  (void)userdata;
  printf("%s: %s -> %s\n", ev->name, text(&ev->old_value), text(&ev->new_value));
  return RSTATE_CONTINUE;                         /* or RSTATE_UNWATCH */
}

int main(void) {
  rstate_store *s;
  if (rstate_open(&s, "mem:", NULL) != RSTATE_OK) return 1;   /* an in-process store */

  const char *models[] = {"gpt-4", "claude-3", "gemini"};
  rstate_constraints c = {.choices = models, .n_choices = 3};
  rstate_var_def def = {"model", RSTATE_TYPE_CHOICE, rstate_string("gpt-4"), &c, "Which model answers"};
  rstate_define(s, &def);                         /* version 1, takes a store revision */

  const char *names[] = {"model"};                /* or "model.*", or "*" */
  rstate_watch_opts wo = {.include_initial = true};
  rstate_watch_id id;
  rstate_watch(s, names, 1, on_change, NULL, &wo, &id);   /* prints model: - -> gpt-4 */

  rstate_set_string(s, "model", "claude-3");      /* on_change has run when this returns */
  if (rstate_set_string(s, "model", "gpt-5") != RSTATE_OK)
    puts(rstate_last_error());   /* model: "gpt-5" is not one of the choices gpt-4, claude-3, gemini */

  rstate_unwatch(s, id);
  rstate_close(s);
  return 0;
}
