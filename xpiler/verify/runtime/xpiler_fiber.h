// xpiler_fiber.h — a small cooperative fiber scheduler shared by the CPU emulators
// (CUDA, HIP, BANG). Header-only C++17, single OS thread.
//
// Model
//   run(n, fn, ctx) executes fn(ctx, 0) ... fn(ctx, n-1) as n fibers and returns when all
//   have finished. A fiber only gives up the CPU at a rendezvous (arrive_and_wait on a
//   Group) or at yield(); there is no preemption, so code between rendezvous points runs
//   atomically with respect to the other fibers.
//
// Fast path
//   Fibers are not created eagerly. A "runner" loop on a pooled stack calls fn(ctx, i) for
//   i = 0, 1, ... as plain function calls. Only when fiber i blocks does the stack it runs
//   on become *its* stack; a fresh runner then continues with i+1 on another pooled stack.
//   A kernel without rendezvous therefore costs two context switches per run() call, not
//   two per fiber.
//
// Rendezvous
//   A Group is a barrier over some fibers (a CUDA block, a warp, a BANG cluster...). The
//   caller says how many arrivals complete a round. The last arriver runs the group's
//   on_complete callback (used by collectives: shuffles, WMMA, MFMA compute the result for
//   every participant there, through pointers the participants deposited) and releases the
//   waiters; it continues without a switch. Groups marked partial_on_stall may also be
//   completed with fewer arrivals when nothing else can run (models lanes that are inactive
//   in lock-step hardware, e.g. HIP wave operations inside a per-lane `if`).
//
// Deadlock
//   When no fiber can run, no fiber is left to start and some are still waiting, run()
//   throws xpiler::fiber::Deadlock with a message naming each waiting group, how many
//   arrivals it has and expects, and which fibers already exited. It never hangs.
//
// Context switch
//   Hand-written x86-64 SysV switch (callee-saved registers + MXCSR + x87 control word),
//   a few ns. Other targets, or -DXPILER_FIBER_UCONTEXT, use ucontext (slower, because
//   swapcontext does a sigprocmask system call). Stacks are mmap'ed with a PROT_NONE guard
//   region below them, one page larger than the stack (overflow = a clear error message, not silent
//   corruption of another fiber's stack), and pooled for reuse.
//   Default size 256 KiB (-DXPILER_FIBER_STACK_SIZE=... or the stack_size argument of
//   run(); the BANG emulator wants ~2 MiB for its large __nram__ arrays). Memory is
//   reserved with MAP_NORESERVE, so only touched pages cost RAM.
//
// AddressSanitizer: under -fsanitize=address every switch is announced with
// __sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber, so ASan knows which stack
// is current.
//
// Limits: not for use from several OS threads at once on the same Scheduler (each OS
// thread may have its own: the "current scheduler" pointer is thread_local).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef XPILER_FIBER_STACK_SIZE
#define XPILER_FIBER_STACK_SIZE (256 * 1024)
#endif

#if !defined(__x86_64__) && !defined(XPILER_FIBER_UCONTEXT)
#define XPILER_FIBER_UCONTEXT 1
#endif
#ifdef XPILER_FIBER_UCONTEXT
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define XPILER_FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define XPILER_FIBER_ASAN 1
#endif
#endif
#ifdef XPILER_FIBER_ASAN
#include <pthread.h>
extern "C" void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
#endif

// ------------------------------------------------------------------------------------
// 1. Context switch primitive
//    xpiler_fiber_switch(&save, load): saves the current context's stack pointer into
//    *save and resumes the context whose stack pointer is `load`. A new context is a stack
//    prepared by prepare_stack() so that the switch "returns" into xpiler_fiber_trampoline,
//    which calls entry(arg) with entry in r13 and arg in r12.
//    The symbols are .weak so that the header can be included in several translation units.
// ------------------------------------------------------------------------------------
#ifndef XPILER_FIBER_UCONTEXT
extern "C" void xpiler_fiber_switch(void **save_sp, void *load_sp);
extern "C" void xpiler_fiber_trampoline();
__asm__(R"(
    .text
    .p2align 4
    .weak xpiler_fiber_switch
    .type xpiler_fiber_switch, @function
xpiler_fiber_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size xpiler_fiber_switch, .-xpiler_fiber_switch

    .p2align 4
    .weak xpiler_fiber_trampoline
    .type xpiler_fiber_trampoline, @function
xpiler_fiber_trampoline:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size xpiler_fiber_trampoline, .-xpiler_fiber_trampoline
)");
#endif

