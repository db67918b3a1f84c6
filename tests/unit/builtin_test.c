/*
 * builtin_test.c - the offline `builtin` provider and the hashed n-gram
 * embedder.
 *
 * 1. No database: these run once, not per backend.
 * 2. Expected answers are written out literally; they follow the rules in
 *    docs/builtin-model.md, so a change of rule shows up here as a diff.
 * 3. Streams are checked against complete calls on the same request: the
 *    deltas must reassemble to the same content, tool calls, finish
 *    reason and usage.
 */
#include "testutil.h"

#include <math.h>

#include <jansson.h>

#include "core/buf.h"
#include "llm/embed.h"
#include "llm/providers/builtin.h"

/* ---- helpers ------------------------------------------------------------ */

#define NMSGS(m) ((int)(sizeof(m) / sizeof *(m)))

static ap_llm_req_t request(ap_llm_msg_t *msgs, int nmsgs, ap_llm_tool_t *tools, int ntools) {
    return (ap_llm_req_t){.model = "builtin", .msgs = msgs, .nmsgs = nmsgs, .tools = tools,
                          .ntools = ntools};
}

static ap_llm_resp_t complete(ap_arena_t *a, const ap_llm_req_t *req) {
    ap_llm_resp_t resp;
    ap_err_t err = {0};
    assert_int_equal(ap_builtin_complete(a, req, &resp, &err), AP_OK);
    assert_non_null(resp.id);
    assert_non_null(resp.model);
    assert_non_null(resp.finish_reason);
    assert_true(resp.content || resp.ntool_calls > 0);
    return resp;
}

/* Parses a tool call's arguments (new reference). */
static json_t *args_of(const ap_llm_tool_call_t *tc) {
    json_error_t e;
    json_t *j = json_loads(tc->arguments, 0, &e);
    if (!j) fail_msg("arguments are not JSON: %s (%s)", tc->arguments, e.text);
    return j;
}

static const char *arg(json_t *args, const char *key) {
    const char *s = json_string_value(json_object_get(args, key));
    if (!s) fail_msg("no string argument %s", key);
    return s;
}

static void assert_same(const ap_llm_resp_t *x, const ap_llm_resp_t *y) {
    assert_string_equal(x->id, y->id);
    assert_string_equal(x->model, y->model);
    assert_string_equal(x->finish_reason, y->finish_reason);
    if (x->content || y->content) {
        assert_non_null(x->content);
        assert_non_null(y->content);
        assert_string_equal(x->content, y->content);
    }
    assert_int_equal(x->ntool_calls, y->ntool_calls);
    for (int i = 0; i < x->ntool_calls; i++) {
        assert_string_equal(x->tool_calls[i].id, y->tool_calls[i].id);
        assert_string_equal(x->tool_calls[i].name, y->tool_calls[i].name);
        assert_string_equal(x->tool_calls[i].arguments, y->tool_calls[i].arguments);
    }
    assert_int_equal(x->usage.prompt, y->usage.prompt);
    assert_int_equal(x->usage.completion, y->usage.completion);
}

static const char *manager_system =
    "You are Mia, the manager of the research team.\n"
    "# Goal\n"
    "Deliver market insight to the board.\n"
    "# Agents\n"
    "- agent a1 \"Researcher\" (researcher): capabilities: research, market analysis\n"
    "- agent a2 \"Writer\" (writer): capabilities: writing, editing\n";

static const char *memory_system =
    "You are Rex, a research assistant. Be brief.\n"
    "# Recalled memories\n"
    "- The office cat is called Pixel.\n"
    "- The Q3 revenue was 4.2 million euros. It beat the plan.\n"
    "- Our main competitor is Acme Corp.\n"
    "# Knowledge facts\n"
    "- Acme Corp is based in Lyon.\n";

/* ---- delegation ---------------------------------------------------------- */

static void test_delegation_to_best_match(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = manager_system},
        {.role = AP_LLM_USER,
         .content = "Research the EV battery market and write a one-page brief"},
    };
    ap_llm_tool_t tools[] = {{"delegate_to_agent"}, {"complete_task"}, {"remember"}};
    ap_llm_req_t req = request(msgs, NMSGS(msgs), tools, 3);
    ap_llm_resp_t r = complete(a, &req);
    assert_string_equal(r.finish_reason, "tool_calls");
    assert_null(r.content);
    assert_int_equal(r.ntool_calls, 2);
    json_t *x = args_of(&r.tool_calls[0]), *y = args_of(&r.tool_calls[1]);
    assert_string_equal(r.tool_calls[0].name, "delegate_to_agent");
    assert_string_equal(arg(x, "agent_id"), "a1");
    assert_string_equal(arg(x, "objective"), "Research the EV battery market");
    assert_string_equal(r.tool_calls[1].name, "delegate_to_agent");
    assert_string_equal(arg(y, "agent_id"), "a2");
    assert_string_equal(arg(y, "objective"), "Write a one-page brief");
    assert_string_not_equal(r.tool_calls[0].id, r.tool_calls[1].id);
    json_decref(x);
    json_decref(y);
    ap_arena_free(a);
}

/* Bullets and sentences split too; a part that matches nobody stays with
 * its neighbour; the order of listing breaks ties; the listing line may
 * omit the bullet, the name and the role. */
