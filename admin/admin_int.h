/*
 * admin/admin_int.h: private to admin/ (and its unit tests): the backup
 * and restore commands the command table calls (backup.c) and the backup
 * file format they share (backup_format.c).
 *
 * It deliberately declares nothing a client of the protocol needs.
 */
#ifndef KMS_ADMIN_INT_H
#define KMS_ADMIN_INT_H

#include <stdint.h>

#include "admin/admin.h"

/*
 * backup.c: write a portable encrypted backup into `fd` / restore one
 * from `fd` (a file kmsctl opened and passed with SCM_RIGHTS). The backup
 * key is Argon2id(pass) or `rawkey` (32 bytes). On failure `msg` says why.
 * *count_out: objects written / restored. Admin thread.
 */
int admin_backup_create(const admin_options_t *opt, int fd, const char *pass,
                        const ttlv_item_t *rawkey, char *msg, size_t msglen,
                        int64_t *count_out);
int admin_backup_restore(const admin_options_t *opt, int fd, const char *pass,
                         const ttlv_item_t *rawkey, char *msg, size_t msglen,
                         int64_t *count_out);

#endif /* KMS_ADMIN_INT_H */