namespace xpiler {
namespace fiber {

struct Deadlock : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ------------------------------------------------------------------------------------
// 2. Stacks: mmap'ed, guard region below, pooled per size.
// ------------------------------------------------------------------------------------
struct Stack {
  char *base = nullptr;  // lowest usable address (the guard region is just below)
  size_t size = 0;
  char *top() const { return base + size; }
};

// A fiber that overflows its stack faults in the guard region. Without help that is a bare
// "Segmentation fault"; this SIGSEGV handler (installed only where no other handler is set,
// and not under AddressSanitizer, which reports overflows itself) recognises guard-page
// faults and says what to do. It runs on an alternate signal stack (per OS thread).
struct GuardPages {
  static constexpr int kMax = 1 << 16;
  uintptr_t lo[kMax], hi[kMax];
  std::atomic<int> n{0};  // several OS threads (BANG clusters) may create stacks at once
};
inline GuardPages &guard_pages() {
  static GuardPages g;
  return g;
}
inline void guard_fault_handler(int sig, siginfo_t *info, void *) {
  uintptr_t a = (uintptr_t)info->si_addr;
  GuardPages &g = guard_pages();
  int n = g.n.load() < GuardPages::kMax ? g.n.load() : GuardPages::kMax;
  for (int i = 0; i < n; ++i)
    if (a >= g.lo[i] && a < g.hi[i]) {
      static const char msg[] =
          "xpiler emulator: fiber stack overflow (a thread's local arrays or recursion exceed the "
          "fiber stack); compile with -DXPILER_FIBER_STACK_SIZE=<bytes> (default 256 KiB)\n";
      ssize_t r = write(2, msg, sizeof msg - 1);
      (void)r;
      _exit(86);
    }
  signal(sig, SIG_DFL);  // not ours: let the fault happen again with the default action
}
inline void install_guard_handler() {
#ifndef XPILER_FIBER_ASAN
  static thread_local bool done = false;
  if (done) return;
  done = true;
  static thread_local char altstack[64 * 1024];
  stack_t ss{};
  ss.ss_sp = altstack;
  ss.ss_size = sizeof altstack;
  sigaltstack(&ss, nullptr);
  struct sigaction old {};
  sigaction(SIGSEGV, nullptr, &old);
  if (old.sa_handler != SIG_DFL && old.sa_sigaction != &guard_fault_handler) return;
  struct sigaction sa {};
  sa.sa_sigaction = &guard_fault_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, nullptr);
#endif
}

class StackPool {
 public:
  Stack get(size_t size) {
    size = round_up(size);
    for (size_t i = free_.size(); i-- > 0;)
      if (free_[i].size == size) {
        Stack s = free_[i];
        free_[i] = free_.back();
        free_.pop_back();
        return s;
      }
    size = round_up(size);
    // The guard below the stack is as large as the stack itself (address space only): a
    // frame that overflows by less than a whole stack faults in the guard instead of
    // silently writing into the neighbouring fiber's stack. One page more keeps stack tops
    // from sitting a power of two apart: with 4 MiB stacks (8 MiB mappings, 2 MiB aligned)
    // every top mapped to the same TLB set and a 256-thread barrier reduction ran 30%
    // slower (bench/emulator_speed.py).
    const size_t guard = size + page_size();
    void *p = mmap(nullptr, guard + size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "xpiler fiber: cannot mmap a %zu-byte stack\n", size);
      std::abort();
    }
    mprotect(p, guard, PROT_NONE);
    install_guard_handler();
    GuardPages &g = guard_pages();
    int slot = g.n.fetch_add(1);
    if (slot < GuardPages::kMax) {  // a slot not yet filled in reads as an empty range
      g.lo[slot] = (uintptr_t)p;  // lo before hi: a half-written entry is an empty range
      std::atomic_signal_fence(std::memory_order_release);
      g.hi[slot] = (uintptr_t)p + guard;
    }
    return Stack{(char *)p + guard, size};
  }
  void put(Stack s) { free_.push_back(s); }
  ~StackPool() {
    for (Stack &s : free_) munmap(s.base - s.size - page_size(), 2 * s.size + page_size());
  }
  static size_t page_size() {
    static const size_t page = (size_t)sysconf(_SC_PAGESIZE);  // sysconf is not free
    return page;
  }
  static size_t round_up(size_t size) { return (size + page_size() - 1) / page_size() * page_size(); }

