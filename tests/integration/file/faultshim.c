/*
 * An LD_PRELOAD shim that makes chosen libc calls fail with a chosen errno
 * for descriptors whose path matches a pattern: EIO from a dying disk or a
 * network file system that lost its server, ENOSPC/EDQUOT reported by
 * fsync (thin provisioning, NFS), on demand, in a real process running the
 * real connector. Built by tests/integration/file/test_faults_shim.py into
 * a temporary directory; nothing of it is kept in the tree but this source.
 *
 * Environment (read at every call, so a process can arm it late):
 *   DM_FAULT_OPS    comma-separated calls to fail: write,read,fsync,fdatasync
 *   DM_FAULT_PATH   fnmatch(3) pattern for the descriptor's path
 *                   (as /proc/self/fd/N names it)
 *   DM_FAULT_ERRNO  the errno number to fail with
 *   DM_FAULT_SKIP   let the first M matching calls through (default: 0)
 *   DM_FAULT_TIMES  then fail only N matching calls (default: all)
 *   DM_FAULT_LOG    a file to append one line to per injected failure
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static long matched;

static int listed(const char *ops, const char *op)
{
    size_t len = strlen(op);
    const char *p = ops;
    while ((p = strstr(p, op)) != NULL) {
        int starts = p == ops || p[-1] == ',';
        int ends = p[len] == '\0' || p[len] == ',';
        if (starts && ends)
            return 1;
        p += len;
    }
    return 0;
}

static void note(const char *op, const char *path, int code)
{
    const char *log = getenv("DM_FAULT_LOG");
    char line[4200];
    int fd, n;
    if (log == NULL)
        return;
    n = snprintf(line, sizeof line, "%s %d %s\n", op, code, path);
    fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    /* syscall-level: our own write() below would recurse into the shim */
    if (n > 0)
        (void)!syscall(SYS_write, fd, line, (size_t)n);
    close(fd);
}

/* The errno to fail this call with, or 0 to let it through. */
static int fault(const char *op, int fd)
{
    const char *ops = getenv("DM_FAULT_OPS");
    const char *pattern = getenv("DM_FAULT_PATH");
    const char *code = getenv("DM_FAULT_ERRNO");
    const char *skip = getenv("DM_FAULT_SKIP");
    const char *times = getenv("DM_FAULT_TIMES");
    long seq, first;
    char link[64], path[4096];
    ssize_t n;
    if (ops == NULL || pattern == NULL || code == NULL || !listed(ops, op))
        return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n < 0)
        return 0;
    path[n] = '\0';
    if (fnmatch(pattern, path, 0) != 0)
        return 0;
    seq = __atomic_fetch_add(&matched, 1, __ATOMIC_SEQ_CST);
    first = skip != NULL ? atol(skip) : 0;
    if (seq < first || (times != NULL && seq >= first + atol(times)))
        return 0;
    note(op, path, atoi(code));
    return atoi(code);
}

typedef ssize_t (*rw_fn)(int, void *, size_t);
typedef int (*sync_fn)(int);

#define REAL(name, type) \
    static type real_##name; \
    if (real_##name == NULL) \
        real_##name = (type)dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t count)
{
    int code = fault("write", fd);
    REAL(write, rw_fn);
    if (code) {
        errno = code;
        return -1;
    }
    return real_write(fd, (void *)buf, count);
}

ssize_t read(int fd, void *buf, size_t count)
{
    int code = fault("read", fd);
    REAL(read, rw_fn);
    if (code) {
        errno = code;
        return -1;
    }
    return real_read(fd, buf, count);
}

int fsync(int fd)
{
    int code = fault("fsync", fd);
    REAL(fsync, sync_fn);
    if (code) {
        errno = code;
        return -1;
    }
    return real_fsync(fd);
}

int fdatasync(int fd)
{
    int code = fault("fdatasync", fd);
    REAL(fdatasync, sync_fn);
    if (code) {
        errno = code;
        return -1;
    }
    return real_fdatasync(fd);
}
