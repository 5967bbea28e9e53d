/* tests/unit/test_hsm_pkcs11.c: the PKCS#11 provider against a real
 * SoftHSM2 token made fresh for each test (tests/unit/util/softhsm.c):
 * init generates a sensitive, non-extractable key (checked through the
 * module itself), wrap/unwrap, clear errors, restart, token removal and
 * recovery, concurrent use. */
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "hsm/hsm.h"
#include "hsm/pkcs11_min.h"
#include "tests/unit/util/softhsm.h"

#define PIN "1234"
#define SO_PIN "5678"


static softhsm_token_t tok;

static int setup(void **state)
{
    (void)state;
    return softhsm_token_create(&tok, "kmsd", PIN, SO_PIN);
}

static int teardown(void **state)
{
    (void)state;
    softhsm_token_destroy(&tok);
    unsetenv("KMSD_TEST_PIN");
    return 0;
}

static hsm_config_t p11_cfg(void)
{
    hsm_config_t c;
    memset(&c, 0, sizeof(c));
    c.provider = HSM_PROVIDER_PKCS11;
    c.module = SOFTHSM_MODULE;
    c.token_label = "kmsd";
    c.slot = -1;
    c.pin_file = tok.pin_file;
    c.key_label = "kmsd-master";
    return c;
}

static kms_secret_t *test_dsk(uint8_t seed)
{
    kms_secret_t *s = kms_secret_new(32);
    for (int i = 0; i < 32; i++)
        s->data[i] = (uint8_t)(seed + i * 13);
    return s;
}

static void round_trip(hsm_t *h, uint8_t seed)
{
    kms_buf_t w;
    kms_secret_t *d = test_dsk(seed), *back = NULL;
    kms_buf_init(&w, 0);
    assert_int_equal(hsm_wrap(h, d, &w), 0);
    assert_true(w.len > 32);
    assert_int_equal(hsm_unwrap(h, w.data, w.len, &back), 0);
    assert_int_equal(back->len, 32);
    assert_memory_equal(back->data, d->data, 32);
    kms_secret_free(back);
    kms_buf_dispose(&w);
    kms_secret_free(d);
}

/* Look at the generated key through the module directly, as an auditor would. */
static void test_init_key_is_sensitive(void **state)
{
    (void)state;
    kms_error_t err = {0};
    hsm_config_t c = p11_cfg();
    assert_int_equal(hsm_init_master(&c, NULL, &err), 0);
    assert_int_equal(hsm_init_master(&c, NULL, &err), KMS_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "already exists"));

    void *dl = dlopen(SOFTHSM_MODULE, RTLD_NOW);
    assert_non_null(dl);
    CK_C_GetFunctionList gfl;
    *(void **)&gfl = dlsym(dl, "C_GetFunctionList");
    CK_FUNCTION_LIST *fl = NULL;
    assert_int_equal(gfl(&fl), CKR_OK);
    assert_int_equal(fl->C_Initialize(NULL), CKR_OK);
    CK_SLOT_ID slots[8];
    CK_ULONG ns = 8, i;
    assert_int_equal(fl->C_GetSlotList(CK_TRUE, slots, &ns), CKR_OK);
    CK_TOKEN_INFO ti;
    for (i = 0; i < ns; i++) {
        memset(&ti, 0, sizeof(ti));
        if (fl->C_GetTokenInfo(slots[i], &ti) == CKR_OK && memcmp(ti.label, "kmsd ", 5) == 0)
            break;
    }
    assert_true(i < ns);
    CK_SESSION_HANDLE s;
    assert_int_equal(fl->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK);
    assert_int_equal(fl->C_Login(s, CKU_USER, (CK_BYTE *)PIN, 4), CKR_OK);
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE ft[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, "kmsd-master", 11}};
    CK_OBJECT_HANDLE k[2];
    CK_ULONG nk = 0;
    assert_int_equal(fl->C_FindObjectsInit(s, ft, 2), CKR_OK);
    assert_int_equal(fl->C_FindObjects(s, k, 2, &nk), CKR_OK);
    fl->C_FindObjectsFinal(s);
    assert_int_equal(nk, 1);

    CK_BBOOL token = 0, sens = 0, extr = 1, nevx = 0, asens = 0, local = 0, wrap = 0, unwrap = 0;
    CK_ULONG vlen = 0;
    CK_KEY_TYPE kt = 0;
    CK_ATTRIBUTE a[] = {
        {CKA_TOKEN, &token, 1},          {CKA_SENSITIVE, &sens, 1},
        {CKA_EXTRACTABLE, &extr, 1},     {CKA_NEVER_EXTRACTABLE, &nevx, 1},
        {CKA_ALWAYS_SENSITIVE, &asens, 1}, {CKA_LOCAL, &local, 1},
        {CKA_WRAP, &wrap, 1},            {CKA_UNWRAP, &unwrap, 1},
        {CKA_VALUE_LEN, &vlen, sizeof(vlen)}, {CKA_KEY_TYPE, &kt, sizeof(kt)},
    };
    assert_int_equal(fl->C_GetAttributeValue(s, k[0], a, KMS_ARRAY_SIZE(a)), CKR_OK);
    assert_true(token);
    assert_true(sens);
    assert_false(extr);
    assert_true(nevx);
    assert_true(asens);
    assert_true(local); /* generated inside the token */
    assert_true(wrap && unwrap); /* SoftHSM2 offers CKM_AES_KEY_WRAP_PAD */
    assert_int_equal(vlen, 32);
    assert_int_equal(kt, CKK_AES);
    /* The key value must not come out. */
    uint8_t val[64];
    CK_ATTRIBUTE v = {CKA_VALUE, val, sizeof(val)};
    CK_RV rv = fl->C_GetAttributeValue(s, k[0], &v, 1);
    assert_int_equal(rv, CKR_ATTRIBUTE_SENSITIVE);
    assert_int_equal(v.ulValueLen, CK_UNAVAILABLE_INFORMATION);
    fl->C_CloseSession(s);
    fl->C_Finalize(NULL);
    dlclose(dl);
}