 private:
  std::vector<Stack> free_;
};

inline StackPool &stack_pool() {
  static thread_local StackPool pool;
  return pool;
}

// ------------------------------------------------------------------------------------
// 3. Groups (rendezvous points)
// ------------------------------------------------------------------------------------
struct Group {
  const char *name = "group";      // for error messages ("__syncthreads", "warp 3", ...)
  int arrived = 0;                 // arrivals in the current round
  int expected = 0;                // arrivals that complete the round (set by 1st arriver)
  int wait_head = -1, wait_tail = -1;  // FIFO of waiting fibers (intrusive, via Fiber::next)
  bool partial_on_stall = false;   // may complete with fewer arrivals when nothing can run
  void (*on_complete)(Group *) = nullptr;  // runs once per round, before anyone proceeds
  void reset() { arrived = 0; expected = 0; wait_head = wait_tail = -1; }
};

// ------------------------------------------------------------------------------------
// 4. Scheduler
// ------------------------------------------------------------------------------------
using Fn = void (*)(void *ctx, int index);
using Hook = void (*)(void *ctx, int index);

enum class State : uint8_t { Running, Waiting, Ready, Done };

struct Fiber {
  void *sp = nullptr;       // saved stack pointer while suspended
#ifdef XPILER_FIBER_UCONTEXT
  ucontext_t uc;
#endif
  Stack stack;              // the stack this fiber runs on (valid while it is suspended)
  Group *waiting_on = nullptr;
  int next = -1;            // next in a FIFO (group waiters or ready queue)
  State state = State::Running;
};

class Scheduler;
inline Scheduler *&current_scheduler() {
  static thread_local Scheduler *s = nullptr;
  return s;
}

