/*
 * ttlv/tags.c: the tag, type and enumeration tables and their look-ups.
 *
 * Everything is generated from the X-macro lists in tags.def and
 * enums.def, so a tag's value, name and type cannot drift apart. The
 * tables are small (about 300 tags, 500 enumeration values); look-ups are
 * linear scans of read-only arrays, which keeps them reentrant without
 * any initialisation. Where several names share one tag value (0x42000F is
 * "Batch Item", "Request Batch Item" and "Response Batch Item") the first
 * entry in tags.def is the printed name; every name is accepted on input.
 *
 * It deliberately does not know which tag may appear where: that is kmip/.
 */
#include <string.h>
#include <strings.h>

#include "ttlv/ttlv_int.h"

/* ------------------------------------------------------------------ tags */
struct tag_entry {
    uint32_t tag;
    enum ttlv_type type;
    const char *name;
};

static const struct tag_entry tag_table[] = {
#define XX(val, name, str, type) {(val), TTLV_##type, (str)},
#include "ttlv/tags.def"
#undef XX
};

_Static_assert(KMS_ARRAY_SIZE(tag_table) <= TTLV_MAX_TAG_NAMES, "raise TTLV_MAX_TAG_NAMES");

static const struct tag_entry *tag_lookup(uint32_t tag)
{
    for (size_t i = 0; i < KMS_ARRAY_SIZE(tag_table); i++)
        if (tag_table[i].tag == tag)
            return &tag_table[i];
    return NULL;
}

const char *ttlv_tag_name(uint32_t tag)
{
    const struct tag_entry *e = tag_lookup(tag);
    return e ? e->name : NULL;
}

enum ttlv_type ttlv_tag_type(uint32_t tag)
{
    const struct tag_entry *e = tag_lookup(tag);
    return e ? e->type : TTLV_ANY;
}

int ttlv_tag_by_name(const char *name, uint32_t *tag_out)
{
    if (!name)
        return KMS_ERR_INVAL;
    for (size_t i = 0; i < KMS_ARRAY_SIZE(tag_table); i++) {
        if (strcmp(tag_table[i].name, name) == 0) {
            if (tag_out)
                *tag_out = tag_table[i].tag;
            return 0;
        }
    }
    return KMS_ERR_NOTFOUND;
}

const char *ttlv_tag_entry(size_t i, uint32_t *tag_out)
{
    if (i >= KMS_ARRAY_SIZE(tag_table))
        return NULL;
    *tag_out = tag_table[i].tag;
    return tag_table[i].name;
}

/* ----------------------------------------------------------------- types */
static const char *const type_names[] = {
    [TTLV_STRUCTURE] = "Structure",     [TTLV_INTEGER] = "Integer",
    [TTLV_LONG_INTEGER] = "Long Integer", [TTLV_BIG_INTEGER] = "Big Integer",
    [TTLV_ENUMERATION] = "Enumeration", [TTLV_BOOLEAN] = "Boolean",
    [TTLV_TEXT_STRING] = "Text String", [TTLV_BYTE_STRING] = "Byte String",
    [TTLV_DATE_TIME] = "Date-Time",     [TTLV_INTERVAL] = "Interval",
};

const char *ttlv_type_name(enum ttlv_type t)
{
    if ((int)t <= 0 || (size_t)t >= KMS_ARRAY_SIZE(type_names))
        return NULL;
    return type_names[t];
}

int ttlv_type_by_name(const char *name, enum ttlv_type *out)
{
    if (!name)
        return KMS_ERR_INVAL;
    for (size_t i = 1; i < KMS_ARRAY_SIZE(type_names); i++) {
        if (type_names[i] && strcmp(type_names[i], name) == 0) {
            if (out)
                *out = (enum ttlv_type)i;
            return 0;
        }
    }
    return KMS_ERR_NOTFOUND;
}

/* ---------------------------------------------------------- enumerations */
struct enum_entry {
    uint32_t value;
    const char *name;
};

struct enum_set {
    const struct enum_entry *e;
    size_t n;
};

#define ENUM_ENTRY(set, val, name, str) {(val), (str)},
#define ENUM_ARRAY(set) static const struct enum_entry enum_##set[] = {KMIP_ENUM_##set(ENUM_ENTRY)};
TTLV_ENUM_SETS(ENUM_ARRAY)
#undef ENUM_ARRAY
#undef ENUM_ENTRY

/* Every set, also those with no tag of their own (Authentication Suite,
 * Conformance Clause...), for ttlv_enum_entry(). */
