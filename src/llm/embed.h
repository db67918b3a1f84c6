/*
 * embed.h - the builtin embedding model: a local hashed n-gram embedder.
 *
 * 1. No model file, no network: a text becomes a fixed-length vector by
 *    hashing its features (word unigrams, word bigrams, character 3-grams
 *    of each word with boundary markers) into `dim` signed buckets, with
 *    TF-IDF-style weights, then L2-normalising.  docs/builtin-model.md
 *    gives the exact features and weights.
 * 2. Texts that share words (or parts of words) get a high cosine; texts
 *    that share nothing get a cosine near zero.  It knows nothing of
 *    synonyms: it is a lexical stand-in for demos and tests, not a
 *    semantic model.
 * 3. Pure functions with no global state: thread-safe, and the same text
 *    and dim always give the same bytes, on every machine.
 */
#ifndef AP_LLM_EMBED_H
#define AP_LLM_EMBED_H

#include <stddef.h>

#define AP_EMBED_MODEL "hash-embed-384" /* catalog id builtin/hash-embed-384 */
#define AP_EMBED_DIM_DEFAULT 384
#define AP_EMBED_DIM_MIN 8
#define AP_EMBED_DIM_MAX 4096

/* Writes the embedding of text[0..len) into out[0..dim).  dim should be
 * within AP_EMBED_DIM_MIN..AP_EMBED_DIM_MAX (callers validate input
 * from clients against these); any positive dim works, and dim <= 0
 * writes nothing.  The result has unit L2 norm, except for a text with
 * no word characters (empty, only punctuation or spaces), which gives the
 * zero vector.  Bytes >= 0x80 count as letters, so UTF-8 text in any
 * script is embedded (case folding is ASCII only).  text may be NULL
 * when len is 0.  Thread-safe; uses a temporary heap buffer. */
void ap_embed_hash(const char *text, size_t len, float *out, int dim);

/* Cosine similarity of two dim-vectors in [-1, 1]; 0 when either is the
 * zero vector.  Thread-safe. */
float ap_embed_cosine(const float *a, const float *b, int dim);

#endif
