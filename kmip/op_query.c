/*
 * kmip/op_query.c: Query and Discover Versions.
 *
 * Query answers, in the order KMIP 1.4 section 4.25 lists them: the
 * operations with a handler that the request's protocol version defines
 * (never one kmsd does not run), the object types this build holds,
 * Vendor Identification and a Server Information structure (empty: its
 * contents are vendor-specific and kmsd has nothing a client could rely
 * on), Application Namespaces (none: any is accepted), Extension
 * Information (none: kmsd puts no vendor tags in KMIP messages),
 * Attestation Types (none), RNG Parameters (OpenSSL's CTR-DRBG), Profile
 * Information (the KMIP 1.0-1.4 server profiles whose operations all have
 * a handler, up to the request's version), Validation Information (none:
 * no formal validation is claimed) and Capability Information.
 *
 * Maximum Response Size: what a Query must hold (operations, object
 * types, vendor identification, server information) is always answered;
 * the informational lists after it are added in order while they fit, so
 * a small limit trims them instead of failing. Only when even the
 * required part does not fit does the message layer answer Response Too
 * Large. Discover Versions offers 1.4, 1.3, 1.2, 1.1, 1.0, or the
 * intersection with the client's list in the client's order.
 */
#include <stdio.h>
#include <string.h>

#include "kmip/kmip_int.h"

/* The Response Message around one Query's payload: message header (8),
 * Response Header (80: Protocol Version, Time Stamp, Batch Count), Batch
 * Item header (8), Operation (16), Result Status (16), payload header (8),
 * and room for a Unique Batch Item ID of up to 16 bytes (24). */
#define QUERY_ENVELOPE 160

static bool op_supported(uint32_t op)
{
    const kmip_op_entry_t *e = kmip_op_lookup(op);
    return e && e->fn;
}

/* The KMIP 1.x minor version that defined operation `op`. */
static int op_since(uint32_t op)
{
    if (op < KMIP_OPERATION_REKEY_KEY_PAIR)
        return 0;
    if (op <= KMIP_OPERATION_DISCOVER_VERSIONS)
        return 1;
    if (op <= KMIP_OPERATION_JOIN_SPLIT_KEY)
        return 2;
    return 4; /* Import, Export */
}

static bool ver_has(const kmip_ctx_t *ctx, int minor)
{
    return ctx->ver_major > 1 || ctx->ver_minor >= minor;
}

/* KMIP 1.x server profiles (KMIP Profiles 1.0-1.4; Profile Name values of
 * the KMIP 1.3/1.4 enumeration, 0 where the profile has no such version)
 * and the operations each needs. A profile is claimed when every one of
 * its operations has a handler. */