#define SET_ENTRY(set) {enum_##set, KMS_ARRAY_SIZE(enum_##set)},
static const struct enum_set all_sets[] = {TTLV_ENUM_SETS(SET_ENTRY)};
#undef SET_ENTRY
#define SET_COUNT(set) +KMS_ARRAY_SIZE(enum_##set)
_Static_assert(0 TTLV_ENUM_SETS(SET_COUNT) <= TTLV_MAX_ENUM_NAMES, "raise TTLV_MAX_ENUM_NAMES");
#undef SET_COUNT

/*
 * Which enumeration set names the values of which tag. Most tags share
 * their set's name; a few reuse another set (Mask Generator Hashing
 * Algorithm uses Hashing Algorithm). The two mask sets are listed too:
 * their tags are Integers, and the printer shows their bits by name.
 */
#define TTLV_TAG_ENUM_MAP(X)                                                     \
    X(ALTERNATIVE_NAME_TYPE, ALTERNATIVE_NAME_TYPE)                              \
    X(ATTESTATION_TYPE, ATTESTATION_TYPE)                                        \
    X(BATCH_ERROR_CONTINUATION_OPTION, BATCH_ERROR_CONTINUATION_OPTION)          \
    X(BLOCK_CIPHER_MODE, BLOCK_CIPHER_MODE)                                      \
    X(CANCELLATION_RESULT, CANCELLATION_RESULT)                                  \
    X(CERTIFICATE_REQUEST_TYPE, CERTIFICATE_REQUEST_TYPE)                        \
    X(CERTIFICATE_TYPE, CERTIFICATE_TYPE)                                        \
    X(CLIENT_REGISTRATION_METHOD, CLIENT_REGISTRATION_METHOD)                    \
    X(CREDENTIAL_TYPE, CREDENTIAL_TYPE)                                          \
    X(CRYPTOGRAPHIC_ALGORITHM, CRYPTOGRAPHIC_ALGORITHM)                          \
    X(CRYPTOGRAPHIC_USAGE_MASK, CRYPTOGRAPHIC_USAGE_MASK)                        \
    X(DERIVATION_METHOD, DERIVATION_METHOD)                                      \
    X(DESTROY_ACTION, DESTROY_ACTION)                                            \
    X(DIGITAL_SIGNATURE_ALGORITHM, DIGITAL_SIGNATURE_ALGORITHM)                  \
    X(DRBG_ALGORITHM, DRBG_ALGORITHM)                                            \
    X(ENCODING_OPTION, ENCODING_OPTION)                                          \
    X(FIPS186_VARIATION, FIPS186_VARIATION)                                      \
    X(HASHING_ALGORITHM, HASHING_ALGORITHM)                                      \
    X(KEY_COMPRESSION_TYPE, KEY_COMPRESSION_TYPE)                                \
    X(KEY_FORMAT_TYPE, KEY_FORMAT_TYPE)                                          \
    X(KEY_ROLE_TYPE, KEY_ROLE_TYPE)                                              \
    X(KEY_VALUE_LOCATION_TYPE, KEY_VALUE_LOCATION_TYPE)                          \
    X(KEY_WRAP_TYPE, KEY_WRAP_TYPE)                                              \
    X(LINK_TYPE, LINK_TYPE)                                                      \
    X(MASK_GENERATOR, MASK_GENERATOR)                                            \
    X(MASK_GENERATOR_HASHING_ALGORITHM, HASHING_ALGORITHM)                       \
    X(NAME_TYPE, NAME_TYPE)                                                      \
    X(OBJECT_GROUP_MEMBER, OBJECT_GROUP_MEMBER)                                  \
    X(OBJECT_TYPE, OBJECT_TYPE)                                                  \
    X(OPAQUE_DATA_TYPE, OPAQUE_DATA_TYPE)                                        \
    X(OPERATION, OPERATION)                                                      \
    X(PADDING_METHOD, PADDING_METHOD)                                            \
    X(PUT_FUNCTION, PUT_FUNCTION)                                                \
    X(QUERY_FUNCTION, QUERY_FUNCTION)                                            \
    X(RECOMMENDED_CURVE, RECOMMENDED_CURVE)                                      \
    X(RESULT_REASON, RESULT_REASON)                                              \
    X(RESULT_STATUS, RESULT_STATUS)                                              \
    X(REVOCATION_REASON_CODE, REVOCATION_REASON_CODE)                            \
    X(RNG_ALGORITHM, RNG_ALGORITHM)                                              \
    X(RNG_MODE, RNG_MODE)                                                        \
    X(SECRET_DATA_TYPE, SECRET_DATA_TYPE)                                        \
    X(SHREDDING_ALGORITHM, SHREDDING_ALGORITHM)                                  \
    X(SPLIT_KEY_METHOD, SPLIT_KEY_METHOD)                                        \
    X(STATE, STATE)                                                              \
    X(STORAGE_STATUS_MASK, STORAGE_STATUS_MASK)                                  \
    X(UNWRAP_MODE, UNWRAP_MODE)                                                  \
    X(USAGE_LIMITS_UNIT, USAGE_LIMITS_UNIT)                                      \
    X(VALIDATION_AUTHORITY_TYPE, VALIDATION_AUTHORITY_TYPE)                      \
    X(VALIDATION_TYPE, VALIDATION_TYPE)                                          \
    X(VALIDITY_INDICATOR, VALIDITY_INDICATOR)                                    \
    X(WRAPPING_METHOD, WRAPPING_METHOD)

