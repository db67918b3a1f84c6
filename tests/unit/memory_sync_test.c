/*
 * memory_sync_test.c - keeping the memory index in step with the database
 * (src/memory/sync.c), on every backend: two service objects on one
 * database stand for two nodes (each has its own index); what one
 * remembers, forgets, consolidates or counts, the other sees at its next
 * recall (the delta behind the agent's change sequence); tombstones hold
 * no content and, once pruned, make a partition behind them reload;
 * partition files are saved, loaded at start without rebuilding, brought
 * up to date when stale, and rebuilt from the database when corrupt,
 * ahead of the database or not matching it.
 */
#include "testutil.h"

#include <sys/stat.h>

#include "memory/index.h"
#include "memory/memory.h"

#define T1 "11111111-0000-7000-8000-000000000001"
#define A1 "aaaaaaaa-0000-7000-8000-000000000001"

static const ap_actor_t actor = {"system", "test", NULL, NULL, NULL};

typedef struct {
    ap_db_t *db;
    ap_arena_t *a;
    char dir[64];
} fx_t;

static fx_t setup(void) {
    fx_t f = {tu_open(), ap_arena_new(4096), ""};
    tu_add_tenant(f.db, T1, "t-one");
    tu_exec(f.db, T1,
            "INSERT INTO agents (id, tenant_id, name, role, memory_config, created_at, updated_at)"
            " VALUES (?, ?, 'a1', 'worker', '{}', '2026-01-01T00:00:00.000Z',"
            " '2026-01-01T00:00:00.000Z')",
            (ap_val_t[]){AP_VTEXT(A1), AP_VTEXT(T1)}, 2);
    snprintf(f.dir, sizeof f.dir, "/tmp/apmemsync-XXXXXX");
    assert_non_null(mkdtemp(f.dir));
    return f;
}