static void test_round_trip_and_restart(void **state)
{
    (void)state;
    kms_error_t err = {0};
    hsm_t *h = NULL, *h2 = NULL;
    hsm_config_t c = p11_cfg();
    kms_buf_t w;
    kms_secret_t *d = test_dsk(3), *back = NULL;

    assert_int_equal(hsm_init_master(&c, NULL, &err), 0);
    assert_int_equal(hsm_open(&c, &h, &err), 0);
    assert_int_equal(hsm_health(h), 0);
    assert_string_equal(hsm_describe(h),
                        "pkcs11 token 'kmsd' key 'kmsd-master' (CKM_AES_KEY_WRAP_PAD, " SOFTHSM_MODULE ")");
    round_trip(h, 1);
    kms_buf_init(&w, 0);
    assert_int_equal(hsm_wrap(h, d, &w), 0);
    assert_int_equal(w.data[0], 1);
    assert_int_equal(w.data[1], 1); /* KWP */
    /* tampering fails as a crypto error, and the provider stays healthy */
    w.data[10] ^= 0x80;
    assert_int_equal(hsm_unwrap(h, w.data, w.len, &back), KMS_ERR_CRYPTO);
    assert_null(back);
    assert_int_equal(hsm_health(h), 0);
    w.data[10] ^= 0x80;

    /* a second provider on the same token (same process) sees the same key */
    assert_int_equal(hsm_open(&c, &h2, &err), 0);
    assert_int_equal(hsm_unwrap(h2, w.data, w.len, &back), 0);
    assert_memory_equal(back->data, d->data, 32);
    kms_secret_free(back);
    back = NULL;
    hsm_close(h2);
    hsm_close(h);
    /* "restart": everything closed (module finalized), then opened anew */
    assert_int_equal(hsm_open(&c, &h, &err), 0);
    assert_int_equal(hsm_unwrap(h, w.data, w.len, &back), 0);
    assert_memory_equal(back->data, d->data, 32);
    kms_secret_free(back);
    back = NULL;

    /* a second master key on the token: it cannot unwrap the first one's blob */
    assert_int_equal(hsm_init_master(&c, "kmsd-master-2", &err), 0);
    hsm_config_t c2 = c;
    c2.key_label = "kmsd-master-2";
    assert_int_equal(hsm_open(&c2, &h2, &err), 0);
    assert_int_equal(hsm_unwrap(h2, w.data, w.len, &back), KMS_ERR_CRYPTO);
    assert_int_equal(hsm_health(h2), 0);
    round_trip(h2, 9);
    hsm_close(h2);
    hsm_close(h);
    kms_buf_dispose(&w);
    kms_secret_free(d);
}

