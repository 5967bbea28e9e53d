/*
 * kmip/dispatch.c: the operation table: Operation enum -> handler, and
 * what running it takes (a read, one bounded write, key material), from
 * which the request layer decides where it may run and what the gate
 * refuses.
 *
 * Every operation without a handler is Operation Not Supported; Certify
 * and Re-certify are listed by Query only when an issuing CA is
 * configured. KMIP_OP_ASYNC marks what an Asynchronous Indicator may
 * queue (op_async.c). It implements nothing itself:
 * op_*.c do.
 */
#include "kmip/kmip_int.h"

static const kmip_op_entry_t table[] = {
    {KMIP_OPERATION_CREATE, kmip_op_create, KMIP_OP_ONE_WRITE | KMIP_OP_NEEDS_KEYS | KMIP_OP_ASYNC},
    {KMIP_OPERATION_CREATE_KEY_PAIR, kmip_op_create_key_pair, KMIP_OP_NEEDS_KEYS | KMIP_OP_ASYNC},
    {KMIP_OPERATION_REKEY_KEY_PAIR, kmip_op_rekey_key_pair, KMIP_OP_NEEDS_KEYS | KMIP_OP_ASYNC},
    {KMIP_OPERATION_REGISTER, kmip_op_register, KMIP_OP_ONE_WRITE | KMIP_OP_NEEDS_KEYS},
    {KMIP_OPERATION_REKEY, kmip_op_rekey, KMIP_OP_NEEDS_KEYS | KMIP_OP_ASYNC},
    {KMIP_OPERATION_CERTIFY, kmip_op_certify, KMIP_OP_NEEDS_KEYS | KMIP_OP_NEEDS_CA | KMIP_OP_ASYNC},
    {KMIP_OPERATION_CREATE_SPLIT_KEY, kmip_op_create_split_key, KMIP_OP_NEEDS_KEYS | KMIP_OP_ASYNC},
    {KMIP_OPERATION_JOIN_SPLIT_KEY, kmip_op_join_split_key, KMIP_OP_NEEDS_KEYS | KMIP_OP_ASYNC},
    {KMIP_OPERATION_RECERTIFY, kmip_op_recertify, KMIP_OP_NEEDS_KEYS | KMIP_OP_NEEDS_CA | KMIP_OP_ASYNC},
    {KMIP_OPERATION_LOCATE, kmip_op_locate, KMIP_OP_ASYNC},
    {KMIP_OPERATION_CHECK, kmip_op_check, KMIP_OP_READ},
    {KMIP_OPERATION_GET, kmip_op_get, KMIP_OP_READ | KMIP_OP_NEEDS_KEYS},
    {KMIP_OPERATION_GET_ATTRIBUTES, kmip_op_get_attributes, KMIP_OP_READ},
    {KMIP_OPERATION_GET_ATTRIBUTE_LIST, kmip_op_get_attribute_list, KMIP_OP_READ},
    {KMIP_OPERATION_ADD_ATTRIBUTE, kmip_op_add_attribute, KMIP_OP_ONE_WRITE},
    {KMIP_OPERATION_MODIFY_ATTRIBUTE, kmip_op_modify_attribute, KMIP_OP_ONE_WRITE},
    {KMIP_OPERATION_DELETE_ATTRIBUTE, kmip_op_delete_attribute, KMIP_OP_ONE_WRITE},
    {KMIP_OPERATION_OBTAIN_LEASE, kmip_op_obtain_lease, 0},
    {KMIP_OPERATION_GET_USAGE_ALLOCATION, kmip_op_get_usage_allocation, 0},
    {KMIP_OPERATION_ACTIVATE, kmip_op_activate, KMIP_OP_ONE_WRITE},
    {KMIP_OPERATION_REVOKE, kmip_op_revoke, KMIP_OP_ONE_WRITE},
    {KMIP_OPERATION_DESTROY, kmip_op_destroy, KMIP_OP_ONE_WRITE},
    {KMIP_OPERATION_ARCHIVE, kmip_op_archive, KMIP_OP_ONE_WRITE | KMIP_OP_ASYNC},
    {KMIP_OPERATION_RECOVER, kmip_op_recover, KMIP_OP_ONE_WRITE | KMIP_OP_ASYNC},
    {KMIP_OPERATION_VALIDATE, kmip_op_validate, KMIP_OP_READ | KMIP_OP_NEEDS_KEYS},
    {KMIP_OPERATION_POLL, kmip_op_poll, KMIP_OP_READ},
    {KMIP_OPERATION_CANCEL, kmip_op_cancel, 0},
    {KMIP_OPERATION_QUERY, kmip_op_query, KMIP_OP_READ},
    {KMIP_OPERATION_DISCOVER_VERSIONS, kmip_op_discover_versions, KMIP_OP_READ},
    {KMIP_OPERATION_ENCRYPT, kmip_op_encrypt, KMIP_OP_READ | KMIP_OP_NEEDS_KEYS},
    {KMIP_OPERATION_DECRYPT, kmip_op_decrypt, KMIP_OP_READ | KMIP_OP_NEEDS_KEYS},
    {KMIP_OPERATION_SIGN, kmip_op_sign, KMIP_OP_READ | KMIP_OP_NEEDS_KEYS},
    {KMIP_OPERATION_SIGNATURE_VERIFY, kmip_op_signature_verify, KMIP_OP_READ | KMIP_OP_NEEDS_KEYS},
    {KMIP_OPERATION_MAC, kmip_op_mac, KMIP_OP_READ | KMIP_OP_NEEDS_KEYS},
    {KMIP_OPERATION_MAC_VERIFY, kmip_op_mac_verify, KMIP_OP_READ | KMIP_OP_NEEDS_KEYS},
    {KMIP_OPERATION_HASH, kmip_op_hash, KMIP_OP_READ},
    {KMIP_OPERATION_RNG_RETRIEVE, kmip_op_rng_retrieve, KMIP_OP_READ},
    {KMIP_OPERATION_RNG_SEED, kmip_op_rng_seed, KMIP_OP_READ},
    {KMIP_OPERATION_DERIVE_KEY, kmip_op_derive_key, KMIP_OP_NEEDS_KEYS | KMIP_OP_ASYNC},
};

const kmip_op_entry_t *kmip_op_lookup(uint32_t operation)
{
    for (size_t i = 0; i < KMS_ARRAY_SIZE(table); i++)
        if (table[i].operation == operation)
            return &table[i];
    return NULL;
}

size_t kmip_op_supported(const kmip_server_t *s, uint32_t *ops_out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < KMS_ARRAY_SIZE(table) && n < max; i++) {
        if (!table[i].fn ||
            ((table[i].flags & KMIP_OP_NEEDS_CA) && !(s->cfg.certify_ca && s->cfg.certify_ca_key)))
            continue;
        ops_out[n++] = table[i].operation;
    }
    return n;
}
