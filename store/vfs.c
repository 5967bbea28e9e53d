/*
 * store/vfs.c: the writer's VFS, which hands a commit's WAL frames to the
 * kernel in a few large writes.
 *
 * SQLite appends each WAL frame with two pwrite calls (its 24-byte header,
 * then the page), so a group commit of ~35 frames makes ~70 system calls
 * before its fdatasync, on the one thread every write waits for. This VFS
 * wraps the default one ("unix") and, for WAL files only, collects
 * contiguous appends in memory and writes them in 64 KiB pieces when SQLite
 * syncs, reads, truncates or sizes the file, closes it, changes the file
 * through a file control, or when the buffer is full (STORE_VFS_BUF) or a
 * write is not contiguous.
 *
 * Why that is safe: another connection learns of new frames only from the
 * wal-index, and the writer publishes a commit there only after it synced
 * the WAL (synchronous=FULL, which every kmsd connection sets; store_db_open
 * refuses this VFS for anything else), so the buffered bytes are in the
 * file before anyone may read them. The writer's own reads (a page it
 * spilled to the WAL before the commit) flush first. A crash loses only
 * bytes that were not synced, exactly as without the buffer. A write error
 * surfaces at the flush, i.e. at the latest in the commit's sync, which
 * then fails and the commit with it.
 *
 * Tests can make its writes or syncs fail as a full or broken disk would
 * (store_fault_inject): the error is returned where the kernel's would
 * be, with the code the unix VFS gives it (SQLITE_FULL for ENOSPC on a
 * write, SQLITE_IOERR_WRITE / SQLITE_IOERR_FSYNC for EIO).
 */
#include "store/store_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define STORE_VFS_NAME "kmsd-wal"
#define STORE_VFS_BUF (1u << 20) /* most buffered bytes before a flush */

typedef struct {
    sqlite3_file base;      /* our methods */
    sqlite3_file *real;     /* the wrapped file, right after this struct */
    bool wal;               /* buffer appends (a WAL file) */
    uint8_t *buf;
    size_t len;
    sqlite3_int64 off;      /* file offset of buf[0] */
} vfs_file_t;

static sqlite3_vfs g_vfs;
static sqlite3_vfs *g_real;

/* store_fault_inject: per kind, the errno to fail with and how many more
 * calls fail. */
static atomic_int g_fault_err[2];
static atomic_uint g_fault_left[2];

void store_fault_inject(enum store_fault what, int err, unsigned count)
{
    if ((unsigned)what > STORE_FAULT_SYNC)
        return;
    atomic_store(&g_fault_err[what], err);
    atomic_store(&g_fault_left[what], count);
}

/* SQLITE_OK, or the injected failure of this call. */
static int fault(enum store_fault what)
{
    unsigned left = atomic_load(&g_fault_left[what]);
    while (left > 0 && !atomic_compare_exchange_weak(&g_fault_left[what], &left, left - 1))
        ;
    if (left == 0)
        return SQLITE_OK;
    int e = atomic_load(&g_fault_err[what]);
    if (e == ENOSPC)
        return SQLITE_FULL;
    return what == STORE_FAULT_WRITE ? SQLITE_IOERR_WRITE : SQLITE_IOERR_FSYNC;
}

/* The unix VFS writes at most 128 KiB - 1 per call (it never expects more
 * than a page), so the buffer goes down in 64 KiB pieces: still ~30 times
 * fewer calls than one per frame header and page. */
#define STORE_VFS_CHUNK 65536

static int flush(vfs_file_t *f)
{
    int rc = SQLITE_OK;
    for (size_t done = 0; done < f->len && rc == SQLITE_OK;) {
        size_t n = f->len - done < STORE_VFS_CHUNK ? f->len - done : STORE_VFS_CHUNK;
        rc = fault(STORE_FAULT_WRITE);
        if (rc == SQLITE_OK)
            rc = f->real->pMethods->xWrite(f->real, f->buf + done, (int)n,
                                            f->off + (sqlite3_int64)done);
        done += n;
    }
    f->len = 0;
    return rc;
}

