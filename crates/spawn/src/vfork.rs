//! The child's side of a spawn: `clone(CLONE_VM | CLONE_VFORK)` onto a
//! stack the spawning thread keeps, then only system calls until `execve`.
//!
//! glibc's `posix_spawn` does the same, but maps a fresh stack for every
//! child and unmaps it after; in a process with many threads, the unmap
//! interrupts every other CPU running one of them to flush its TLB. Kept
//! per thread, the stack costs nothing after the first child: in a C
//! program beside three other threads, 48 µs of the parent's CPU per
//! spawn with `posix_spawn`, 31 µs this way.
//!
//! The child shares this process's memory and the spawning thread's TLS
//! (its errno) while that thread is held in `clone` until the child has
//! exec'd or exited: it reads the plan the thread made and writes one
//! number back, and allocates nothing (another thread may hold malloc's
//! lock).

use std::cell::RefCell;
use std::io;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;

/// Everything the child needs, as pointers into strings the caller keeps
/// alive until `start` returns.
pub(crate) struct Plan {
    /// Tried in order, as `execvp` tries PATH.
    pub paths: Vec<*const c_char>,
    /// NUL-terminated.
    pub argv: Vec<*const c_char>,
    /// NUL-terminated.
    pub envp: Vec<*const c_char>,
    /// stdout and stderr (created or truncated, 0600); null: /dev/null.
    pub output: *const c_char,
    /// Become fds 3, 4, …; each already at `first_free` or above.
    pub sources: Vec<c_int>,
    pub first_free: c_int,
    /// Null: the parent's.
    pub cwd: *const c_char,
    pub new_group: bool,
    /// Set by a child that failed before its exec: the errno of the step.
    err: c_int,
}

impl Plan {
    pub fn new(first_free: c_int) -> Plan {
        Plan { paths: Vec::new(), argv: Vec::new(), envp: Vec::new(), output: ptr::null(), sources: Vec::new(), first_free, cwd: ptr::null(), new_group: false, err: 0 }
    }
}

const STACK_BYTES: usize = 64 * 1024;

struct Stack {
    base: *mut c_void,
    len: usize,
}

impl Stack {
    fn new() -> io::Result<Stack> {
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let len = STACK_BYTES + page;
        let base = unsafe { libc::mmap(ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK, -1, 0) };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base, len };
        // A guard page below it: a child that overflowed dies of SIGSEGV instead of writing over the heap.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    fn top(&self) -> *mut c_void {
        // Stacks grow down; the end of a mapping is page-aligned, so 16-byte aligned.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.base, self.len) };
    }
}

thread_local! {
    static STACK: RefCell<Option<Stack>> = const { RefCell::new(None) };
}

/// Starts the child `plan` describes; its pid once it has exec'd, or the
/// errno of the step that failed (the child then exited and is reaped here).
pub(crate) fn start(plan: &mut Plan) -> io::Result<i32> {
    STACK.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(Stack::new()?);
        }
        let top = cell.as_ref().map_or(ptr::null_mut(), Stack::top);
        plan.err = 0;
        // Every signal blocked (glibc's own two as well) until the child has
        // reset every handler: one of this process's would otherwise run in it.
        let all: u64 = !0;
        let mut old: u64 = 0;
        unsafe { libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &all, &mut old, 8) };
        let pid = unsafe { libc::clone(child, top, libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD, (plan as *mut Plan).cast()) };
        let clone_err = io::Error::last_os_error();
        unsafe { libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &old, ptr::null_mut::<u64>(), 8) };
        if pid < 0 {
            return Err(clone_err);
        }
        // The child is done with the plan: it has exec'd or exited.
        let err = unsafe { ptr::read_volatile(&plan.err) };
        if err != 0 {
            let mut status = 0;
            unsafe { libc::waitpid(pid, &mut status, 0) };
            return Err(io::Error::from_raw_os_error(err));
        }
        Ok(pid)
    })
}

extern "C" fn child(arg: *mut c_void) -> c_int {
    let plan = arg.cast::<Plan>();
    unsafe {
        let p = &*plan;
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        // Node ignores SIGPIPE, and a handler of this process must not run here:
        // the body starts with every signal at its default, as from a shell.
        for sig in 1..libc::SIGRTMAX() + 1 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, ptr::null_mut());
            }
        }
        if p.new_group && libc::setpgid(0, 0) != 0 {
            fail(plan);
        }
        open_as(plan, 0, c"/dev/null".as_ptr(), libc::O_RDONLY);
        if p.output.is_null() {
            open_as(plan, 1, c"/dev/null".as_ptr(), libc::O_WRONLY);
        } else {
            open_as(plan, 1, p.output, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC);
        }
        if libc::dup2(1, 2) < 0 {
            fail(plan);
        }
        for (i, &src) in p.sources.iter().enumerate() {
            if libc::dup2(src, 3 + i as c_int) < 0 {
                fail(plan);
            }
        }
        if libc::syscall(libc::SYS_close_range, p.first_free as libc::c_uint, libc::c_uint::MAX, 0) != 0 {
            fail(plan);
        }
        // After the output: a relative output path means what it meant to the caller.
        if !p.cwd.is_null() && libc::chdir(p.cwd) != 0 {
            fail(plan);
        }
        let none: u64 = 0;
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &none, ptr::null_mut::<u64>(), 8);
        let mut denied = false;
        for &path in &p.paths {
            libc::execve(path, p.argv.as_ptr(), p.envp.as_ptr());
            match errno() {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR => {}
                _ => break,
            }
        }
        // As execvp: EACCES from a directory of PATH wins over not found in the later ones.
        if denied && matches!(errno(), libc::ENOENT | libc::ENOTDIR) {
            *libc::__errno_location() = libc::EACCES;
        }
        fail(plan)
    }
}

/// Opens `path` as descriptor `target` of the child, or fails the child.
unsafe fn open_as(plan: *mut Plan, target: c_int, path: *const c_char, flags: c_int) {
    let fd = libc::open(path, flags, 0o600 as libc::c_uint);
    if fd < 0 {
        fail(plan);
    }
    if fd != target {
        if libc::dup2(fd, target) < 0 {
            fail(plan);
        }
        libc::close(fd);
    }
}

fn errno() -> c_int {
    unsafe { *libc::__errno_location() }
}

/// Tells the parent why (its errno), and ends the child.
fn fail(plan: *mut Plan) -> ! {
    unsafe {
        ptr::write_volatile(ptr::addr_of_mut!((*plan).err), errno().max(1));
        libc::_exit(127)
    }
}
