/*
 * tests/unit/util/softhsm.h: a real SoftHSM2 token in a temporary directory
 * for tests. Writes softhsm2.conf with its own tokendir, points
 * SOFTHSM2_CONF at it (process-wide: one token directory at a time) and
 * runs `softhsm2-util --init-token --free`. Nothing is mocked.
 */
#ifndef KMS_TEST_SOFTHSM_H
#define KMS_TEST_SOFTHSM_H

#define SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"

typedef struct softhsm_token {
    char dir[256];      /* temp dir holding everything below */
    char conf[300];     /* softhsm2.conf */
    char tokendir[300]; /* directories.tokendir */
    char hidden[300];   /* where softhsm_token_remove() parks the token */
    char pin_file[300]; /* user PIN, written by softhsm_token_create() */
    char label[33];
} softhsm_token_t;

/* Create dir, conf and an initialised token; 0 or -1 (message on stderr). */
int softhsm_token_create(softhsm_token_t *t, const char *label, const char *pin, const char *so_pin);
/* Initialise one more token in the same tokendir. */
int softhsm_token_add(softhsm_token_t *t, const char *label, const char *pin, const char *so_pin);
/* Simulate pulling the token: move its directories out of tokendir. */
int softhsm_token_remove(softhsm_token_t *t);
/* Put it back. */
int softhsm_token_restore(softhsm_token_t *t);
/* rm -rf the temp dir. */
void softhsm_token_destroy(softhsm_token_t *t);

#endif