static void test_delegation_parts_and_ties(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM,
         .content = "Team:\n"
                    "agent w1: capabilities: writing\n"
                    "- agent w2 \"Second writer\": capabilities: writing\n"
                    "- agent r9 (analyst): capabilities: research, data\n"},
        {.role = AP_LLM_USER,
         .content = "Objective:\n- Write the press release and polish it\n"
                    "- Research competitor pricing.\n\nThis line is not the objective."},
    };
    ap_llm_tool_t tools[] = {{"delegate_to_agent"}};
    ap_llm_req_t req = request(msgs, NMSGS(msgs), tools, 1);
    ap_llm_resp_t r = complete(a, &req);
    assert_int_equal(r.ntool_calls, 2);
    json_t *x = args_of(&r.tool_calls[0]), *y = args_of(&r.tool_calls[1]);
    assert_string_equal(arg(x, "agent_id"), "w1"); /* tie with w2: listed first */
    assert_string_equal(arg(x, "objective"), "Write the press release and polish it");
    assert_string_equal(arg(y, "agent_id"), "r9");
    assert_string_equal(arg(y, "objective"), "Research competitor pricing");
    json_decref(x);
    json_decref(y);
    ap_arena_free(a);
}

/* Nothing matches: the supervisor answers itself (through complete_task). */
static void test_delegation_no_match_answers_itself(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = manager_system},
        {.role = AP_LLM_USER, .content = "Book a flight to Paris."},
    };
    ap_llm_tool_t tools[] = {{"delegate_to_agent"}, {"complete_task"}};
    ap_llm_req_t req = request(msgs, NMSGS(msgs), tools, 2);
    ap_llm_resp_t r = complete(a, &req);
    assert_int_equal(r.ntool_calls, 1);
    assert_string_equal(r.tool_calls[0].name, "complete_task");
    json_t *x = args_of(&r.tool_calls[0]);
    assert_string_equal(arg(x, "output"), "I have no information about a flight to Paris.");
    assert_true(json_is_number(json_object_get(x, "confidence")));
    json_decref(x);
    ap_arena_free(a);
}

/* ---- tool results -------------------------------------------------------- */

static void test_delegation_results_combine(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_tool_call_t calls[] = {
        {"call_1", "delegate_to_agent",
         "{\"agent_id\":\"a1\",\"objective\":\"Research the EV battery market\"}"},
        {"call_2", "delegate_to_agent",
         "{\"agent_id\":\"a2\",\"objective\":\"Write a one-page brief\"}"},
    };
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = manager_system},
        {.role = AP_LLM_USER,
         .content = "Research the EV battery market and write a one-page brief"},
        {.role = AP_LLM_ASSISTANT, .tool_calls = calls, .ntool_calls = 2},
        {.role = AP_LLM_TOOL,
         .tool_call_id = "call_1",
         .content = "{\"output\":\"EV battery demand grew 40% in 2024.\",\"confidence\":0.8}"},
        {.role = AP_LLM_TOOL, .tool_call_id = "call_2", .content = "Brief drafted."},
    };
    ap_llm_tool_t tools[] = {{"delegate_to_agent"}, {"complete_task"}};
    /* a brief: the objective as title, one section per part naming its agent */
    const char *want = "# Research the EV battery market and write a one-page brief\n\n"
                       "## Research the EV battery market (Researcher)\n"
                       "EV battery demand grew 40% in 2024.\n\n"
                       "## Write a one-page brief (Writer)\n"
                       "Brief drafted.";

    ap_llm_req_t req = request(msgs, NMSGS(msgs), tools, 2);
    ap_llm_resp_t r = complete(a, &req);
    assert_string_equal(r.finish_reason, "tool_calls");
    assert_int_equal(r.ntool_calls, 1);
    assert_string_equal(r.tool_calls[0].name, "complete_task");
    json_t *x = args_of(&r.tool_calls[0]);
    assert_string_equal(arg(x, "output"), want);
    assert_true(fabs(json_number_value(json_object_get(x, "confidence")) - 0.8) < 1e-9);
    json_decref(x);

    /* Without complete_task: the same answer as text. */
    req.ntools = 1;
    r = complete(a, &req);
    assert_string_equal(r.finish_reason, "stop");
    assert_int_equal(r.ntool_calls, 0);
    assert_string_equal(r.content, want);

    /* A subtask that failed says so; a lone result stands alone. */
    msgs[4].is_error = true;
    msgs[4].content = "{\"error\":\"agent a2 is paused\"}";
    r = complete(a, &req);
    assert_string_equal(r.content, "# Research the EV battery market and write a one-page brief\n\n"
                                   "## Research the EV battery market (Researcher)\n"
                                   "EV battery demand grew 40% in 2024.\n\n"
                                   "## Write a one-page brief (Writer)\n"
                                   "(failed: agent a2 is paused)");
    calls[1].id = "other";
    r = complete(a, &req);
    assert_string_equal(r.content, "EV battery demand grew 40% in 2024.\n\n"
                                   "The tools returned: (failed) agent a2 is paused.");
    ap_arena_free(a);
}

/* The demo team's split: "research …" to the Researcher, "write a one-page
 * brief" to the Analyst (capabilities analysis, numbers, writing), in one
 * turn, the same calls every time; one subordinate gets it all. */
static void test_demo_split_is_deterministic(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    const char *sys = "You are Manager, Manager.\n"
                      "# Agents you can delegate to\n"
                      "- agent r1 \"Researcher\" (Researcher): capabilities: research, sources\n"
                      "- agent n1 \"Analyst\" (Analyst): capabilities: analysis, numbers, writing\n";
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = sys},
        {.role = AP_LLM_USER,
         .content = "Objective: Research the EV battery market and write a one-page brief\n"},
    };
    ap_llm_tool_t tools[] = {{"delegate_to_agent"}, {"complete_task"}};
    ap_llm_req_t req = request(msgs, NMSGS(msgs), tools, 2);
    ap_llm_resp_t r = complete(a, &req), again = complete(a, &req);
    assert_same(&r, &again);
    assert_int_equal(r.ntool_calls, 2);
    assert_string_equal(r.tool_calls[0].arguments,
                        "{\"agent_id\":\"r1\",\"objective\":\"Research the EV battery market\"}");
    assert_string_equal(r.tool_calls[1].arguments,
                        "{\"agent_id\":\"n1\",\"objective\":\"Write a one-page brief\"}");
    /* a team of one: the whole objective goes to it */
    msgs[0].content = "# Agents\n- agent r1 \"Researcher\" (Researcher): capabilities: research\n";
    r = complete(a, &req);
    assert_int_equal(r.ntool_calls, 1);
    assert_string_equal(r.tool_calls[0].arguments,
                        "{\"agent_id\":\"r1\",\"objective\":\"Research the EV battery market and "
                        "write a one-page brief\"}");
    ap_arena_free(a);
}

