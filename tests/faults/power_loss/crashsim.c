/*
 * Power-cut simulator for tests/power_loss.rs, loaded into `chronos node`
 * with LD_PRELOAD.
 *
 * Every write to a file under $CRASHSIM_DIR is journaled, before it
 * happens, to $CRASHSIM_JOURNAL together with the bytes it overwrites and
 * the file's size, so the test can undo it later. fsync and fdatasync of a
 * file are journaled as sync points: what a file held at its last sync
 * point survives a power cut, anything written after it may be lost or
 * torn. sync_file_range is not a sync point (it flushes neither metadata
 * nor the disk cache). Renames and unlinks are journaled so the test can
 * follow a file; directory entries count as durable at once (a
 * simplification: the node fsyncs directories after its renames anyway).
 *
 * After SIGKILL, the test keeps a random prefix of each file's writes since
 * its last sync point, tears the next one (keeps a random prefix of its
 * bytes) and undoes the rest, newest first.
 *
 * Journal record: u8 kind ('W' write, 'S' sync, 'R' rename, 'U' unlink),
 * then u32 path length + path; for 'R' a second path; for 'W': u64 offset,
 * u64 size before, u64 length, u64 old length, old bytes. Integers are
 * little-endian (the host's order; the test runs on the same host).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int journal = -1;

static void put(const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = syscall(SYS_write, journal, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            abort(); /* a journal gap would make the test lie */
        }
        c += w;
        n -= (size_t)w;
    }
}

static void put_u64(uint64_t v) { put(&v, 8); }

static void put_path(const char *path) {
    uint32_t n = (uint32_t)strlen(path);
    put(&n, 4);
    put(path, n);
}

static const char *tracked_dir(void) {
    static const char *dir;
    if (!dir) dir = getenv("CRASHSIM_DIR");
    return dir;
}

/* Opens the journal on first use; 0 when journaling is off. */
static int journal_open(void) {
    if (journal >= 0) return 1;
    const char *path = getenv("CRASHSIM_JOURNAL");
    if (!path || !tracked_dir()) return 0;
    journal = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (journal < 0) abort();
    return 1;
}

static int is_tracked(const char *path) {
    const char *dir = tracked_dir();
    return dir && strncmp(path, dir, strlen(dir)) == 0;
}

/* The path of `fd` when it is a tracked file, in `out`. */
static int fd_path(int fd, char *out, size_t cap) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, cap - 1);
    if (n <= 0) return 0;
    out[n] = 0;
    /* An unlinked file's writes cannot outlive the cut. */
    const char *deleted = " (deleted)";
    size_t d = strlen(deleted);
    if ((size_t)n > d && strcmp(out + n - d, deleted) == 0) return 0;
    return is_tracked(out);
}

/* Journals the write of `len` bytes at `offset` of `fd`, with what it
 * replaces. Called with the lock held. */
static void journal_write(int fd, const char *path, off_t offset, size_t len) {
    struct stat st;
    if (fstat(fd, &st) != 0) abort();
    uint64_t size = (uint64_t)st.st_size;
    uint64_t old_len = 0;
    if ((uint64_t)offset < size) {
        old_len = size - (uint64_t)offset;
        if (old_len > len) old_len = len;
    }
    char *old = malloc(old_len ? old_len : 1);
    if (!old) abort();
    int rfd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (rfd < 0) abort();
    uint64_t got = 0;
    while (got < old_len) {
        ssize_t r = syscall(SYS_pread64, rfd, old + got, old_len - got, offset + (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) abort();
        got += (uint64_t)r;
    }
    syscall(SYS_close, rfd);
    put("W", 1);
    put_path(path);
    put_u64((uint64_t)offset);
    put_u64(size);
    put_u64((uint64_t)len);
    put_u64(old_len);
    put(old, old_len);
    free(old);
}

#define REAL(name, ret, ...)                                    \
    static ret (*real_##name)(__VA_ARGS__);                     \
    static void load_##name(void) {                             \
        if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name); \
    }

REAL(pwrite64, ssize_t, int, const void *, size_t, off_t)
REAL(write, ssize_t, int, const void *, size_t)
REAL(writev, ssize_t, int, const struct iovec *, int)
REAL(pwritev64, ssize_t, int, const struct iovec *, int, off_t)
REAL(fsync, int, int)
REAL(fdatasync, int, int)
REAL(ftruncate64, int, int, off_t)
REAL(rename, int, const char *, const char *)
REAL(renameat, int, int, const char *, int, const char *)
REAL(unlink, int, const char *)
REAL(unlinkat, int, int, const char *, int)

static ssize_t tracked_pwrite(int fd, const void *buf, size_t n, off_t offset) {
    char path[4096];
    load_pwrite64();
    if (!journal_open() || !fd_path(fd, path, sizeof path)) return real_pwrite64(fd, buf, n, offset);
    pthread_mutex_lock(&lock);
    journal_write(fd, path, offset, n);
    ssize_t r = real_pwrite64(fd, buf, n, offset);
    pthread_mutex_unlock(&lock);
    return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t offset) { return tracked_pwrite(fd, buf, n, offset); }
ssize_t pwrite(int fd, const void *buf, size_t n, off_t offset) { return tracked_pwrite(fd, buf, n, offset); }

/* Where a write(2) on `fd` lands. */
static off_t current_offset(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_APPEND)) {
        struct stat st;
        if (fstat(fd, &st) != 0) abort();
        return st.st_size;
    }
    return lseek(fd, 0, SEEK_CUR);
}