static void rm_rf(const char *dir) {
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static void teardown(fx_t *f) {
    ap_arena_free(f->a);
    ap_db_close(f->db);
    rm_rf(f->dir);
}

/* A node: its own service object (and index) on the shared database. */
static ap_mem_t *node(fx_t *f, bool files, int hnsw_min) {
    ap_mem_opts_t o = {.db = f->db, .no_worker = true, .hnsw_min = hnsw_min,
                       .index_dir = files ? f->dir : NULL};
    ap_mem_t *m;
    ap_err_t err = {0};
    assert_int_equal(ap_mem_new(&o, &m, &err), AP_OK);
    return m;
}

static const char *remember(fx_t *f, ap_mem_t *m, const char *content, double importance) {
    ap_err_t err = {0};
    json_t *in = json_pack("{s:s,s:s,s:f}", "content", content, "memory_type", "fact",
                           "importance", importance),
           *out = NULL;
    if (ap_mem_remember(m, f->a, T1, &actor, A1, in, &out, &err))
        fail_msg("remember: %s %s", err.msg, err.detail);
    const char *id = ap_arena_strdup(f->a, json_string_value(json_object_get(out, "id")));
    json_decref(in);
    json_decref(out);
    return id;
}

/* Recall: the answer's data (new reference). */
static json_t *recall(ap_mem_t *m, ap_arena_t *a, const char *query, int limit) {
    ap_err_t err = {0};
    json_t *in = json_pack("{s:s,s:i,s:f}", "query", query, "limit", limit, "min_similarity", 0.0),
           *out = NULL;
    if (ap_mem_recall(m, a, T1, A1, in, &out, &err)) fail_msg("recall: %s %s", err.msg, err.detail);
    json_decref(in);
    json_t *data = json_incref(json_object_get(out, "data"));
    json_decref(out);
    return data;
}

static bool has(json_t *data, const char *id) {
    size_t i;
    json_t *x;
    json_array_foreach(data, i, x) if (!strcmp(json_string_value(json_object_get(x, "id")), id))
        return true;
    return false;
}

static json_t *find(json_t *data, const char *id) {
    size_t i;
    json_t *x;
    json_array_foreach(data, i, x) if (!strcmp(json_string_value(json_object_get(x, "id")), id))
        return x;
    return NULL;
}

static ap_mem_part_info_t state(ap_mem_t *m) {
    ap_mem_part_info_t pi;
    assert_true(ap_mem_index_state(m, T1, A1, &pi));
    return pi;
}

static void forget(fx_t *f, ap_mem_t *m, const char *id) {
    ap_err_t err = {0};
    assert_int_equal(ap_mem_forget(m, f->a, T1, &actor, A1, id, &err), AP_OK);
}

/* ---------- deltas ---------- */

static void test_delta_catch_up(void **state_) {
    (void)state_;
    fx_t f = setup();
    ap_mem_t *n1 = node(&f, false, -1), *n2 = node(&f, false, -1);
    remember(&f, n1, "The staging database runs on port 5433", 0.5);
    remember(&f, n1, "Backups are taken every night at two", 0.5);
    json_t *d = recall(n2, f.a, "staging database port", 5); /* n2 loads its partition */
    json_decref(d);
    assert_int_equal(state(n2).n, 2);
    int64_t seq0 = state(n2).seq;

    /* remembered on n1: n2 sees it at its next recall, by the delta */
    const char *x = remember(&f, n1, "The release train leaves on Thursdays", 0.9);
    d = recall(n2, f.a, "release train Thursdays", 5);
    assert_true(has(d, x));
    json_decref(d);
    ap_mem_part_info_t pi = state(n2);
    assert_int_equal(pi.n, 3);
    assert_true(pi.seq > seq0);

    /* forgotten on n1: gone from n2's partition, not only filtered out */
    forget(&f, n1, x);
    d = recall(n2, f.a, "release train Thursdays", 5);
    assert_false(has(d, x));
    json_decref(d);
    assert_int_equal(state(n2).n, 2);
    /* the tombstone holds the id and the sequence, never the content */
    assert_int_equal(tu_count(f.db, T1,
                              "SELECT COUNT(*) FROM agent_memory_tombstones WHERE memory_id = ?",
                              (ap_val_t[]){AP_VTEXT(x)}, 1),
                     1);
    assert_int_equal(tu_count(f.db, T1, "SELECT COUNT(*) FROM agent_memories WHERE id = ?",
                              (ap_val_t[]){AP_VTEXT(x)}, 1),
                     0);

    /* consolidated on n1 (a contradiction supersedes the older fact, a
     * duplicate folds into the older one with the higher importance): n2
     * drops the superseded one and ranks the kept one with its new
     * importance */
    const char *old_fact = remember(&f, n1, "The office wifi password is swordfish", 0.3);
    const char *new_fact = remember(&f, n1, "The office wifi password is marlin", 0.3);
    const char *dup1 = remember(&f, n1, "Deploys need two approvals from the team", 0.2);
    remember(&f, n1, "Deploys need two approvals from the team!", 0.95);
    d = recall(n2, f.a, "office wifi password", 5);
    assert_true(has(d, old_fact) && has(d, new_fact));
    json_decref(d);
    ap_err_t err = {0};
    json_t *in = json_pack("{}"), *out = NULL;
    assert_int_equal(ap_mem_consolidate(n1, f.a, T1, &actor, A1, in, &out, &err), AP_OK);
    json_decref(in);
    json_decref(out);
    d = recall(n2, f.a, "office wifi password", 5);
    assert_false(has(d, old_fact));
    assert_true(has(d, new_fact));
    json_decref(d);
    d = recall(n2, f.a, "deploys approvals team", 5);
    json_t *kept = find(d, dup1);
    assert_non_null(kept);
    assert_true(json_real_value(json_object_get(kept, "importance")) > 0.9);
    assert_true(json_real_value(json_object_get(json_object_get(kept, "score_parts"), "importance")) >
                0.9);
    json_decref(d);
    d = recall(n1, f.a, "deploys", 1); /* n1 loads its partition */
    json_decref(d);
    assert_int_equal(state(n2).n, state(n1).n);

    /* access counts counted on n2 reach the database and n1 */
    d = recall(n2, f.a, "staging database port", 1);
    const char *hit = ap_arena_strdup(f.a, json_string_value(json_object_get(json_array_get(d, 0), "id")));
    json_int_t before = json_integer_value(json_object_get(json_array_get(d, 0), "access_count"));
    json_decref(d);
    assert_true(ap_mem_flush(n2) >= 1);
    assert_true(ap_mem_flush(n1) >= 0);
    d = recall(n1, f.a, "staging database port", 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "id")), hit);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(d, 0), "access_count")),
                     before + 1);
    json_decref(d);
    ap_mem_free(n1);
    ap_mem_free(n2);
    teardown(&f);
}

/* Pruned tombstones: a partition that reflects less than the pruned
 * sequence cannot tell what was deleted, and reads the rows again. */
static void test_pruned_tombstones_reload(void **state_) {
    (void)state_;
    fx_t f = setup();
    ap_mem_t *n1 = node(&f, false, -1), *n2 = node(&f, false, -1);
    const char *keep = remember(&f, n1, "Invoices are due in thirty days", 0.5);
    const char *x = remember(&f, n1, "The old vendor portal is at portal.example", 0.5);
    json_t *d = recall(n2, f.a, "vendor portal", 5);
    assert_true(has(d, x));
    json_decref(d);
    forget(&f, n1, x);
    assert_int_equal(ap_mem_prune_tombstones(n1), 0); /* too young */
    tu_exec(f.db, T1, "UPDATE agent_memory_tombstones SET deleted_at = '2020-01-01T00:00:00.000Z'",
            NULL, 0);
    assert_int_equal(ap_mem_prune_tombstones(n1), 1);
    assert_int_equal(tu_count(f.db, T1, "SELECT COUNT(*) FROM agent_memory_tombstones", NULL, 0), 0);
    assert_true(tu_count(f.db, T1, "SELECT pruned_seq FROM agent_memory_seq", NULL, 0) > 0);
    d = recall(n2, f.a, "vendor portal invoices", 5);
    assert_false(has(d, x));
    assert_true(has(d, keep));
    json_decref(d);
    assert_int_equal(state(n2).n, 1);
    ap_mem_free(n1);
    ap_mem_free(n2);
    teardown(&f);
}