static const struct {
    uint32_t tag;
    struct enum_set set;
} tag_enum_map[] = {
#define X(tag, set) {KMIP_TAG_##tag, {enum_##set, KMS_ARRAY_SIZE(enum_##set)}},
    TTLV_TAG_ENUM_MAP(X)
#undef X
};

static const struct enum_set *enum_set_of(uint32_t tag)
{
    for (size_t i = 0; i < KMS_ARRAY_SIZE(tag_enum_map); i++)
        if (tag_enum_map[i].tag == tag)
            return &tag_enum_map[i].set;
    return NULL;
}

const char *ttlv_enum_name(uint32_t tag, uint32_t value)
{
    const struct enum_set *s = enum_set_of(tag);
    if (!s)
        return NULL;
    for (size_t i = 0; i < s->n; i++)
        if (s->e[i].value == value)
            return s->e[i].name;
    return NULL;
}

const void *ttlv_enum_set(uint32_t tag)
{
    const struct enum_set *s = enum_set_of(tag);
    return s ? s->e : NULL;
}

const char *ttlv_enum_entry(size_t i, const void **set_out, uint32_t *value_out)
{
    for (size_t k = 0; k < KMS_ARRAY_SIZE(all_sets); k++) {
        if (i < all_sets[k].n) {
            *set_out = all_sets[k].e;
            *value_out = all_sets[k].e[i].value;
            return all_sets[k].e[i].name;
        }
        i -= all_sets[k].n;
    }
    return NULL;
}

int ttlv_enum_by_name(uint32_t tag, const char *name, uint32_t *value_out)
{
    const struct enum_set *s = enum_set_of(tag);
    if (!name)
        return KMS_ERR_INVAL;
    if (!s)
        return KMS_ERR_NOTFOUND;
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->e[i].name, name) == 0) {
            if (value_out)
                *value_out = s->e[i].value;
            return 0;
        }
    }
    return KMS_ERR_NOTFOUND;
}

/* ------------------------------------------------------------ attributes */
/*
 * Standard attribute names of KMIP 1.0-1.4 and the tag of the value they
 * carry in an Attribute Value (for structured attributes, the structure's
 * tag). "x-" and "y-" custom attributes have no fixed tag and are not here.
 */
#define TTLV_ATTR_MAP(X)                                                         \
    X("Unique Identifier", UNIQUE_IDENTIFIER)                                    \
    X("Name", NAME)                                                              \
    X("Object Type", OBJECT_TYPE)                                                \
    X("Cryptographic Algorithm", CRYPTOGRAPHIC_ALGORITHM)                        \
    X("Cryptographic Length", CRYPTOGRAPHIC_LENGTH)                              \
    X("Cryptographic Parameters", CRYPTOGRAPHIC_PARAMETERS)                      \
    X("Cryptographic Domain Parameters", CRYPTOGRAPHIC_DOMAIN_PARAMETERS)        \
    X("Certificate Type", CERTIFICATE_TYPE)                                      \
    X("Certificate Length", CERTIFICATE_LENGTH)                                  \
    X("X.509 Certificate Identifier", X_509_CERTIFICATE_IDENTIFIER)              \
    X("X.509 Certificate Subject", X_509_CERTIFICATE_SUBJECT)                    \
    X("X.509 Certificate Issuer", X_509_CERTIFICATE_ISSUER)                      \
    X("Certificate Identifier", CERTIFICATE_IDENTIFIER)                          \
    X("Certificate Subject", CERTIFICATE_SUBJECT)                                \
    X("Certificate Issuer", CERTIFICATE_ISSUER)                                  \
    X("Digital Signature Algorithm", DIGITAL_SIGNATURE_ALGORITHM)                \
    X("Digest", DIGEST)                                                          \
    X("Operation Policy Name", OPERATION_POLICY_NAME)                            \
    X("Cryptographic Usage Mask", CRYPTOGRAPHIC_USAGE_MASK)                      \
    X("Lease Time", LEASE_TIME)                                                  \
    X("Usage Limits", USAGE_LIMITS)                                              \
    X("State", STATE)                                                            \
    X("Initial Date", INITIAL_DATE)                                              \
    X("Activation Date", ACTIVATION_DATE)                                        \
    X("Process Start Date", PROCESS_START_DATE)                                  \
    X("Protect Stop Date", PROTECT_STOP_DATE)                                    \
    X("Deactivation Date", DEACTIVATION_DATE)                                    \
    X("Destroy Date", DESTROY_DATE)                                              \
    X("Compromise Occurrence Date", COMPROMISE_OCCURRENCE_DATE)                  \
    X("Compromise Date", COMPROMISE_DATE)                                        \
    X("Revocation Reason", REVOCATION_REASON)                                    \
    X("Archive Date", ARCHIVE_DATE)                                              \
    X("Object Group", OBJECT_GROUP)                                              \
    X("Fresh", FRESH)                                                            \
    X("Link", LINK)                                                              \
    X("Application Specific Information", APPLICATION_SPECIFIC_INFORMATION)      \
    X("Contact Information", CONTACT_INFORMATION)                                \
    X("Last Change Date", LAST_CHANGE_DATE)                                      \
    X("Alternative Name", ALTERNATIVE_NAME)                                      \
    X("Key Value Present", KEY_VALUE_PRESENT)                                    \
    X("Key Value Location", KEY_VALUE_LOCATION)                                  \
    X("Original Creation Date", ORIGINAL_CREATION_DATE)                          \
    X("Random Number Generator", RANDOM_NUMBER_GENERATOR)                        \
    X("PKCS#12 Friendly Name", PKCS12_FRIENDLY_NAME)                             \
    X("Description", DESCRIPTION)                                                \
    X("Comment", COMMENT)                                                        \
    X("Sensitive", SENSITIVE)                                                    \
    X("Always Sensitive", ALWAYS_SENSITIVE)                                      \
    X("Extractable", EXTRACTABLE)                                                \
    X("Never Extractable", NEVER_EXTRACTABLE)

