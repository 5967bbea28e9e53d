/*
 * kmip/op_split.c: Create Split Key and Join Split Key (KMIP 1.2 sections
 * 4.38 and 4.39).
 *
 * Create Split Key splits a Symmetric Key or Secret Data -- the one named
 * by Unique Identifier, else a new one made from the Template-Attribute,
 * which is then never stored whole -- into Split Key Parts Split Key
 * objects (crypto/split.c: XOR, polynomial sharing over GF(2^8), GF(2^16)
 * or a prime field), answered in Key Part Identifier order. Every part gets
 * the Template-Attribute's attributes, the base key's Cryptographic
 * Algorithm / Length, and a Parent Link to the base key when there is one.
 * Join Split Key combines parts (at least the threshold, all for XOR) of
 * one split into a new object of the requested type.
 *
 * The export policy travels with the key: parts of a Sensitive or
 * non-Extractable key are Sensitive / non-Extractable too, and a joined
 * key is Sensitive when any part is, and non-Extractable when any part is,
 * so splitting and joining never loosen it. Each object is its own commit;
 * a failure midway leaves the parts made so far (the batch's Undo option
 * removes them).
 */
#include <string.h>

#include "crypto/crypto.h"
#include "kmip/kmip_int.h"

static bool attr_bool(const kmip_obj_t *o, const char *name, bool dflt)
{
    const kmip_attr_t *a = kmip_attr_get(o, name, 0);
    return a && a->value->type == TTLV_BOOLEAN ? a->value->v.i64 != 0 : dflt;
}

static int fail_from(kmip_ctx_t *ctx, int rc, const kms_error_t *e)
{
    if (e->reason)
        return kmip_fail(ctx, e->reason, "%s", e->msg);
    return rc;
}

/* A positive Integer field of the payload. */
static int req_count(kmip_ctx_t *ctx, uint32_t tag, uint32_t *out)
{
    const ttlv_item_t *it = ttlv_find(ctx->payload, tag);
    if (!it || it->type != TTLV_INTEGER || it->v.i32 <= 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "%s must be a positive Integer",
                         ttlv_tag_name(tag));
    *out = (uint32_t)it->v.i32;
    return 0;
}

static int check_type(kmip_ctx_t *ctx, uint32_t *type_out)
{
    const ttlv_item_t *ot = ttlv_find(ctx->payload, KMIP_TAG_OBJECT_TYPE);
    if (!ot || ot->type != TTLV_ENUMERATION)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Object Type missing");
    *type_out = ttlv_u32(ot);
    if (*type_out != KMIP_OBJECT_TYPE_SYMMETRIC_KEY && *type_out != KMIP_OBJECT_TYPE_SECRET_DATA)
        return kmip_fail(ctx, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                         "kmsd splits and joins Symmetric Keys and Secret Data");
    return 0;
}

/* The key to split: an existing object of `type` (its material opened,
 * the policy flags read), or a new key from the template. */
typedef struct split_base {
    const char *id;              /* NULL for a new key */
    const uint8_t *key;
    size_t len;
    uint32_t alg;
    int32_t bits;
    bool sensitive, extractable;
} split_base_t;

static int base_existing(kmip_ctx_t *ctx, const char *id, uint32_t type, split_base_t *b)
{
    const kms_secret_t *m = NULL;
    kmip_obj_t *o = NULL;
    int rc;

    if ((rc = kmip_obj_load(ctx, id, &o)))
        return rc;
    if (o->object_type != type)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "the object to split is not of the requested Object Type");
    if (o->archived)
        return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "the key %s is archived", id);
    if ((rc = kmip_obj_open_material(ctx, o, &m)))
        return rc;
    b->id = o->id;
    b->key = m->data;
    b->len = m->len;
    (void)kmip_attr_get_enum(o, "Cryptographic Algorithm", &b->alg);
    (void)kmip_attr_get_int(o, "Cryptographic Length", &b->bits);
    b->sensitive = attr_bool(o, "Sensitive", false);
    b->extractable = attr_bool(o, "Extractable", true);
    return 0;
}