#define OPS_MAX 10
static const struct profile {
    const char *name;
    uint32_t by_version[5]; /* Profile Name for profile version 1.0 .. 1.4 */
    uint32_t ops[OPS_MAX];  /* 0-terminated */
} profiles[] = {
    {"Baseline Server Basic", {0, 0, 0x01, 0x55, 0x79},
     {KMIP_OPERATION_LOCATE, KMIP_OPERATION_CHECK, KMIP_OPERATION_GET,
      KMIP_OPERATION_GET_ATTRIBUTES, KMIP_OPERATION_GET_ATTRIBUTE_LIST,
      KMIP_OPERATION_ADD_ATTRIBUTE, KMIP_OPERATION_MODIFY_ATTRIBUTE,
      KMIP_OPERATION_DELETE_ATTRIBUTE, KMIP_OPERATION_QUERY, KMIP_OPERATION_DISCOVER_VERSIONS}},
    {"Baseline Server TLS v1.2", {0, 0, 0x02, 0x56, 0x7A},
     {KMIP_OPERATION_LOCATE, KMIP_OPERATION_CHECK, KMIP_OPERATION_GET,
      KMIP_OPERATION_GET_ATTRIBUTES, KMIP_OPERATION_GET_ATTRIBUTE_LIST,
      KMIP_OPERATION_ADD_ATTRIBUTE, KMIP_OPERATION_MODIFY_ATTRIBUTE,
      KMIP_OPERATION_DELETE_ATTRIBUTE, KMIP_OPERATION_QUERY, KMIP_OPERATION_DISCOVER_VERSIONS}},
    {"Tape Library Server", {0x0A, 0x0B, 0x0C, 0x5C, 0x80},
     {KMIP_OPERATION_CREATE, KMIP_OPERATION_REGISTER, KMIP_OPERATION_GET, KMIP_OPERATION_LOCATE,
      KMIP_OPERATION_GET_ATTRIBUTES, KMIP_OPERATION_ADD_ATTRIBUTE, KMIP_OPERATION_MODIFY_ATTRIBUTE,
      KMIP_OPERATION_ACTIVATE, KMIP_OPERATION_REVOKE, KMIP_OPERATION_DESTROY}},
    {"Symmetric Key Lifecycle Server", {0x10, 0x11, 0x12, 0x5E, 0x82},
     {KMIP_OPERATION_CREATE, KMIP_OPERATION_REGISTER, KMIP_OPERATION_LOCATE, KMIP_OPERATION_GET,
      KMIP_OPERATION_GET_ATTRIBUTES, KMIP_OPERATION_ACTIVATE, KMIP_OPERATION_REVOKE,
      KMIP_OPERATION_DESTROY, KMIP_OPERATION_QUERY}},
    {"Asymmetric Key Lifecycle Server", {0x16, 0x17, 0x18, 0x60, 0x84},
     {KMIP_OPERATION_CREATE_KEY_PAIR, KMIP_OPERATION_REGISTER, KMIP_OPERATION_LOCATE,
      KMIP_OPERATION_GET, KMIP_OPERATION_GET_ATTRIBUTES, KMIP_OPERATION_ACTIVATE,
      KMIP_OPERATION_REVOKE, KMIP_OPERATION_DESTROY, KMIP_OPERATION_QUERY}},
    {"Basic Cryptographic Server", {0, 0, 0x1A, 0x62, 0x86},
     {KMIP_OPERATION_ENCRYPT, KMIP_OPERATION_DECRYPT, KMIP_OPERATION_CREATE, KMIP_OPERATION_GET,
      KMIP_OPERATION_QUERY}},
    {"Advanced Cryptographic Server", {0, 0, 0x1C, 0x64, 0x88},
     {KMIP_OPERATION_ENCRYPT, KMIP_OPERATION_DECRYPT, KMIP_OPERATION_SIGN,
      KMIP_OPERATION_SIGNATURE_VERIFY, KMIP_OPERATION_MAC, KMIP_OPERATION_MAC_VERIFY,
      KMIP_OPERATION_HASH, KMIP_OPERATION_DERIVE_KEY, KMIP_OPERATION_CREATE_KEY_PAIR}},
    {"RNG Cryptographic Server", {0, 0, 0x1E, 0x66, 0x8A},
     {KMIP_OPERATION_RNG_RETRIEVE, KMIP_OPERATION_RNG_SEED, KMIP_OPERATION_QUERY}},
    {"Symmetric Key Foundry Server", {0x28, 0x29, 0x2A, 0x6A, 0x8E},
     {KMIP_OPERATION_CREATE, KMIP_OPERATION_GET, KMIP_OPERATION_LOCATE, KMIP_OPERATION_ACTIVATE,
      KMIP_OPERATION_REVOKE, KMIP_OPERATION_DESTROY, KMIP_OPERATION_QUERY}},
    {"Opaque Managed Object Store Server", {0x2E, 0x2F, 0x30, 0x6C, 0x90},
     {KMIP_OPERATION_REGISTER, KMIP_OPERATION_GET, KMIP_OPERATION_LOCATE,
      KMIP_OPERATION_GET_ATTRIBUTES, KMIP_OPERATION_DESTROY, KMIP_OPERATION_QUERY}},
    {"Storage Array with Self Encrypting Drive Server", {0x40, 0x41, 0x42, 0x72, 0x96},
     {KMIP_OPERATION_REGISTER, KMIP_OPERATION_GET, KMIP_OPERATION_LOCATE,
      KMIP_OPERATION_GET_ATTRIBUTES, KMIP_OPERATION_ADD_ATTRIBUTE, KMIP_OPERATION_ACTIVATE,
      KMIP_OPERATION_REVOKE, KMIP_OPERATION_DESTROY, KMIP_OPERATION_QUERY}},
};

static bool profile_met(const struct profile *p)
{
    for (size_t i = 0; i < OPS_MAX && p->ops[i]; i++)
        if (!op_supported(p->ops[i]))
            return false;
    return true;
}

/* Append `it` (built detached) when the payload still fits the budget;
 * true when appended. */
static bool fits(kmip_ctx_t *ctx, size_t budget, ttlv_item_t *it)
{
    ttlv_append(ctx->resp_payload, it);
    if (ttlv_encoded_size(ctx->resp_payload) <= budget)
        return true;
    ttlv_remove(it);
    return false;
}