static const struct {
    const char *name;
    uint32_t tag;
} attr_map[] = {
#define X(str, tag) {(str), KMIP_TAG_##tag},
    TTLV_ATTR_MAP(X)
#undef X
};

int ttlv_attr_tag_by_name(const char *attr_name, uint32_t *tag_out)
{
    if (!attr_name)
        return KMS_ERR_INVAL;
    for (size_t i = 0; i < KMS_ARRAY_SIZE(attr_map); i++) {
        if (strcmp(attr_map[i].name, attr_name) == 0) {
            if (tag_out)
                *tag_out = attr_map[i].tag;
            return 0;
        }
    }
    return KMS_ERR_NOTFOUND;
}

/*
 * The tag whose tables name this item's value: its own, or for an
 * Attribute Value the tag of the attribute named by its sibling Attribute
 * Name (so "Cryptographic Algorithm" values print as "(AES)"), when that
 * tag has the same type.
 */
uint32_t ttlv_naming_tag(const ttlv_item_t *it)
{
    uint32_t tag;
    char buf[64]; /* longer than any standard attribute name */
    if (it->tag != KMIP_TAG_ATTRIBUTE_VALUE || !it->parent)
        return it->tag;
    const ttlv_item_t *name = ttlv_find(it->parent, KMIP_TAG_ATTRIBUTE_NAME);
    if (!name || name->type != TTLV_TEXT_STRING || name->v.bytes.len >= sizeof(buf) || !name->v.bytes.ptr)
        return it->tag;
    /* copied by length: a hand-built item need not be NUL-terminated */
    memcpy(buf, name->v.bytes.ptr, name->v.bytes.len);
    buf[name->v.bytes.len] = 0;
    if (ttlv_attr_tag_by_name(buf, &tag) != 0 || ttlv_tag_type(tag) != it->type)
        return it->tag;
    return tag;
}

/* --------------------------------------------------------------- secrets */
/* Values printed as <redacted> when asked: key material and its parts,
 * credentials, and anything that is or derives a secret. */
bool ttlv_tag_is_secret(uint32_t tag)
{
    switch (tag) {
    case KMIP_TAG_KEY_MATERIAL:  /* and everything under it */
    case KMIP_TAG_KEY:           /* Transparent Symmetric Key */
    case KMIP_TAG_PASSWORD:
    case KMIP_TAG_D:
    case KMIP_TAG_P:
    case KMIP_TAG_Q:
    case KMIP_TAG_PRIME_EXPONENT_P:
    case KMIP_TAG_PRIME_EXPONENT_Q:
    case KMIP_TAG_CRT_COEFFICIENT:
    case KMIP_TAG_PRIVATE_EXPONENT:
    case KMIP_TAG_X:             /* DSA/DH private value */
    case KMIP_TAG_OPAQUE_DATA_VALUE:
    case KMIP_TAG_DATA:          /* Encrypt/Decrypt plaintext */
        return true;
    default:
        return false;
    }
}