/* A part whose own terms find nothing ("Write a one-page brief") is
 * answered from the terms of the whole objective on its "Part of:" line;
 * a composition objective keeps up to 5 sentences; the "Part of:" line is
 * not knowledge. */
static void test_part_answers_from_whole_objective(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    const char *sys = "You are Analyst, Analyst.\n"
                      "# Shared context\n"
                      "- The EV battery market was worth 120 billion USD in 2024.\n"
                      "- LFP cells held 40% of the EV battery market.\n"
                      "- EV battery pack prices fell 20% in 2024.\n"
                      "- Demand for EV batteries grows 25% a year.\n"
                      "- The office cat is called Pixel.\n";
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = sys},
        {.role = AP_LLM_USER,
         .content = "Objective: Write a one-page brief\n\n"
                    "Part of: Research the EV battery market and write a one-page brief\n"},
    };
    ap_llm_tool_t tools[] = {{"complete_task"}};
    ap_llm_req_t req = request(msgs, NMSGS(msgs), tools, 1);
    ap_llm_resp_t r = complete(a, &req);
    assert_int_equal(r.ntool_calls, 1);
    json_t *x = args_of(&r.tool_calls[0]);
    assert_string_equal(arg(x, "output"),
                        "The EV battery market was worth 120 billion USD in 2024. LFP cells held "
                        "40% of the EV battery market. EV battery pack prices fell 20% in 2024. "
                        "Demand for EV batteries grows 25% a year.");
    /* terms research, ev, battery, market: 3 of 4 covered */
    assert_true(fabs(json_number_value(json_object_get(x, "confidence")) - 0.75) < 1e-9);
    json_decref(x);
    /* nothing on the subject either: "I have no information" about the part */
    msgs[0].content = "You are Analyst.\n# Shared context\n- The office cat is called Pixel.\n";
    r = complete(a, &req);
    x = args_of(&r.tool_calls[0]);
    assert_string_equal(arg(x, "output"), "I have no information about a one-page brief.");
    assert_true(fabs(json_number_value(json_object_get(x, "confidence")) - 0.1) < 1e-9);
    json_decref(x);
    ap_arena_free(a);
}

/* Composition: a later section leaves out what an earlier one said; a
 * section with nothing new reads "(as above)"; a failed part counts 0 in
 * the mean confidence. */
static void test_composition_sections(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_tool_call_t calls[] = {
        {"c1", "delegate_to_agent", "{\"agent_id\":\"a1\",\"objective\":\"Research X\"}"},
        {"c2", "delegate_to_agent", "{\"agent_id\":\"a2\",\"objective\":\"Write a brief\"}"},
    };
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = manager_system},
        {.role = AP_LLM_USER, .content = "Objective: Research X and write a brief.\n"},
        {.role = AP_LLM_ASSISTANT, .tool_calls = calls, .ntool_calls = 2},
        {.role = AP_LLM_TOOL, .tool_call_id = "c1",
         .content = "{\"output\":\"X is big. X grows.\",\"confidence\":0.8}"},
        {.role = AP_LLM_TOOL, .tool_call_id = "c2",
         .content = "{\"output\":\"X is big. X is cheap.\",\"confidence\":0.6}"},
    };
    ap_llm_req_t req = request(msgs, NMSGS(msgs), NULL, 0);
    ap_llm_resp_t r = complete(a, &req);
    assert_string_equal(r.content, "# Research X and write a brief\n\n"
                                   "## Research X (Researcher)\nX is big. X grows.\n\n"
                                   "## Write a brief (Writer)\nX is cheap.");
    msgs[4].content = "{\"output\":\"X grows.\",\"confidence\":0.6}";
    r = complete(a, &req);
    assert_non_null(strstr(r.content, "## Write a brief (Writer)\n(as above)"));
    /* confidence: the mean, a failed part counting 0 */
    ap_llm_tool_t tools[] = {{"complete_task"}};
    req = request(msgs, NMSGS(msgs), tools, 1);
    msgs[4].content = "{\"error\":\"agent a2 is paused\"}";
    msgs[4].is_error = true;
    r = complete(a, &req);
    json_t *x = args_of(&r.tool_calls[0]);
    assert_true(fabs(json_number_value(json_object_get(x, "confidence")) - 0.4) < 1e-9);
    assert_non_null(strstr(arg(x, "output"), "(failed: agent a2 is paused)"));
    json_decref(x);
    ap_arena_free(a);
}

/* Another tool's result answers the question extractively. */
static void test_other_tool_result_answers(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_tool_call_t calls[] = {{"c9", "recall", "{\"query\":\"launch date\"}"}};
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_USER, .content = "When is the launch date?"},
        {.role = AP_LLM_ASSISTANT, .tool_calls = calls, .ntool_calls = 1},
        {.role = AP_LLM_TOOL,
         .tool_call_id = "c9",
         .content = "[{\"id\":\"m1\",\"content\":\"The launch date is March 3.\"},"
                    "{\"id\":\"m2\",\"content\":\"Lunch is at noon.\"}]"},
    };
    ap_llm_req_t req = request(msgs, NMSGS(msgs), NULL, 0);
    ap_llm_resp_t r = complete(a, &req);
    assert_string_equal(r.content, "The launch date is March 3.");

    /* Nothing relevant: the tool's output is shown. */
    msgs[0].content = "Who won the cup?";
    r = complete(a, &req);
    assert_string_equal(r.content,
                        "The tools returned: The launch date is March 3. Lunch is at noon.");
    ap_arena_free(a);
}

