/*
 * graph.c - the knowledge graph (graph.h).
 *
 * 1. Values are stored as compact JSON text with sorted keys, so "the same
 *    value" is a text comparison on both backends.
 * 2. entity.attributes is recomputed from the open facts after every
 *    learn, so it always equals "as of now".
 * 3. An observation older than the open fact (observed_at before its
 *    valid_from) is history arriving late: it is stored closed at the open
 *    fact's valid_from rather than replacing the newer value.
 */
#include "memory/graph.h"

#include <ctype.h>
#include <string.h>

#include "core/id.h"
#include "core/time.h"
#include "memory/text.h"

const char *const ap_graph_single_valued[] = {
    "located_in", "headquartered_in", "part_of", "reports_to", "works_for", "owned_by",
    "married_to", "born_in",          "capital_of", "ceo_of",   "managed_by", NULL,
};

const ap_jfield_t ap_graph_learn_fields[] = {
    {"entity_type", AP_JT_STRING, true, false, NULL, 100, 0, 0},
    {"name", AP_JT_STRING, true, false, NULL, 500, 0, 0},
    {"attributes", AP_JT_OBJECT, false, false, NULL, 0, 0, 0},
    {"confidence", AP_JT_NUMBER, false, false, NULL, 0, 0, 1},
    {"observed_at", AP_JT_STRING, false, true, NULL, 40, 0, 0},
    {"relations", AP_JT_ARRAY, false, false, NULL, 0, 0, 0},
    {"source_agent_id", AP_JT_STRING, false, true, NULL, 64, 0, 0},
    AP_JFIELDS_END,
};

const ap_jfield_t ap_graph_relate_fields[] = {
    {"from_entity_id", AP_JT_STRING, false, false, NULL, 64, 0, 0},
    {"from", AP_JT_OBJECT, false, false, NULL, 0, 0, 0},
    {"to_entity_id", AP_JT_STRING, false, false, NULL, 64, 0, 0},
    {"to", AP_JT_OBJECT, false, false, NULL, 0, 0, 0},
    {"relation_type", AP_JT_STRING, true, false, NULL, 100, 0, 0},
    {"strength", AP_JT_NUMBER, false, false, NULL, 0, 0, 1},
    {"evidence", AP_JT_STRING, false, true, NULL, 2000, 0, 0},
    {"single_valued", AP_JT_BOOL, false, false, NULL, 0, 0, 0},
    {"observed_at", AP_JT_STRING, false, true, NULL, 40, 0, 0},
    {"source_agent_id", AP_JT_STRING, false, true, NULL, 64, 0, 0},
    AP_JFIELDS_END,
};

static const ap_jfield_t ref_fields[] = {
    {"entity_type", AP_JT_STRING, true, false, NULL, 100, 0, 0},
    {"name", AP_JT_STRING, true, false, NULL, 500, 0, 0},
    AP_JFIELDS_END,
};

static const ap_jfield_t query_fields[] = {
    {"name", AP_JT_STRING, false, false, NULL, 500, 0, 0},
    {"entity_type", AP_JT_STRING, false, false, NULL, 100, 0, 0},
    {"attribute", AP_JT_STRING, false, false, NULL, 200, 0, 0},
    {"value", AP_JT_STRING, false, false, NULL, 2000, 0, 0},
    {"as_of", AP_JT_STRING, false, true, NULL, 40, 0, 0},
    {"limit", AP_JT_INT, false, false, NULL, 0, 1, 500},
    {"neighbors_of", AP_JT_STRING, false, false, NULL, 64, 0, 0},
    {"path", AP_JT_OBJECT, false, false, NULL, 0, 0, 0},
    AP_JFIELDS_END,
};

#define ENT_COLS                                                                          \
    "id, entity_type, name, norm_name, attributes, confidence, evidence_count,"           \
    " source_agent_id, created_at, updated_at"
#define REL_COLS                                                                          \
    "id, from_entity_id, to_entity_id, relation_type, strength, evidence,"                \
    " discovered_by_agent_id, valid_from, valid_to, created_at, updated_at"

static ap_rc not_found(ap_err_t *err, const char *what, const char *id) {
    return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "entity not found",
                      "check the entity id", "no entity %s \"%.64s\" in this tenant", what, id);
}

static ap_rc bad(ap_err_t *err, const char *field, const char *what) {
    return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid field",
                      "see docs/memory.md (knowledge graph)", "%s: %s", field, what);
}

/* as_of (or now) as canonical text; invalid → error naming the field. */
static ap_rc when(ap_arena_t *a, const char *s, const char *field, const char **out,
                  ap_err_t *err) {
    int64_t ms = ap_now_ms();
    if (s && !ap_time_parse(s, &ms))
        return ap_err_set(err, AP_ERR_INVALID, "invalid-field", "invalid timestamp",
                          "use RFC 3339 UTC, like 2026-01-31T12:00:00Z", "%s \"%.40s\"", field, s);
    char *t = ap_arena_alloc(a, AP_TIME_LEN);
    ap_time_format(ms, t);
    *out = t;
    return AP_OK;
}

