/* A fault-injecting LD_PRELOAD shim for the disk-fault tests (tests/crash/test_disk_faults.py).
 *
 * It wraps fsync, fdatasync, write, pwrite and pwrite64 and affects only files whose path starts
 * with $WALLEX_FAULT_DIR (the data directory, the directory itself included). Every other call
 * goes straight to libc. Faults are armed at run time by flag files in $WALLEX_FAULT_CONTROL:
 *
 *   fsync-eio     the next fsync/fdatasync of a matching file fails with EIO; one shot (the shim
 *                 deletes the flag). The flag's content, if any, is a substring the file's path
 *                 must contain (e.g. "wallex.db-wal"). As on Linux, the next fsync through every
 *                 other descriptor then open on that file fails too ("EIO-reported" in the log).
 *   write-eio     the next write of a matching file fails with EIO; one shot; same content rule.
 *   write-enospc  while it exists, every write of a file under the data directory fails with
 *                 ENOSPC and writes nothing (a full disk); delete it and space is back.
 *
 * With WALLEX_FAULT_LOSE_UNSYNCED=1 an injected fsync failure also loses what was written to that
 * file since the start of its last successful fsync (the shim restores the old bytes and size,
 * through a writable descriptor of its own: the failing one may be read-only), which is what
 * a power loss after a failed fsync leaves on disk. A server that acknowledges the failed batch
 * anyway then loses an acknowledged write, which the tests detect.
 *
 * Every fsync/fdatasync of a matching file and every injected fault is appended to
 * $WALLEX_FAULT_CONTROL/log as one line: "<call> <path> fd=<n> <ok|error|EIO|ENOSPC>".
 *
 * Built without sanitizers (C, no -fsanitize); with an ASan server the tests preload libasan
 * first, then this shim. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

typedef int (*sync_fn)(int);
typedef ssize_t (*write_fn)(int, const void*, size_t);
typedef ssize_t (*pwrite_fn)(int, const void*, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void*, size_t, off64_t);
typedef ssize_t (*pread64_fn)(int, void*, size_t, off64_t);

static sync_fn real_fsync;
static sync_fn real_fdatasync;
static write_fn real_write;
static pwrite_fn real_pwrite;
static pwrite64_fn real_pwrite64;
static pread64_fn real_pread64;

static const char* fault_dir;
static size_t fault_dir_length;
static char control_dir[PATH_MAX];
static int lose_unsynced;
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* dlsym returns an object pointer; POSIX guarantees it converts to a function pointer, ISO C
 * does not, hence the copy. */
static void next_symbol(const char* name, void* function_pointer) {
  void* symbol = dlsym(RTLD_NEXT, name);
  memcpy(function_pointer, &symbol, sizeof symbol);
}

static void init(void) {
  next_symbol("fsync", &real_fsync);
  next_symbol("fdatasync", &real_fdatasync);
  next_symbol("write", &real_write);
  next_symbol("pwrite", &real_pwrite);
  next_symbol("pwrite64", &real_pwrite64);
  next_symbol("pread64", &real_pread64);
  const char* dir = getenv("WALLEX_FAULT_DIR");
  const char* control = getenv("WALLEX_FAULT_CONTROL");
  if (dir != NULL && *dir != '\0' && control != NULL && *control != '\0') {
    fault_dir = dir;
    fault_dir_length = strlen(dir);
    while (fault_dir_length > 1 && dir[fault_dir_length - 1] == '/') --fault_dir_length;
    snprintf(control_dir, sizeof control_dir, "%s", control);
  }
  const char* lose = getenv("WALLEX_FAULT_LOSE_UNSYNCED");
  lose_unsynced = lose != NULL && strcmp(lose, "1") == 0;
}

/* The file's path when it lies under the fault directory, else 0. */
static int path_under_dir(int fd, char* path, size_t size) {
  pthread_once(&once, init);
  if (fault_dir == NULL) return 0;
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, path, size - 1);
  if (n <= 0) return 0;
  path[n] = '\0';
  if (strncmp(path, fault_dir, fault_dir_length) != 0) return 0;
  return path[fault_dir_length] == '\0' || path[fault_dir_length] == '/';
}