/* ---- approval and consultation -------------------------------------------- */

static const char *worker_system =
    "You are Rae, a researcher.\n"
    "# Shared context\n"
    "- The EV battery market grew 40% in 2024.\n"
    "# Colleagues you can ask (query_agent)\n"
    "- colleague c1 \"Writer\" (writer): writing, editing\n"
    "- colleague c2 \"Analyst\" (analyst): numbers, pricing analysis\n";

static void test_consults_a_colleague_when_nothing_is_known(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = worker_system},
        {.role = AP_LLM_USER, .content = "Objective: What is the pricing of solid-state cells?"},
    };
    ap_llm_tool_t tools[] = {{"query_agent"}, {"complete_task"}};
    ap_llm_req_t req = request(msgs, NMSGS(msgs), tools, 2);
    ap_llm_resp_t r = complete(a, &req);
    assert_int_equal(r.ntool_calls, 1);
    assert_string_equal(r.tool_calls[0].name, "query_agent");
    json_t *x = args_of(&r.tool_calls[0]);
    assert_string_equal(arg(x, "agent_id"), "c2"); /* pricing analysis */
    assert_string_equal(arg(x, "question"), "What is the pricing of solid-state cells?");
    json_decref(x);
    /* colleague lines are not knowledge: a known answer needs no colleague */
    msgs[1].content = "Objective: How much did the EV battery market grow?";
    r = complete(a, &req);
    assert_int_equal(r.ntool_calls, 1);
    assert_string_equal(r.tool_calls[0].name, "complete_task");
    x = args_of(&r.tool_calls[0]);
    assert_string_equal(arg(x, "output"), "The EV battery market grew 40% in 2024.");
    json_decref(x);
    /* without query_agent offered, the plain "no information" answer */
    msgs[1].content = "Objective: What is the pricing of solid-state cells?";
    req.ntools = 0;
    r = complete(a, &req);
    assert_string_equal(r.content, "I have no information about the pricing of solid-state cells.");
    /* the colleague's answer becomes the final answer */
    ap_llm_tool_call_t calls[] = {{"q1", "query_agent", "{\"agent_id\":\"c2\",\"question\":\"x\"}"}};
    ap_llm_msg_t after[] = {
        msgs[0], msgs[1],
        {.role = AP_LLM_ASSISTANT, .tool_calls = calls, .ntool_calls = 1},
        {.role = AP_LLM_TOOL, .tool_call_id = "q1",
         .content = "{\"output\":\"Solid-state cells cost 800 dollars per kWh.\"}"},
    };
    ap_llm_req_t req2 = request(after, NMSGS(after), tools, 2);
    r = complete(a, &req2);
    assert_int_equal(r.ntool_calls, 1);
    x = args_of(&r.tool_calls[0]);
    assert_string_equal(arg(x, "output"), "Solid-state cells cost 800 dollars per kWh.");
    json_decref(x);
    ap_arena_free(a);
}

static void test_asks_for_approval_first(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = worker_system},
        {.role = AP_LLM_USER,
         .content = "Objective: Draft the press release. It needs legal approval before it goes out."},
    };
    ap_llm_tool_t tools[] = {{"request_approval"}, {"complete_task"}};
    ap_llm_req_t req = request(msgs, NMSGS(msgs), tools, 2);
    ap_llm_resp_t r = complete(a, &req);
    assert_int_equal(r.ntool_calls, 1);
    assert_string_equal(r.tool_calls[0].name, "request_approval");
    json_t *x = args_of(&r.tool_calls[0]);
    assert_string_equal(arg(x, "reason"), "It needs legal approval before it goes out.");
    json_decref(x);
    /* no mention of approval: no request */
    msgs[1].content = "Objective: Draft the press release.";
    r = complete(a, &req);
    assert_string_equal(r.tool_calls[0].name, "complete_task");
    ap_arena_free(a);
}

/* ---- facts ------------------------------------------------------------------ */

static void test_facts_recorded_then_noted(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_msg_t msgs[5] = {
        {.role = AP_LLM_USER,
         .content = "Remember that the launch date is March 3. Budget: 2 million euros. "
                    "What is the deadline?"},
    };
    ap_llm_tool_t tools[] = {{"remember"}, {"learn_entity"}, {"complete_task"}};
    ap_llm_req_t req = request(msgs, 1, tools, 3);
    ap_llm_resp_t r = complete(a, &req);
    assert_int_equal(r.ntool_calls, 4);
    const char *want[4][3] = {
        {"remember", "content", "The launch date is March 3."},
        {"learn_entity", "name", "launch date"},
        {"remember", "content", "Budget: 2 million euros."},
        {"learn_entity", "name", "Budget"},
    };
    for (int i = 0; i < 4; i++) {
        assert_string_equal(r.tool_calls[i].name, want[i][0]);
        json_t *x = args_of(&r.tool_calls[i]);
        assert_string_equal(arg(x, want[i][1]), want[i][2]);
        if (i % 2) assert_string_equal(arg(x, "description"), want[i - 1][2]);
        json_decref(x);
    }

    /* The results come back: a final answer that notes the facts and still
     * answers the question. */
    msgs[1] = (ap_llm_msg_t){.role = AP_LLM_ASSISTANT, .tool_calls = r.tool_calls,
                             .ntool_calls = 2};
    msgs[2] = (ap_llm_msg_t){.role = AP_LLM_TOOL, .tool_call_id = r.tool_calls[0].id,
                             .content = "{\"id\":\"m-1\",\"status\":\"stored\"}"};
    msgs[3] = (ap_llm_msg_t){.role = AP_LLM_TOOL, .tool_call_id = r.tool_calls[1].id,
                             .content = "{\"id\":\"e-1\"}"};
    req.nmsgs = 4;
    req.ntools = 2;
    ap_llm_resp_t f = complete(a, &req);
    assert_int_equal(f.ntool_calls, 0);
    assert_string_equal(f.content,
                        "Noted: The launch date is March 3.\n\n"
                        "I have no information about the deadline.");
    ap_arena_free(a);
}

