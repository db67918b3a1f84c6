#!/usr/bin/env bash
# scripts/catalog-seed.sh — generates src/store/migrations/0002_llm_catalog.sql,
# the LLM catalog's tables and seed rows, from the project's data files:
#
#   data/llm-providers.tsv   providers: id, name, wire protocol, base URL, active, notes
#   data/builtin-models.tsv  the builtin provider's models (price 0: they run locally)
#   data/model-catalog.tsv   models and list prices recorded from a public price
#                            catalog (data/SOURCES.md says which)
#
# The tier rule (speed_tier, quality_tier, size_category, edge_optimized) is
# implemented here in awk, and again in C (ap_catalog_derive in
# src/llm/catalog.c, for models added later); docs/llm-catalog.md states it and
# tests/unit/catalog_test.c checks that both give the same answer for every
# seeded row.
#
# Usage:
#   bash scripts/catalog-seed.sh           write the migration
#   bash scripts/catalog-seed.sh --check   exit 1 when the committed file is stale
#   bash scripts/catalog-seed.sh --tiers   print id, speed, quality, size, edge (TSV)
#
# Bad input (a wrong column count, a non-numeric price, an unknown provider, a
# duplicate id) stops the script with the file and line.
set -euo pipefail
export LC_ALL=C
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/src/store/migrations/0002_llm_catalog.sql"
PROVIDERS="$ROOT/data/llm-providers.tsv"
BUILTIN="$ROOT/data/builtin-models.tsv"
CATALOG="$ROOT/data/model-catalog.tsv"
SEEDED="1970-01-01T00:00:00.000Z"

mode=write
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  --tiers) mode=tiers ;;
  *) echo "usage: $0 [--check|--tiers]" >&2; exit 2 ;;
esac

# The awk program: reads the providers file, then the model files.
# shellcheck disable=SC2016
AWK='
BEGIN { FS = "\t"; nerr = 0 }

function fail(msg) { printf "%s:%d: %s\n", FILENAME, FNR, msg > "/dev/stderr"; nerr++ }
function q(s) { gsub(/\047/, "\047\047", s); return "\047" s "\047" }
function num_or_null(s) { return s == "" ? "NULL" : s }
function bool01(s, what) {
    if (s == "true") return 1
    if (s == "false") return 0
    fail(what " must be true or false, not \"" s "\"")
    return 0
}

# --- the tier rule (docs/llm-catalog.md; mirrored by ap_catalog_derive) ---

# Words of a lowercased model id: runs of [a-z0-9.].
function words(m, w) { return split(m, w, /[^a-z0-9.]+/) }

# Parameter count in billions from the first word that states one:
# "8x7b" (8 x 7), "70b", "1p5b" / "1.5b" (1.5), "r7b" (one leading letter
# allowed); -1 when no word does.
function params(m,   w, n, i, t, a) {
    n = words(m, w)
    for (i = 1; i <= n; i++) {
        t = w[i]
        if (t ~ /^[0-9]+x[0-9]+b$/) {
            split(substr(t, 1, length(t) - 1), a, "x")
            return a[1] * a[2]
        }
        if (t ~ /^[a-z]?[0-9]+([.p][0-9]+)?b$/) {
            sub(/^[a-z]/, "", t); sub(/b$/, "", t); sub(/p/, ".", t)
            return t + 0
        }
    }
    return -1
}

# The size a name word announces; the first such word wins.
function size_cue(m,   w, n, i, t) {
    n = words(m, w)
    for (i = 1; i <= n; i++) {
        t = w[i]
        if (t == "nano" || t == "tiny") return "tiny"
        if (t == "mini" || t == "flash" || t == "haiku" || t == "small" || t == "lite" ||
            t == "instant" || t == "air") return "small"
        if (t == "medium") return "medium"
        if (t == "opus" || t == "pro" || t == "large" || t == "max" || t == "ultra") return "xl"
    }
    return ""
}

function speed_cue(m,   w, n, i, t) {
    n = words(m, w)
    for (i = 1; i <= n; i++) {
        t = w[i]
        if (t == "fast" || t == "instant" || t == "turbo" || t == "flash") return 1
    }
    return 0
}

