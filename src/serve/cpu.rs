//! How the API thread shares the cores with the workers.
//!
//! Two things, both on Linux only:
//!
//! - **Short time slices**: the thread runs for tens of microseconds per
//!   request; with a short slice, a request that wakes it gets a core at
//!   once instead of waiting for a busy worker's slice to end.
//! - **Turns over the cores**, when the workers have one core each (as
//!   many workers as cores the process may use): the thread is held on one
//!   core at a time and moves to the next every [`TURN`]. Each worker owns
//!   a share of the players, so a worker slowed down holds the others back
//!   when they wait for its times to complete; time taken from one worker
//!   costs ingestion about twice what the same time taken evenly from all
//!   of them costs. Left to itself, the scheduler keeps waking the thread on
//!   the same core. With fewer workers than cores it is left free, to run
//!   where no worker does.

use std::cell::RefCell;
use std::time::{Duration, Instant};

/// How long the API thread stays on one core before moving to the next.
pub const TURN: Duration = Duration::from_millis(10);

/// The cores the API thread takes turns on.
struct Turns {
    cpus: Vec<usize>,
    next: usize,
    due: Instant,
}

thread_local! {
    static TURNS: RefCell<Option<Turns>> = const { RefCell::new(None) };
}

/// Sets up the calling thread (the API's) beside `workers` worker threads.
pub fn setup(workers: usize) {
    short_slices();
    let cpus = allowed_cpus();
    if cpus.len() >= 2 && workers >= cpus.len() {
        let now = Instant::now();
        TURNS.set(Some(Turns {
            cpus,
            next: 0,
            due: now,
        }));
        turn(now);
    }
}

/// Called as each request starts: moves the thread to the next core once
/// its turn on this one is over (a no-op on any other thread, or when the
/// thread does not take turns).
pub fn turn(now: Instant) {
    TURNS.with_borrow_mut(|t| {
        let Some(t) = t.as_mut() else { return };
        if now < t.due {
            return;
        }
        hold_on(t.cpus[t.next]);
        t.next = (t.next + 1) % t.cpus.len();
        t.due = now + TURN;
    });
}

/// The cores the calling thread may run on (empty where unknown).
fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `sched_getaffinity` fills the zero-initialised set (a
        // plain bit array) of the size given; `CPU_ISSET` reads it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Vec::new();
            }
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect()
        }
    }
    #[cfg(not(target_os = "linux"))]
    Vec::new()
}

/// Holds the calling thread on core `cpu` (best effort: a failure leaves it
/// where it may run).
fn hold_on(cpu: usize) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: a zero-initialised set with one bit set by `CPU_SET`,
        // passed with its size to a plain system call on the calling thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

/// Asks the kernel for short time slices for the calling thread (a custom
/// slice through `sched_setattr`, honoured by the EEVDF scheduler of Linux
/// 6.12 and later; ignored elsewhere). Niceness is kept.
fn short_slices() {
    #[cfg(target_os = "linux")]
    {
        /// The shortest slice the kernel accepts.
        const SLICE_NS: u64 = 100_000;
        // SAFETY: plain system calls on the calling thread, given a
        // zero-initialised `sched_attr` (a C struct of integers) of the size
        // it declares.
        unsafe {
            *libc::__errno_location() = 0;
            let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
            let mut attr: libc::sched_attr = std::mem::zeroed();
            attr.size = std::mem::size_of::<libc::sched_attr>() as u32;
            attr.sched_policy = libc::SCHED_OTHER as u32;
            attr.sched_nice = if *libc::__errno_location() == 0 {
                nice
            } else {
                0
            };
            attr.sched_runtime = SLICE_NS;
            libc::syscall(
                libc::SYS_sched_setattr,
                0,
                &attr as *const libc::sched_attr,
                0,
            );
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Runs `f` on a thread of its own (the turns are a thread's).
    fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().expect("test thread")
    }

    #[test]
    fn takes_turns_over_every_core_when_the_workers_fill_them() {
        let cpus = allowed_cpus();
        if cpus.len() < 2 {
            eprintln!("one core: no turns to take");
            return;
        }
        let seen = on_thread(|| {
            setup(usize::MAX);
            let mut seen = vec![allowed_cpus()];
            // Times of its own, past the turn `setup` began.
            let start = Instant::now() + Duration::from_secs(1);
            turn(start);
            seen.push(allowed_cpus());
            for k in 1..=allowed_cpus().len() * 2 {
                // Within a turn, the thread stays where it is.
                turn(start + TURN * k as u32 - Duration::from_millis(1));
                assert_eq!(allowed_cpus(), *seen.last().expect("a turn"));
                turn(start + TURN * k as u32);
                seen.push(allowed_cpus());
            }
            seen
        });
        let held: Vec<usize> = seen
            .iter()
            .map(|s| {
                assert_eq!(s.len(), 1, "held on one core at a time: {s:?}");
                s[0]
            })
            .collect();
        let expected: Vec<usize> = (0..held.len()).map(|k| cpus[k % cpus.len()]).collect();
        assert_eq!(held, expected, "each core in turn");
    }

    #[test]
    fn left_free_with_fewer_workers_than_cores() {
        let cpus = allowed_cpus();
        let after = on_thread(move || {
            setup(cpus.len() - 1);
            turn(Instant::now() + TURN * 3);
            allowed_cpus()
        });
        assert_eq!(after, allowed_cpus());
    }
}