static void test_fact_patterns(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_msg_t msgs[] = {{.role = AP_LLM_USER, .content = NULL}};
    ap_llm_tool_t tools[] = {{"remember"}};
    ap_llm_req_t req = request(msgs, 1, tools, 1);
    /* not facts: questions, pronoun subjects, long keys, instructions */
    const char *none[] = {
        "What is the launch date?",
        "It is raining.",
        "Check whether the server is up",
        "The key of this very long label: value",
        "Research the EV battery market",
    };
    for (size_t i = 0; i < sizeof none / sizeof *none; i++) {
        msgs[0].content = none[i];
        ap_llm_resp_t r = complete(a, &req);
        if (r.ntool_calls) fail_msg("\"%s\" taken as a fact", none[i]);
    }
    msgs[0].content = "FYI: our supplier is Voltix\nOffice address: 1 Main Street";
    ap_llm_resp_t r = complete(a, &req);
    assert_int_equal(r.ntool_calls, 2);
    json_t *x = args_of(&r.tool_calls[0]), *y = args_of(&r.tool_calls[1]);
    assert_string_equal(arg(x, "content"), "Our supplier is Voltix.");
    assert_string_equal(arg(y, "content"), "Office address: 1 Main Street.");
    json_decref(x);
    json_decref(y);
    ap_arena_free(a);
}

/* The tool's schema names the argument: "text" instead of "content";
 * required properties the rule does not know are filled. */
static void test_fact_arguments_follow_schema(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    json_t *params = json_pack("{s:s, s:{s:{s:s}, s:{s:s}}, s:[s,s]}", "type", "object",
                               "properties", "text", "type", "string", "importance", "type",
                               "number", "required", "text", "importance");
    ap_llm_json_keep(a, params);
    json_decref(params);
    ap_llm_msg_t msgs[] = {{.role = AP_LLM_USER, .content = "The CEO is Dana Ruiz."}};
    ap_llm_tool_t tools[] = {{"remember", "stores a memory", params}};
    ap_llm_req_t req = request(msgs, 1, tools, 1);
    ap_llm_resp_t r = complete(a, &req);
    assert_int_equal(r.ntool_calls, 1);
    assert_string_equal(r.tool_calls[0].arguments,
                        "{\"text\":\"The CEO is Dana Ruiz.\",\"importance\":0.9}");
    ap_arena_free(a);
}

/* ---- extractive answers ----------------------------------------------------- */

static void test_extractive_picks_memory(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = memory_system},
        {.role = AP_LLM_USER, .content = "What was the Q3 revenue?"},
    };
    ap_llm_req_t req = request(msgs, NMSGS(msgs), NULL, 0);
    ap_llm_resp_t r = complete(a, &req);
    assert_string_equal(r.finish_reason, "stop");
    assert_string_equal(r.content, "The Q3 revenue was 4.2 million euros.");

    /* Two sentences about Acme: both, the better match first. */
    msgs[1].content = "Where is Acme Corp based?";
    r = complete(a, &req);
    assert_string_equal(r.content, "Acme Corp is based in Lyon. Our main competitor is Acme Corp.");

    /* The persona above the first heading is not knowledge. */
    msgs[1].content = "Who is Rex?";
    r = complete(a, &req);
    assert_string_equal(r.content, "I have no information about Rex.");

    /* Earlier turns are context too. */
    ap_llm_msg_t chat[] = {
        {.role = AP_LLM_USER, .content = "My favourite colour is teal."},
        {.role = AP_LLM_ASSISTANT, .content = "Noted."},
        {.role = AP_LLM_USER, .content = "What is my favourite colour?"},
    };
    ap_llm_req_t req2 = request(chat, NMSGS(chat), NULL, 0);
    r = complete(a, &req2);
    assert_string_equal(r.content, "My favourite colour is teal.");
    ap_arena_free(a);
}

static void test_no_information(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = memory_system},
        {.role = AP_LLM_USER, .content = "What is the capital of Freedonia?"},
    };
    ap_llm_req_t req = request(msgs, NMSGS(msgs), NULL, 0);
    ap_llm_resp_t r = complete(a, &req);
    assert_string_equal(r.content, "I have no information about the capital of Freedonia.");
    /* A worker's objective from a supervisor. */
    msgs[1].content = "Research the EV battery market";
    r = complete(a, &req);
    assert_string_equal(r.content, "I have no information about the EV battery market.");
    ap_arena_free(a);
}

/* ---- limits, formats, odd input ---------------------------------------------- */

static void test_max_tokens_and_stop(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = memory_system},
        {.role = AP_LLM_USER, .content = "What was the Q3 revenue?"},
    };
    ap_llm_req_t req = request(msgs, NMSGS(msgs), NULL, 0);
    req.max_tokens = 3;
    ap_llm_resp_t r = complete(a, &req);
    assert_string_equal(r.content, "The Q3 revenue");
    assert_string_equal(r.finish_reason, "length");
    assert_int_equal(r.usage.completion, 3);

    req.max_tokens = 100;
    const char *stop[] = {"zzz", " million"};
    req.stop = stop;
    req.nstop = 2;
    r = complete(a, &req);
    assert_string_equal(r.content, "The Q3 revenue was 4.2");
    assert_string_equal(r.finish_reason, "stop");
    assert_int_equal(r.usage.completion, 5);
    ap_arena_free(a);
}