static void test_clear_errors(void **state)
{
    (void)state;
    kms_error_t err = {0};
    hsm_t *h = NULL;
    hsm_config_t c = p11_cfg();
    assert_int_equal(hsm_init_master(&c, NULL, &err), 0);

    /* wrong PIN, from the environment this time */
    hsm_config_t bad = c;
    bad.pin_file = NULL;
    bad.pin_env = "KMSD_TEST_PIN";
    setenv("KMSD_TEST_PIN", "9999", 1);
    assert_int_equal(hsm_open(&bad, &h, &err), KMS_ERR_PERM);
    assert_string_equal(err.msg, "pkcs11: login failed: wrong PIN (CKR_PIN_INCORRECT)");
    assert_null(h);
    /* right PIN from the environment works */
    setenv("KMSD_TEST_PIN", PIN, 1);
    assert_int_equal(hsm_open(&bad, &h, &err), 0);
    hsm_close(h);
    h = NULL;
    unsetenv("KMSD_TEST_PIN");
    assert_int_equal(hsm_open(&bad, &h, &err), KMS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "KMSD_TEST_PIN"));

    /* unknown token label */
    bad = c;
    bad.token_label = "nosuch";
    assert_int_equal(hsm_open(&bad, &h, &err), KMS_ERR_UNAVAIL);
    assert_string_equal(err.msg, "pkcs11: token 'nosuch' not found in " SOFTHSM_MODULE);
    /* missing key */
    bad = c;
    bad.key_label = "nokey";
    assert_int_equal(hsm_open(&bad, &h, &err), KMS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "AES key 'nokey' not found on token 'kmsd'"));
    /* not a module */
    bad = c;
    bad.module = "/nonexistent/libnothing.so";
    assert_int_equal(hsm_open(&bad, &h, &err), KMS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "cannot load module /nonexistent/libnothing.so"));
    /* PIN file missing */
    bad = c;
    bad.pin_file = "/nonexistent/pin";
    assert_int_not_equal(hsm_open(&bad, &h, &err), 0);
    assert_non_null(strstr(err.msg, "PIN file /nonexistent/pin"));
    /* neither label nor slot */
    bad = c;
    bad.token_label = NULL;
    assert_int_equal(hsm_open(&bad, &h, &err), KMS_ERR_CONFIG);
    assert_null(h);
    /* every message is one line */
    assert_null(strchr(err.msg, '\n'));
}

static void test_by_slot_and_second_token(void **state)
{
    (void)state;
    kms_error_t err = {0};
    hsm_t *h = NULL;
    hsm_config_t c = p11_cfg();
    assert_int_equal(softhsm_token_add(&tok, "other", "4321", SO_PIN), 0);
    assert_int_equal(hsm_init_master(&c, NULL, &err), 0);

    /* find the slot id of 'kmsd' through the module */
    void *dl = dlopen(SOFTHSM_MODULE, RTLD_NOW);
    CK_C_GetFunctionList gfl;
    *(void **)&gfl = dlsym(dl, "C_GetFunctionList");
    CK_FUNCTION_LIST *fl = NULL;
    gfl(&fl);
    assert_int_equal(fl->C_Initialize(NULL), CKR_OK);
    CK_SLOT_ID slots[8], want = 0;
    CK_ULONG ns = 8;
    int found = 0;
    assert_int_equal(fl->C_GetSlotList(CK_TRUE, slots, &ns), CKR_OK);
    for (CK_ULONG i = 0; i < ns; i++) {
        CK_TOKEN_INFO ti;
        memset(&ti, 0, sizeof(ti));
        if (fl->C_GetTokenInfo(slots[i], &ti) == CKR_OK && memcmp(ti.label, "kmsd ", 5) == 0) {
            want = slots[i];
            found = 1;
        }
    }
    fl->C_Finalize(NULL);
    dlclose(dl);
    assert_true(found);

    hsm_config_t bys = c;
    bys.token_label = NULL;
    bys.slot = (int)want;
    assert_int_equal(hsm_open(&bys, &h, &err), 0);
    assert_non_null(strstr(hsm_describe(h), "slot "));
    round_trip(h, 5);
    hsm_close(h);
    /* the other token has no kmsd-master key, and its own PIN */
    hsm_config_t o = c;
    o.token_label = "other";
    o.pin_file = NULL;
    o.pin_env = "KMSD_TEST_PIN";
    setenv("KMSD_TEST_PIN", "4321", 1);
    assert_int_equal(hsm_open(&o, &h, &err), KMS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "not found on token 'other'"));
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Token removal: SoftHSM2 has no hot-plug; moving the token's directory
 * out of tokendir is the closest real thing (its objects vanish under the
 * open sessions). Putting it back is only noticed after a library restart,
 * which the provider does by itself (C_Finalize + C_Initialize).
 */