static ttlv_item_t *rng_parameters(kms_arena_t *a)
{
    /* RAND_bytes / RAND_priv_bytes: OpenSSL 3's default DRBG, CTR-DRBG
     * with AES-256 (NIST SP 800-90A), without prediction resistance. */
    ttlv_item_t *r = ttlv_new_struct(a, NULL, KMIP_TAG_RNG_PARAMETERS);
    if (!r || !ttlv_new_enum(a, r, KMIP_TAG_RNG_ALGORITHM, KMIP_RNG_ALGORITHM_DRBG) ||
        !ttlv_new_enum(a, r, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES) ||
        !ttlv_new_int(a, r, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, 256) ||
        !ttlv_new_enum(a, r, KMIP_TAG_DRBG_ALGORITHM, KMIP_DRBG_ALGORITHM_CTR) ||
        !ttlv_new_bool(a, r, KMIP_TAG_PREDICTION_RESISTANCE, false))
        return NULL;
    return r;
}

static ttlv_item_t *capability_information(kms_arena_t *a)
{
    ttlv_item_t *c = ttlv_new_struct(a, NULL, KMIP_TAG_CAPABILITY_INFORMATION);
    bool streaming = op_supported(KMIP_OPERATION_ENCRYPT); /* Init/Final Indicator streams */
    bool async = op_supported(KMIP_OPERATION_POLL);
    if (!c || !ttlv_new_bool(a, c, KMIP_TAG_STREAMING_CAPABILITY, streaming) ||
        !ttlv_new_bool(a, c, KMIP_TAG_ASYNCHRONOUS_CAPABILITY, async) ||
        !ttlv_new_bool(a, c, KMIP_TAG_ATTESTATION_CAPABILITY, false) ||
        !ttlv_new_bool(a, c, KMIP_TAG_BATCH_UNDO_CAPABILITY, true) ||
        !ttlv_new_bool(a, c, KMIP_TAG_BATCH_CONTINUE_CAPABILITY, true) ||
        /* A wrapped key given to Register is unwrapped and stored plain
         * (sealed under the server's key): Processed. */
        !ttlv_new_enum(a, c, KMIP_TAG_UNWRAP_MODE, KMIP_UNWRAP_MODE_PROCESSED) ||
        /* Destroy removes the sealed key material and keeps the metadata. */
        !ttlv_new_enum(a, c, KMIP_TAG_DESTROY_ACTION, KMIP_DESTROY_ACTION_KEY_MATERIAL_DELETED) ||
        !ttlv_new_enum(a, c, KMIP_TAG_SHREDDING_ALGORITHM, KMIP_SHREDDING_ALGORITHM_UNSUPPORTED))
        return NULL;
    return c;
}

