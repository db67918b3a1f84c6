/*
 * db.h - the store interface: one API over SQLite and PostgreSQL.
 *
 * 1. The same SQL runs on both backends; SQL is written with `?`
 *    placeholders and the PostgreSQL backend rewrites them to $1..$n.
 *    Nothing else is rewritten.  What cannot be said the same way lives in
 *    one backend function (ap_tx_lock, tenant scoping in begin).
 * 2. Every query runs inside a transaction opened for one tenant
 *    (ap_db_begin with a tenant id) or, explicitly, for the platform
 *    (tenant id NULL: key lookup, tenant administration, migrations).  On
 *    PostgreSQL the transaction sets app.tenant_id / app.platform and
 *    FORCE ROW LEVEL SECURITY policies enforce it.
 * 3. Transactions and result rows live in a caller's arena.  A transaction
 *    that is neither committed nor rolled back when the arena is freed is
 *    rolled back by an arena cleanup, so an early error return never leaks
 *    a connection or leaves a transaction open.
 * 4. Values come back as text (SQL NULL as a NULL pointer), the common
 *    ground of both wire formats.
 * 5. ap_db_t is thread-safe (a connection pool); an ap_tx_t belongs to
 *    one thread.
 */
#ifndef AP_STORE_DB_H
#define AP_STORE_DB_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"

typedef struct ap_db ap_db_t;
typedef struct ap_tx ap_tx_t;

typedef enum { AP_V_NULL, AP_V_TEXT, AP_V_INT, AP_V_REAL } ap_vtype;

typedef struct {
    ap_vtype t;
    const char *s;
    int64_t i;
    double d;
} ap_val_t;

static inline ap_val_t ap_vtext(const char *s) {
    return (ap_val_t){.t = s ? AP_V_TEXT : AP_V_NULL, .s = s};
}
#define AP_VTEXT(x) ap_vtext(x)
#define AP_VINT(x) ((ap_val_t){.t = AP_V_INT, .i = (int64_t)(x)})
#define AP_VREAL(x) ((ap_val_t){.t = AP_V_REAL, .d = (x)})
#define AP_VNULL ((ap_val_t){.t = AP_V_NULL})

typedef struct {
    int nrows, ncols;
    const char **cols; /* column names */
    const char **vals; /* nrows * ncols, row-major; NULL = SQL NULL */
    int64_t changes;   /* rows changed by INSERT/UPDATE/DELETE */
} ap_rows_t;

typedef enum { AP_TX_READ = 0, AP_TX_WRITE = 1 } ap_tx_mode;

typedef struct {
    int size;      /* connections in the pool */
    int in_use;    /* currently checked out */
    int64_t waits; /* acquisitions that had to wait */
} ap_db_stats_t;

/* url: "sqlite:PATH" or "postgres://..." / "postgresql://...".
 * pool_size 0 picks the backend default. */
ap_rc ap_db_open(const char *url, int pool_size, ap_db_t **out, ap_err_t *err);
void ap_db_close(ap_db_t *db); /* accepts NULL */
const char *ap_db_kind(const ap_db_t *db); /* "sqlite" | "postgres" */
void ap_db_stats(ap_db_t *db, ap_db_stats_t *out);

/* tenant_id NULL opens a platform-scope transaction. */
ap_rc ap_db_begin(ap_db_t *db, const char *tenant_id, ap_tx_mode mode, ap_arena_t *a,
                  ap_tx_t **out, ap_err_t *err);
ap_rc ap_tx_commit(ap_tx_t *tx, ap_err_t *err);
void ap_tx_rollback(ap_tx_t *tx); /* harmless after commit/rollback */
ap_arena_t *ap_tx_arena(ap_tx_t *tx);
const char *ap_tx_tenant(ap_tx_t *tx); /* NULL in platform scope */
ap_db_t *ap_tx_db(ap_tx_t *tx);

/* Runs one statement.  out may be NULL for statements without rows.
 * Unique and foreign-key violations return AP_ERR_CONFLICT; other
 * constraint violations AP_ERR_INVALID; a row-level security or trigger
 * refusal AP_ERR_DENIED; a busy or serialization failure
 * AP_ERR_UNAVAILABLE; anything else AP_ERR_IO.  A failed statement fails
 * the transaction (PostgreSQL aborts it): use INSERT … ON CONFLICT rather
 * than catching a conflict and going on. */
ap_rc ap_tx_query(ap_tx_t *tx, const char *sql, const ap_val_t *params, int nparams,
                  ap_rows_t *out, ap_err_t *err);
/* Takes a lock on `key` held until the transaction ends (PostgreSQL:
 * advisory xact lock; SQLite: write transactions are already serial). */
ap_rc ap_tx_lock(ap_tx_t *tx, const char *key, ap_err_t *err);
/* Runs a multi-statement script (migrations). */
ap_rc ap_tx_script(ap_tx_t *tx, const char *sql, ap_err_t *err);

/* Row access helpers. */
const char *ap_rows_get(const ap_rows_t *r, int row, const char *col);
const char *ap_rows_at(const ap_rows_t *r, int row, int col);
int64_t ap_rows_int(const ap_rows_t *r, int row, const char *col, int64_t dflt);
/* One row as a JSON object (new reference); columns named in int_cols
 * (NULL-terminated, or NULL) become integers, the rest strings or null. */
struct json_t;
struct json_t *ap_rows_json(const ap_rows_t *r, int row, const char *const *int_cols);
/* One page of a keyset list, from rows a query fetched with LIMIT limit + 1
 * (the extra row only says that more follow): the first `limit` rows, each
 * rendered by row, as a JSON array (new reference); *next gets column
 * key of the last of them when the extra row came back, else NULL
 * (memory of r). */
struct json_t *ap_rows_page(const ap_rows_t *r, int limit,
                            struct json_t *(*row)(const ap_rows_t *r, int i), const char *key,
                            const char **next);

#endif