static void test_token_removed_and_back(void **state)
{
    (void)state;
    kms_error_t err = {0};
    hsm_t *h = NULL;
    hsm_config_t c = p11_cfg();
    kms_buf_t w;
    kms_secret_t *d = test_dsk(7), *back = NULL;

    assert_int_equal(hsm_init_master(&c, NULL, &err), 0);
    assert_int_equal(hsm_open(&c, &h, &err), 0);
    kms_buf_init(&w, 0);
    assert_int_equal(hsm_wrap(h, d, &w), 0);

    assert_int_equal(softhsm_token_remove(&tok), 0);
    uint64_t t0 = now_ms();
    assert_int_equal(hsm_health(h), KMS_ERR_UNAVAIL);
    assert_int_equal(hsm_unwrap(h, w.data, w.len, &back), KMS_ERR_UNAVAIL);
    assert_null(back);
    kms_buf_t w2;
    kms_buf_init(&w2, 0);
    assert_int_equal(hsm_wrap(h, d, &w2), KMS_ERR_UNAVAIL);
    assert_int_equal(w2.len, 0);
    /* keep calling for over a second: reconnects are attempted and fail */
    for (int i = 0; i < 12; i++) {
        uint64_t a = now_ms();
        assert_int_equal(hsm_unwrap(h, w.data, w.len, &back), KMS_ERR_UNAVAIL);
        assert_int_equal(hsm_health(h), KMS_ERR_UNAVAIL);
        assert_true(now_ms() - a < 1000); /* fail fast */
        usleep(100 * 1000);
    }
    assert_true(now_ms() - t0 >= 1000);

    assert_int_equal(softhsm_token_restore(&tok), 0);
    /* recovers by itself within the retry interval */
    uint64_t t1 = now_ms();
    int rc;
    while ((rc = hsm_unwrap(h, w.data, w.len, &back)) == KMS_ERR_UNAVAIL && now_ms() - t1 < 3000)
        usleep(50 * 1000);
    assert_int_equal(rc, 0);
    assert_true(now_ms() - t1 <= 2000); /* next attempt within the 1 s rate limit */
    assert_memory_equal(back->data, d->data, 32);
    kms_secret_free(back);
    assert_int_equal(hsm_health(h), 0);
    round_trip(h, 11);
    hsm_close(h);
    kms_buf_dispose(&w);
    kms_buf_dispose(&w2);
    kms_secret_free(d);
}

/* Token pulled and put back while threads keep wrapping and unwrapping:
 * every call answers 0 or KMS_ERR_UNAVAIL (never a crash, a hang or a
 * wrong key), and all threads get service back. */
struct loader {
    hsm_t *h;
    int *stop; /* atomic builtins */
    int ok, unavail, other, last_ok;
    uint64_t slowest_ms;
};

static void *load(void *arg)
{
    struct loader *l = arg;
    for (uint8_t i = 0; !__atomic_load_n(l->stop, __ATOMIC_ACQUIRE); i++) {
        kms_buf_t w;
        kms_secret_t *d = test_dsk(i), *back = NULL;
        uint64_t a = now_ms();
        kms_buf_init(&w, 0);
        int rc = hsm_wrap(l->h, d, &w);
        if (rc == 0)
            rc = hsm_unwrap(l->h, w.data, w.len, &back);
        if (rc == 0 && memcmp(back->data, d->data, 32) != 0)
            rc = KMS_ERR_INTERNAL;
        uint64_t took = now_ms() - a;
        if (took > l->slowest_ms)
            l->slowest_ms = took;
        if (rc == 0)
            l->ok++;
        else if (rc == KMS_ERR_UNAVAIL)
            l->unavail++;
        else
            l->other++;
        l->last_ok = rc == 0;
        kms_secret_free(back);
        kms_secret_free(d);
        kms_buf_dispose(&w);
        usleep(2000);
    }
    return NULL;
}