static int base_new(kmip_ctx_t *ctx, uint32_t type, const kmip_obj_t *tmpl, split_base_t *b)
{
    kms_secret_t *key = NULL;
    kms_error_t e = {0};
    int rc;

    if (kmip_attr_get_int(tmpl, "Cryptographic Length", &b->bits) || b->bits <= 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "a new key to split needs a Cryptographic Length");
    if (type == KMIP_OBJECT_TYPE_SYMMETRIC_KEY) {
        if (kmip_attr_get_enum(tmpl, "Cryptographic Algorithm", &b->alg))
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "a new key to split needs a Cryptographic Algorithm");
        if ((rc = crypto_sym_check(b->alg, b->bits, NULL, &e)) ||
            (rc = crypto_sym_generate(b->alg, b->bits, &key, &e)))
            return fail_from(ctx, rc, &e);
    } else {
        if (b->bits % 8 || b->bits > 8192 * 8)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "Secret Data to split is 8..65536 bits in whole bytes");
        if (!(key = kms_secret_new((size_t)b->bits / 8)))
            return KMS_ERR_NOMEM;
        if (crypto_rng_bytes(key->data, key->len, &e) < 0) {
            kms_secret_free(key);
            return fail_from(ctx, KMS_ERR_CRYPTO, &e);
        }
    }
    kmip_ctx_own_secret(ctx, key);
    b->key = key->data;
    b->len = key->len;
    b->sensitive = attr_bool(tmpl, "Sensitive", false);
    b->extractable = attr_bool(tmpl, "Extractable", true);
    return 0;
}

/* One Split Key object for share `i`, saved. */
static int make_part(kmip_ctx_t *ctx, const ttlv_item_t *tmpl, const split_base_t *b,
                     const crypto_keyobj_t *proto, uint32_t i, const kms_secret_t *share,
                     kmip_obj_t **out)
{
    crypto_keyobj_t k = *proto;
    crypto_material_t desc;
    kms_secret_t *stored = NULL;
    kmip_obj_t *o = NULL;
    int rc;

    k.part_id = i + 1;
    k.material = share->data;
    k.len = share->len;
    if ((rc = kmip_obj_new(ctx, KMIP_OBJECT_TYPE_SPLIT_KEY, &o)) ||
        (rc = kmip_attrs_apply_template(ctx, o, tmpl)))
        return rc;
    if ((rc = crypto_keyobj_encode(&k, &stored)))
        return rc;
    memset(&desc, 0, sizeof desc);
    desc.object_type = KMIP_OBJECT_TYPE_SPLIT_KEY;
    desc.stored_fmt = desc.registered_fmt = KMIP_KEY_FORMAT_TYPE_RAW;
    desc.alg = b->alg;
    desc.bits = b->bits;
    if ((rc = kmip_obj_set_material(ctx, o, stored, &desc)))
        return rc;
    if ((b->sensitive && (rc = kmip_attr_set_bool(ctx, o, "Sensitive", true))) ||
        (!b->extractable && (rc = kmip_attr_set_bool(ctx, o, "Extractable", false))))
        return rc;
    if (b->id) {
        ttlv_item_t *v = kmip_link_value(ctx, KMIP_LINK_TYPE_PARENT_LINK, b->id);
        if (!v)
            return KMS_ERR_NOMEM;
        if ((rc = kmip_attr_add(ctx, o, "Link", v, NULL)))
            return rc;
    }
    kmip_obj_eval_dates(ctx, o);
    if ((rc = kmip_obj_save(ctx, o)))
        return rc;
    *out = o;
    return 0;
}