static json_t *num(const ap_rows_t *r, int i, const char *col) {
    const char *v = ap_rows_get(r, i, col);
    return json_real(v ? atof(v) : 0);
}

static json_t *ent_json(const ap_rows_t *r, int i) {
    static const char *const ints[] = {"evidence_count", NULL};
    json_t *o = ap_rows_json(r, i, ints);
    json_object_del(o, "norm_name");
    json_t *attrs = json_loads(ap_rows_get(r, i, "attributes"), 0, NULL);
    json_object_set_new(o, "attributes", attrs ? attrs : json_object());
    json_object_set_new(o, "confidence", num(r, i, "confidence"));
    return o;
}

static json_t *rel_json(const ap_rows_t *r, int i) {
    json_t *o = ap_rows_json(r, i, NULL);
    json_t *ev = json_loads(ap_rows_get(r, i, "evidence"), 0, NULL);
    json_object_set_new(o, "evidence", ev ? ev : json_array());
    json_object_set_new(o, "strength", num(r, i, "strength"));
    return o;
}

/* Attributes of entity id as of `at`, from the facts. */
static ap_rc attrs_as_of(ap_tx_t *tx, const char *tenant, const char *id, const char *at,
                         json_t **out, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(id), AP_VTEXT(at), AP_VTEXT(at)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT attribute, value FROM knowledge_facts WHERE tenant_id = ?"
                           " AND entity_id = ? AND valid_from <= ?"
                           " AND (valid_to IS NULL OR valid_to > ?) ORDER BY attribute",
                           p, 4, &rows, err);
    if (rc) return rc;
    json_t *o = json_object();
    for (int i = 0; i < rows.nrows; i++) {
        json_t *v = json_loads(ap_rows_at(&rows, i, 1), JSON_DECODE_ANY, NULL);
        json_object_set_new(o, ap_rows_at(&rows, i, 0), v ? v : json_null());
    }
    *out = o;
    return AP_OK;
}

static ap_rc fetch_entity(ap_tx_t *tx, const char *tenant, const char *id, ap_rows_t *rows,
                          ap_err_t *err) {
    if (!id || !ap_uuid_valid(id)) return not_found(err, "with id", id ? id : "");
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(id)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT " ENT_COLS " FROM knowledge_entities WHERE tenant_id = ?"
                           " AND id = ?",
                           p, 2, rows, err);
    if (rc) return rc;
    return rows->nrows ? AP_OK : not_found(err, "with id", id);
}

static double noisy_or(double a, double b) { return 1 - (1 - a) * (1 - b); }

/* Upserts (type, name); *id gets the entity id (arena). */
/* created_at is when the entity was first known: the earliest observed_at
 * among its sightings (so as_of queries see it from then on). */
static ap_rc upsert_entity(ap_tx_t *tx, const char *tenant, const char *agent, const char *type,
                           const char *name, double conf, const char *at, const char *now,
                           const char **id, ap_err_t *err) {
    ap_arena_t *a = ap_tx_arena(tx);
    const char *norm = ap_mem_norm_name(a, name);
    if (!*norm || !*type) return bad(err, !*norm ? "name" : "entity_type", "must not be empty");
    char nid[AP_UUID_LEN];
    ap_uuid7(nid);
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(nid),  AP_VTEXT(tenant), AP_VTEXT(type), AP_VTEXT(name),
                    AP_VTEXT(norm), AP_VREAL(conf),   AP_VTEXT(agent),
                    AP_VTEXT(strcmp(at, now) < 0 ? at : now), AP_VTEXT(now)};
    /* a second sighting: noisy-or of the confidences, one more evidence */
    ap_rc rc = ap_tx_query(
        tx,
        "INSERT INTO knowledge_entities (id, tenant_id, entity_type, name, norm_name,"
        " confidence, source_agent_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (tenant_id, entity_type, norm_name) DO UPDATE SET"
        " confidence = 1 - (1 - knowledge_entities.confidence) * (1 - excluded.confidence),"
        " evidence_count = knowledge_entities.evidence_count + 1,"
        " created_at = CASE WHEN excluded.created_at < knowledge_entities.created_at"
        "   THEN excluded.created_at ELSE knowledge_entities.created_at END,"
        " updated_at = excluded.updated_at RETURNING id",
        p, 9, &rows, err);
    if (rc) return rc;
    *id = ap_arena_strdup(a, ap_rows_at(&rows, 0, 0));
    return AP_OK;
}

