/*
 * kmip/policy.c: Operation Policy Name (KMIP 1.1 section 3.18): which
 * identity may run which operation on an object.
 *
 * kmsd knows two named policies; the name is the object's Operation Policy
 * Name attribute, set by the client at creation or later:
 *   "default"  KMIP's Default Operation Policy (section 3.18.2). For secret
 *              objects (symmetric and private keys, secret data, split keys,
 *              opaque objects) every operation is the creator's only; for
 *              certificates, public keys and templates anyone may read
 *              (Locate, Check, Get, Get Attributes, Get Attribute List, and
 *              Validate, which only reads a certificate as Get does) and
 *              only the creator may change, use or destroy them.
 *   "public"   every identity of the owner tenant may run every operation.
 * An object without an Operation Policy Name is governed like "public":
 * it belongs to its tenant, as every kmsd object always has. Another name
 * is refused where a client sets it (Invalid Field), and an object that
 * somehow carries one is refused to everyone (fail closed). The creator is
 * the identity (tenant and name) that made the object, recorded in the
 * private attribute _kmsd.creator; the policy binds every identity,
 * administrators included.
 *
 * Tenant isolation comes first and is not this file's: kmip_obj_load never
 * returns another tenant's object to a client. This file decides only among
 * the identities that can see the object.
 *
 * The key policy (kmip_config_t.key_policy, conf kmip.key_policy) is here
 * too: which key sizes the operator accepts for new and registered keys,
 * beyond what the algorithm allows (crypto/ knows that part).
 */
#include <stdio.h>
#include <string.h>

#include "crypto/crypto.h"
#include "kmip/kmip_int.h"

#define POLICY_DEFAULT "default"
#define POLICY_PUBLIC "public"

int kmip_policy_creator(const kmip_ctx_t *ctx, char *out, size_t len)
{
    const char *tenant = ctx->ident && ctx->ident->tenant[0] ? ctx->ident->tenant : "default";
    const char *name = ctx->ident && ctx->ident->name[0] ? ctx->ident->name : "anonymous";
    int n = snprintf(out, len, "%s/%s", tenant, name);
    return n < 0 || (size_t)n >= len ? KMS_ERR_LIMIT : 0;
}

int kmip_policy_check_name(kmip_ctx_t *ctx, const char *name)
{
    if (strcmp(name, POLICY_DEFAULT) == 0 || strcmp(name, POLICY_PUBLIC) == 0)
        return 0;
    return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                     "unknown Operation Policy Name '%s' (this server has 'default' and 'public')",
                     name);
}

/* Objects whose every operation the Default Operation Policy leaves to the
 * creator. */
static bool secret_object(uint32_t object_type)
{
    return object_type != KMIP_OBJECT_TYPE_CERTIFICATE &&
           object_type != KMIP_OBJECT_TYPE_PUBLIC_KEY && object_type != KMIP_OBJECT_TYPE_TEMPLATE;
}

static bool read_operation(uint32_t op)
{
    return op == KMIP_OPERATION_LOCATE || op == KMIP_OPERATION_CHECK || op == KMIP_OPERATION_GET ||
           op == KMIP_OPERATION_GET_ATTRIBUTES || op == KMIP_OPERATION_GET_ATTRIBUTE_LIST ||
           op == KMIP_OPERATION_VALIDATE;
}

int kmip_policy_check(kmip_ctx_t *ctx, const kmip_obj_t *o)
{
    const char *name = kmip_attr_get_text(o, "Operation Policy Name");
    if (!name || strcmp(name, POLICY_PUBLIC) == 0)
        return 0;
    if (strcmp(name, POLICY_DEFAULT) != 0) {
        kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
                  "the object's Operation Policy Name '%s' is unknown to this server", name);
        return KMS_ERR_PERM;
    }
    const char *creator = kmip_attr_get_text(o, "_kmsd.creator");
    char me[256];
    if (!creator || (kmip_policy_creator(ctx, me, sizeof(me)) == 0 && strcmp(creator, me) == 0))
        return 0; /* made before creators were recorded: its tenant's, as before */
    if (!secret_object(o->object_type) && read_operation(ctx->operation))
        return 0;
    kmip_fail(ctx, KMIP_RESULT_REASON_PERMISSION_DENIED,
              "Access denied: the object's operation policy 'default' allows this only to its "
              "creator");
    return KMS_ERR_PERM;
}

int kmip_policy_refresh(kmip_ctx_t *ctx, kmip_obj_t *o)
{
    /* _kmsd.private (the creator) marks objects Locate must not show to
     * other identities: secret objects under the Default Operation Policy. */
    const char *name = kmip_attr_get_text(o, "Operation Policy Name");
    const char *creator = kmip_attr_get_text(o, "_kmsd.creator");
    bool priv = name && strcmp(name, POLICY_DEFAULT) == 0 && creator &&
                secret_object(o->object_type);
    kmip_attr_remove_all(o, "_kmsd.private");
    return priv ? kmip_attr_set_text(ctx, o, "_kmsd.private", creator) : 0;
}

/* The operator's key-size policy: "interop" accepts what the algorithms
 * allow; "nist" follows NIST SP 800-131A Rev. 2 for keys made or brought
 * in now. */
int kmip_key_policy_check(kmip_ctx_t *ctx, uint32_t alg, int32_t bits, uint32_t curve)
{
    if (ctx->srv->cfg.key_policy != KMIP_KEY_POLICY_NIST)
        return 0;
    const char *why = NULL;
    if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_RSA || alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_DSA ||
        alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_DH) {
        if (bits < 2048)
            why = "keys of fewer than 2048 bits";
    } else if (crypto_alg_is_ec(alg)) {
        int32_t field = 0;
        if (curve && crypto_curve_group(curve, &field))
            bits = field;
        if (bits < 224)
            why = "curves of fewer than 224 bits";
    } else if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_DES) {
        why = "DES";
    } else if (alg == KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES) {
        if (bits < 168)
            why = "two-key Triple DES";
    } else if (alg && bits > 0 && bits < 112) {
        why = "keys of fewer than 112 bits";
    }
    if (!why)
        return 0;
    const char *an = ttlv_enum_name(KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, alg);
    return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                     "%s-%d refused: the key policy 'nist' (kmip.key_policy in kmsd.yaml) does "
                     "not accept %s",
                     an ? an : "key", (int)bits, why);
}
