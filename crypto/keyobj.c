/*
 * crypto/keyobj.c: the Split Key and PGP Key objects (KMIP 1.2 sections
 * 2.2.5 and 2.2.9) as kmsd stores and serves them.
 *
 * Both are kept as the TTLV encoding of a canonical form of their
 * structure: the Split Key's fields (Split Key Parts, Key Part Identifier,
 * Split Key Threshold, Split Key Method, Prime Field Size) or the PGP Key
 * Version, and a Key Block holding the Key Format Type, the Key Material
 * bytes and Cryptographic Algorithm / Length when given. Register parses
 * and checks what the client sent into that form; Get decodes it back. A
 * PGP key is kept as bytes: kmsd does not read OpenPGP packets. Key Block
 * wrapping and format conversion are not offered for these two types (Get
 * answers in the registered format only).
 */
#include <string.h>

#include "crypto/crypto_int.h"

static int bad(kms_error_t *err, uint32_t reason, const char *msg)
{
    return kms_error_set_reason(err, KMS_ERR_PROTO, reason, "%s", msg);
}

/* The Key Block of a Split Key or PGP Key: a Byte String Key Material in
 * Raw or Opaque format (PGP: any format), not wrapped. */
static int plain_key_block(const ttlv_item_t *obj, bool any_format, crypto_keyobj_t *k,
                           kms_error_t *err)
{
    const ttlv_item_t *kb = crypto_find_typed(obj, KMIP_TAG_KEY_BLOCK, TTLV_STRUCTURE);
    const ttlv_item_t *kft, *kv, *km, *alg, *len;

    if (!kb)
        return bad(err, KMIP_RESULT_REASON_INVALID_FIELD, "the object lacks a Key Block");
    if (ttlv_find(kb, KMIP_TAG_KEY_WRAPPING_DATA))
        return kms_error_set_reason(err, KMS_ERR_NOTSUP, KMIP_RESULT_REASON_FEATURE_NOT_SUPPORTED,
                                    "a wrapped Split Key or PGP Key is not accepted");
    if (ttlv_find(kb, KMIP_TAG_KEY_COMPRESSION_TYPE))
        return kms_error_set_reason(err, KMS_ERR_NOTSUP,
                                    KMIP_RESULT_REASON_KEY_COMPRESSION_TYPE_NOT_SUPPORTED,
                                    "Key Compression Type is not supported");
    kft = crypto_find_typed(kb, KMIP_TAG_KEY_FORMAT_TYPE, TTLV_ENUMERATION);
    kv = crypto_find_typed(kb, KMIP_TAG_KEY_VALUE, TTLV_STRUCTURE);
    km = kv ? crypto_find_typed(kv, KMIP_TAG_KEY_MATERIAL, TTLV_BYTE_STRING) : NULL;
    if (!kft || !km || km->v.bytes.len == 0)
        return bad(err, KMIP_RESULT_REASON_INVALID_FIELD,
                   "the Key Block needs a Key Format Type and Byte String Key Material");
    k->fmt = ttlv_u32(kft);
    if (!any_format && k->fmt != KMIP_KEY_FORMAT_TYPE_RAW && k->fmt != KMIP_KEY_FORMAT_TYPE_OPAQUE)
        return kms_error_set_reason(err, KMS_ERR_NOTSUP,
                                    KMIP_RESULT_REASON_KEY_FORMAT_TYPE_NOT_SUPPORTED,
                                    "a Split Key's Key Block must be Raw or Opaque");
    alg = ttlv_find(kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM);
    len = ttlv_find(kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH);
    if ((alg && alg->type != TTLV_ENUMERATION) || (len && (len->type != TTLV_INTEGER ||
                                                          len->v.i32 <= 0)))
        return bad(err, KMIP_RESULT_REASON_INVALID_FIELD,
                   "Cryptographic Algorithm / Length of the Key Block are malformed");
    k->alg = alg ? ttlv_u32(alg) : 0;
    k->bits = len ? len->v.i32 : 0;
    k->material = km->v.bytes.ptr;
    k->len = km->v.bytes.len;
    return 0;
}

static const ttlv_item_t *int_field(const ttlv_item_t *obj, uint32_t tag, uint32_t *out)
{
    const ttlv_item_t *it = crypto_find_typed(obj, tag, TTLV_INTEGER);
    if (it && it->v.i32 > 0)
        *out = (uint32_t)it->v.i32;
    return it && it->v.i32 > 0 ? it : NULL;
}