/* Resolves {entity_type,name} (upserting) or an id (must exist). */
static ap_rc resolve(ap_tx_t *tx, const char *tenant, const char *agent, json_t *ref,
                     const char *id, const char *field, const char *at, const char *now,
                     const char **out, ap_err_t *err) {
    if (id) {
        ap_rows_t rows;
        ap_rc rc = fetch_entity(tx, tenant, id, &rows, err);
        if (rc) return rc;
        *out = ap_arena_strdup(ap_tx_arena(tx), id);
        return AP_OK;
    }
    if (!ref) return bad(err, field, "name the entity by id or by {entity_type, name}");
    ap_rc rc = ap_json_check(ref, ref_fields, err);
    if (rc) return rc;
    return upsert_entity(tx, tenant, agent, ap_json_str(ref, "entity_type"),
                         ap_json_str(ref, "name"), 0.5, at, now, out, err);
}

static bool single_valued(const char *type) {
    for (int i = 0; ap_graph_single_valued[i]; i++)
        if (!strcmp(ap_graph_single_valued[i], type)) return true;
    return false;
}

static ap_rc relate(ap_tx_t *tx, const char *tenant, const char *agent, const char *from,
                    const char *to, const char *type, double strength, const char *evidence,
                    bool single, const char *at, const char *now, ap_rows_t *out,
                    ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(from), AP_VTEXT(type), AP_VTEXT(to)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT id, strength, evidence FROM knowledge_relations WHERE"
                           " tenant_id = ? AND from_entity_id = ? AND relation_type = ?"
                           " AND to_entity_id = ? AND valid_to IS NULL",
                           p, 4, &rows, err);
    if (rc) return rc;
    if (rows.nrows) { /* seen again: stronger, more evidence */
        json_t *ev = json_loads(ap_rows_at(&rows, 0, 2), 0, NULL);
        if (!json_is_array(ev)) {
            json_decref(ev);
            ev = json_array();
        }
        bool have = false;
        for (size_t i = 0; evidence && i < json_array_size(ev); i++)
            have |= !strcmp(json_string_value(json_array_get(ev, i)) ?: "", evidence);
        if (evidence && !have && json_array_size(ev) < 20)
            json_array_append_new(ev, json_string(evidence));
        char *evs = json_dumps(ev, JSON_COMPACT);
        json_decref(ev);
        ap_val_t u[] = {AP_VREAL(noisy_or(atof(ap_rows_at(&rows, 0, 1)), strength)),
                        AP_VTEXT(evs), AP_VTEXT(now), AP_VTEXT(tenant),
                        AP_VTEXT(ap_rows_at(&rows, 0, 0))};
        rc = ap_tx_query(tx,
                         "UPDATE knowledge_relations SET strength = ?, evidence = ?,"
                         " updated_at = ? WHERE tenant_id = ? AND id = ? RETURNING " REL_COLS,
                         u, 5, out, err);
        free(evs);
        return rc;
    }
    if (single) { /* one target at a time: close the others */
        ap_val_t c[] = {AP_VTEXT(at), AP_VTEXT(now), AP_VTEXT(tenant), AP_VTEXT(from),
                        AP_VTEXT(type), AP_VTEXT(to), AP_VTEXT(at)};
        rc = ap_tx_query(tx,
                         "UPDATE knowledge_relations SET valid_to = ?, updated_at = ?"
                         " WHERE tenant_id = ? AND from_entity_id = ? AND relation_type = ?"
                         " AND to_entity_id <> ? AND valid_to IS NULL AND valid_from <= ?",
                         c, 7, NULL, err);
        if (rc) return rc;
    }
    json_t *ev = json_array();
    if (evidence) json_array_append_new(ev, json_string(evidence));
    char *evs = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    char id[AP_UUID_LEN];
    ap_uuid7(id);
    ap_val_t i[] = {AP_VTEXT(id),  AP_VTEXT(tenant),  AP_VTEXT(from), AP_VTEXT(to),
                    AP_VTEXT(type), AP_VREAL(strength), AP_VTEXT(evs), AP_VTEXT(agent),
                    AP_VTEXT(at),  AP_VTEXT(now),     AP_VTEXT(now)};
    rc = ap_tx_query(tx,
                     "INSERT INTO knowledge_relations (id, tenant_id, from_entity_id,"
                     " to_entity_id, relation_type, strength, evidence, discovered_by_agent_id,"
                     " valid_from, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                     " RETURNING " REL_COLS,
                     i, 11, out, err);
    free(evs);
    return rc;
}

