/*
 * common.c - what every handler shares: finishing a call, id parameters.
 */
#include "api/api.h"

void ap_api_done(ap_req_t *r, ap_rc rc, const ap_err_t *err, int status, json_t *out) {
    if (rc) {
        json_decref(out);
        ap_resp_problem(r, err);
        return;
    }
    ap_resp_json(r, status, out);
}

bool ap_api_id(ap_req_t *r, const char *param, const char **out) {
    const char *v = ap_req_param(r, param);
    if (v && ap_uuid_valid(v)) {
        *out = v;
        return true;
    }
    ap_err_t err;
    ap_err_set(&err, AP_ERR_NOT_FOUND, "not-found", "not found",
               "ids are UUIDs as returned by the API", "\"%.64s\" is not a valid %s",
               v ? v : "", param);
    ap_resp_problem(r, &err);
    return false;
}

void ap_api_bad_cursor(ap_req_t *r, const char *cursor) {
    ap_err_t err;
    ap_err_set(&err, AP_ERR_INVALID, "invalid-parameter", "invalid cursor",
               "pass next_cursor from the previous page unchanged, or leave cursor out",
               "cursor \"%.64s\" is not one this list returned", cursor);
    ap_resp_problem(r, &err);
}