class Scheduler {
 public:
  // Runs fn(ctx, i) for i in [0, n) as fibers. on_resume(ctx, i) is called whenever fiber i
  // starts or resumes (the emulators use it to set threadIdx etc.). label names this run in
  // error messages. Throws Deadlock, or rethrows an exception escaping from a fiber.
  void run(int n, Fn fn, void *ctx, Hook on_resume = nullptr, const char *label = "",
           size_t stack_size = XPILER_FIBER_STACK_SIZE) {
    if (n <= 0) return;
    Scheduler *outer = current_scheduler();
    current_scheduler() = this;
    n_ = n;
    fn_ = fn;
    ctx_ = ctx;
    hook_ = on_resume;
    label_ = label;
    stack_size_ = stack_size;
    next_unstarted_ = 0;
    n_done_ = 0;
    ready_head_ = ready_tail_ = -1;
    error_ = nullptr;
    pending_release_ = false;
    if ((int)fibers_.size() < n) fibers_.resize(n);
#ifdef XPILER_FIBER_ASAN
    {
      pthread_attr_t attr;
      void *addr = nullptr;
      size_t size = 0;
      pthread_getattr_np(pthread_self(), &attr);
      pthread_attr_getstack(&attr, &addr, &size);
      pthread_attr_destroy(&attr);
      main_stack_ = Stack{(char *)addr, size};
    }
#endif

    for (;;) {
      void *target = next_context();
      if (target) {
        void *fake = nullptr;
        asan_start(&fake, next_stack_);
        switch_to(&main_sp_, target);
        asan_finish(fake);
        flush_pending();
        continue;
      }
      // Nothing ready and nothing left to start.
      if (n_done_ == n_ || error_) break;
      if (complete_a_partial_group()) continue;
      break;  // deadlock, reported below
    }
    current_scheduler() = outer;
    if (n_done_ != n_ && !error_) {
      std::string msg = describe_deadlock();
      release_all_waiting();
      throw Deadlock(msg);
    }
    if (error_) {
      release_all_waiting();
      std::exception_ptr e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
  }

  // Names the runs in error messages lazily (instead of run()'s label): formatting a label
  // per run cost more than running a small block of a kernel without rendezvous.
  void set_label_fn(const char *(*fn)()) { label_fn_ = fn; }

  int current() const { return current_; }
  int size() const { return n_; }
  bool exited(int i) const { return started(i) && fibers_[i].state == State::Done; }
  bool started(int i) const { return reverse_ ? i >= n_ - next_unstarted_ : i < next_unstarted_; }
  // The fiber that starts first (it runs before any other fiber of the run starts).
  int first() const { return reverse_ ? n_ - 1 : 0; }

  // Start order of later runs: reversed = n-1, n-2, ..., 0 instead of 0, 1, ..., n-1. Any
  // order is a legal schedule; comparing two finds results that depend on the order.
  void set_reverse(bool r) { reverse_ = r; }

  // Rendezvous: the current fiber arrives at g; the round completes after `expected`
  // arrivals (the first arriver's value counts). Returns true in the fiber that completed
  // the round (it ran g.on_complete), false in the others (they were suspended meanwhile).
  bool arrive_and_wait(Group &g, int expected) {
    if (g.arrived == 0) g.expected = expected;
    if (++g.arrived >= g.expected) {
      complete(g);
      return true;
    }
    Fiber &f = fibers_[current_];
    f.state = State::Waiting;
    f.waiting_on = &g;
    f.next = -1;
    if (g.wait_tail < 0) g.wait_head = current_;
    else fibers_[g.wait_tail].next = current_;
    g.wait_tail = current_;
    suspend_current();
    return false;
  }

  // Lets the other ready fibers run before the current one continues.
  void yield() {
    if (ready_head_ < 0 && (next_unstarted_ >= n_ || error_)) return;
    suspend_current(/*requeue=*/true);
  }

 private:
  // ---- context plumbing ----
  void switch_to(void **save, void *target) {
#ifdef XPILER_FIBER_UCONTEXT
    // In ucontext mode "stack pointers" are ucontext_t*.
    ucontext_t *from = (ucontext_t *)*save;
    if (!from) {
      static thread_local ucontext_t main_uc;
      from = &main_uc;
      *save = from;
    }
    swapcontext(from, (ucontext_t *)target);
#else
    xpiler_fiber_switch(save, target);
#endif
  }

  static void runner_entry(void *arg) {
    Scheduler *s = (Scheduler *)arg;
    Stack mine = s->new_runner_stack_;
    s->asan_finish(nullptr);
    s->flush_pending();
    for (bool first = true;; first = false) {
      // A runner starts at least one fiber (it was created for that); afterwards it prefers
      // resuming released fibers (keeps few stacks alive) to starting new ones.
      if (s->next_unstarted_ >= s->n_ || s->error_ || (!first && s->ready_head_ >= 0)) break;
      int k = s->next_unstarted_++, i = s->reverse_ ? s->n_ - 1 - k : k;
      Fiber &f = s->fibers_[i];
      f.state = State::Running;
      f.stack = mine;
      f.waiting_on = nullptr;
      s->current_ = i;
      if (s->hook_) s->hook_(s->ctx_, i);
      try {
        s->fn_(s->ctx_, i);
      } catch (...) {
        if (!s->error_) s->error_ = std::current_exception();
      }
      // A fiber that blocked and resumed finishes on this same stack, so `mine` is right.
      s->fibers_[s->current_].state = State::Done;
      ++s->n_done_;
    }
    // Give this stack back once we are off it, and continue elsewhere.
    s->pending_ = mine;
    s->pending_release_ = true;
    void *target = s->next_context();
    if (!target) {
      target = s->main_sp_;
      s->next_stack_ = s->main_stack_;
    }
    s->asan_start(nullptr, s->next_stack_);  // this context ends: no fake stack to keep
#ifdef XPILER_FIBER_UCONTEXT
    setcontext((ucontext_t *)target);
#else
    void *dead;
    xpiler_fiber_switch(&dead, target);
#endif
    __builtin_unreachable();
  }

  void flush_pending() {
    if (pending_release_) {
      pending_release_ = false;
      stack_pool().put(pending_);
    }
  }

  // The context to run next: a ready fiber, else a new runner if fibers remain to start,
  // else nullptr (the caller goes back to the scheduler loop in run()).
  void *next_context() {
    if (ready_head_ >= 0) {
      int i = pop_ready();
      Fiber &f = fibers_[i];
      f.state = State::Running;
      f.waiting_on = nullptr;
      current_ = i;
      next_stack_ = f.stack;
      if (hook_) hook_(ctx_, i);
#ifdef XPILER_FIBER_UCONTEXT
      return &f.uc;
#else
      return f.sp;
#endif
    }
    if (next_unstarted_ < n_ && !error_) return make_runner();
    return nullptr;
  }

  void *make_runner() {
    Stack st = stack_pool().get(stack_size_);
    new_runner_stack_ = st;
    next_stack_ = st;
#ifdef XPILER_FIBER_UCONTEXT
    // A fresh context is only read when it is first entered, so one object can be reused:
    // a runner that later suspends saves itself into its Fiber's own ucontext_t.
    static thread_local ucontext_t fresh;
    getcontext(&fresh);
    fresh.uc_stack.ss_sp = st.base;
    fresh.uc_stack.ss_size = st.size;
    fresh.uc_link = nullptr;
    makecontext(&fresh, (void (*)())runner_entry_uc, 2, (int)(uintptr_t)this,
                (int)((uintptr_t)this >> 32));
    return &fresh;
#else
    // Frame consumed by xpiler_fiber_switch: [mxcsr|fpcw][r15][r14][r13][r12][rbx][rbp][ret]
    uintptr_t top = (uintptr_t)st.top() & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 64);
    uint32_t csr = 0x1F80;
    uint16_t fpcw = 0x037F;
    std::memcpy(&sp[0], &csr, 4);
    std::memcpy((char *)&sp[0] + 4, &fpcw, 2);
    sp[1] = 0;                                  // r15
    sp[2] = 0;                                  // r14
    sp[3] = (uint64_t)(uintptr_t)&runner_entry;  // r13: entry
    sp[4] = (uint64_t)(uintptr_t)this;           // r12: arg
    sp[5] = 0;                                  // rbx
    sp[6] = 0;                                  // rbp
    sp[7] = (uint64_t)(uintptr_t)&xpiler_fiber_trampoline;
    return sp;
#endif
  }
#ifdef XPILER_FIBER_UCONTEXT
  static void runner_entry_uc(int lo, int hi) {
    runner_entry((void *)(((uintptr_t)(unsigned)hi << 32) | (uintptr_t)(unsigned)lo));
  }
#endif