static ap_rc set_fact(ap_tx_t *tx, const char *tenant, const char *agent, const char *entity,
                      const char *attr, json_t *value, double conf, const char *at,
                      const char *now, ap_err_t *err) {
    char *v = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    ap_arena_t *a = ap_tx_arena(tx);
    const char *vs = ap_arena_strdup(a, v);
    free(v);
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(entity), AP_VTEXT(attr)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT id, value, confidence, valid_from FROM knowledge_facts"
                           " WHERE tenant_id = ? AND entity_id = ? AND attribute = ?"
                           " AND valid_to IS NULL",
                           p, 3, &rows, err);
    if (rc) return rc;
    const char *valid_to = NULL;
    if (rows.nrows) {
        if (!strcmp(ap_rows_at(&rows, 0, 1), vs)) { /* the same value again */
            ap_val_t u[] = {AP_VREAL(noisy_or(atof(ap_rows_at(&rows, 0, 2)), conf)),
                            AP_VTEXT(tenant), AP_VTEXT(ap_rows_at(&rows, 0, 0))};
            return ap_tx_query(tx,
                               "UPDATE knowledge_facts SET confidence = ? WHERE tenant_id = ?"
                               " AND id = ?",
                               u, 3, NULL, err);
        }
        const char *open_from = ap_rows_at(&rows, 0, 3);
        if (strcmp(at, open_from) > 0) { /* newer: close the open fact */
            ap_val_t u[] = {AP_VTEXT(at), AP_VTEXT(tenant), AP_VTEXT(ap_rows_at(&rows, 0, 0))};
            rc = ap_tx_query(tx,
                             "UPDATE knowledge_facts SET valid_to = ? WHERE tenant_id = ?"
                             " AND id = ?",
                             u, 3, NULL, err);
            if (rc) return rc;
        } else { /* older news: history, closed where the open fact starts */
            valid_to = ap_arena_strdup(a, open_from);
            if (!strcmp(at, open_from)) return AP_OK; /* same instant: the open one stands */
        }
    }
    char id[AP_UUID_LEN];
    ap_uuid7(id);
    ap_val_t i[] = {AP_VTEXT(id),  AP_VTEXT(tenant), AP_VTEXT(entity), AP_VTEXT(attr),
                    AP_VTEXT(vs),  AP_VREAL(conf),   AP_VTEXT(agent),  AP_VTEXT(at),
                    AP_VTEXT(valid_to), AP_VTEXT(now)};
    return ap_tx_query(tx,
                       "INSERT INTO knowledge_facts (id, tenant_id, entity_id, attribute, value,"
                       " confidence, source_agent_id, valid_from, valid_to, created_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       i, 10, NULL, err);
}

static ap_rc refresh_attrs(ap_tx_t *tx, const char *tenant, const char *id, const char *now,
                           ap_rows_t *out, ap_err_t *err) {
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(id)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT attribute, value FROM knowledge_facts WHERE tenant_id = ?"
                           " AND entity_id = ? AND valid_to IS NULL ORDER BY attribute",
                           p, 2, &rows, err);
    if (rc) return rc;
    json_t *o = json_object();
    for (int i = 0; i < rows.nrows; i++) {
        json_t *v = json_loads(ap_rows_at(&rows, i, 1), JSON_DECODE_ANY, NULL);
        json_object_set_new(o, ap_rows_at(&rows, i, 0), v ? v : json_null());
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    ap_val_t u[] = {AP_VTEXT(s), AP_VTEXT(now), AP_VTEXT(tenant), AP_VTEXT(id)};
    rc = ap_tx_query(tx,
                     "UPDATE knowledge_entities SET attributes = ?, updated_at = ?"
                     " WHERE tenant_id = ? AND id = ? RETURNING " ENT_COLS,
                     u, 4, out, err);
    free(s);
    return rc;
}

static ap_rc check_agent(ap_tx_t *tx, const char *tenant, const char *agent, ap_err_t *err) {
    if (!agent) return AP_OK;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(agent)};
    ap_rc rc = ap_uuid_valid(agent)
                   ? ap_tx_query(tx, "SELECT id FROM agents WHERE tenant_id = ? AND id = ?", p,
                                 2, &rows, err)
                   : AP_OK;
    if (rc) return rc;
    if (!ap_uuid_valid(agent) || !rows.nrows)
        return ap_err_set(err, AP_ERR_NOT_FOUND, "not-found", "agent not found",
                          "check the agent id", "no agent with id \"%.64s\" in this tenant", agent);
    return AP_OK;
}

static ap_rc relate_in(ap_tx_t *tx, const char *tenant, const char *agent, const char *from,
                       json_t *r, const char *field, const char *at, const char *now,
                       ap_rows_t *out, ap_err_t *err) {
    const char *rtype = ap_json_str(r, "relation_type");
    if (!rtype || !*rtype) return bad(err, field, "relation_type is required");
    const char *to;
    ap_rc rc = resolve(tx, tenant, agent, json_object_get(r, "to"), ap_json_str(r, "to_entity_id"),
                       field, at, now, &to, err);
    if (rc) return rc;
    json_t *st = json_object_get(r, "strength");
    json_t *sv = json_object_get(r, "single_valued");
    bool single = sv ? json_is_true(sv) : single_valued(rtype);
    return relate(tx, tenant, agent, from, to, rtype, st ? json_number_value(st) : 0.5,
                  ap_json_str(r, "evidence"), single, at, now, out, err);
}