static int x_close(sqlite3_file *p)
{
    vfs_file_t *f = (vfs_file_t *)p;
    int rc = flush(f);
    int rc2 = f->real->pMethods->xClose(f->real);
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int x_read(sqlite3_file *p, void *out, int amt, sqlite3_int64 off)
{
    vfs_file_t *f = (vfs_file_t *)p;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, out, amt, off);
}

static int x_write(sqlite3_file *p, const void *data, int amt, sqlite3_int64 off)
{
    vfs_file_t *f = (vfs_file_t *)p;
    if (!f->wal || amt <= 0 || (size_t)amt > STORE_VFS_BUF)
        goto direct;
    if (f->len && (off != f->off + (sqlite3_int64)f->len || f->len + (size_t)amt > STORE_VFS_BUF)) {
        int rc = flush(f);
        if (rc != SQLITE_OK)
            return rc;
    }
    if (!f->buf && !(f->buf = malloc(STORE_VFS_BUF)))
        goto direct;
    if (!f->len)
        f->off = off;
    memcpy(f->buf + f->len, data, (size_t)amt);
    f->len += (size_t)amt;
    return SQLITE_OK;
direct:;
    int rc = flush(f);
    if (rc == SQLITE_OK)
        rc = fault(STORE_FAULT_WRITE);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xWrite(f->real, data, amt, off);
}