static void control_path(const char* name, char* out, size_t size) {
  snprintf(out, size, "%s/%s", control_dir, name);
}

static void log_line(const char* call, const char* path, int fd, const char* outcome) {
  char log_path[PATH_MAX + 8];
  control_path("log", log_path, sizeof log_path);
  const int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return;
  char line[PATH_MAX + 64];
  const int length = snprintf(line, sizeof line, "%s %s fd=%d %s\n", call, path, fd, outcome);
  if (length > 0) (void)real_write(log_fd, line, (size_t)length);
  close(log_fd);
}

/* A one-shot flag: true (and the flag is gone) when it exists and `path` contains its content. */
static int take_one_shot(const char* name, const char* path) {
  char flag[PATH_MAX + 16];
  control_path(name, flag, sizeof flag);
  if (access(flag, F_OK) != 0) return 0;
  char filter[PATH_MAX];
  size_t length = 0;
  const int fd = open(flag, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    const ssize_t n = read(fd, filter, sizeof filter - 1);
    close(fd);
    length = n > 0 ? (size_t)n : 0;
  }
  while (length > 0 && (filter[length - 1] == '\n' || filter[length - 1] == ' ')) --length;
  filter[length] = '\0';
  if (length > 0 && strstr(path, filter) == NULL) return 0;
  return unlink(flag) == 0; /* two threads racing: only one wins the fault */
}

static int flag_exists(const char* name) {
  char flag[PATH_MAX + 16];
  control_path(name, flag, sizeof flag);
  return access(flag, F_OK) == 0;
}

/* ------------------------------------------------------------------ lost unsynced writes
 * Per file (device and inode), the old contents of every region written since its last
 * successful fsync, newest first, and the file's size before the first of those writes. */

struct undo {
  off64_t offset;
  size_t length;
  char* old_bytes;
  struct undo* next;
};

struct tracked_file {
  dev_t device;
  ino_t inode;
  off64_t size_at_sync;
  struct undo* undo;
  struct tracked_file* next;
};

static struct tracked_file* tracked;

static struct tracked_file* tracked_file_of(int fd, int create) {
  struct stat st;
  if (fstat(fd, &st) != 0) return NULL;
  for (struct tracked_file* f = tracked; f != NULL; f = f->next) {
    if (f->device == st.st_dev && f->inode == st.st_ino) return f;
  }
  if (!create) return NULL;
  struct tracked_file* f = calloc(1, sizeof *f);
  if (f == NULL) return NULL;
  f->device = st.st_dev;
  f->inode = st.st_ino;
  f->size_at_sync = st.st_size;
  f->next = tracked;
  tracked = f;
  return f;
}

static void forget_undo(struct tracked_file* f) {
  while (f->undo != NULL) {
    struct undo* u = f->undo;
    f->undo = u->next;
    free(u->old_bytes);
    free(u);
  }
}

/* Called before a write of `length` bytes at `offset`: saves what it will overwrite. */
static void remember_old_bytes(int fd, off64_t offset, size_t length) {
  pthread_mutex_lock(&mutex);
  struct tracked_file* f = tracked_file_of(fd, 1);
  struct stat st;
  if (f != NULL && fstat(fd, &st) == 0 && offset < st.st_size) {
    size_t keep = (size_t)(st.st_size - offset);
    if (keep > length) keep = length;
    struct undo* u = calloc(1, sizeof *u);
    char* old_bytes = malloc(keep);
    if (u != NULL && old_bytes != NULL && real_pread64(fd, old_bytes, keep, offset) == (ssize_t)keep) {
      u->offset = offset;
      u->length = keep;
      u->old_bytes = old_bytes;
      u->next = f->undo;
      f->undo = u;
    } else {
      free(u);
      free(old_bytes);
    }
  }
  pthread_mutex_unlock(&mutex);
}

/* An fsync covers the writes that completed before it began, not those that run while it does
 * (the server's writer goes on writing the WAL while its syncer fsyncs it). Writes hold
 * `writes_lock` shared from saving their old bytes to the end of the real write; a sync takes
 * it exclusively to mark where the covered writes end, then syncs without it. */