ap_rc ap_graph_learn(ap_tx_t *tx, const char *tenant, const ap_actor_t *actor,
                     const char *agent, json_t *in, json_t **out, ap_err_t *err) {
    ap_arena_t *a = ap_tx_arena(tx);
    if (!json_is_object(in)) return bad(err, "(body)", "must be a JSON object");
    ap_rc rc = ap_json_check(in, ap_graph_learn_fields, err);
    if (!agent) agent = ap_json_str(in, "source_agent_id");
    if (!rc) rc = check_agent(tx, tenant, agent, err);
    const char *at, *now;
    if (!rc) rc = when(a, ap_json_str(in, "observed_at"), "observed_at", &at, err);
    if (!rc) rc = when(a, NULL, "now", &now, err);
    json_t *cf = json_object_get(in, "confidence");
    double conf = cf ? json_number_value(cf) : 0.5;
    const char *id;
    if (!rc)
        rc = upsert_entity(tx, tenant, agent, ap_json_str(in, "entity_type"),
                           ap_json_str(in, "name"), conf, at, now, &id, err);
    if (rc) return rc;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(in, "attributes"), k, v) {
        if (strlen(k) > 200) return bad(err, "attributes", "attribute names are at most 200 bytes");
        if ((rc = set_fact(tx, tenant, agent, id, k, v, conf, at, now, err))) return rc;
    }
    json_t *rels = json_object_get(in, "relations"), *made = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(rels, i, r) {
        char field[32];
        snprintf(field, sizeof field, "relations[%zu]", i);
        ap_rows_t rr;
        if (!json_is_object(r)) rc = bad(err, field, "must be an object");
        if (!rc) rc = ap_json_check(r, ap_graph_relate_fields, err);
        if (!rc) rc = relate_in(tx, tenant, agent, id, r, field, at, now, &rr, err);
        if (rc) {
            json_decref(made);
            return rc;
        }
        json_array_append_new(made, rel_json(&rr, 0));
    }
    ap_rows_t ent;
    if ((rc = refresh_attrs(tx, tenant, id, now, &ent, err))) {
        json_decref(made);
        return rc;
    }
    json_t *attrs = json_object_get(in, "attributes");
    json_t *changes = json_pack("{s:s,s:s,s:o,s:I}", "entity_type", ap_json_str(in, "entity_type"),
                                "name", ap_json_str(in, "name"), "attributes",
                                attrs ? json_incref(attrs) : json_object(),
                                "relations", (json_int_t)json_array_size(made));
    ap_audit_event_t ev = {"knowledge.learn", "knowledge_entity", id, "success", changes};
    rc = ap_audit_append(tx, tenant, actor, &ev, NULL, err);
    json_decref(changes);
    if (rc) {
        json_decref(made);
        return rc;
    }
    json_t *o = ent_json(&ent, 0);
    json_object_set_new(o, "relations", made);
    *out = o;
    return AP_OK;
}

ap_rc ap_graph_relate(ap_tx_t *tx, const char *tenant, const ap_actor_t *actor,
                      const char *agent, json_t *in, json_t **out, ap_err_t *err) {
    ap_arena_t *a = ap_tx_arena(tx);
    ap_rc rc = ap_json_check(in, ap_graph_relate_fields, err);
    if (!agent) agent = ap_json_str(in, "source_agent_id");
    if (!rc) rc = check_agent(tx, tenant, agent, err);
    const char *at, *now, *from;
    if (!rc) rc = when(a, ap_json_str(in, "observed_at"), "observed_at", &at, err);
    if (!rc) rc = when(a, NULL, "now", &now, err);
    if (!rc)
        rc = resolve(tx, tenant, agent, json_object_get(in, "from"),
                     ap_json_str(in, "from_entity_id"), "from", at, now, &from, err);
    ap_rows_t rr;
    if (!rc) rc = relate_in(tx, tenant, agent, from, in, "to", at, now, &rr, err);
    if (rc) return rc;
    const char *rid = ap_rows_get(&rr, 0, "id");
    json_t *changes = json_pack("{s:s,s:s,s:s}", "from_entity_id", from, "to_entity_id",
                                ap_rows_get(&rr, 0, "to_entity_id"), "relation_type",
                                ap_json_str(in, "relation_type"));
    ap_audit_event_t ev = {"knowledge.relate", "knowledge_relation", rid, "success", changes};
    rc = ap_audit_append(tx, tenant, actor, &ev, NULL, err);
    json_decref(changes);
    if (rc) return rc;
    *out = rel_json(&rr, 0);
    return AP_OK;
}

/* Entity rows as JSON, with attributes as of `at` when asked. */
static ap_rc ents_json(ap_tx_t *tx, const char *tenant, const ap_rows_t *rows,
                       const char *as_of, json_t **out, ap_err_t *err) {
    json_t *arr = json_array();
    for (int i = 0; i < rows->nrows; i++) {
        json_t *o = ent_json(rows, i);
        if (as_of) {
            json_t *attrs;
            ap_rc rc = attrs_as_of(tx, tenant, ap_rows_get(rows, i, "id"), as_of, &attrs, err);
            if (rc) {
                json_decref(o);
                json_decref(arr);
                return rc;
            }
            json_object_set_new(o, "attributes", attrs);
        }
        json_array_append_new(arr, o);
    }
    *out = arr;
    return AP_OK;
}

