/*
 * kmip/dispatch.c: the operation table (Operation enum -> handler).
 *
 * Operations of the crypto engineer's files enter the table only when the
 * file exists, so a half-built tree still links and answers Operation Not
 * Supported honestly. Poll, Cancel and every operation without a handler
 * are Operation Not Supported (no asynchronous operations).
 */
#include "kmip/kmip_int.h"

#if defined(__has_include)
#if __has_include("kmip/op_register.c")
#define HAVE_OP_REGISTER 1
#endif
#if __has_include("kmip/op_keypair.c")
#define HAVE_OP_KEYPAIR 1
#endif
#if __has_include("kmip/op_rekey.c")
#define HAVE_OP_REKEY 1
#endif
#endif

static const kmip_op_entry_t table[] = {
    {KMIP_OPERATION_CREATE, kmip_op_create, true},
#ifdef HAVE_OP_KEYPAIR
    {KMIP_OPERATION_CREATE_KEY_PAIR, kmip_op_create_key_pair, true},
    {KMIP_OPERATION_REKEY_KEY_PAIR, kmip_op_rekey_key_pair, true},
#endif
#ifdef HAVE_OP_REGISTER
    {KMIP_OPERATION_REGISTER, kmip_op_register, true},
#endif
#ifdef HAVE_OP_REKEY
    {KMIP_OPERATION_REKEY, kmip_op_rekey, true},
#endif
    {KMIP_OPERATION_LOCATE, kmip_op_locate, false},
    {KMIP_OPERATION_CHECK, kmip_op_check, false},
    {KMIP_OPERATION_GET, kmip_op_get, false},
    {KMIP_OPERATION_GET_ATTRIBUTES, kmip_op_get_attributes, false},
    {KMIP_OPERATION_GET_ATTRIBUTE_LIST, kmip_op_get_attribute_list, false},
    {KMIP_OPERATION_ADD_ATTRIBUTE, kmip_op_add_attribute, true},
    {KMIP_OPERATION_MODIFY_ATTRIBUTE, kmip_op_modify_attribute, true},
    {KMIP_OPERATION_DELETE_ATTRIBUTE, kmip_op_delete_attribute, true},
    {KMIP_OPERATION_OBTAIN_LEASE, kmip_op_obtain_lease, false},
    {KMIP_OPERATION_GET_USAGE_ALLOCATION, kmip_op_get_usage_allocation, true},
    {KMIP_OPERATION_ACTIVATE, kmip_op_activate, true},
    {KMIP_OPERATION_REVOKE, kmip_op_revoke, true},
    {KMIP_OPERATION_DESTROY, kmip_op_destroy, true},
    {KMIP_OPERATION_ARCHIVE, kmip_op_archive, true},
    {KMIP_OPERATION_RECOVER, kmip_op_recover, true},
    {KMIP_OPERATION_QUERY, kmip_op_query, false},
    {KMIP_OPERATION_DISCOVER_VERSIONS, kmip_op_discover_versions, false},
};

const kmip_op_entry_t *kmip_op_lookup(uint32_t operation)
{
    for (size_t i = 0; i < KMS_ARRAY_SIZE(table); i++)
        if (table[i].operation == operation)
            return &table[i];
    return NULL;
}

size_t kmip_op_supported(uint32_t *ops_out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < KMS_ARRAY_SIZE(table) && n < max; i++)
        if (table[i].fn)
            ops_out[n++] = table[i].operation;
    return n;
}