# Sets T_SPEED, T_QUALITY, T_SIZE, T_EDGE.  priced: both prices known.
function derive(prov, mid, mode, priced, pin, pout,   m, p, c) {
    if (prov == "builtin") { T_SPEED = "fast"; T_QUALITY = "basic"; T_SIZE = "tiny"; T_EDGE = 1; return }
    m = tolower(mid)
    p = params(m)
    if (p >= 0) T_SIZE = p < 4 ? "tiny" : p < 12 ? "small" : p < 50 ? "medium" : p < 150 ? "large" : "xl"
    else if (mode == "embedding") T_SIZE = "small"
    else if ((c = size_cue(m)) != "") T_SIZE = c
    else if (priced && pout > 0) T_SIZE = pout < 0.3 ? "small" : pout < 3 ? "medium" : pout < 20 ? "large" : "xl"
    else T_SIZE = "medium"

    if (mode == "embedding" || prov == "groq" || prov == "cerebras" || prov == "sambanova" || speed_cue(m))
        T_SPEED = "fast"
    else if (T_SIZE == "tiny" || T_SIZE == "small") T_SPEED = "fast"
    else if (T_SIZE == "xl") T_SPEED = "slow"
    else T_SPEED = "standard"

    if (mode == "embedding") T_QUALITY = "good"
    else if (T_SIZE == "tiny" || T_SIZE == "small") T_QUALITY = "basic"
    else if (T_SIZE == "xl") T_QUALITY = "best"
    else if (priced && (pin + pout) / 2 >= 4) T_QUALITY = "best"
    else T_QUALITY = "good"

    T_EDGE = (p >= 0 && p <= 8) ? 1 : 0
}

# --- input -----------------------------------------------------------------

/^#/ { next }

FILENAME == PROVIDERS {
    if ($1 == "id") next
    if (NF != 6) { fail("expected 6 columns, got " NF); next }
    if ($1 !~ /^[a-z0-9_]+$/) fail("provider id \"" $1 "\" must be [a-z0-9_]+")
    if ($1 in prov_wire) fail("duplicate provider " $1)
    if ($3 !~ /^(openai|anthropic|gemini|builtin|azure|bedrock|voyage)$/) fail("unknown wire protocol " $3)
    if ($5 != "0" && $5 != "1") fail("active must be 0 or 1")
    if ($4 != "-" && $4 !~ /^https?:\/\/[^ ]+$/) fail("base_url must be http(s) or -")
    if ($3 != "builtin" && $5 == "1" && $4 == "-") fail("an active provider needs a base_url")
    prov_wire[$1] = $3
    np++
    prov_sql[np] = sprintf("INSERT INTO llm_providers (id, name, wire_protocol, base_url, tenant_id, active, notes, created_at, updated_at)\nVALUES (%s, %s, %s, %s, NULL, %d, %s, %s, %s);",
        q($1), q($2), q($3), $4 == "-" ? "NULL" : q($4), $5, $6 == "-" ? "NULL" : q($6), q(SEEDED), q(SEEDED))
    next
}

{
    if ($1 == "provider") next
    if (NF != 12) { fail("expected 12 columns, got " NF); next }
    if (!($1 in prov_wire)) { fail("unknown provider " $1); next }
    if ($2 == "") fail("empty model_id")
    if ($3 == "") fail("empty display_name")
    if ($4 != "chat" && $4 != "embedding") fail("mode must be chat or embedding, not " $4)
    if ($5 != "" && $5 !~ /^[1-9][0-9]*$/) fail("context_window \"" $5 "\" is not a positive integer")
    if ($6 != "" && $6 !~ /^[1-9][0-9]*$/) fail("max_output_tokens \"" $6 "\" is not a positive integer")
    if (($7 == "") != ($8 == "")) fail("give both prices or neither")
    if ($7 != "" && $7 !~ /^[0-9]+(\.[0-9]+)?$/) fail("input price \"" $7 "\" is not a number")
    if ($8 != "" && $8 !~ /^[0-9]+(\.[0-9]+)?$/) fail("output price \"" $8 "\" is not a number")
    id = $1 "/" $2
    if (id in seen) fail("duplicate model " id)
    seen[id] = 1
    priced = $7 != ""
    derive($1, $2, $4, priced, $7 + 0, $8 + 0)
    tools = bool01($9, "supports_tools"); vision = bool01($10, "supports_vision"); reasoning = bool01($11, "supports_reasoning")
    nm++
    tiers[nm] = id "\t" T_SPEED "\t" T_QUALITY "\t" T_SIZE "\t" T_EDGE
    model_sql[nm] = sprintf("INSERT INTO llm_models (id, provider_id, model_id, display_name, mode, context_window, max_output_tokens, input_usd_per_mtok, output_usd_per_mtok, supports_tools, supports_vision, supports_reasoning, speed_tier, quality_tier, size_category, edge_optimized, active, tenant_id, source, created_at, updated_at)\nVALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %d, %d, %d, %s, %s, %s, %d, 1, NULL, %s, %s, %s);",
        q(id), q($1), q($2), q($3), q($4), num_or_null($5), num_or_null($6), num_or_null($7), num_or_null($8),
        tools, vision, reasoning, q(T_SPEED), q(T_QUALITY), q(T_SIZE), T_EDGE,
        q($1 == "builtin" ? "agentprov" : "litellm:" $12), q(SEEDED), q(SEEDED))
}

END {
    if (nerr) exit 1
    if (MODE == "tiers") { for (i = 1; i <= nm; i++) print tiers[i]; exit 0 }
    printf "\n-- %d providers\n", np
    for (i = 1; i <= np; i++) print prov_sql[i]
    printf "\n-- %d models\n", nm
    for (i = 1; i <= nm; i++) print model_sql[i]
}
'