static void test_removal_under_load(void **state)
{
    (void)state;
    kms_error_t err = {0};
    hsm_t *h = NULL;
    hsm_config_t c = p11_cfg();
    pthread_t t[4];
    struct loader l[4];
    int stop = 0;
    assert_int_equal(hsm_init_master(&c, NULL, &err), 0);
    assert_int_equal(hsm_open(&c, &h, &err), 0);
    memset(l, 0, sizeof(l));
    for (int i = 0; i < 4; i++) {
        l[i].h = h;
        l[i].stop = &stop;
        assert_int_equal(pthread_create(&t[i], NULL, load, &l[i]), 0);
    }
    usleep(300 * 1000);
    assert_int_equal(softhsm_token_remove(&tok), 0);
    usleep(1200 * 1000);
    assert_int_equal(hsm_health(h), KMS_ERR_UNAVAIL);
    assert_int_equal(softhsm_token_restore(&tok), 0);
    usleep(1800 * 1000);
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(l[i].other, 0);
        assert_true(l[i].ok > 0);
        assert_true(l[i].last_ok);
        assert_true(l[i].slowest_ms < 1000);
    }
    assert_true(l[0].unavail + l[1].unavail + l[2].unavail + l[3].unavail > 0);
    assert_int_equal(hsm_health(h), 0);
    hsm_close(h);
}

/* The user PIN is changed on the token while kmsd runs, then the token
 * resets: the re-login is refused, and the provider must not keep trying
 * the old PIN (a real HSM would lock it). Once the PIN file holds the new
 * PIN, it logs in again by itself. */
static void test_pin_changed_while_running(void **state)
{
    (void)state;
    kms_error_t err = {0};
    hsm_t *h = NULL;
    hsm_config_t c = p11_cfg();
    assert_int_equal(hsm_init_master(&c, NULL, &err), 0);
    assert_int_equal(hsm_open(&c, &h, &err), 0);

    /* change the PIN through the module (same process: already initialised) */
    void *dl = dlopen(SOFTHSM_MODULE, RTLD_NOW);
    CK_C_GetFunctionList gfl;
    *(void **)&gfl = dlsym(dl, "C_GetFunctionList");
    CK_FUNCTION_LIST *fl = NULL;
    gfl(&fl);
    CK_SLOT_ID slots[8], slot = 0;
    CK_ULONG ns = 8;
    assert_int_equal(fl->C_GetSlotList(CK_TRUE, slots, &ns), CKR_OK);
    for (CK_ULONG i = 0; i < ns; i++) {
        CK_TOKEN_INFO ti;
        memset(&ti, 0, sizeof(ti));
        if (fl->C_GetTokenInfo(slots[i], &ti) == CKR_OK && memcmp(ti.label, "kmsd ", 5) == 0)
            slot = slots[i];
    }
    CK_SESSION_HANDLE s;
    assert_int_equal(fl->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), CKR_OK);
    assert_int_equal(fl->C_SetPIN(s, (CK_UTF8CHAR *)PIN, 4, (CK_UTF8CHAR *)"8765", 4), CKR_OK);
    fl->C_CloseSession(s);
    dlclose(dl);

    /* token reset: the provider reconnects and its PIN is refused */
    assert_int_equal(softhsm_token_remove(&tok), 0);
    assert_int_equal(hsm_health(h), KMS_ERR_UNAVAIL);
    assert_int_equal(softhsm_token_restore(&tok), 0);
    for (int i = 0; i < 4; i++) {
        usleep(600 * 1000);
        assert_int_equal(hsm_health(h), KMS_ERR_UNAVAIL);
    }
    /* the operator fixes the PIN file: service comes back by itself */
    FILE *f = fopen(tok.pin_file, "w");
    assert_non_null(f);
    fputs("8765\n", f);
    fclose(f);
    int rc = KMS_ERR_UNAVAIL;
    for (int i = 0; i < 30 && rc != 0; i++) {
        usleep(100 * 1000);
        rc = hsm_health(h);
    }
    assert_int_equal(rc, 0);
    round_trip(h, 33);
    hsm_close(h);
}

/* Sessions invalidated under the provider (what an HSM reboot or a
 * fail-over does): the next call reopens sessions and logs in again, and
 * succeeds, without the caller seeing an error. */
