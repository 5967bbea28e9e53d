/*
 * kmsctl/progress.h: private to kmsctl. The one progress bar every long
 * kmsctl command uses (backup, restore, rotate store-key, cluster status
 * --wait): a single line on stderr with a bar, count/total, rate and ETA,
 * redrawn at most ten times a second, fitted to the terminal's width and
 * cleared when the work ends. It draws only when stderr is a terminal and
 * --json was not given; otherwise every call is a no-op and the command
 * prints its usual summary.
 */
#ifndef KMSCTL_PROGRESS_H
#define KMSCTL_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct kmsctl_progress kmsctl_progress_t;

/* A bar on `f` (stderr in kmsctl) labelled `label` ("backup"), drawing
 * only when `enabled`; kmsctl_progress_wanted() says whether it should.
 * NULL on NOMEM (every function accepts NULL). */
kmsctl_progress_t *kmsctl_progress_new(FILE *f, const char *label, bool enabled);
/* stderr is a terminal and `json` (--json) is false. */
bool kmsctl_progress_wanted(bool json);
/* Work advanced: `done` of `total` (-1 = unknown) in `unit` ("objects",
 * "bytes"); `phase` (may be NULL) replaces the label from then on. A new
 * phase restarts the rate. Redraws when 100 ms have passed since the last
 * draw (or the phase changed). */
void kmsctl_progress_update(kmsctl_progress_t *p, const char *phase, const char *unit,
                            int64_t done, int64_t total);
/* Clear the line (the caller then prints its summary) and free. */
void kmsctl_progress_end(kmsctl_progress_t *p);
/* How many times the bar was drawn (for the caller's tests and logs). */
unsigned kmsctl_progress_draws(const kmsctl_progress_t *p);
/* The admin_progress_cb form of kmsctl_progress_update (arg = the bar). */
void kmsctl_progress_cb(void *arg, const char *phase, const char *unit, int64_t done,
                        int64_t total);

/* ---------------------------------------------------- formatting (pure) */
/* ETA of `seconds` (rounded up to a whole second): "0:07", "12:05",
 * "1:02:03"; "--:--" when negative (unknown); ">99h" past 99 hours. */
void kmsctl_progress_eta(double seconds, char *out, size_t n);
/* A count in its unit: objects as a plain number, bytes as "512 B",
 * "12.3 KiB", "4.0 MiB", "1.5 GiB". */
void kmsctl_progress_amount(int64_t v, const char *unit, char *out, size_t n);
/*
 * The whole line, at most width - 1 characters (never into the last
 * column, where a terminal would wrap) and NUL-terminated in out (n
 * bytes):
 *   "LABEL [#####.....] DONE/TOTAL UNIT  RATE/s  ETA 0:07"
 * The bar takes what is left and is dropped below 10 columns, then the
 * rate and the ETA go, the label last. total 0 is a full bar ("0/0");
 * total -1 has no bar and no ETA ("DONE UNIT  RATE/s"). rate <= 0: no
 * rate, ETA unknown. Returns the line's length.
 */
size_t kmsctl_progress_format(char *out, size_t n, int width, const char *label, const char *unit,
                              int64_t done, int64_t total, double rate);

#endif