static int x_truncate(sqlite3_file *p, sqlite3_int64 size)
{
    vfs_file_t *f = (vfs_file_t *)p;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int x_sync(sqlite3_file *p, int flags)
{
    vfs_file_t *f = (vfs_file_t *)p;
    int rc = flush(f);
    if (rc == SQLITE_OK)
        rc = fault(STORE_FAULT_SYNC);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int x_file_size(sqlite3_file *p, sqlite3_int64 *size)
{
    vfs_file_t *f = (vfs_file_t *)p;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int x_lock(sqlite3_file *p, int l)
{
    vfs_file_t *f = (vfs_file_t *)p;
    return f->real->pMethods->xLock(f->real, l);
}

static int x_unlock(sqlite3_file *p, int l)
{
    vfs_file_t *f = (vfs_file_t *)p;
    return f->real->pMethods->xUnlock(f->real, l);
}

static int x_check_reserved(sqlite3_file *p, int *out)
{
    vfs_file_t *f = (vfs_file_t *)p;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int x_file_control(sqlite3_file *p, int op, void *arg)
{
    vfs_file_t *f = (vfs_file_t *)p;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int x_sector_size(sqlite3_file *p)
{
    vfs_file_t *f = (vfs_file_t *)p;
    return f->real->pMethods->xSectorSize(f->real);
}

static int x_device_chars(sqlite3_file *p)
{
    vfs_file_t *f = (vfs_file_t *)p;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int x_shm_map(sqlite3_file *p, int pg, int pgsz, int extend, void volatile **out)
{
    vfs_file_t *f = (vfs_file_t *)p;
    return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, out);
}

static int x_shm_lock(sqlite3_file *p, int offset, int n, int flags)
{
    vfs_file_t *f = (vfs_file_t *)p;
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void x_shm_barrier(sqlite3_file *p)
{
    vfs_file_t *f = (vfs_file_t *)p;
    f->real->pMethods->xShmBarrier(f->real);
}

static int x_shm_unmap(sqlite3_file *p, int del)
{
    vfs_file_t *f = (vfs_file_t *)p;
    return f->real->pMethods->xShmUnmap(f->real, del);
}

static int x_fetch(sqlite3_file *p, sqlite3_int64 off, int amt, void **out)
{
    vfs_file_t *f = (vfs_file_t *)p;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFetch(f->real, off, amt, out);
}

static int x_unfetch(sqlite3_file *p, sqlite3_int64 off, void *ptr)
{
    vfs_file_t *f = (vfs_file_t *)p;
    return f->real->pMethods->xUnfetch(f->real, off, ptr);
}

static const sqlite3_io_methods g_methods = {
    .iVersion = 3,
    .xClose = x_close,
    .xRead = x_read,
    .xWrite = x_write,
    .xTruncate = x_truncate,
    .xSync = x_sync,
    .xFileSize = x_file_size,
    .xLock = x_lock,
    .xUnlock = x_unlock,
    .xCheckReservedLock = x_check_reserved,
    .xFileControl = x_file_control,
    .xSectorSize = x_sector_size,
    .xDeviceCharacteristics = x_device_chars,
    .xShmMap = x_shm_map,
    .xShmLock = x_shm_lock,
    .xShmBarrier = x_shm_barrier,
    .xShmUnmap = x_shm_unmap,
    .xFetch = x_fetch,
    .xUnfetch = x_unfetch,
};

static int x_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *p, int flags, int *out_flags)
{
    (void)vfs;
    vfs_file_t *f = (vfs_file_t *)p;
    memset(f, 0, sizeof(*f));
    f->real = (sqlite3_file *)(f + 1);
    int rc = g_real->xOpen(g_real, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        /* xOpen failed: SQLite does not call xClose on p, but the real
         * file may hold methods to release. */
        if (f->real->pMethods)
            f->real->pMethods->xClose(f->real);
        p->pMethods = NULL;
        return rc;
    }
    /* The real file's methods must offer what ours forward (unix: v3). */
    if (!f->real->pMethods || f->real->pMethods->iVersion < 3) {
        if (f->real->pMethods)
            f->real->pMethods->xClose(f->real);
        p->pMethods = NULL;
        return SQLITE_CANTOPEN;
    }
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    p->pMethods = &g_methods;
    return SQLITE_OK;
}

static int x_delete(sqlite3_vfs *v, const char *n, int sync) { (void)v; return g_real->xDelete(g_real, n, sync); }
static int x_access(sqlite3_vfs *v, const char *n, int fl, int *o) { (void)v; return g_real->xAccess(g_real, n, fl, o); }
static int x_full(sqlite3_vfs *v, const char *n, int k, char *o) { (void)v; return g_real->xFullPathname(g_real, n, k, o); }
static void *x_dlopen(sqlite3_vfs *v, const char *n) { (void)v; return g_real->xDlOpen(g_real, n); }
static void x_dlerror(sqlite3_vfs *v, int k, char *o) { (void)v; g_real->xDlError(g_real, k, o); }
static void (*x_dlsym(sqlite3_vfs *v, void *h, const char *s))(void) { (void)v; return g_real->xDlSym(g_real, h, s); }
static void x_dlclose(sqlite3_vfs *v, void *h) { (void)v; g_real->xDlClose(g_real, h); }
static int x_random(sqlite3_vfs *v, int k, char *o) { (void)v; return g_real->xRandomness(g_real, k, o); }
static int x_sleep(sqlite3_vfs *v, int us) { (void)v; return g_real->xSleep(g_real, us); }
static int x_time(sqlite3_vfs *v, double *o) { (void)v; return g_real->xCurrentTime(g_real, o); }
static int x_lasterr(sqlite3_vfs *v, int k, char *o) { (void)v; return g_real->xGetLastError(g_real, k, o); }
static int x_time64(sqlite3_vfs *v, sqlite3_int64 *o) { (void)v; return g_real->xCurrentTimeInt64(g_real, o); }

static pthread_once_t g_vfs_once = PTHREAD_ONCE_INIT;
static int g_vfs_rc = SQLITE_ERROR;

static void vfs_init(void)
{
    g_real = sqlite3_vfs_find(NULL);
    if (!g_real || g_real->iVersion < 2 || !g_real->xCurrentTimeInt64)
        return;
    g_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(vfs_file_t) + g_real->szOsFile,
        .mxPathname = g_real->mxPathname,
        .zName = STORE_VFS_NAME,
        .xOpen = x_open,
        .xDelete = x_delete,
        .xAccess = x_access,
        .xFullPathname = x_full,
        .xDlOpen = x_dlopen,
        .xDlError = x_dlerror,
        .xDlSym = x_dlsym,
        .xDlClose = x_dlclose,
        .xRandomness = x_random,
        .xSleep = x_sleep,
        .xCurrentTime = x_time,
        .xGetLastError = x_lasterr,
        .xCurrentTimeInt64 = x_time64,
    };
    g_vfs_rc = sqlite3_vfs_register(&g_vfs, 0);
}

const char *store_vfs_writer(void)
{
    pthread_once(&g_vfs_once, vfs_init);
    return g_vfs_rc == SQLITE_OK ? STORE_VFS_NAME : NULL;
}