int crypto_keyobj_read(const ttlv_item_t *obj, uint32_t object_type, crypto_keyobj_t *k,
                       kms_error_t *err)
{
    const ttlv_item_t *m, *pf;
    int rc;

    memset(k, 0, sizeof *k);
    k->object_type = object_type;
    if (!obj || obj->type != TTLV_STRUCTURE || obj->tag != crypto_object_tag(object_type))
        return bad(err, KMIP_RESULT_REASON_INVALID_FIELD,
                   "the object does not match the Object Type");
    if (object_type == KMIP_OBJECT_TYPE_PGP_KEY) {
        if (!int_field(obj, KMIP_TAG_PGP_KEY_VERSION, &k->pgp_version))
            return bad(err, KMIP_RESULT_REASON_INVALID_FIELD,
                       "a PGP Key needs a positive PGP Key Version");
        return plain_key_block(obj, true, k, err);
    }
    m = crypto_find_typed(obj, KMIP_TAG_SPLIT_KEY_METHOD, TTLV_ENUMERATION);
    if (!int_field(obj, KMIP_TAG_SPLIT_KEY_PARTS, &k->parts) ||
        !int_field(obj, KMIP_TAG_KEY_PART_IDENTIFIER, &k->part_id) ||
        !int_field(obj, KMIP_TAG_SPLIT_KEY_THRESHOLD, &k->threshold) || !m)
        return bad(err, KMIP_RESULT_REASON_INVALID_FIELD,
                   "a Split Key needs Split Key Parts, Key Part Identifier, Split Key Threshold "
                   "and Split Key Method");
    k->method = ttlv_u32(m);
    if ((rc = plain_key_block(obj, false, k, err)) < 0)
        return rc;
    if ((rc = crypto_split_check(k->method, k->parts, k->threshold,
                                 k->method == KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_GF_2_16
                                     ? k->len : 0,
                                 err)) < 0)
        return rc;
    if (k->part_id > k->parts)
        return bad(err, KMIP_RESULT_REASON_INVALID_FIELD,
                   "Key Part Identifier is larger than Split Key Parts");
    pf = ttlv_find(obj, KMIP_TAG_PRIME_FIELD_SIZE);
    if (k->method == KMIP_SPLIT_KEY_METHOD_POLYNOMIAL_SHARING_PRIME_FIELD) {
        if (!pf || pf->type != TTLV_BIG_INTEGER || pf->v.bytes.len == 0)
            return bad(err, KMIP_RESULT_REASON_INVALID_FIELD,
                       "Polynomial Sharing Prime Field needs a Prime Field Size");
        k->prime = pf->v.bytes.ptr;
        k->prime_len = pf->v.bytes.len;
    } else if (pf) {
        return bad(err, KMIP_RESULT_REASON_INVALID_FIELD,
                   "Prime Field Size belongs to Polynomial Sharing Prime Field only");
    }
    return 0;
}

int crypto_keyobj_encode(const crypto_keyobj_t *k, kms_secret_t **stored_out)
{
    kms_arena_t *a = kms_arena_new(0);
    ttlv_item_t *o, *kb, *kv;
    kms_buf_t b;
    int rc = KMS_ERR_NOMEM;

    *stored_out = NULL;
    kms_buf_init(&b, 16u << 20);
    if (!a || !(o = ttlv_new_struct(a, NULL, crypto_object_tag(k->object_type))))
        goto out;
    if (k->object_type == KMIP_OBJECT_TYPE_PGP_KEY) {
        if (!ttlv_new_int(a, o, KMIP_TAG_PGP_KEY_VERSION, (int32_t)k->pgp_version))
            goto out;
    } else if (!ttlv_new_int(a, o, KMIP_TAG_SPLIT_KEY_PARTS, (int32_t)k->parts) ||
               !ttlv_new_int(a, o, KMIP_TAG_KEY_PART_IDENTIFIER, (int32_t)k->part_id) ||
               !ttlv_new_int(a, o, KMIP_TAG_SPLIT_KEY_THRESHOLD, (int32_t)k->threshold) ||
               !ttlv_new_enum(a, o, KMIP_TAG_SPLIT_KEY_METHOD, k->method) ||
               (k->prime && !ttlv_new_bigint(a, o, KMIP_TAG_PRIME_FIELD_SIZE, k->prime,
                                             k->prime_len))) {
        goto out;
    }
    if (!(kb = ttlv_new_struct(a, o, KMIP_TAG_KEY_BLOCK)) ||
        !ttlv_new_enum(a, kb, KMIP_TAG_KEY_FORMAT_TYPE, k->fmt) ||
        !(kv = ttlv_new_struct(a, kb, KMIP_TAG_KEY_VALUE)) ||
        !ttlv_new_bytes(a, kv, KMIP_TAG_KEY_MATERIAL, k->material, k->len) ||
        (k->alg && !ttlv_new_enum(a, kb, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, k->alg)) ||
        (k->bits > 0 && !ttlv_new_int(a, kb, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, k->bits)))
        goto out;
    if ((rc = ttlv_encode(o, &b)) < 0)
        goto out;
    rc = (*stored_out = kms_secret_dup(b.data, b.len)) ? 0 : KMS_ERR_NOMEM;
out:
    kms_buf_dispose_wipe(&b);
    kms_arena_free(a); /* wiped: it held the material */
    return rc;
}

int crypto_keyobj_decode(kms_arena_t *a, const kms_secret_t *stored, uint32_t object_type,
                         crypto_keyobj_t *k, ttlv_item_t **tree_out, kms_error_t *err)
{
    ttlv_item_t *root = NULL;
    kms_error_t e = {0};
    int rc;

    if (ttlv_decode(stored->data, stored->len, NULL, a, &root, &e) != 0)
        return bad(err, KMIP_RESULT_REASON_GENERAL_FAILURE, "the stored object does not decode");
    if ((rc = crypto_keyobj_read(root, object_type, k, err)) < 0)
        return rc;
    if (tree_out)
        *tree_out = root;
    return 0;
}