ap_rc ap_graph_query(ap_tx_t *tx, const char *tenant, json_t *in, json_t **out, ap_err_t *err) {
    ap_arena_t *a = ap_tx_arena(tx);
    if (!json_is_object(in)) return bad(err, "(arguments)", "must be a JSON object");
    ap_rc rc = ap_json_check(in, query_fields, err);
    if (rc) return rc;
    const char *as_of_in = ap_json_str(in, "as_of"), *at;
    if ((rc = when(a, as_of_in, "as_of", &at, err))) return rc;
    const char *nb = ap_json_str(in, "neighbors_of");
    if (nb) return ap_graph_neighbors(tx, tenant, nb, as_of_in, out, err);
    json_t *path = json_object_get(in, "path");
    if (path) {
        const char *f = ap_json_str(path, "from"), *t = ap_json_str(path, "to");
        if (!f) return bad(err, "path", "give the from entity id (and to, or every path)");
        json_t *mh = json_object_get(path, "max_hops");
        return ap_graph_paths(tx, tenant, f, t, mh ? (int)json_integer_value(mh) : 3, as_of_in,
                              out, err);
    }
    const char *name = ap_json_str(in, "name"), *type = ap_json_str(in, "entity_type");
    const char *attr = ap_json_str(in, "attribute"), *value = ap_json_str(in, "value");
    const char *like = name ? ap_arena_printf(a, "%%%s%%", ap_mem_norm_name(a, name)) : NULL;
    const char *vjson = NULL;
    if (value) {
        json_t *s = json_string(value);
        char *d = json_dumps(s, JSON_COMPACT | JSON_ENCODE_ANY);
        vjson = ap_arena_strdup(a, d);
        free(d);
        json_decref(s);
    }
    int limit = (int)ap_json_int(in, "limit", 50);
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(at),    AP_VTEXT(like),  AP_VTEXT(like),
                    AP_VTEXT(type),   AP_VTEXT(type),  AP_VTEXT(attr),  AP_VTEXT(attr),
                    AP_VTEXT(value),  AP_VTEXT(vjson), AP_VTEXT(value), AP_VTEXT(at),
                    AP_VTEXT(at),     AP_VINT(limit)};
    rc = ap_tx_query(tx,
                     "SELECT " ENT_COLS " FROM knowledge_entities e WHERE tenant_id = ?"
                     " AND created_at <= ? AND (CAST(? AS TEXT) IS NULL OR norm_name LIKE ?)"
                     " AND (CAST(? AS TEXT) IS NULL OR entity_type = ?)"
                     " AND (CAST(? AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM knowledge_facts f"
                     "   WHERE f.entity_id = e.id AND f.attribute = ?"
                     "   AND (CAST(? AS TEXT) IS NULL OR f.value = ? OR f.value = ?)"
                     "   AND f.valid_from <= ? AND (f.valid_to IS NULL OR f.valid_to > ?)))"
                     " ORDER BY norm_name, id LIMIT ?",
                     p, 14, &rows, err);
    if (rc) return rc;
    json_t *arr;
    if ((rc = ents_json(tx, tenant, &rows, as_of_in ? at : NULL, &arr, err))) return rc;
    *out = json_pack("{s:o,s:s}", "data", arr, "as_of", at);
    return AP_OK;
}

ap_rc ap_graph_get(ap_tx_t *tx, const char *tenant, const char *id, const char *as_of,
                   json_t **out, ap_err_t *err) {
    ap_arena_t *a = ap_tx_arena(tx);
    const char *at;
    ap_rows_t rows;
    ap_rc rc = when(a, as_of, "as_of", &at, err);
    if (!rc) rc = fetch_entity(tx, tenant, id, &rows, err);
    if (rc) return rc;
    json_t *o = ent_json(&rows, 0), *attrs;
    if ((rc = attrs_as_of(tx, tenant, id, at, &attrs, err))) {
        json_decref(o);
        return rc;
    }
    json_object_set_new(o, "attributes", attrs);
    ap_rows_t f;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(id)};
    rc = ap_tx_query(tx,
                     "SELECT id, attribute, value, confidence, source_agent_id, valid_from,"
                     " valid_to FROM knowledge_facts WHERE tenant_id = ? AND entity_id = ?"
                     " ORDER BY attribute, valid_from",
                     p, 2, &f, err);
    if (rc) {
        json_decref(o);
        return rc;
    }
    json_t *facts = json_array();
    for (int i = 0; i < f.nrows; i++) {
        json_t *x = ap_rows_json(&f, i, NULL);
        json_t *v = json_loads(ap_rows_get(&f, i, "value"), JSON_DECODE_ANY, NULL);
        json_object_set_new(x, "value", v ? v : json_null());
        json_object_set_new(x, "confidence", num(&f, i, "confidence"));
        json_array_append_new(facts, x);
    }
    json_object_set_new(o, "facts", facts);
    json_object_set_new(o, "as_of", json_string(at));
    *out = o;
    return AP_OK;
}

