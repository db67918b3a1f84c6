/*
 * demo.c - the demo team `serve` seeds on its first start (the moment it
 * writes the first platform admin key), so a fresh install has a team to
 * give a task to.
 *
 * 1. Tenant "Demo" (slug demo), group "Research team", a Manager
 *    (planning, coordination) supervising a Researcher (research, sources)
 *    and an Analyst (analysis, numbers, writing) who collaborate; the
 *    group's shared_context carries a small sample knowledge base; every agent
 *    validated and deployed, on the tenant default model (no LLM
 *    configuration: the built-in offline model).
 * 2. Everything goes through the same service calls as the API, in one
 *    platform-scope transaction audited as actor system/demo-seed: the
 *    seed lands whole or not at all.  The tenant_admin key is written to
 *    <data-dir>/demo.key (mode 0600, temporary file then rename) before
 *    the commit, as the admin key is.
 */
#include "cmd/demo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/id.h"
#include "identity/apikey.h"
#include "orch/agent.h"
#include "orch/group.h"
#include "orch/relationship.h"
#include "tenant/tenant.h"

/* The demo's sample knowledge base (docs/agents.md "demo team"): a few
 * illustrative figures, labelled as sample data, so that the first task
 * ("Research the EV battery market and write a one-page brief") has
 * something to draw on with the built-in model.  Not real market data. */
static const char *const sample_kb[] = {
    "The global EV battery market was worth about 120 billion USD in 2024, up from about 90 "
    "billion USD in 2023 (sample data).",
    "LFP cells held about 40% of the EV battery market in 2024, and NMC cells most of the rest "
    "(sample data).",
    "The three largest EV battery makers supplied about two thirds of the market in 2024 "
    "(sample data).",
    "EV battery pack prices fell about 20% in 2024, to roughly 115 USD per kWh "
    "(sample data).",
    "Demand for EV batteries is expected to grow about 25% a year to 2030, driven by cheaper "
    "packs and new models (sample data).",
    "Sodium-ion and solid-state cells are the new battery chemistries to watch (sample data).",
};

static const ap_actor_t seed_actor = {.type = "system", .id = "demo-seed", .role = "platform_admin"};

/* Creates an agent, validated and deployed; copies its id. */
static ap_rc agent(ap_tx_t *tx, const char *tid, const char *name, const char *role,
                   const char *desc, const char *caps, const char *tools, char *id,
                   ap_err_t *err) {
    json_t *in = json_pack("{s:s,s:s,s:s,s:o,s:o,s:{s:s,s:[s]}}", "name", name, "role", role,
                           "description", desc, "capabilities", json_loads(caps, 0, NULL),
                           "tools", json_loads(tools, 0, NULL), "memory_config", "embedder",
                           "builtin", "share_with", "group");
    json_t *out = NULL;
    ap_rc rc = ap_orch_agent_create(tx, tid, &seed_actor, in, &out, err);
    json_decref(in);
    if (!rc) snprintf(id, AP_UUID_LEN, "%s", json_string_value(json_object_get(out, "id")));
    json_decref(out);
    return rc;
}

static ap_rc deploy(ap_tx_t *tx, const char *tid, const char *id, ap_err_t *err) {
    json_t *out = NULL;
    ap_rc rc = ap_orch_agent_transition(tx, tid, &seed_actor, id, AP_AGENT_VALIDATE, 0, &out, err);
    json_decref(out);
    out = NULL;
    if (!rc) rc = ap_orch_agent_transition(tx, tid, &seed_actor, id, AP_AGENT_DEPLOY, 0, &out, err);
    json_decref(out);
    return rc;
}

static ap_rc relate(ap_tx_t *tx, const char *tid, const char *gid, const char *from,
                    const char *to, const char *type, double trust, ap_err_t *err) {
    json_t *in = json_pack("{s:s,s:s,s:s,s:s,s:f}", "from_agent_id", from, "to_agent_id", to,
                           "relationship_type", type, "group_id", gid, "trust_level", trust);
    json_t *out = NULL;
    ap_rc rc = ap_orch_rel_create(tx, tid, &seed_actor, in, &out, err);
    json_decref(in);
    json_decref(out);
    return rc;
}

static ap_rc write_key(const char *data_dir, const char *path, const char *key, ap_err_t *err) {
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST)
        return ap_err_set(err, AP_ERR_IO, NULL, "cannot create data directory", NULL, "%s: %s",
                          data_dir, strerror(errno));
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    bool ok = fd >= 0 && write(fd, key, strlen(key)) == (ssize_t)strlen(key) &&
              write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0) ok = false;
    if (!ok || rename(tmp, path) != 0)
        return ap_err_set(err, AP_ERR_IO, NULL, "cannot write the demo key", NULL, "%s: %s", path,
                          strerror(errno));
    return AP_OK;
}