  // Switches to the next context. requeue: the current fiber goes to the back of the ready
  // queue (yield) *after* the next context was chosen, so it never switches to itself.
  void suspend_current(bool requeue = false) {
    int me = current_;
    Fiber &f = fibers_[me];
    void *target = next_context();
    if (requeue) {
      f.state = State::Ready;
      push_ready(me);
    }
    if (!target) {
      target = main_sp_;
      next_stack_ = main_stack_;
    }
    void *fake = nullptr;
    asan_start(&fake, next_stack_);
#ifdef XPILER_FIBER_UCONTEXT
    swapcontext(&f.uc, (ucontext_t *)target);
#else
    xpiler_fiber_switch(&f.sp, target);
#endif
    asan_finish(fake);
    flush_pending();
  }

  // ---- AddressSanitizer annotations (no-ops otherwise) ----
  static void asan_start(void **fake, const Stack &to) {
#ifdef XPILER_FIBER_ASAN
    __sanitizer_start_switch_fiber(fake, to.base, to.size);
#else
    (void)fake;
    (void)to;
#endif
  }
  static void asan_finish(void *fake) {
#ifdef XPILER_FIBER_ASAN
    const void *bottom;
    size_t size;
    __sanitizer_finish_switch_fiber(fake, &bottom, &size);
#else
    (void)fake;
#endif
  }

  // ---- queues ----
  void push_ready(int i) {
    fibers_[i].next = -1;
    if (ready_tail_ < 0) ready_head_ = i;
    else fibers_[ready_tail_].next = i;
    ready_tail_ = i;
  }
  int pop_ready() {
    int i = ready_head_;
    ready_head_ = fibers_[i].next;
    if (ready_head_ < 0) ready_tail_ = -1;
    return i;
  }

  void complete(Group &g) {
    if (g.on_complete) g.on_complete(&g);
    for (int w = g.wait_head; w >= 0;) {
      int nx = fibers_[w].next;
      fibers_[w].state = State::Ready;
      push_ready(w);
      w = nx;
    }
    g.reset();
  }