ap_rc ap_graph_neighbors(ap_tx_t *tx, const char *tenant, const char *id, const char *as_of,
                         json_t **out, ap_err_t *err) {
    ap_arena_t *a = ap_tx_arena(tx);
    const char *at;
    ap_rows_t rows;
    ap_rc rc = when(a, as_of, "as_of", &at, err);
    if (!rc) rc = fetch_entity(tx, tenant, id, &rows, err);
    if (rc) return rc;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(id), AP_VTEXT(id), AP_VTEXT(at), AP_VTEXT(at)};
    rc = ap_tx_query(tx,
                     "SELECT " REL_COLS " FROM knowledge_relations WHERE tenant_id = ?"
                     " AND (from_entity_id = ? OR to_entity_id = ?) AND valid_from <= ?"
                     " AND (valid_to IS NULL OR valid_to > ?) ORDER BY relation_type, id LIMIT 500",
                     p, 5, &rows, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < rows.nrows && !rc; i++) {
        bool outgoing = !strcmp(ap_rows_get(&rows, i, "from_entity_id"), id);
        const char *other = ap_rows_get(&rows, i, outgoing ? "to_entity_id" : "from_entity_id");
        ap_rows_t e;
        rc = fetch_entity(tx, tenant, other, &e, err);
        if (rc) break;
        json_array_append_new(arr, json_pack("{s:o,s:s,s:o}", "relation", rel_json(&rows, i),
                                             "direction", outgoing ? "out" : "in", "entity",
                                             ent_json(&e, 0)));
    }
    if (rc) {
        json_decref(arr);
        return rc;
    }
    *out = json_pack("{s:o,s:s}", "data", arr, "as_of", at);
    return AP_OK;
}

static json_t *split_ids(const char *s) {
    json_t *arr = json_array();
    while (s && *s) {
        const char *c = strchr(s, ',');
        size_t n = c ? (size_t)(c - s) : strlen(s);
        if (n) json_array_append_new(arr, json_stringn(s, n));
        s = c ? c + 1 : NULL;
    }
    return arr;
}

ap_rc ap_graph_paths(ap_tx_t *tx, const char *tenant, const char *from, const char *to,
                     int max_hops, const char *as_of, json_t **out, ap_err_t *err) {
    ap_arena_t *a = ap_tx_arena(tx);
    if (max_hops < 1 || max_hops > AP_GRAPH_MAX_HOPS)
        return ap_err_set(err, AP_ERR_INVALID, "invalid-parameter", "invalid max_hops",
                          "max_hops is 1 to 6", "max_hops %d", max_hops);
    const char *at;
    ap_rows_t rows;
    ap_rc rc = when(a, as_of, "as_of", &at, err);
    if (!rc) rc = fetch_entity(tx, tenant, from, &rows, err);
    if (!rc && to) rc = fetch_entity(tx, tenant, to, &rows, err);
    if (rc) return rc;
#define OTHER "CASE WHEN r.from_entity_id = w.node THEN r.to_entity_id ELSE r.from_entity_id END"
    ap_val_t p[] = {AP_VTEXT(from), AP_VTEXT(from), AP_VTEXT(tenant), AP_VTEXT(at),
                    AP_VTEXT(at),   AP_VINT(max_hops), AP_VTEXT(to), AP_VTEXT(to),
                    AP_VTEXT(to),   AP_VTEXT(to),   AP_VINT(50)};
    rc = ap_tx_query(tx,
                     "WITH RECURSIVE walk(node, nodes, rels, hops) AS ("
                     " SELECT CAST(? AS TEXT), CAST(? AS TEXT), CAST('' AS TEXT), 0"
                     " UNION ALL"
                     " SELECT " OTHER ", w.nodes || ',' || " OTHER ","
                     "  w.rels || CASE WHEN w.rels = '' THEN '' ELSE ',' END || r.id, w.hops + 1"
                     " FROM walk w JOIN knowledge_relations r ON r.tenant_id = ?"
                     "  AND (r.from_entity_id = w.node OR r.to_entity_id = w.node)"
                     "  AND r.valid_from <= ? AND (r.valid_to IS NULL OR r.valid_to > ?)"
                     " WHERE w.hops < ? AND (CAST(? AS TEXT) IS NULL OR w.node <> ?)"
                     "  AND w.nodes NOT LIKE '%' || " OTHER " || '%')"
                     " SELECT nodes, rels, hops FROM walk"
                     " WHERE (CAST(? AS TEXT) IS NULL OR node = ?) AND hops > 0"
                     " ORDER BY hops, nodes LIMIT ?",
                     p, 11, &rows, err);
#undef OTHER
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < rows.nrows; i++)
        json_array_append_new(arr, json_pack("{s:I,s:o,s:o}", "hops",
                                             (json_int_t)atoll(ap_rows_at(&rows, i, 2)), "nodes",
                                             split_ids(ap_rows_at(&rows, i, 0)), "relations",
                                             split_ids(ap_rows_at(&rows, i, 1))));
    *out = json_pack("{s:o,s:s}", "data", arr, "as_of", at);
    return AP_OK;
}