static pthread_rwlock_t writes_lock = PTHREAD_RWLOCK_INITIALIZER;

struct sync_mark {
  struct undo* newest; /* the newest undo entry the sync covers; NULL: none */
  off64_t size;        /* the file's size when the sync began */
  int valid;
};

static struct sync_mark mark_covered_writes(int fd) {
  struct sync_mark mark = {NULL, 0, 0};
  struct stat st;
  pthread_rwlock_wrlock(&writes_lock);
  pthread_mutex_lock(&mutex);
  struct tracked_file* f = tracked_file_of(fd, 0);
  if (fstat(fd, &st) == 0) {
    mark.newest = f != NULL ? f->undo : NULL;
    mark.size = st.st_size;
    mark.valid = 1;
  }
  pthread_mutex_unlock(&mutex);
  pthread_rwlock_unlock(&writes_lock);
  return mark;
}

/* After a successful sync: forgets the undo entries it covered (`mark.newest` and older), keeps
 * those of writes made while it ran. */
static void synced(int fd, struct sync_mark mark) {
  if (!mark.valid) return;
  pthread_mutex_lock(&mutex);
  struct tracked_file* f = tracked_file_of(fd, 0);
  if (f != NULL) {
    struct undo** link = &f->undo;
    while (*link != NULL && *link != mark.newest) link = &(*link)->next;
    struct undo* covered = *link;
    *link = NULL;
    while (covered != NULL) {
      struct undo* u = covered;
      covered = u->next;
      free(u->old_bytes);
      free(u);
    }
    f->size_at_sync = mark.size;
  }
  pthread_mutex_unlock(&mutex);
}

/* Undoes every write since the last successful fsync: newest first, then the old size. */
static void lose_writes(int fd) {
  pthread_rwlock_wrlock(&writes_lock); /* no write half done meanwhile */
  pthread_mutex_lock(&mutex);
  struct tracked_file* f = tracked_file_of(fd, 0);
  if (f != NULL) {
    /* The failed descriptor may be read-only (the server fsyncs its WAL through one): restore
     * through a writable descriptor of the same file. */
    char proc_path[64];
    snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
    const int writable = open(proc_path, O_WRONLY | O_CLOEXEC);
    const int target = writable >= 0 ? writable : fd;
    for (struct undo* u = f->undo; u != NULL; u = u->next) {
      (void)real_pwrite64(target, u->old_bytes, u->length, u->offset);
    }
    forget_undo(f);
    if (ftruncate(target, f->size_at_sync) != 0) { /* nothing better to do in a test shim */
    }
    if (writable >= 0) close(writable);
  }
  pthread_mutex_unlock(&mutex);
  pthread_rwlock_unlock(&writes_lock);
}

/* ------------------------------------------------------------------ the wrapped calls */

/* Linux (since 4.13) reports a writeback error to every file descriptor that was open on the
 * file when it happened, once each: a failed fsync through one descriptor makes the next fsync
 * through each other one fail too. The shim does the same for the faults it injects, so a
 * second connection to the same file (SQLite's checkpointer and writer) cannot sync
 * successfully over writes that were lost. */
#define PENDING_MAX 64
static struct {
  dev_t device;
  ino_t inode;
  int fd;
} pending_errors[PENDING_MAX];
static int pending_count;

static void remember_error_for_other_descriptors(int failed_fd) {
  struct stat failed;
  if (fstat(failed_fd, &failed) != 0) return;
  pthread_mutex_lock(&mutex);
  for (int fd = 0; fd < 4096 && pending_count < PENDING_MAX; ++fd) {
    struct stat st;
    if (fd == failed_fd || fstat(fd, &st) != 0) continue;
    if (st.st_dev != failed.st_dev || st.st_ino != failed.st_ino) continue;
    pending_errors[pending_count].device = st.st_dev;
    pending_errors[pending_count].inode = st.st_ino;
    pending_errors[pending_count].fd = fd;
    ++pending_count;
  }
  pthread_mutex_unlock(&mutex);
}

