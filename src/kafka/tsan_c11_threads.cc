// C11 threads on top of the pthread functions, linked into the executables of the TSan preset only
// (see CMakeLists.txt).
//
// Why: librdkafka creates its threads with thrd_create and locks with mtx_lock/cnd_wait. Since
// glibc 2.34 those call glibc's internal pthread code directly, so GCC 12's ThreadSanitizer
// runtime, which intercepts pthread_create and pthread_mutex_lock, never sees librdkafka's
// threads start (the first malloc in one of them crashes the TSan runtime: no thread state) nor
// its locks (false reports). Defined in the executable, these versions take precedence over
// libc's for librdkafka.so, and route every call through the intercepted pthread functions.
// glibc lays mtx_t, cnd_t and thrd_t out exactly as pthread_mutex_t, pthread_cond_t, pthread_t.
#include <pthread.h>
#include <threads.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>

static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t));
static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t));
static_assert(sizeof(thrd_t) == sizeof(pthread_t));

namespace {

struct Start {
  thrd_start_t function;
  void* argument;
};

void* run_start(void* raw) {
  const Start start = *static_cast<Start*>(raw);
  std::free(raw);
  return reinterpret_cast<void*>(static_cast<std::intptr_t>(start.function(start.argument)));
}

int c11_result(int rc) {
  if (rc == 0) return thrd_success;
  if (rc == ENOMEM) return thrd_nomem;
  if (rc == EBUSY) return thrd_busy;
  if (rc == ETIMEDOUT) return thrd_timedout;
  return thrd_error;
}

pthread_mutex_t* as_pthread(mtx_t* mutex) { return reinterpret_cast<pthread_mutex_t*>(mutex); }
pthread_cond_t* as_pthread(cnd_t* condition) { return reinterpret_cast<pthread_cond_t*>(condition); }

}  // namespace

extern "C" {

int thrd_create(thrd_t* thread, thrd_start_t function, void* argument) {
  auto* start = static_cast<Start*>(std::malloc(sizeof(Start)));
  if (start == nullptr) return thrd_nomem;
  *start = Start{function, argument};
  pthread_t handle;
  const int rc = pthread_create(&handle, nullptr, run_start, start);
  if (rc != 0) {
    std::free(start);
    return c11_result(rc);
  }
  *thread = handle;
  return thrd_success;
}

int thrd_join(thrd_t thread, int* result) {
  void* value = nullptr;
  const int rc = pthread_join(thread, &value);
  if (rc == 0 && result != nullptr) {
    *result = static_cast<int>(reinterpret_cast<std::intptr_t>(value));
  }
  return c11_result(rc);
}

int thrd_detach(thrd_t thread) { return c11_result(pthread_detach(thread)); }

int mtx_init(mtx_t* mutex, int type) {
  pthread_mutexattr_t attributes;
  pthread_mutexattr_init(&attributes);
  if ((type & mtx_recursive) != 0) pthread_mutexattr_settype(&attributes, PTHREAD_MUTEX_RECURSIVE);
  const int rc = pthread_mutex_init(as_pthread(mutex), &attributes);
  pthread_mutexattr_destroy(&attributes);
  return c11_result(rc);
}
int mtx_lock(mtx_t* mutex) { return c11_result(pthread_mutex_lock(as_pthread(mutex))); }
int mtx_trylock(mtx_t* mutex) { return c11_result(pthread_mutex_trylock(as_pthread(mutex))); }
int mtx_timedlock(mtx_t* __restrict mutex, const struct timespec* __restrict until) {
  return c11_result(pthread_mutex_timedlock(as_pthread(mutex), until));
}
int mtx_unlock(mtx_t* mutex) { return c11_result(pthread_mutex_unlock(as_pthread(mutex))); }
void mtx_destroy(mtx_t* mutex) { pthread_mutex_destroy(as_pthread(mutex)); }

int cnd_init(cnd_t* condition) { return c11_result(pthread_cond_init(as_pthread(condition), nullptr)); }
int cnd_signal(cnd_t* condition) { return c11_result(pthread_cond_signal(as_pthread(condition))); }
int cnd_broadcast(cnd_t* condition) { return c11_result(pthread_cond_broadcast(as_pthread(condition))); }
int cnd_wait(cnd_t* condition, mtx_t* mutex) {
  return c11_result(pthread_cond_wait(as_pthread(condition), as_pthread(mutex)));
}
int cnd_timedwait(cnd_t* __restrict condition, mtx_t* __restrict mutex,
                  const struct timespec* __restrict until) {
  return c11_result(pthread_cond_timedwait(as_pthread(condition), as_pthread(mutex), until));
}
void cnd_destroy(cnd_t* condition) { pthread_cond_destroy(as_pthread(condition)); }

}  // extern "C"