int kmip_op_create_split_key(kmip_ctx_t *ctx)
{
    const ttlv_item_t *p = ctx->payload;
    const ttlv_item_t *uid = ttlv_find(p, KMIP_TAG_UNIQUE_IDENTIFIER);
    const ttlv_item_t *m = ttlv_find(p, KMIP_TAG_SPLIT_KEY_METHOD);
    const ttlv_item_t *pf = ttlv_find(p, KMIP_TAG_PRIME_FIELD_SIZE);
    const ttlv_item_t *tmpl = ttlv_find(p, KMIP_TAG_TEMPLATE_ATTRIBUTE);
    kms_secret_t **shares = NULL;
    crypto_keyobj_t proto;
    split_base_t b;
    kms_error_t e = {0};
    kmip_obj_t *t = NULL, *part = NULL;
    uint32_t type = 0;
    int rc;

    memset(&b, 0, sizeof b);
    memset(&proto, 0, sizeof proto);
    proto.object_type = KMIP_OBJECT_TYPE_SPLIT_KEY;
    proto.fmt = KMIP_KEY_FORMAT_TYPE_RAW;
    if ((rc = check_type(ctx, &type)) || (rc = req_count(ctx, KMIP_TAG_SPLIT_KEY_PARTS,
                                                          &proto.parts)) ||
        (rc = req_count(ctx, KMIP_TAG_SPLIT_KEY_THRESHOLD, &proto.threshold)))
        return rc;
    if (!m || m->type != TTLV_ENUMERATION)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Split Key Method missing");
    proto.method = ttlv_u32(m);
    if (proto.method == KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_PRIME_FIELD) {
        if (!pf || pf->type != TTLV_BIG_INTEGER)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "Polynomial Sharing Prime Field needs a Prime Field Size");
        proto.prime = pf->v.bytes.ptr;
        proto.prime_len = pf->v.bytes.len;
    }
    if (uid && uid->type != TTLV_TEXT_STRING)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "Unique Identifier must be text");
    /* The template is read once into a scratch object: it gives a new
     * key's algorithm and length, and is applied to every part. */
    if ((rc = kmip_obj_new(ctx, type, &t)) || (rc = kmip_attrs_apply_template(ctx, t, tmpl)))
        return rc;
    if (uid)
        rc = base_existing(ctx, ttlv_text(uid), type, &b);
    else
        rc = base_new(ctx, type, t, &b);
    if (rc)
        return rc;
    if (!b.alg)
        (void)kmip_attr_get_enum(t, "Cryptographic Algorithm", &b.alg);
    if (b.bits <= 0)
        b.bits = b.len * 8 <= INT32_MAX ? (int32_t)(b.len * 8) : 0;
    proto.alg = b.alg;
    proto.bits = b.bits;
    if ((rc = crypto_split(proto.method, b.key, b.len, proto.parts, proto.threshold, proto.prime,
                           proto.prime_len, &shares, &e)) < 0)
        return fail_from(ctx, rc, &e);
    for (uint32_t i = 0; i < proto.parts; i++) {
        if ((rc = make_part(ctx, tmpl, &b, &proto, i, shares[i], &part)))
            goto out;
        if (!ttlv_new_textz(ctx->arena, ctx->resp_payload, KMIP_TAG_UNIQUE_IDENTIFIER, part->id)) {
            rc = KMS_ERR_NOMEM;
            goto out;
        }
        if (i == 0)
            kmip_set_created(ctx, part->id);
    }
out:
    crypto_shares_free(shares, proto.parts);
    return rc;
}