static void test_sessions_closed_under_us(void **state)
{
    (void)state;
    kms_error_t err = {0};
    hsm_t *h = NULL;
    hsm_config_t c = p11_cfg();
    kms_buf_t w;
    kms_secret_t *d = test_dsk(8), *back = NULL;
    assert_int_equal(hsm_init_master(&c, NULL, &err), 0);
    assert_int_equal(hsm_open(&c, &h, &err), 0);
    kms_buf_init(&w, 0);
    assert_int_equal(hsm_wrap(h, d, &w), 0);

    void *dl = dlopen(SOFTHSM_MODULE, RTLD_NOW); /* the same, initialised instance */
    CK_C_GetFunctionList gfl;
    *(void **)&gfl = dlsym(dl, "C_GetFunctionList");
    CK_FUNCTION_LIST *fl = NULL;
    gfl(&fl);
    CK_SLOT_ID slots[8];
    CK_ULONG ns = 8;
    assert_int_equal(fl->C_GetSlotList(CK_TRUE, slots, &ns), CKR_OK);
    for (int round = 0; round < 3; round++) {
        for (CK_ULONG i = 0; i < ns; i++)
            fl->C_CloseAllSessions(slots[i]); /* also logs the application out */
        assert_int_equal(hsm_unwrap(h, w.data, w.len, &back), 0);
        assert_memory_equal(back->data, d->data, 32);
        kms_secret_free(back);
        back = NULL;
        assert_int_equal(hsm_health(h), 0);
        usleep(1100 * 1000); /* let the reconnect rate limit pass */
    }
    /* a second loss within the rate-limit window is reported, not hidden */
    for (CK_ULONG i = 0; i < ns; i++)
        fl->C_CloseAllSessions(slots[i]);
    assert_int_equal(hsm_unwrap(h, w.data, w.len, &back), 0); /* first: reconnects */
    kms_secret_free(back);
    back = NULL;
    for (CK_ULONG i = 0; i < ns; i++)
        fl->C_CloseAllSessions(slots[i]);
    assert_int_equal(hsm_unwrap(h, w.data, w.len, &back), KMS_ERR_UNAVAIL);
    usleep(1100 * 1000);
    assert_int_equal(hsm_unwrap(h, w.data, w.len, &back), 0);
    kms_secret_free(back);
    dlclose(dl);
    hsm_close(h);
    kms_buf_dispose(&w);
    kms_secret_free(d);
}

/* Two providers on one module: one restarts the library to recover, the
 * other must notice (stale handles) and recover too. */
static void test_removal_with_two_providers(void **state)
{
    (void)state;
    kms_error_t err = {0};
    hsm_t *a = NULL, *b = NULL;
    hsm_config_t c = p11_cfg();
    assert_int_equal(hsm_init_master(&c, NULL, &err), 0);
    assert_int_equal(hsm_open(&c, &a, &err), 0);
    assert_int_equal(hsm_open(&c, &b, &err), 0);
    assert_int_equal(softhsm_token_remove(&tok), 0);
    assert_int_equal(hsm_health(a), KMS_ERR_UNAVAIL);
    assert_int_equal(hsm_health(b), KMS_ERR_UNAVAIL);
    assert_int_equal(softhsm_token_restore(&tok), 0);
    usleep(1100 * 1000);
    assert_int_equal(hsm_health(a), 0); /* a reinitialises the module */
    round_trip(a, 1);
    assert_int_equal(hsm_health(b), 0);
    round_trip(b, 2);
    hsm_close(a);
    hsm_close(b);
}

/* A key made outside kmsd with only CKA_ENCRYPT/CKA_DECRYPT (as on a token
 * without CKM_AES_KEY_WRAP_PAD): the provider falls back to CKM_AES_GCM. */
