/*
 * client.h - the API client side of the binary: one HTTP call with the
 * caller's key, and printing results as tables or JSON.
 */
#ifndef AP_CMD_CLIENT_H
#define AP_CMD_CLIENT_H

#include <jansson.h>
#include <stdbool.h>

/* Performs method on AP_URL + path with AP_API_KEY.  On success returns
 * 0 and *out (new reference, may be NULL for 204).  On an HTTP problem it
 * prints title and detail and returns 1; on a transport failure, 1 too. */
int ap_client_call(const char *method, const char *path, json_t *body, json_t **out);
/* Prints a list page or an object: a table (columns) or JSON (-o json). */
void ap_client_print(json_t *v, const char *const *columns, bool as_json);

/* Reads GET path as a Server-Sent Events stream until it ends: fn gets
 * each event (id, event type, data line).  Returns 0 when the stream ended
 * normally, 1 on an HTTP problem or a transport failure (printed). */
typedef void (*ap_client_event_fn)(void *ud, const char *id, const char *type, const char *data);
int ap_client_events(const char *path, ap_client_event_fn fn, void *ud);

#endif