ap_rc ap_graph_export(ap_tx_t *tx, const char *tenant, const char *as_of, json_t **out,
                      ap_err_t *err) {
    ap_arena_t *a = ap_tx_arena(tx);
    const char *at;
    ap_rc rc = when(a, as_of, "as_of", &at, err);
    if (rc) return rc;
    ap_rows_t ents, rels;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(at)};
    rc = ap_tx_query(tx,
                     "SELECT " ENT_COLS " FROM knowledge_entities WHERE tenant_id = ?"
                     " AND created_at <= ? ORDER BY id LIMIT 5000",
                     p, 2, &ents, err);
    if (rc) return rc;
    ap_val_t q[] = {AP_VTEXT(tenant), AP_VTEXT(at), AP_VTEXT(at)};
    rc = ap_tx_query(tx,
                     "SELECT " REL_COLS " FROM knowledge_relations WHERE tenant_id = ?"
                     " AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)"
                     " ORDER BY id LIMIT 20000",
                     q, 3, &rels, err);
    if (rc) return rc;
    json_t *nodes = json_array(), *edges = json_array();
    for (int i = 0; i < ents.nrows && !rc; i++) {
        json_t *attrs = NULL;
        if (as_of) rc = attrs_as_of(tx, tenant, ap_rows_get(&ents, i, "id"), at, &attrs, err);
        if (!attrs) attrs = json_loads(ap_rows_get(&ents, i, "attributes"), 0, NULL);
        json_array_append_new(
            nodes, json_pack("{s:s,s:s,s:s,s:o,s:o}", "id", ap_rows_get(&ents, i, "id"), "label",
                             ap_rows_get(&ents, i, "name"), "type",
                             ap_rows_get(&ents, i, "entity_type"), "attributes",
                             attrs ? attrs : json_object(), "confidence",
                             num(&ents, i, "confidence")));
    }
    for (int i = 0; i < rels.nrows; i++)
        json_array_append_new(
            edges, json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", ap_rows_get(&rels, i, "id"),
                             "source", ap_rows_get(&rels, i, "from_entity_id"), "target",
                             ap_rows_get(&rels, i, "to_entity_id"), "type",
                             ap_rows_get(&rels, i, "relation_type"), "strength",
                             num(&rels, i, "strength")));
    if (rc) {
        json_decref(nodes);
        json_decref(edges);
        return rc;
    }
    *out = json_pack("{s:o,s:o,s:s}", "nodes", nodes, "edges", edges, "as_of", at);
    return AP_OK;
}

ap_rc ap_graph_delete(ap_tx_t *tx, const char *tenant, const ap_actor_t *actor, const char *id,
                      ap_err_t *err) {
    ap_rows_t rows;
    ap_rc rc = fetch_entity(tx, tenant, id, &rows, err);
    if (rc) return rc;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(id)};
    rc = ap_tx_query(tx, "DELETE FROM knowledge_entities WHERE tenant_id = ? AND id = ?", p, 2,
                     NULL, err);
    if (rc) return rc;
    json_t *changes = json_pack("{s:s,s:s}", "entity_type", ap_rows_get(&rows, 0, "entity_type"),
                                "name", ap_rows_get(&rows, 0, "name"));
    ap_audit_event_t ev = {"knowledge.delete", "knowledge_entity", id, "success", changes};
    rc = ap_audit_append(tx, tenant, actor, &ev, NULL, err);
    json_decref(changes);
    return rc;
}

ap_rc ap_graph_facts_for_text(ap_tx_t *tx, const char *tenant, const char *text, int limit,
                              json_t **out, ap_err_t *err) {
    ap_arena_t *a = ap_tx_arena(tx);
    const char *norm = ap_mem_norm_name(a, text);
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT(tenant), AP_VTEXT(norm), AP_VINT(limit)};
    ap_rc rc = ap_tx_query(tx,
                           "SELECT entity_type, name, attributes FROM knowledge_entities"
                           " WHERE tenant_id = ? AND length(norm_name) >= 3"
                           " AND CAST(? AS TEXT) LIKE '%' || norm_name || '%' ORDER BY confidence DESC, id"
                           " LIMIT ?",
                           p, 3, &rows, err);
    if (rc) return rc;
    json_t *arr = json_array();
    for (int i = 0; i < rows.nrows; i++) {
        json_t *attrs = json_loads(ap_rows_at(&rows, i, 2), 0, NULL);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:o}", "entity_type",
                                             ap_rows_at(&rows, i, 0), "name",
                                             ap_rows_at(&rows, i, 1), "attributes",
                                             attrs ? attrs : json_object()));
    }
    *out = arr;
    return AP_OK;
}