int kmip_op_query(kmip_ctx_t *ctx)
{
    bool want[16] = {false};
    for (const ttlv_item_t *f = ttlv_find(ctx->payload, KMIP_TAG_QUERY_FUNCTION); f;
         f = ttlv_find_next(f, KMIP_TAG_QUERY_FUNCTION)) {
        if (f->type != TTLV_ENUMERATION)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_MESSAGE,
                             "Query Function is not an Enumeration");
        if (ttlv_u32(f) < KMS_ARRAY_SIZE(want))
            want[ttlv_u32(f)] = true;
        /* Functions of later versions ask for nothing kmsd has. */
    }
    kms_arena_t *a = ctx->arena;
    ttlv_item_t *p = ctx->resp_payload;
    if (want[KMIP_QUERY_FUNCTION_QUERY_OPERATIONS]) {
        uint32_t ops[96];
        size_t n = kmip_op_supported(ctx->srv, ops, KMS_ARRAY_SIZE(ops));
        /* In numeric order, as the KMIP 1.1 test cases list them. */
        for (uint32_t op = 1; op < 0x100; op++)
            for (size_t i = 0; i < n; i++)
                if (ops[i] == op && ver_has(ctx, op_since(op)) &&
                    !ttlv_new_enum(a, p, KMIP_TAG_OPERATION, op))
                    return KMS_ERR_NOMEM;
    }
    if (want[KMIP_QUERY_FUNCTION_QUERY_OBJECTS]) {
        /* What Create, Create Key Pair and Register can make here. */
        static const uint32_t types[] = {
            KMIP_OBJECT_TYPE_CERTIFICATE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY,
            KMIP_OBJECT_TYPE_PUBLIC_KEY,  KMIP_OBJECT_TYPE_PRIVATE_KEY,
            KMIP_OBJECT_TYPE_SPLIT_KEY,   KMIP_OBJECT_TYPE_TEMPLATE,
            KMIP_OBJECT_TYPE_SECRET_DATA, KMIP_OBJECT_TYPE_OPAQUE_DATA,
            KMIP_OBJECT_TYPE_PGP_KEY,
        };
        bool reg = op_supported(KMIP_OPERATION_REGISTER);
        bool pair = op_supported(KMIP_OPERATION_CREATE_KEY_PAIR);
        for (size_t i = 0; i < KMS_ARRAY_SIZE(types); i++) {
            uint32_t t = types[i];
            bool have = t == KMIP_OBJECT_TYPE_SYMMETRIC_KEY ||
                        ((t == KMIP_OBJECT_TYPE_PUBLIC_KEY || t == KMIP_OBJECT_TYPE_PRIVATE_KEY) &&
                         pair) ||
                        reg;
            if (have && !ttlv_new_enum(a, p, KMIP_TAG_OBJECT_TYPE, t))
                return KMS_ERR_NOMEM;
        }
    }
    if (want[KMIP_QUERY_FUNCTION_QUERY_SERVER_INFORMATION]) {
        char vid[160];
        snprintf(vid, sizeof(vid), "%s %s", ctx->srv->vendor, ctx->srv->version);
        if (!ttlv_new_textz(a, p, KMIP_TAG_VENDOR_IDENTIFICATION, vid) ||
            !ttlv_new_struct(a, p, KMIP_TAG_SERVER_INFORMATION))
            return KMS_ERR_NOMEM;
    }
    /* Application Namespaces, Extension Information, Attestation Types:
     * none. What follows is informational: added while it fits. */
    size_t budget = ctx->max_response > QUERY_ENVELOPE ? ctx->max_response - QUERY_ENVELOPE : 0;
    if (ttlv_encoded_size(p) > budget)
        return 0; /* the message layer answers Response Too Large */
    if (want[KMIP_QUERY_FUNCTION_QUERY_RNGS] && ver_has(ctx, 3)) {
        ttlv_item_t *r = rng_parameters(a);
        if (!r)
            return KMS_ERR_NOMEM;
        (void)fits(ctx, budget, r);
    }
    if (want[KMIP_QUERY_FUNCTION_QUERY_PROFILES] && ver_has(ctx, 3)) {
        int top = ctx->ver_major > 1 || ctx->ver_minor > 4 ? 4 : ctx->ver_minor;
        for (size_t i = 0; i < KMS_ARRAY_SIZE(profiles); i++) {
            if (!profile_met(&profiles[i]))
                continue;
            for (int v = 0; v <= top; v++) {
                if (!profiles[i].by_version[v])
                    continue;
                ttlv_item_t *pi = ttlv_new_struct(a, NULL, KMIP_TAG_PROFILE_INFORMATION);
                if (!pi || !ttlv_new_enum(a, pi, KMIP_TAG_PROFILE_NAME, profiles[i].by_version[v]))
                    return KMS_ERR_NOMEM;
                (void)fits(ctx, budget, pi);
            }
        }
    }
    if (want[KMIP_QUERY_FUNCTION_QUERY_CAPABILITIES] && ver_has(ctx, 3)) {
        ttlv_item_t *c = capability_information(a);
        if (!c)
            return KMS_ERR_NOMEM;
        (void)fits(ctx, budget, c);
    }
    return 0;
}

static const int versions[][2] = {{1, 4}, {1, 3}, {1, 2}, {1, 1}, {1, 0}};

static int add_version(kmip_ctx_t *ctx, int maj, int min)
{
    ttlv_item_t *pv = ttlv_new_struct(ctx->arena, ctx->resp_payload, KMIP_TAG_PROTOCOL_VERSION);
    if (!pv || !ttlv_new_int(ctx->arena, pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR, maj) ||
        !ttlv_new_int(ctx->arena, pv, KMIP_TAG_PROTOCOL_VERSION_MINOR, min))
        return KMS_ERR_NOMEM;
    return 0;
}
int kmip_op_discover_versions(kmip_ctx_t *ctx)
{
    const ttlv_item_t *first = ttlv_find(ctx->payload, KMIP_TAG_PROTOCOL_VERSION);
    int rc;
    if (!first) {
        for (size_t i = 0; i < KMS_ARRAY_SIZE(versions); i++)
            if ((rc = add_version(ctx, versions[i][0], versions[i][1])))
                return rc;
        return 0;
    }
    for (const ttlv_item_t *pv = first; pv; pv = ttlv_find_next(pv, KMIP_TAG_PROTOCOL_VERSION)) {
        const ttlv_item_t *ma = ttlv_find(pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR);
        const ttlv_item_t *mi = ttlv_find(pv, KMIP_TAG_PROTOCOL_VERSION_MINOR);
        if (!ma || !mi || ma->type != TTLV_INTEGER || mi->type != TTLV_INTEGER)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "bad Protocol Version");
        for (size_t i = 0; i < KMS_ARRAY_SIZE(versions); i++)
            if (versions[i][0] == ma->v.i32 && versions[i][1] == mi->v.i32 &&
                (rc = add_version(ctx, ma->v.i32, mi->v.i32)))
                return rc;
    }
    return 0;
}