ssize_t write(int fd, const void *buf, size_t n) {
    char path[4096];
    load_write();
    if (!journal_open() || !fd_path(fd, path, sizeof path)) return real_write(fd, buf, n);
    pthread_mutex_lock(&lock);
    journal_write(fd, path, current_offset(fd), n);
    ssize_t r = real_write(fd, buf, n);
    pthread_mutex_unlock(&lock);
    return r;
}

static size_t iov_len(const struct iovec *iov, int count) {
    size_t n = 0;
    for (int i = 0; i < count; i++) n += iov[i].iov_len;
    return n;
}

ssize_t writev(int fd, const struct iovec *iov, int count) {
    char path[4096];
    load_writev();
    if (!journal_open() || !fd_path(fd, path, sizeof path)) return real_writev(fd, iov, count);
    pthread_mutex_lock(&lock);
    journal_write(fd, path, current_offset(fd), iov_len(iov, count));
    ssize_t r = real_writev(fd, iov, count);
    pthread_mutex_unlock(&lock);
    return r;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int count, off_t offset) {
    char path[4096];
    load_pwritev64();
    if (!journal_open() || !fd_path(fd, path, sizeof path)) return real_pwritev64(fd, iov, count, offset);
    pthread_mutex_lock(&lock);
    journal_write(fd, path, offset, iov_len(iov, count));
    ssize_t r = real_pwritev64(fd, iov, count, offset);
    pthread_mutex_unlock(&lock);
    return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int count, off_t offset) {
    return pwritev64(fd, iov, count, offset);
}

/* A sync point is journaled after the sync returns: a cut during the sync
 * may lose the writes before it. */
static void journal_sync(int fd) {
    char path[4096];
    if (!journal_open() || !fd_path(fd, path, sizeof path)) return;
    pthread_mutex_lock(&lock);
    put("S", 1);
    put_path(path);
    pthread_mutex_unlock(&lock);
}

int fsync(int fd) {
    load_fsync();
    int r = real_fsync(fd);
    if (r == 0) journal_sync(fd);
    return r;
}

int fdatasync(int fd) {
    load_fdatasync();
    int r = real_fdatasync(fd);
    if (r == 0) journal_sync(fd);
    return r;
}

/* Shrinking a file is journaled as a write over the part cut off (which
 * records those bytes and the old size), growing it as a write of zeros
 * past the old end. */
int ftruncate64(int fd, off_t length) {
    char path[4096];
    load_ftruncate64();
    if (!journal_open() || !fd_path(fd, path, sizeof path)) return real_ftruncate64(fd, length);
    struct stat st;
    pthread_mutex_lock(&lock);
    if (fstat(fd, &st) != 0) abort();
    if (st.st_size > length)
        journal_write(fd, path, length, (size_t)(st.st_size - length));
    else
        journal_write(fd, path, st.st_size, (size_t)(length - st.st_size));
    int r = real_ftruncate64(fd, length);
    pthread_mutex_unlock(&lock);
    return r;
}

int ftruncate(int fd, off_t length) { return ftruncate64(fd, length); }

/* An absolute path for `path` relative to `dirfd`, in `out`. */
static void absolute(int dirfd, const char *path, char *out, size_t cap) {
    if (path[0] == '/') {
        snprintf(out, cap, "%s", path);
        return;
    }
    char base[4096];
    if (dirfd == AT_FDCWD) {
        if (!getcwd(base, sizeof base)) base[0] = 0;
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(link, base, sizeof base - 1);
        base[n > 0 ? n : 0] = 0;
    }
    snprintf(out, cap, "%s/%s", base, path);
}

static void journal_rename(int olddir, const char *from, int newdir, const char *to) {
    char a[8192], b[8192];
    if (!journal_open()) return;
    absolute(olddir, from, a, sizeof a);
    absolute(newdir, to, b, sizeof b);
    if (!is_tracked(a) && !is_tracked(b)) return;
    put("R", 1);
    put_path(a);
    put_path(b);
}

int rename(const char *from, const char *to) {
    load_rename();
    pthread_mutex_lock(&lock);
    int r = real_rename(from, to);
    if (r == 0) journal_rename(AT_FDCWD, from, AT_FDCWD, to);
    pthread_mutex_unlock(&lock);
    return r;
}

int renameat(int olddir, const char *from, int newdir, const char *to) {
    load_renameat();
    pthread_mutex_lock(&lock);
    int r = real_renameat(olddir, from, newdir, to);
    if (r == 0) journal_rename(olddir, from, newdir, to);
    pthread_mutex_unlock(&lock);
    return r;
}

static void journal_unlink(int dirfd, const char *path) {
    char a[8192];
    if (!journal_open()) return;
    absolute(dirfd, path, a, sizeof a);
    if (!is_tracked(a)) return;
    put("U", 1);
    put_path(a);
}

int unlink(const char *path) {
    load_unlink();
    pthread_mutex_lock(&lock);
    int r = real_unlink(path);
    if (r == 0) journal_unlink(AT_FDCWD, path);
    pthread_mutex_unlock(&lock);
    return r;
}

int unlinkat(int dirfd, const char *path, int flags) {
    load_unlinkat();
    pthread_mutex_lock(&lock);
    int r = real_unlinkat(dirfd, path, flags);
    if (r == 0 && !(flags & AT_REMOVEDIR)) journal_unlink(dirfd, path);
    pthread_mutex_unlock(&lock);
    return r;
}
