/*
 * hsm/p11_module.c: loading PKCS#11 modules. dlopen + C_GetFunctionList +
 * C_Initialize once per module path per process, reference counted, so
 * that several providers (say, the old and new master key during a
 * rotation) can share one module: Cryptoki state is per process, and a
 * second C_Initialize or an early C_Finalize would break the others.
 *
 * It also names CK_RV codes for error messages. It knows nothing about
 * slots, sessions or keys.
 */
#include "hsm/hsm_int.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static hsm_p11_mod_t *registry;

#define P11_RV_MAP(XX)                                                                   \
    XX(CKR_OK) XX(CKR_HOST_MEMORY) XX(CKR_SLOT_ID_INVALID) XX(CKR_GENERAL_ERROR)          \
    XX(CKR_FUNCTION_FAILED) XX(CKR_ARGUMENTS_BAD) XX(CKR_CANT_LOCK)                      \
    XX(CKR_ATTRIBUTE_SENSITIVE) XX(CKR_ATTRIBUTE_TYPE_INVALID)                           \
    XX(CKR_ATTRIBUTE_VALUE_INVALID) XX(CKR_DATA_LEN_RANGE) XX(CKR_DEVICE_ERROR)          \
    XX(CKR_DEVICE_MEMORY) XX(CKR_DEVICE_REMOVED) XX(CKR_ENCRYPTED_DATA_INVALID)          \
    XX(CKR_ENCRYPTED_DATA_LEN_RANGE) XX(CKR_FUNCTION_NOT_SUPPORTED)                      \
    XX(CKR_KEY_HANDLE_INVALID) XX(CKR_KEY_SIZE_RANGE) XX(CKR_KEY_TYPE_INCONSISTENT)      \
    XX(CKR_KEY_FUNCTION_NOT_PERMITTED) XX(CKR_KEY_UNEXTRACTABLE) XX(CKR_MECHANISM_INVALID) \
    XX(CKR_MECHANISM_PARAM_INVALID) XX(CKR_OBJECT_HANDLE_INVALID) XX(CKR_OPERATION_ACTIVE) \
    XX(CKR_OPERATION_NOT_INITIALIZED) XX(CKR_PIN_INCORRECT) XX(CKR_PIN_INVALID)          \
    XX(CKR_PIN_LEN_RANGE) XX(CKR_PIN_EXPIRED) XX(CKR_PIN_LOCKED) XX(CKR_SESSION_CLOSED)  \
    XX(CKR_SESSION_COUNT) XX(CKR_SESSION_HANDLE_INVALID) XX(CKR_SESSION_READ_ONLY)       \
    XX(CKR_TEMPLATE_INCOMPLETE) XX(CKR_TEMPLATE_INCONSISTENT) XX(CKR_TOKEN_NOT_PRESENT)  \
    XX(CKR_TOKEN_NOT_RECOGNIZED) XX(CKR_TOKEN_WRITE_PROTECTED)                           \
    XX(CKR_UNWRAPPING_KEY_HANDLE_INVALID) XX(CKR_USER_ALREADY_LOGGED_IN)                 \
    XX(CKR_USER_NOT_LOGGED_IN) XX(CKR_USER_PIN_NOT_INITIALIZED) XX(CKR_USER_TYPE_INVALID) \
    XX(CKR_WRAPPED_KEY_INVALID) XX(CKR_WRAPPED_KEY_LEN_RANGE)                            \
    XX(CKR_WRAPPING_KEY_HANDLE_INVALID) XX(CKR_BUFFER_TOO_SMALL)                         \
    XX(CKR_CRYPTOKI_NOT_INITIALIZED) XX(CKR_CRYPTOKI_ALREADY_INITIALIZED)

const char *hsm_p11_rv_name(CK_RV rv)
{
    static __thread char other[24];
    switch (rv) {
#define XX(name) \
    case name:   \
        return #name;
        P11_RV_MAP(XX)
#undef XX
    }
    snprintf(other, sizeof(other), "CKR_0x%lx", rv);
    return other;
}

static CK_RV initialize(CK_FUNCTION_LIST *fl)
{
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK; /* we call from many threads; use the OS's locks */
    return fl->C_Initialize(&args);
}

