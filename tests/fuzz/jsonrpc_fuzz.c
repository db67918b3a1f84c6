/*
 * jsonrpc_fuzz.c - libFuzzer target for ap_rpc_parse + ap_rpc_classify.
 *
 * FUZZ_SOURCES: src/mcp/jsonrpc.c src/core/err.c
 *
 * 1. Whatever the bytes, parsing gives a JSON value or AP_ERR_INVALID
 *    ("parse-error") with *root NULL.
 * 2. Every message (the root, or each member of a batch) classifies as
 *    exactly one kind, and the kind's promises hold: a request has a
 *    string-or-integer id and a non-empty method without NUL, params is
 *    an object or absent; a notification has no id; a response has
 *    exactly one of result and error; an invalid message says why.
 * 3. The answers built from a message serialise to JSON that parses back
 *    as a response with the same id.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/jsonrpc.h"

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "jsonrpc_fuzz: property failed: %s\n", #cond);  \
            abort();                                                         \
        }                                                                    \
    } while (0)

static void answer_roundtrip(json_t *id, int code, const char *msg) {
    json_t *a = code ? ap_rpc_error(id, code, msg, NULL) : ap_rpc_result(id, json_object());
    char *s = json_dumps(a, JSON_COMPACT);
    CHECK(s != NULL);
    json_t *back;
    bool batch;
    ap_err_t err;
    CHECK(ap_rpc_parse(s, strlen(s), &back, &batch, &err) == AP_OK && !batch);
    if (id) { /* a null id makes no valid response; the answer is still JSON */
        ap_rpc_msg_t m;
        ap_rpc_classify(back, &m);
        CHECK(m.kind == AP_RPC_RESPONSE);
        CHECK(json_equal(m.id, id));
    }
    json_decref(back);
    free(s);
    json_decref(a);
}

static void one(json_t *m) {
    ap_rpc_msg_t msg;
    memset(&msg, 0x5a, sizeof msg);
    ap_rpc_classify(m, &msg);
    switch (msg.kind) {
    case AP_RPC_REQUEST:
        CHECK(msg.id && (json_is_string(msg.id) || json_is_integer(msg.id)));
        /* fall through */
    case AP_RPC_NOTIFICATION:
        CHECK(msg.method && *msg.method);
        CHECK(strlen(msg.method) == json_string_length(json_object_get(m, "method")));
        CHECK(!msg.params || json_is_object(msg.params));
        CHECK(msg.kind == AP_RPC_REQUEST || json_object_get(m, "id") == NULL);
        break;
    case AP_RPC_RESPONSE:
        CHECK(msg.id != NULL);
        CHECK((msg.result != NULL) != (msg.error != NULL));
        break;
    case AP_RPC_INVALID:
        CHECK(memchr(msg.why, '\0', sizeof msg.why) && msg.why[0]);
        CHECK(!msg.id || json_is_string(msg.id) || json_is_integer(msg.id));
        break;
    default: CHECK(!"unknown kind");
    }
    answer_roundtrip(msg.id, msg.kind == AP_RPC_INVALID ? AP_RPC_INVALID_REQUEST : 0,
                     msg.kind == AP_RPC_INVALID ? msg.why : NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *root = (json_t *)1;
    bool batch = true;
    ap_err_t err;
    memset(&err, 0x5a, sizeof err);
    ap_rc rc = ap_rpc_parse((const char *)data, size, &root, &batch, &err);
    if (rc) {
        CHECK(rc == AP_ERR_INVALID && root == NULL && !batch);
        CHECK(strcmp(err.type, "parse-error") == 0);
        CHECK(memchr(err.detail, '\0', sizeof err.detail));
        return 0;
    }
    CHECK(batch == json_is_array(root));
    if (batch) {
        size_t i;
        json_t *m;
        json_array_foreach(root, i, m) one(m);
    } else {
        one(root);
    }
    json_decref(root);
    return 0;
}