/* ---------- files ---------- */

static const char *const words[] = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot",
                                    "golf", "hotel", "india", "juliet", "kilo", "lima"};

static char *file_of(fx_t *f) {
    static char path[256];
    char cmd[200];
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.idx' | head -1", f->dir);
    FILE *p = popen(cmd, "r");
    path[0] = '\0';
    if (p && fgets(path, sizeof path, p)) path[strcspn(path, "\n")] = '\0';
    if (p) pclose(p);
    return path;
}

static void test_saved_index(void **state_) {
    (void)state_;
    fx_t f = setup();
    ap_mem_t *n1 = node(&f, true, 40);
    const char *ids[60];
    for (int i = 0; i < 60; i++) {
        char text[128];
        snprintf(text, sizeof text, "%s %s %s note %d", words[i % 12], words[(i * 5 + 1) % 12],
                 words[(i * 7 + 3) % 12], i);
        ids[i] = remember(&f, n1, text, (i % 10) / 10.0);
    }
    const char *blank = remember(&f, n1, "!!!", 0.5); /* a zero vector */
    json_t *d0 = recall(n1, f.a, "alpha bravo note", 10); /* loads the partition */
    ap_mem_run_jobs(n1);                                    /* builds the graph and saves */
    ap_mem_part_info_t pi = state(n1);
    assert_true(pi.has_graph);
    assert_int_equal(pi.unsaved, 0);
    const char *path = file_of(&f);
    assert_true(path[0]);
    char saved[256];
    snprintf(saved, sizeof saved, "%s", path);
    ap_mem_free(n1);

    /* a start loads the file: no rebuild, same answers */
    ap_mem_t *n2 = node(&f, true, 40);
    json_t *d = recall(n2, f.a, "alpha bravo note", 10);
    pi = state(n2);
    assert_true(pi.from_file);
    assert_true(pi.has_graph);
    assert_int_equal(pi.n, 61);
    assert_int_equal(json_array_size(d), json_array_size(d0));
    for (size_t i = 0; i < json_array_size(d); i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(d, i), "id")),
                            json_string_value(json_object_get(json_array_get(d0, i), "id")));
    json_decref(d);
    json_decref(d0);
    ap_mem_free(n2);

    /* stale: another node changed the agent's memories since the save */
    ap_mem_t *other = node(&f, false, 40);
    const char *fresh = remember(&f, other, "zulu yankee xray fresh memory", 0.7);
    forget(&f, other, ids[0]);
    ap_mem_free(other);
    ap_mem_t *n3 = node(&f, true, 40);
    d = recall(n3, f.a, "zulu yankee xray", 5);
    pi = state(n3);
    assert_true(pi.from_file);
    assert_int_equal(pi.n, 61);
    assert_true(has(d, fresh));
    json_decref(d);
    d = recall(n3, f.a, "alpha bravo charlie note 0", 60);
    assert_false(has(d, ids[0]));
    json_decref(d);
    assert_true(pi.unsaved > 0); /* the delta is saved at the next save */
    ap_mem_free(n3);               /* saves */

    /* corrupt: rebuilt from the database, right answers */
    FILE *fp = fopen(saved, "r+b");
    assert_non_null(fp);
    fseek(fp, 300, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, 300, SEEK_SET);
    fputc(c ^ 0x55, fp);
    fclose(fp);
    ap_mem_t *n4 = node(&f, true, 40);
    d = recall(n4, f.a, "zulu yankee xray", 5);
    pi = state(n4);
    assert_false(pi.from_file);
    assert_int_equal(pi.n, 61);
    assert_true(has(d, fresh));
    json_decref(d);
    ap_mem_run_jobs(n4); /* graph again, saved again */
    ap_mem_free(n4);

    /* ahead of the database (a restored database): not trusted */
    tu_exec(f.db, T1, "UPDATE agent_memory_seq SET seq = 1", NULL, 0);
    ap_mem_t *n5 = node(&f, true, 40);
    d = recall(n5, f.a, "zulu yankee xray", 5);
    assert_false(state(n5).from_file);
    assert_true(has(d, fresh));
    json_decref(d);
    ap_mem_run_jobs(n5);
    ap_mem_free(n5);

    /* not matching the database (a row deleted behind the service's back) */
    tu_exec(f.db, T1, "DELETE FROM agent_memories WHERE id = ?", (ap_val_t[]){AP_VTEXT(ids[1])}, 1);
    ap_mem_t *n6 = node(&f, true, 40);
    d = recall(n6, f.a, "alpha", 60);
    pi = state(n6);
    assert_false(pi.from_file);
    assert_int_equal(pi.n, 60);
    assert_false(has(d, ids[1]));
    json_decref(d);
    (void)blank;
    ap_mem_free(n6);
    teardown(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delta_catch_up),
        cmocka_unit_test(test_pruned_tombstones_reload),
        cmocka_unit_test(test_saved_index),
    };
    TU_RUN_BACKENDS(tests);
}