static void mod_free(hsm_p11_mod_t *m)
{
    if (!m)
        return;
    if (m->dl)
        dlclose(m->dl);
    pthread_rwlock_destroy(&m->calls);
    free(m->path);
    free(m);
}

int hsm_p11_mod_get(const char *path, hsm_p11_mod_t **out, kms_error_t *err)
{
    hsm_p11_mod_t *m = NULL;
    CK_C_GetFunctionList getfl;
    pthread_rwlockattr_t ra;
    CK_RV rv;
    int rc = 0;

    if (!path || !path[0])
        return kms_error_set(err, KMS_ERR_CONFIG, "pkcs11: hsm.module is not set");
    pthread_mutex_lock(&registry_mu);
    for (m = registry; m; m = m->next) {
        if (strcmp(m->path, path) == 0) {
            m->refs++;
            *out = m;
            goto unlock;
        }
    }
    if (!(m = calloc(1, sizeof(*m))) || !(m->path = strdup(path))) {
        free(m);
        m = NULL;
        rc = KMS_ERR_NOMEM;
        goto unlock;
    }
    /* Writers first: a reinit must not starve behind a stream of calls. */
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&m->calls, &ra);
    pthread_rwlockattr_destroy(&ra);
    if (!(m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
        const char *e = dlerror();
        rc = kms_error_set(err, KMS_ERR_CONFIG, "pkcs11: cannot load module %s: %s", path,
                      e ? e : "unknown error");
        goto fail;
    }
    /* POSIX dlsym returns void *; converting it to a function pointer is the
     * documented way to use it. */
    *(void **)&getfl = dlsym(m->dl, "C_GetFunctionList");
    if (!getfl) {
        rc = kms_error_set(err, KMS_ERR_CONFIG,
                      "pkcs11: %s is not a PKCS#11 module (no C_GetFunctionList)", path);
        goto fail;
    }
    if ((rv = getfl(&m->fl)) != CKR_OK || !m->fl) {
        rc = kms_error_set(err, KMS_ERR_CONFIG, "pkcs11: %s: C_GetFunctionList failed (%s)",
                      path, hsm_p11_rv_name(rv));
        goto fail;
    }
    if (m->fl->version.major != 2) {
        rc = kms_error_set(err, KMS_ERR_CONFIG, "pkcs11: %s: Cryptoki %u.%u not supported (need 2.x)",
                      path, m->fl->version.major, m->fl->version.minor);
        goto fail;
    }
    rv = initialize(m->fl);
    if (rv == CKR_OK) {
        m->owns_init = 1;
    } else if (rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        rc = kms_error_set(err, KMS_ERR_UNAVAIL, "pkcs11: %s: C_Initialize failed (%s)", path,
                      hsm_p11_rv_name(rv));
        goto fail;
    }
    m->refs = 1;
    m->next = registry;
    registry = m;
    *out = m;
    goto unlock;
fail:
    mod_free(m);
unlock:
    pthread_mutex_unlock(&registry_mu);
    return rc;
}

void hsm_p11_mod_put(hsm_p11_mod_t *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&registry_mu);
    if (--m->refs > 0) {
        pthread_mutex_unlock(&registry_mu);
        return;
    }
    for (hsm_p11_mod_t **pp = &registry; *pp; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    if (m->owns_init)
        m->fl->C_Finalize(NULL);
    mod_free(m);
    pthread_mutex_unlock(&registry_mu);
}

void hsm_p11_mod_enter(hsm_p11_mod_t *m) { pthread_rwlock_rdlock(&m->calls); }
void hsm_p11_mod_leave(hsm_p11_mod_t *m) { pthread_rwlock_unlock(&m->calls); }

CK_RV hsm_p11_mod_reinit(hsm_p11_mod_t *m, unsigned seen_gen)
{
    CK_RV rv = CKR_OK;
    pthread_rwlock_wrlock(&m->calls);
    /* Someone else in this process owns Cryptoki: not ours to restart. */
    if (m->owns_init && m->gen == seen_gen) {
        m->fl->C_Finalize(NULL);
        rv = initialize(m->fl);
        __atomic_add_fetch(&m->gen, 1, __ATOMIC_RELEASE);
    }
    pthread_rwlock_unlock(&m->calls);
    return rv;
}