static void test_usage_estimate(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = "0123456789"},     /* 10 bytes */
        {.role = AP_LLM_USER, .content = "What is xyzzy?"}, /* 14 bytes */
    };
    ap_llm_tool_t tools[] = {{"recall", "find"}}; /* 6 + 4 bytes */
    ap_llm_req_t req = request(msgs, NMSGS(msgs), tools, 1);
    ap_llm_resp_t r = complete(a, &req);
    assert_int_equal(r.usage.prompt, 9); /* ceil(34 / 4) */
    assert_string_equal(r.content, "I have no information about xyzzy.");
    assert_int_equal(r.usage.completion, 6);
    assert_int_equal(r.usage.cached, 0);
    ap_arena_free(a);
}

static void test_response_format(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = memory_system},
        {.role = AP_LLM_USER, .content = "What was the Q3 revenue?"},
    };
    ap_llm_req_t req = request(msgs, NMSGS(msgs), NULL, 0);
    json_t *rf = json_pack("{s:s}", "type", "json_object");
    req.response_format = ap_llm_json_keep(a, rf);
    json_decref(rf);
    ap_llm_resp_t r = complete(a, &req);
    assert_string_equal(r.content, "{\"answer\":\"The Q3 revenue was 4.2 million euros.\","
                                   "\"confidence\":0.9}");

    rf = json_loads("{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"r\",\"strict\":true,"
                    "\"schema\":{\"type\":\"object\",\"required\":[\"summary\",\"score\"],"
                    "\"properties\":{\"summary\":{\"type\":\"string\",\"maxLength\":14},"
                    "\"score\":{\"type\":\"number\",\"minimum\":0,\"maximum\":0.5},"
                    "\"n\":{\"type\":[\"integer\",\"null\"]},"
                    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
                    "\"level\":{\"enum\":[\"low\",\"high\"]},"
                    "\"meta\":{\"type\":\"object\",\"properties\":{\"ok\":{\"type\":"
                    "\"boolean\"}}}}}}}",
                    0, NULL);
    assert_non_null(rf);
    req.response_format = ap_llm_json_keep(a, rf);
    json_decref(rf);
    r = complete(a, &req);
    assert_string_equal(r.content,
                        "{\"summary\":\"The Q3 revenue\",\"score\":0.5,\"n\":1,"
                        "\"tags\":[\"The Q3 revenue was 4.2 million euros.\"],"
                        "\"level\":\"low\",\"meta\":{\"ok\":true}}");
    ap_arena_free(a);
}

static void test_tool_choice(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = manager_system},
        {.role = AP_LLM_USER, .content = "Research the EV battery market"},
    };
    ap_llm_tool_t tools[] = {{"delegate_to_agent"}, {"complete_task"}, {"recall"}};
    ap_llm_req_t req = request(msgs, NMSGS(msgs), tools, 3);

    req.tool_choice = "none";
    ap_llm_resp_t r = complete(a, &req);
    assert_int_equal(r.ntool_calls, 0);
    assert_string_equal(r.content, "I have no information about the EV battery market.");

    req.tool_choice = "complete_task";
    r = complete(a, &req);
    assert_int_equal(r.ntool_calls, 1);
    assert_string_equal(r.tool_calls[0].name, "complete_task");

    req.tool_choice = "recall"; /* no rule for it: arguments from its (absent) schema */
    r = complete(a, &req);
    assert_int_equal(r.ntool_calls, 1);
    assert_string_equal(r.tool_calls[0].name, "recall");
    assert_string_equal(r.tool_calls[0].arguments, "{}");
    ap_arena_free(a);
}

static void test_odd_input(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_req_t req = request(NULL, 0, NULL, 0);
    ap_llm_resp_t r = complete(a, &req);
    assert_string_equal(r.content, "There is no question to answer.");
    assert_string_equal(r.finish_reason, "stop");

    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM},
        {.role = AP_LLM_USER, .content = "\xff\xfe caf\xc3\xa9 \xc3 is \xed\xa0\x80 ok: \xff"},
        {.role = AP_LLM_TOOL, .content = "{not json", .tool_call_id = "nope"},
        {.role = AP_LLM_ASSISTANT, .content = ""},
        {.role = AP_LLM_USER, .content = "   \n\n  "},
    };
    ap_llm_tool_t tools[] = {{"remember"}, {"learn_entity"}, {NULL}, {"delegate_to_agent"}};
    for (int n = 1; n <= NMSGS(msgs); n++) {
        req = request(msgs, n, tools, 4);
        req.model = NULL; /* the default model answers */
        r = complete(a, &req);
        assert_string_equal(r.model, AP_BUILTIN_MODEL);
        for (int i = 0; i < r.ntool_calls; i++) json_decref(args_of(&r.tool_calls[i]));
    }
    /* invalid UTF-8 in a fact reaches JSON as '?' */
    req = request(msgs, 2, tools, 1);
    r = complete(a, &req);
    assert_int_equal(r.ntool_calls, 1);
    json_t *x = args_of(&r.tool_calls[0]);
    assert_string_equal(arg(x, "content"), "?? caf\xc3\xa9 ? is ??? ok: ?.");
    json_decref(x);

    /* multi-part content without text */
    json_t *parts = json_loads("[{\"type\":\"text\",\"text\":\"What was the Q3 revenue?\"},"
                               "{\"type\":\"image_url\"}]",
                               0, NULL);
    ap_llm_msg_t pm[] = {{.role = AP_LLM_SYSTEM, .content = memory_system},
                         {.role = AP_LLM_USER, .parts = ap_llm_json_keep(a, parts)}};
    json_decref(parts);
    req = request(pm, 2, NULL, 0);
    r = complete(a, &req);
    assert_string_equal(r.content, "The Q3 revenue was 4.2 million euros.");
    ap_arena_free(a);
}

