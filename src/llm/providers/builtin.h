/*
 * builtin.h - the offline `builtin` provider: a deterministic stand-in for
 * a language model, so that `make run`, demos and tests work with no
 * network and no API key.
 *
 * 1. Same interface as a real provider: an ap_llm_req_t in, an
 *    ap_llm_resp_t (or a stream of deltas) out.  It is not a language
 *    model: it follows a few documented rules over the messages and the
 *    tools offered (docs/builtin-model.md):
 *      - after tool results: combine them into a final answer (delegation
 *        outputs, recorded facts, other tool output);
 *      - with `delegate_to_agent` offered and agents listed as
 *          - agent <id> "<name>" (<role>): capabilities: a, b, c
 *        split the objective and delegate each part to the best match;
 *      - with `remember` / `learn_entity` offered and facts ("X is Y",
 *        "X: Y") in the user's message: record them;
 *      - with `request_approval` offered and an objective that speaks of
 *        approval: ask for it first;
 *      - otherwise answer extractively from the context; when nothing is
 *        relevant, ask a listed colleague (`query_agent`, lines
 *          - colleague <id> "<name>" (<role>): a, b
 *        ) when offered, or say plainly "I have no information about …".
 *    A final answer goes through `complete_task` when that tool is offered.
 * 2. Deterministic: the same request gives the same response (ids are
 *    derived from a hash of the request); only resp.created reads the
 *    clock, and it is never part of the content.
 * 3. Never fails on odd input: empty or strange requests get a short
 *    answer.  Everything returned is arena memory; thread-safe on distinct
 *    arenas (no global state).
 */
#ifndef AP_LLM_PROVIDERS_BUILTIN_H
#define AP_LLM_PROVIDERS_BUILTIN_H

#include "core/arena.h"
#include "core/err.h"
#include "llm/types.h"
#include "llm/wire.h"

#define AP_BUILTIN_MODEL "agentprov-mini" /* catalog id builtin/agentprov-mini */
/* Limits of the heuristic (documented in docs/builtin-model.md). */
#define AP_BUILTIN_MAX_DELEGATIONS 5 /* delegate_to_agent calls per turn */
#define AP_BUILTIN_MAX_SENTENCES 3   /* sentences in an extractive answer */
#define AP_BUILTIN_MAX_BRIEF_SENTENCES 5 /* … answering a composition objective */
#define AP_BUILTIN_MAX_FACTS 4       /* facts recorded per turn */
#define AP_BUILTIN_MAX_AGENTS 32     /* agent listing lines considered */

/* Answers req.  *out (strings, tool calls) is arena memory.  Returns AP_OK
 * for every well-formed call (a, req and out non-NULL). */
ap_rc ap_builtin_complete(ap_arena_t *a, const ap_llm_req_t *req, ap_llm_resp_t *out,
                          ap_err_t *err);

/* The same answer as ap_builtin_complete, as deltas: text in word-sized
 * pieces; each tool call as a first delta with tool_index, id and name,
 * then argument fragments; a last delta with finish_reason and usage.
 * The strings in a delta are arena memory (valid after the callback).
 * Calls fn synchronously on the calling thread; fn is never called when
 * the function fails. */
ap_rc ap_builtin_stream(ap_arena_t *a, const ap_llm_req_t *req, ap_llm_delta_fn fn, void *ud,
                        ap_err_t *err);

/* Embeddings with the local hashed n-gram embedder (llm/embed.h):
 * req->dimensions 0 means AP_EMBED_DIM_DEFAULT; outside
 * AP_EMBED_DIM_MIN..AP_EMBED_DIM_MAX it is AP_ERR_INVALID.  Vectors are
 * arena memory; usage.prompt uses the same estimate as completions. */
ap_rc ap_builtin_embed(ap_arena_t *a, const ap_llm_embed_req_t *req, ap_llm_embed_resp_t *out,
                       ap_err_t *err);

#endif