static void test_gcm_fallback(void **state)
{
    (void)state;
    kms_error_t err = {0};
    hsm_t *h = NULL;
    hsm_config_t c = p11_cfg();
    c.key_label = "gcm-master";

    void *dl = dlopen(SOFTHSM_MODULE, RTLD_NOW);
    CK_C_GetFunctionList gfl;
    *(void **)&gfl = dlsym(dl, "C_GetFunctionList");
    CK_FUNCTION_LIST *fl = NULL;
    gfl(&fl);
    assert_int_equal(fl->C_Initialize(NULL), CKR_OK);
    CK_SLOT_ID slots[8], slot = 0;
    CK_ULONG ns = 8;
    assert_int_equal(fl->C_GetSlotList(CK_TRUE, slots, &ns), CKR_OK);
    for (CK_ULONG i = 0; i < ns; i++) {
        CK_TOKEN_INFO ti;
        memset(&ti, 0, sizeof(ti));
        if (fl->C_GetTokenInfo(slots[i], &ti) == CKR_OK && memcmp(ti.label, "kmsd ", 5) == 0)
            slot = slots[i];
    }
    CK_SESSION_HANDLE s;
    assert_int_equal(fl->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), CKR_OK);
    assert_int_equal(fl->C_Login(s, CKU_USER, (CK_BYTE *)PIN, 4), CKR_OK);
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_ULONG vlen = 32;
    CK_BBOOL t = CK_TRUE, f = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)}, {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_VALUE_LEN, &vlen, sizeof(vlen)}, {CKA_LABEL, "gcm-master", 10},
        {CKA_TOKEN, &t, 1}, {CKA_PRIVATE, &t, 1}, {CKA_SENSITIVE, &t, 1},
        {CKA_EXTRACTABLE, &f, 1}, {CKA_ENCRYPT, &t, 1}, {CKA_DECRYPT, &t, 1},
        {CKA_WRAP, &f, 1}, {CKA_UNWRAP, &f, 1},
    };
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_OBJECT_HANDLE k;
    assert_int_equal(fl->C_GenerateKey(s, &gen, tmpl, KMS_ARRAY_SIZE(tmpl), &k), CKR_OK);
    fl->C_CloseSession(s);
    fl->C_Finalize(NULL);
    dlclose(dl);

    assert_int_equal(hsm_open(&c, &h, &err), 0);
    assert_non_null(strstr(hsm_describe(h), "CKM_AES_GCM"));
    round_trip(h, 21);
    kms_buf_t w, w2;
    kms_secret_t *d = test_dsk(4), *back = NULL;
    kms_buf_init(&w, 0);
    kms_buf_init(&w2, 0);
    assert_int_equal(hsm_wrap(h, d, &w), 0);
    assert_int_equal(hsm_wrap(h, d, &w2), 0);
    assert_int_equal(w.data[1], 2); /* GCM */
    assert_int_equal(w.len, 2 + 12 + 32 + 16);
    assert_memory_not_equal(w.data, w2.data, w.len); /* fresh IV each time */
    for (size_t i = 1; i < w.len; i += 5) {
        w.data[i] ^= 0x04;
        assert_int_equal(hsm_unwrap(h, w.data, w.len, &back), KMS_ERR_CRYPTO);
        assert_null(back);
        w.data[i] ^= 0x04;
    }
    assert_int_equal(hsm_health(h), 0); /* bad blobs do not take the provider down */
    assert_int_equal(hsm_unwrap(h, w2.data, w2.len, &back), 0);
    assert_memory_equal(back->data, d->data, 32);
    kms_secret_free(back);
    kms_secret_free(d);
    kms_buf_dispose(&w);
    kms_buf_dispose(&w2);
    hsm_close(h);
}

struct worker {
    hsm_t *h;
    int fails;
};

static void *work(void *arg)
{
    struct worker *wk = arg;
    for (int i = 0; i < 50; i++) {
        kms_buf_t w;
        kms_secret_t *d = test_dsk((uint8_t)i), *back = NULL;
        kms_buf_init(&w, 0);
        if (hsm_wrap(wk->h, d, &w) != 0 || hsm_unwrap(wk->h, w.data, w.len, &back) != 0 ||
            memcmp(back->data, d->data, 32) != 0)
            wk->fails++;
        kms_secret_free(back);
        kms_secret_free(d);
        kms_buf_dispose(&w);
    }
    return NULL;
}

static void test_threads_share_pool(void **state)
{
    (void)state;
    kms_error_t err = {0};
    hsm_t *h = NULL;
    hsm_config_t c = p11_cfg();
    pthread_t t[8];
    struct worker wk[8];
    assert_int_equal(hsm_init_master(&c, NULL, &err), 0);
    assert_int_equal(hsm_open(&c, &h, &err), 0);
    for (int i = 0; i < 8; i++) {
        wk[i].h = h;
        wk[i].fails = 0;
        assert_int_equal(pthread_create(&t[i], NULL, work, &wk[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(wk[i].fails, 0);
    }
    hsm_close(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_key_is_sensitive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_by_slot_and_second_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_removed_and_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removal_with_two_providers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removal_under_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_closed_under_us, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_changed_while_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gcm_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_share_pool, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
