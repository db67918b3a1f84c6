/*
 * sse.h - Server-Sent Events of the tenant event log, on suspended
 * connections.
 *
 * 1. One hub thread feeds every stream: a stream holds no server thread
 *    (the connection is suspended, see ap_req_async_begin); the hub wakes
 *    on a bus announcement for the stream's tenant or on the heartbeat
 *    timer.
 * 2. Replay and live delivery are one path: the hub reads the events
 *    after the stream's last seq from the table (Last-Event-ID or
 *    ?after=), writes them as `id: <seq>` / `event: <type>` / `data:
 *    <json>`, and remembers the last seq.
 * 3. Heartbeats are comment lines (`: keep-alive`) every heartbeat_ms.
 * 4. A task's stream ends after the task itself reaches a terminal status.
 * 5. Thread-safe.
 */
#ifndef AP_API_SSE_H
#define AP_API_SSE_H

#include "events/event.h"
#include "http/req.h"

typedef struct ap_sse_hub ap_sse_hub_t;

ap_sse_hub_t *ap_sse_hub_new(ap_db_t *db, ap_bus_t *bus, int heartbeat_ms);
/* Ends every stream and stops the hub.  Accepts NULL. */
void ap_sse_hub_free(ap_sse_hub_t *h);
/* Takes over r (suspends it) and streams events of tenant_id matching f
 * (strings copied) after f->after_seq. */
void ap_sse_hub_add(ap_sse_hub_t *h, ap_req_t *r, const char *tenant_id,
                    const ap_event_filter_t *f);

#endif