ap_rc ap_cmd_demo_seed(ap_db_t *db, const char *data_dir, bool *created, char *path, size_t cap,
                       ap_err_t *err) {
    *created = false;
    snprintf(path, cap, "%s/demo.key", data_dir);
    ap_arena_t *a = ap_arena_new(8192);
    ap_tx_t *tx;
    ap_rows_t rows;
    ap_val_t p[] = {AP_VTEXT("demo")};
    ap_rc rc = ap_db_begin(db, NULL, AP_TX_WRITE, a, &tx, err);
    if (!rc) rc = ap_tx_query(tx, "SELECT COUNT(*) AS n FROM tenants WHERE slug = ?", p, 1, &rows, err);
    if (rc || ap_rows_int(&rows, 0, "n", 0) > 0) {
        ap_arena_free(a);
        return rc;
    }
    json_t *tin = json_pack("{s:s,s:s,s:s}", "name", "Demo", "slug", "demo", "plan", "team");
    json_t *tenant = NULL, *key = NULL, *g = NULL;
    rc = ap_tenant_create(tx, &seed_actor, tin, &tenant, err);
    json_decref(tin);
    const char *tid = rc ? NULL : ap_arena_strdup(a, json_string_value(json_object_get(tenant, "id")));
    char mgr[AP_UUID_LEN], res[AP_UUID_LEN], ana[AP_UUID_LEN], gid[AP_UUID_LEN];
    const char *worker_tools = "[\"complete_task\",\"query_agent\",\"escalate_to_supervisor\","
                               "\"remember\",\"recall\",\"learn_entity\",\"query_knowledge\"]";
    if (!rc)
        rc = agent(tx, tid, "Manager", "Manager",
                   "Plans the work: splits an objective and hands the parts to the specialists "
                   "whose capabilities fit, then combines their answers.",
                   "[\"planning\",\"coordination\"]",
                   "[\"delegate_to_agent\",\"query_agent\",\"complete_task\",\"request_approval\","
                   "\"remember\",\"recall\",\"query_knowledge\"]",
                   mgr, err);
    if (!rc)
        rc = agent(tx, tid, "Researcher", "Researcher",
                   "Finds and summarises sources on a question.", "[\"research\",\"sources\"]",
                   worker_tools, res, err);
    if (!rc)
        rc = agent(tx, tid, "Analyst", "Analyst",
                   "Works with figures: compares, computes and explains numbers, and writes "
                   "them up as briefs.",
                   "[\"analysis\",\"numbers\",\"writing\"]", worker_tools, ana, err);
    if (!rc) {
        json_t *kb = json_array();
        for (size_t i = 0; i < sizeof sample_kb / sizeof *sample_kb; i++)
            json_array_append_new(kb, json_string(sample_kb[i]));
        json_t *gin = json_pack(
            "{s:s,s:s,s:s,s:{s:s},s:{s:s,s:o},s:{s:f,s:b,s:i},s:[s,s,s]}", "name",
            "Research team", "description", "The demo team: a manager and two specialists.",
            "goal", "Answer questions with researched sources and checked numbers.", "strategy",
            "mode", "manager_delegates", "shared_context", "audience", "a curious reader",
            "sample_knowledge", kb, "escalation_rules", "min_confidence", 0.6, "on_failure", 1,
            "max_attempts", 2, "members", mgr, res, ana);
        rc = ap_orch_group_create(tx, tid, &seed_actor, gin, &g, err);
        json_decref(gin);
        if (!rc) snprintf(gid, sizeof gid, "%s", json_string_value(json_object_get(g, "id")));
    }
    if (!rc) rc = relate(tx, tid, gid, mgr, res, "supervises", 0.8, err);
    if (!rc) rc = relate(tx, tid, gid, mgr, ana, "supervises", 0.8, err);
    if (!rc) rc = relate(tx, tid, gid, res, ana, "collaborates_with", 0.7, err);
    if (!rc) rc = deploy(tx, tid, mgr, err);
    if (!rc) rc = deploy(tx, tid, res, err);
    if (!rc) rc = deploy(tx, tid, ana, err);
    ap_apikey_spec_t spec = {.name = "demo tenant admin", .role = "tenant_admin"};
    if (!rc) rc = ap_apikey_create(tx, tid, &seed_actor, AP_ROLE_PLATFORM_ADMIN, &spec, &key, err);
    if (!rc) rc = write_key(data_dir, path, json_string_value(json_object_get(key, "key")), err);
    if (!rc) rc = ap_tx_commit(tx, err);
    json_decref(tenant);
    json_decref(key);
    json_decref(g);
    ap_arena_free(a);
    if (!rc) *created = true;
    return rc;
}