/* True (and forgotten) when this descriptor has an injected error still to report. */
static int take_pending_error(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return 0;
  int found = 0;
  pthread_mutex_lock(&mutex);
  for (int i = 0; i < pending_count; ++i) {
    if (pending_errors[i].fd == fd && pending_errors[i].device == st.st_dev &&
        pending_errors[i].inode == st.st_ino) {
      pending_errors[i] = pending_errors[--pending_count];
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&mutex);
  return found;
}

static int sync_call(const char* name, sync_fn real, int fd) {
  char path[PATH_MAX];
  if (!path_under_dir(fd, path, sizeof path)) return real(fd);
  if (take_one_shot("fsync-eio", path)) {
    if (lose_unsynced) lose_writes(fd);
    remember_error_for_other_descriptors(fd);
    log_line(name, path, fd, "EIO");
    errno = EIO;
    return -1;
  }
  if (take_pending_error(fd)) {
    if (lose_unsynced) lose_writes(fd);
    log_line(name, path, fd, "EIO-reported");
    errno = EIO;
    return -1;
  }
  const struct sync_mark mark = lose_unsynced ? mark_covered_writes(fd) : (struct sync_mark){NULL, 0, 0};
  const int rc = real(fd);
  if (rc == 0 && lose_unsynced) synced(fd, mark);
  log_line(name, path, fd, rc == 0 ? "ok" : "error");
  return rc;
}

int fsync(int fd) {
  pthread_once(&once, init);
  return sync_call("fsync", real_fsync, fd);
}

int fdatasync(int fd) {
  pthread_once(&once, init);
  return sync_call("fdatasync", real_fdatasync, fd);
}

/* 0: go on and write (after saving old bytes when needed); otherwise the errno to fail with. */
static int write_fault(const char* name, int fd, off64_t offset, size_t length) {
  char path[PATH_MAX];
  if (!path_under_dir(fd, path, sizeof path)) return 0;
  if (flag_exists("write-enospc")) {
    log_line(name, path, fd, "ENOSPC");
    return ENOSPC;
  }
  if (take_one_shot("write-eio", path)) {
    log_line(name, path, fd, "EIO");
    return EIO;
  }
  if (lose_unsynced) {
    if (offset < 0) offset = lseek64(fd, 0, SEEK_CUR);
    if (offset >= 0) remember_old_bytes(fd, offset, length);
  }
  return 0;
}

ssize_t write(int fd, const void* buffer, size_t length) {
  pthread_once(&once, init);
  if (lose_unsynced) pthread_rwlock_rdlock(&writes_lock);
  const int error = write_fault("write", fd, -1, length);
  const ssize_t written = error != 0 ? -1 : real_write(fd, buffer, length);
  const int saved_errno = error != 0 ? error : errno;
  if (lose_unsynced) pthread_rwlock_unlock(&writes_lock);
  errno = saved_errno;
  return written;
}

ssize_t pwrite(int fd, const void* buffer, size_t length, off_t offset) {
  pthread_once(&once, init);
  if (lose_unsynced) pthread_rwlock_rdlock(&writes_lock);
  const int error = write_fault("pwrite", fd, offset, length);
  const ssize_t written = error != 0 ? -1 : real_pwrite(fd, buffer, length, offset);
  const int saved_errno = error != 0 ? error : errno;
  if (lose_unsynced) pthread_rwlock_unlock(&writes_lock);
  errno = saved_errno;
  return written;
}

ssize_t pwrite64(int fd, const void* buffer, size_t length, off64_t offset) {
  pthread_once(&once, init);
  if (lose_unsynced) pthread_rwlock_rdlock(&writes_lock);
  const int error = write_fault("pwrite64", fd, offset, length);
  const ssize_t written = error != 0 ? -1 : real_pwrite64(fd, buffer, length, offset);
  const int saved_errno = error != 0 ? error : errno;
  if (lose_unsynced) pthread_rwlock_unlock(&writes_lock);
  errno = saved_errno;
  return written;
}