run_awk() { # sql | tiers
  awk -v PROVIDERS="$PROVIDERS" -v SEEDED="$SEEDED" -v MODE="$1" "$AWK" \
    "$PROVIDERS" "$BUILTIN" "$CATALOG"
}

generate() {
  cat <<'EOF'
-- 0002_llm_catalog: the LLM catalog — providers and models with context
-- windows, list prices, capabilities and tiers — and its seed rows.
--
-- GENERATED by scripts/catalog-seed.sh from data/llm-providers.tsv,
-- data/builtin-models.tsv and data/model-catalog.tsv.  Do not edit: change
-- the data or the script and run `bash scripts/catalog-seed.sh`.
--
-- Runs unchanged on SQLite and PostgreSQL (0002_llm_catalog.pg.sql adds
-- row-level security).  Conventions of 0001: TEXT ids, RFC 3339 text
-- timestamps, booleans as INTEGER 0/1.
--
-- 1. Prices are USD per million tokens, DOUBLE PRECISION and nullable:
--    NULL means unpriced (unknown), never free.  Both prices are known or
--    neither is.  A price of 0 is a real price (local models).
-- 2. A row with tenant_id NULL belongs to the platform catalog and is seen
--    by every tenant; a row with a tenant_id is that tenant's private
--    provider (an OpenAI-compatible endpoint it registered) or its model.
-- 3. A model's id is "<provider_id>/<model_id>"; model_id is the
--    provider's own name for it and may itself contain '/'.
-- 4. speed_tier, quality_tier, size_category and edge_optimized follow the
--    rule in docs/llm-catalog.md.

CREATE TABLE llm_providers (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    wire_protocol TEXT NOT NULL CHECK (wire_protocol IN
                      ('openai', 'anthropic', 'gemini', 'builtin', 'azure', 'bedrock', 'voyage')),
    base_url      TEXT,
    tenant_id     TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    active        INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    notes         TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
-- A tenant's private providers have distinct names (the prefix of their
-- models' short names, "my-vllm/llama3"); platform rows (NULL) are exempt.
CREATE UNIQUE INDEX llm_providers_tenant_name ON llm_providers (tenant_id, name);

CREATE TABLE llm_models (
    id                  TEXT PRIMARY KEY,
    provider_id         TEXT NOT NULL REFERENCES llm_providers (id) ON DELETE CASCADE,
    model_id            TEXT NOT NULL,
    display_name        TEXT NOT NULL,
    mode                TEXT NOT NULL CHECK (mode IN ('chat', 'embedding', 'completion', 'rerank')),
    context_window      INTEGER CHECK (context_window > 0),
    max_output_tokens   INTEGER CHECK (max_output_tokens > 0),
    input_usd_per_mtok  DOUBLE PRECISION CHECK (input_usd_per_mtok >= 0),
    output_usd_per_mtok DOUBLE PRECISION CHECK (output_usd_per_mtok >= 0),
    supports_tools      INTEGER NOT NULL DEFAULT 0 CHECK (supports_tools IN (0, 1)),
    supports_vision     INTEGER NOT NULL DEFAULT 0 CHECK (supports_vision IN (0, 1)),
    supports_reasoning  INTEGER NOT NULL DEFAULT 0 CHECK (supports_reasoning IN (0, 1)),
    speed_tier          TEXT NOT NULL CHECK (speed_tier IN ('fast', 'standard', 'slow')),
    quality_tier        TEXT NOT NULL CHECK (quality_tier IN ('best', 'good', 'basic')),
    size_category       TEXT NOT NULL CHECK (size_category IN
                            ('tiny', 'small', 'medium', 'large', 'xl')),
    edge_optimized      INTEGER NOT NULL DEFAULT 0 CHECK (edge_optimized IN (0, 1)),
    active              INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    tenant_id           TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    source              TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    UNIQUE (provider_id, model_id),
    CHECK (id = provider_id || '/' || model_id),
    CHECK ((input_usd_per_mtok IS NULL) = (output_usd_per_mtok IS NULL))
);
CREATE INDEX llm_models_model_id ON llm_models (model_id);
CREATE INDEX llm_models_tenant ON llm_models (tenant_id, id);
EOF
  run_awk sql
}

case $mode in
  tiers) run_awk tiers ;;
  check)
    tmp=$(mktemp)
    trap 'rm -f "$tmp"' EXIT
    generate >"$tmp"
    if ! cmp -s "$tmp" "$OUT"; then
      echo "$OUT is stale: run bash scripts/catalog-seed.sh" >&2
      exit 1
    fi ;;
  write)
    generate >"$OUT.tmp"
    mv "$OUT.tmp" "$OUT"
    echo "wrote $OUT ($(grep -c '^INSERT INTO llm_providers' "$OUT") providers, $(grep -c '^INSERT INTO llm_models' "$OUT") models)" ;;
esac