/* ---- determinism ---------------------------------------------------------------- */

static void test_determinism(void **state) {
    (void)state;
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = manager_system},
        {.role = AP_LLM_USER,
         .content = "Research the EV battery market and write a one-page brief"},
    };
    ap_llm_tool_t tools[] = {{"delegate_to_agent"}, {"complete_task"}};
    ap_llm_req_t reqs[3] = {request(msgs, 2, tools, 2), request(msgs, 2, NULL, 0),
                            request(msgs, 2, tools, 2)};
    reqs[2].max_tokens = 4;
    for (int k = 0; k < 3; k++) {
        ap_arena_t *a1 = ap_arena_new(1024), *a2 = ap_arena_new(64 * 1024);
        ap_llm_resp_t x = complete(a1, &reqs[k]), y = complete(a2, &reqs[k]);
        assert_same(&x, &y);
        ap_arena_free(a1);
        ap_arena_free(a2);
    }
    /* A different request gets a different id. */
    ap_arena_t *a = ap_arena_new(1024);
    ap_llm_resp_t x = complete(a, &reqs[0]), y = complete(a, &reqs[1]);
    assert_string_not_equal(x.id, y.id);
    assert_int_equal(strncmp(x.id, "builtin-", 8), 0);
    ap_arena_free(a);
}

/* ---- streaming ---------------------------------------------------------------- */

typedef struct {
    ap_buf_t content;
    char *ids[8], *names[8];
    ap_buf_t args[8];
    int ntools, ndeltas, after_finish;
    const char *finish;
    bool has_usage;
    ap_llm_usage_t usage;
} collect_t;

static void on_delta(void *ud, const ap_llm_delta_t *d) {
    collect_t *c = ud;
    if (c->finish) c->after_finish++;
    c->ndeltas++;
    if (d->content) {
        /* word-sized: at most one word, spaces only before it */
        const char *p = d->content;
        while (*p == ' ' || *p == '\n') p++;
        assert_null(strpbrk(p, " \n"));
        ap_buf_puts(&c->content, d->content);
    }
    if (d->tool_index >= 0) {
        assert_true(d->tool_index < 8);
        if (d->tool_id) {
            assert_int_equal(d->tool_index, c->ntools);
            assert_non_null(d->tool_name);
            c->ids[c->ntools] = strdup(d->tool_id);
            c->names[c->ntools] = strdup(d->tool_name);
            ap_buf_init(&c->args[c->ntools], 0);
            c->ntools++;
        }
        if (d->tool_args) ap_buf_puts(&c->args[d->tool_index], d->tool_args);
    }
    if (d->finish_reason) c->finish = d->finish_reason;
    if (d->has_usage) {
        c->has_usage = true;
        c->usage = d->usage;
    }
}

static void check_stream(const ap_llm_req_t *req) {
    ap_arena_t *a = ap_arena_new(4096);
    ap_llm_resp_t r = complete(a, req);
    collect_t c = {0};
    ap_buf_init(&c.content, 0);
    ap_err_t err = {0};
    assert_int_equal(ap_builtin_stream(a, req, on_delta, &c, &err), AP_OK);
    assert_int_equal(c.after_finish, 0);
    assert_non_null(c.finish);
    assert_string_equal(c.finish, r.finish_reason);
    assert_true(c.has_usage);
    assert_int_equal(c.usage.prompt, r.usage.prompt);
    assert_int_equal(c.usage.completion, r.usage.completion);
    assert_string_equal(c.content.p ? c.content.p : "", r.content ? r.content : "");
    assert_int_equal(c.ntools, r.ntool_calls);
    for (int i = 0; i < c.ntools; i++) {
        assert_string_equal(c.ids[i], r.tool_calls[i].id);
        assert_string_equal(c.names[i], r.tool_calls[i].name);
        assert_string_equal(c.args[i].p ? c.args[i].p : "", r.tool_calls[i].arguments);
        free(c.ids[i]);
        free(c.names[i]);
        ap_buf_free(&c.args[i]);
    }
    if (r.content && strchr(r.content, ' ')) assert_true(c.ndeltas > 2);
    ap_buf_free(&c.content);
    ap_arena_free(a);
}

static void test_stream_reassembles(void **state) {
    (void)state;
    ap_llm_msg_t msgs[] = {
        {.role = AP_LLM_SYSTEM, .content = manager_system},
        {.role = AP_LLM_USER,
         .content = "Research the EV battery market and write a one-page brief \xc3\xa9\xc3\xa9"
                    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"},
    };
    ap_llm_msg_t mem[] = {
        {.role = AP_LLM_SYSTEM, .content = memory_system},
        {.role = AP_LLM_USER, .content = "Where is Acme Corp based?"},
    };
    ap_llm_tool_t tools[] = {{"delegate_to_agent"}, {"complete_task"}};
    ap_llm_req_t reqs[] = {
        request(msgs, 2, tools, 2), /* delegations */
        request(mem, 2, NULL, 0),   /* text */
        request(mem, 2, tools, 2),  /* complete_task */
        request(NULL, 0, NULL, 0),  /* empty */
    };
    for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) check_stream(&reqs[i]);
    reqs[1].max_tokens = 2;
    check_stream(&reqs[1]);
}

/* ---- embeddings --------------------------------------------------------------- */