int kmip_op_join_split_key(kmip_ctx_t *ctx)
{
    const ttlv_item_t *p = ctx->payload;
    const ttlv_item_t *sdt = ttlv_find(p, KMIP_TAG_SECRET_DATA_TYPE);
    crypto_share_t shares[CRYPTO_SPLIT_MAX_PARTS];
    crypto_keyobj_t first, k;
    crypto_material_t desc;
    kms_secret_t *key = NULL;
    kms_error_t e = {0};
    kmip_obj_t *o = NULL;
    bool sensitive = false, extractable = true;
    uint32_t type = 0, alg = 0;
    int32_t bits = 0;
    size_t n = 0;
    int rc;

    memset(&first, 0, sizeof first);
    if ((rc = check_type(ctx, &type)))
        return rc;
    if (type == KMIP_OBJECT_TYPE_SECRET_DATA && (!sdt || sdt->type != TTLV_ENUMERATION))
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "joining Secret Data needs its Secret Data Type");
    for (const ttlv_item_t *u = ttlv_find(p, KMIP_TAG_UNIQUE_IDENTIFIER); u;
         u = ttlv_find_next(u, KMIP_TAG_UNIQUE_IDENTIFIER)) {
        const kms_secret_t *m = NULL;
        kmip_obj_t *part = NULL;
        if (u->type != TTLV_TEXT_STRING)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "Unique Identifier must be text");
        if (n == KMS_ARRAY_SIZE(shares))
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "more than %d parts",
                             CRYPTO_SPLIT_MAX_PARTS);
        if ((rc = kmip_obj_load(ctx, ttlv_text(u), &part)))
            return rc;
        if (part->object_type != KMIP_OBJECT_TYPE_SPLIT_KEY)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD, "%s is not a Split Key",
                             part->id);
        if (part->archived)
            return kmip_fail(ctx, KMIP_RESULT_REASON_OBJECT_ARCHIVED, "%s is archived",
                             part->id);
        if ((rc = kmip_obj_open_material(ctx, part, &m)))
            return rc;
        if ((rc = crypto_keyobj_decode(ctx->arena, m, KMIP_OBJECT_TYPE_SPLIT_KEY, &k, NULL,
                                       &e)) < 0)
            return fail_from(ctx, rc, &e);
        if (n == 0) {
            first = k;
        } else if (k.method != first.method || k.threshold != first.threshold ||
                   k.parts != first.parts || k.alg != first.alg || k.bits != first.bits ||
                   k.prime_len != first.prime_len ||
                   (k.prime_len && memcmp(k.prime, first.prime, k.prime_len) != 0)) {
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "the parts do not belong to one split (method, threshold, parts, "
                             "key or prime differ)");
        }
        shares[n].id = k.part_id;
        shares[n].p = k.material;
        shares[n].len = k.len;
        n++;
        sensitive |= attr_bool(part, "Sensitive", false);
        extractable &= attr_bool(part, "Extractable", true);
    }
    if (n == 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "Join Split Key needs the Unique Identifiers of the parts");
    if (n < first.threshold || (first.method == KMIP_SPLIT_KEY_METHOD_XOR && n < first.parts))
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "%zu parts given; the split needs %u", n,
                         first.method == KMIP_SPLIT_KEY_METHOD_XOR ? first.parts : first.threshold);
    if (first.method == KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_PRIME_FIELD && first.bits <= 0)
        return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                         "prime field parts need the key's Cryptographic Length");
    rc = crypto_join(first.method, shares, n, first.threshold, first.prime, first.prime_len,
                     first.bits > 0 ? ((size_t)first.bits + 7) / 8 : 0, &key, &e);
    if (rc < 0)
        return fail_from(ctx, rc, &e);
    kmip_ctx_own_secret(ctx, key);

    if ((rc = kmip_obj_new(ctx, type, &o)) ||
        (rc = kmip_attrs_apply_template(ctx, o, ttlv_find(p, KMIP_TAG_TEMPLATE_ATTRIBUTE))))
        return rc;
    memset(&desc, 0, sizeof desc);
    desc.object_type = type;
    desc.stored_fmt = desc.registered_fmt = KMIP_KEY_FORMAT_TYPE_RAW;
    if (type == KMIP_OBJECT_TYPE_SYMMETRIC_KEY) {
        if (kmip_attr_get_enum(o, "Cryptographic Algorithm", &alg) == 0 && first.alg &&
            alg != first.alg)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "the template's Cryptographic Algorithm is not the split key's");
        alg = alg ? alg : first.alg;
        if (!alg)
            return kmip_fail(ctx, KMIP_RESULT_REASON_INVALID_FIELD,
                             "the joined key needs a Cryptographic Algorithm");
        bits = crypto_sym_bits(alg, key->len);
        if ((rc = crypto_sym_check(alg, bits, NULL, &e)) < 0)
            return fail_from(ctx, rc, &e);
        desc.alg = alg;
        desc.bits = bits;
    } else {
        desc.sub_type = ttlv_u32(sdt);
        desc.stored_fmt = desc.registered_fmt = KMIP_KEY_FORMAT_TYPE_OPAQUE;
    }
    {
        kms_secret_t *copy = kms_secret_dup(key->data, key->len);
        if (!copy)
            return KMS_ERR_NOMEM;
        if ((rc = kmip_obj_set_material(ctx, o, copy, &desc)))
            return rc;
    }
    if ((sensitive && (rc = kmip_attr_set_bool(ctx, o, "Sensitive", true))) ||
        (!extractable && (rc = kmip_attr_set_bool(ctx, o, "Extractable", false))))
        return rc;
    kmip_obj_eval_dates(ctx, o);
    return (rc = kmip_obj_save(ctx, o)) ? rc : kmip_answer_id(ctx, o->id);
}
