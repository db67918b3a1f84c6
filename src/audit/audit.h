/*
 * audit.h - the tamper-evident audit log.
 *
 * 1. Entries are appended in the same transaction as the change they
 *    describe, so a change and its record land together or not at all.
 * 2. Entries are hash-chained per tenant: seq runs 1, 2, 3 … without gaps,
 *    and hash = SHA-256(prev_hash_hex ‖ canonical JSON of the entry), the
 *    first entry's prev_hash being 64 zeros.  Canonical JSON: compact,
 *    keys sorted, every column but prev_hash and hash, `changes` as its
 *    stored text.
 * 3. Appending takes the tenant's audit lock (ap_tx_lock) so concurrent
 *    writers on PostgreSQL get consecutive sequence numbers.
 * 4. No function here updates or deletes an entry; the databases refuse it
 *    too (triggers).  Verification names the first bad sequence.
 * 5. `changes` is a summary written by the caller; it must never hold a
 *    secret.
 */
#ifndef AP_AUDIT_AUDIT_H
#define AP_AUDIT_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "store/db.h"

/* Who is acting, and from where: passed to every mutating service call. */
typedef struct {
    const char *type;       /* "key" | "user" | "system" */
    const char *id;         /* key id, user id, or "cli" / "scheduler" */
    const char *role;       /* role name, or NULL */
    const char *request_id; /* or NULL */
    const char *client_addr;/* or NULL */
} ap_actor_t;

typedef struct {
    const char *action;        /* "tenant.create", "user.update", "auth.denied" … */
    const char *resource_type; /* "tenant", "user", "api_key", "route" … */
    const char *resource_id;   /* or NULL */
    const char *outcome;       /* "success" | "denied" | "failure" */
    json_t *changes;           /* borrowed; may be NULL */
} ap_audit_event_t;

typedef struct {
    bool ok;
    int64_t entries_checked;
    int64_t first_bad_sequence; /* 0 when ok */
    char reason[128];           /* why the first bad entry is bad */
} ap_audit_verify_t;

typedef struct {
    const char *since, *until; /* RFC 3339, inclusive / exclusive; or NULL */
    const char *actor_id;      /* or NULL */
    const char *action;        /* exact, or prefix ending in '*' ("user.*"); or NULL */
    const char *resource_type; /* or NULL */
    const char *resource_id;   /* or NULL */
    int64_t after_seq;         /* cursor: entries with seq > after_seq */
    int limit;                 /* 1..500 */
} ap_audit_filter_t;

#define AP_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/* Appends one entry to tenant_id's chain inside tx.  *seq_out (optional)
 * gets the sequence number. */
ap_rc ap_audit_append(ap_tx_t *tx, const char *tenant_id, const ap_actor_t *actor,
                      const ap_audit_event_t *ev, int64_t *seq_out, ap_err_t *err);

/* Checks tenant_id's whole chain. */
ap_rc ap_audit_verify(ap_tx_t *tx, const char *tenant_id, ap_audit_verify_t *out,
                      ap_err_t *err);

/* Lists entries (oldest first) as a JSON array (new reference) of objects
 * with every column; *next_seq is the cursor for the next page or 0. */
ap_rc ap_audit_list(ap_tx_t *tx, const char *tenant_id, const ap_audit_filter_t *f,
                    json_t **out, int64_t *next_seq, ap_err_t *err);

/* Writes every entry of tenant_id (or of all tenants when NULL) as JSON
 * lines, oldest first per tenant; *count gets how many. */
ap_rc ap_audit_export_jsonl(ap_tx_t *tx, const char *tenant_id, FILE *out, int64_t *count,
                            ap_err_t *err);

/* Tenants that have at least one entry: a JSON array of strings. */
ap_rc ap_audit_tenants(ap_tx_t *tx, json_t **out, ap_err_t *err);

#endif