static double norm(const float *v, int dim) {
    double s = 0;
    for (int i = 0; i < dim; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

static void embed(const char *text, float *out, int dim) {
    ap_embed_hash(text, strlen(text), out, dim);
}

static void test_embed_unit_norm_and_dims(void **state) {
    (void)state;
    int dims[] = {8, 9, 64, 384, 1000, 4096};
    float *v = malloc(4096 * sizeof *v);
    for (size_t k = 0; k < sizeof dims / sizeof *dims; k++) {
        embed("The EV battery market grew quickly in 2024.", v, dims[k]);
        assert_true(fabs(norm(v, dims[k]) - 1.0) < 1e-5);
        /* Japanese and Russian words: bytes >= 0x80 are letters */
        embed("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
              "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",
              v, dims[k]);
        assert_true(fabs(norm(v, dims[k]) - 1.0) < 1e-5);
    }
    free(v);
}

static void test_embed_deterministic(void **state) {
    (void)state;
    float x[384], y[384];
    embed("Acme Corp is based in Lyon.", x, 384);
    embed("Acme Corp is based in Lyon.", y, 384);
    assert_memory_equal(x, y, sizeof x);
    /* case folding: ASCII letters only */
    embed("ACME CORP IS BASED IN LYON.", y, 384);
    assert_memory_equal(x, y, sizeof x);
    assert_true(ap_embed_cosine(x, y, 384) > 0.9999f);
    /* a different dim is a different vector, not a prefix */
    float z[64];
    embed("Acme Corp is based in Lyon.", z, 64);
    assert_true(fabs(norm(z, 64) - 1.0) < 1e-5);
}

static void test_embed_similarity(void **state) {
    (void)state;
    float q[384], near[384], inflected[384], far[384];
    embed("What is the size of the EV battery market?", q, 384);
    embed("The EV battery market size reached 50 billion dollars.", near, 384);
    embed("Batteries for EVs: market sizes", inflected, 384);
    embed("Our office cat is called Pixel and sleeps all day.", far, 384);
    float cn = ap_embed_cosine(q, near, 384), ci = ap_embed_cosine(q, inflected, 384),
          cf = ap_embed_cosine(q, far, 384);
    assert_true(cn > cf + 0.3f);
    assert_true(ci > cf + 0.1f);
    assert_true(fabsf(cf) < 0.2f);
    assert_true(ap_embed_cosine(q, q, 384) > 0.9999f);
}

static void test_embed_empty(void **state) {
    (void)state;
    float v[16];
    const char *texts[] = {"", "   ", "?!., -- ;;", "\t\n"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        memset(v, 0x7f, sizeof v);
        embed(texts[i], v, 16);
        for (int k = 0; k < 16; k++) assert_true(v[k] == 0.0f);
    }
    ap_embed_hash(NULL, 0, v, 16);
    assert_true(v[0] == 0.0f);
    float u[16];
    embed("hello", u, 16);
    assert_true(ap_embed_cosine(v, u, 16) == 0.0f);
    ap_embed_hash("x", 1, v, 0); /* writes nothing, does not crash */
}

static void test_builtin_embed(void **state) {
    (void)state;
    ap_arena_t *a = ap_arena_new(4096);
    const char *in[] = {"alpha beta", ""};
    ap_llm_embed_req_t req = {.inputs = in, .ninputs = 2};
    ap_llm_embed_resp_t r;
    ap_err_t err = {0};
    assert_int_equal(ap_builtin_embed(a, &req, &r, &err), AP_OK);
    assert_int_equal(r.dim, AP_EMBED_DIM_DEFAULT);
    assert_int_equal(r.nvectors, 2);
    assert_string_equal(r.model, AP_EMBED_MODEL);
    assert_int_equal(r.usage.prompt, 3);
    assert_true(fabs(norm(r.vectors[0], r.dim) - 1.0) < 1e-5);
    assert_true(norm(r.vectors[1], r.dim) == 0.0);
    req.dimensions = 4097;
    assert_int_equal(ap_builtin_embed(a, &req, &r, &err), AP_ERR_INVALID);
    assert_non_null(strstr(err.detail, "4097"));
    ap_arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delegation_to_best_match),
        cmocka_unit_test(test_delegation_parts_and_ties),
        cmocka_unit_test(test_delegation_no_match_answers_itself),
        cmocka_unit_test(test_delegation_results_combine),
        cmocka_unit_test(test_demo_split_is_deterministic),
        cmocka_unit_test(test_part_answers_from_whole_objective),
        cmocka_unit_test(test_composition_sections),
        cmocka_unit_test(test_other_tool_result_answers),
        cmocka_unit_test(test_consults_a_colleague_when_nothing_is_known),
        cmocka_unit_test(test_asks_for_approval_first),
        cmocka_unit_test(test_facts_recorded_then_noted),
        cmocka_unit_test(test_fact_patterns),
        cmocka_unit_test(test_fact_arguments_follow_schema),
        cmocka_unit_test(test_extractive_picks_memory),
        cmocka_unit_test(test_no_information),
        cmocka_unit_test(test_max_tokens_and_stop),
        cmocka_unit_test(test_usage_estimate),
        cmocka_unit_test(test_response_format),
        cmocka_unit_test(test_tool_choice),
        cmocka_unit_test(test_odd_input),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_stream_reassembles),
        cmocka_unit_test(test_embed_unit_norm_and_dims),
        cmocka_unit_test(test_embed_deterministic),
        cmocka_unit_test(test_embed_similarity),
        cmocka_unit_test(test_embed_empty),
        cmocka_unit_test(test_builtin_embed),
    };
    ap_crypto_init();
    return cmocka_run_group_tests_name("builtin", tests, NULL, NULL);
}