  // At a stall: complete the lenient group whose first waiter has the lowest index.
  bool complete_a_partial_group() {
    Group *best = nullptr;
    for (int i = 0; i < n_ && !best; ++i)
      if (started(i) && fibers_[i].state == State::Waiting && fibers_[i].waiting_on->partial_on_stall)
        best = fibers_[i].waiting_on;
    if (!best) return false;
    complete(*best);
    return true;
  }

  static void append_ranges(std::string &out, const std::vector<int> &v) {
    char buf[64];
    for (size_t i = 0; i < v.size();) {
      size_t j = i;
      while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
      if (j == i) std::snprintf(buf, sizeof buf, "%s%d", i ? "," : "", v[i]);
      else std::snprintf(buf, sizeof buf, "%s%d-%d", i ? "," : "", v[i], v[j]);
      out += buf;
      i = j + 1;
    }
  }

  std::string describe_deadlock() {
    std::vector<Group *> groups;
    for (int i = 0; i < n_; ++i)
      if (started(i) && fibers_[i].state == State::Waiting) {
        Group *g = fibers_[i].waiting_on;
        bool seen = false;
        for (Group *x : groups) seen |= (x == g);
        if (!seen) groups.push_back(g);
      }
    std::vector<int> gone;
    for (int i = 0; i < n_; ++i)
      if (exited(i)) gone.push_back(i);
    std::string m = "xpiler emulator: deadlock";
    const char *label = label_fn_ ? label_fn_() : label_;
    if (label && *label) m += std::string(" in ") + label;
    m += ": " + std::to_string(n_ - n_done_) + " of " + std::to_string(n_) +
         " fibers wait at a rendezvous that can never complete.";
    for (Group *g : groups) {
      std::vector<int> w;
      for (int i = 0; i < n_; ++i)
        if (started(i) && fibers_[i].state == State::Waiting && fibers_[i].waiting_on == g) w.push_back(i);
      m += std::string("\n  '") + g->name + "': " + std::to_string(g->arrived) + " of " +
           std::to_string(g->expected) + " expected arrivals; waiting fibers ";
      append_ranges(m, w);
    }
    if (!gone.empty()) {
      m += "\n  fibers that exited without arriving: ";
      append_ranges(m, gone);
    }
    m += "\n  (a barrier or collective inside divergent code, or after an early return?)";
    return m;
  }

  void release_all_waiting() {
    // Suspended fibers are abandoned (their destructors do not run); reclaim their stacks.
    for (int i = 0; i < n_; ++i)
      if (started(i) && (fibers_[i].state == State::Waiting || fibers_[i].state == State::Ready)) {
        if (fibers_[i].waiting_on) fibers_[i].waiting_on->reset();
        stack_pool().put(fibers_[i].stack);
        fibers_[i].state = State::Done;
      }
    ready_head_ = ready_tail_ = -1;
  }

  std::vector<Fiber> fibers_;
  Fn fn_ = nullptr;
  void *ctx_ = nullptr;
  Hook hook_ = nullptr;
  const char *label_ = "";
  const char *(*label_fn_)() = nullptr;
  size_t stack_size_ = XPILER_FIBER_STACK_SIZE;
  int n_ = 0, next_unstarted_ = 0, n_done_ = 0, current_ = -1;  // next_unstarted_: how many started
  bool reverse_ = false;
  int ready_head_ = -1, ready_tail_ = -1;
  void *main_sp_ = nullptr;
  Stack new_runner_stack_, pending_, next_stack_, main_stack_;
  bool pending_release_ = false;
  std::exception_ptr error_;
};

// ------------------------------------------------------------------------------------
// 5. Free-function API used by the emulators
// ------------------------------------------------------------------------------------
[[noreturn]] inline void outside_kernel(const char *what) {
  std::fprintf(stderr, "xpiler emulator: %s called outside a running kernel\n", what);
  std::abort();
}
inline Scheduler &scheduler(const char *what = "rendezvous") {
  Scheduler *s = current_scheduler();
  if (!s) outside_kernel(what);
  return *s;
}
inline int current() { return scheduler("fiber::current").current(); }
inline bool arrive_and_wait(Group &g, int expected) {
  return scheduler().arrive_and_wait(g, expected);
}
inline void yield() { scheduler("yield").yield(); }

}  // namespace fiber
}  // namespace xpiler
