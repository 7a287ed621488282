//! One `posix_spawn` call with everything a body needs set up in the child.

use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::ptr;
use std::time::Duration;

/// What to start. Strings are C strings already: the caller reports a NUL
/// byte against the field it came from.
#[derive(Debug, Clone)]
pub struct Command {
    /// A path (with a `/`) is run as is; a bare name is looked up on the
    /// parent's PATH, as `execvp` does.
    pub program: CString,
    /// `argv`, `argv[0]` included.
    pub args: Vec<CString>,
    /// The child's whole environment, `NAME=value` each.
    pub env: Vec<CString>,
    pub cwd: Option<CString>,
    /// stdout and stderr both go here (created or truncated, mode 0600);
    /// `None`: /dev/null. stdin is always /dev/null.
    pub output: Option<CString>,
    /// Become the child's fd 3, 4, … (without close-on-exec); every other
    /// descriptor above 2 is closed in the child.
    pub inherit: Vec<RawFd>,
    /// A new process group led by the child (pgid = pid), so that a signal
    /// to `-pid` reaches everything the body started.
    pub new_group: bool,
    /// The reaper reports the child as overdue once it has run this long
    /// (`Reaper::start_with_overdue`): the caller's timeout without a timer
    /// of its own per child.
    pub overdue_after: Option<Duration>,
}

const DEV_NULL: &CStr = c"/dev/null";

/// Starts `cmd`; returns the child's pid. A program that cannot be run
/// (ENOENT, EACCES) or a cwd the child cannot enter fails here, with the
/// errno of the step that failed: glibc reports it from the child before
/// this returns.
pub fn spawn(cmd: &Command) -> io::Result<i32> {
    let first_free = 3 + cmd.inherit.len() as RawFd;
    // A source below the first free descriptor could be overwritten by an
    // earlier dup2 of the list (or be its own target, where dup2 would keep
    // close-on-exec): such sources are copied out of the way first.
    let mut moved = Moved(Vec::new());
    let mut sources = Vec::with_capacity(cmd.inherit.len());
    for &fd in &cmd.inherit {
        if fd < first_free {
            let copy = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, first_free) })?;
            moved.0.push(copy);
            sources.push(copy);
        } else {
            sources.push(fd);
        }
    }

    let actions = FileActions::new()?;
    actions.open(0, DEV_NULL, libc::O_RDONLY, 0)?;
    match &cmd.output {
        Some(path) => actions.open(1, path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o600)?,
        None => actions.open(1, DEV_NULL, libc::O_WRONLY, 0)?,
    }
    actions.dup2(1, 2)?;
    for (i, &src) in sources.iter().enumerate() {
        actions.dup2(src, 3 + i as RawFd)?;
    }
    actions.close_from(first_free)?;
    // Last, so that a relative output path means what it meant to the caller.
    if let Some(cwd) = &cmd.cwd {
        actions.chdir(cwd)?;
    }

    let attrs = Attrs::new()?;
    let mut flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
    if cmd.new_group {
        flags |= libc::POSIX_SPAWN_SETPGROUP;
        rc(unsafe { libc::posix_spawnattr_setpgroup(attrs.ptr(), 0) })?;
    }
    // Node ignores SIGPIPE and a thread may block signals: the body starts
    // with every signal at its default and none blocked, as from a shell.
    unsafe {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        rc(libc::posix_spawnattr_setsigmask(attrs.ptr(), set.as_ptr()))?;
        libc::sigfillset(set.as_mut_ptr());
        rc(libc::posix_spawnattr_setsigdefault(attrs.ptr(), set.as_ptr()))?;
        rc(libc::posix_spawnattr_setflags(attrs.ptr(), flags as libc::c_short))?;
    }

    let argv = nul_terminated(&cmd.args);
    let envp = nul_terminated(&cmd.env);
    let mut pid: libc::pid_t = 0;
    let search = !cmd.program.as_bytes().contains(&b'/');
    let ret = unsafe {
        let f = if search { libc::posix_spawnp } else { libc::posix_spawn };
        f(&mut pid, cmd.program.as_ptr(), actions.ptr(), attrs.ptr(), argv.as_ptr(), envp.as_ptr())
    };
    drop(moved);
    rc(ret)?;
    Ok(pid)
}

fn nul_terminated(strings: &[CString]) -> Vec<*mut libc::c_char> {
    strings.iter().map(|s| s.as_ptr() as *mut libc::c_char).chain(std::iter::once(ptr::null_mut())).collect()
}

/// posix_spawn functions return the error instead of setting errno.
fn rc(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
    }
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

struct Moved(Vec<RawFd>);

impl Drop for Moved {
    fn drop(&mut self) {
        for &fd in &self.0 {
            unsafe { libc::close(fd) };
        }
    }
}

type CloseFromFn = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, libc::c_int) -> libc::c_int;
type ChdirFn = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, *const libc::c_char) -> libc::c_int;

struct GlibcActions {
    close_from: CloseFromFn,
    chdir: ChdirFn,
}

/// The two file actions that are glibc extensions (2.34 and 2.29), looked up
/// at run time: linked directly, an older glibc could not load the addon at
/// all; looked up, it only falls back to Node's spawn.
fn glibc_actions() -> Option<&'static GlibcActions> {
    static ACTIONS: std::sync::OnceLock<Option<GlibcActions>> = std::sync::OnceLock::new();
    ACTIONS
        .get_or_init(|| unsafe {
            let close_from = libc::dlsym(libc::RTLD_DEFAULT, c"posix_spawn_file_actions_addclosefrom_np".as_ptr());
            let chdir = libc::dlsym(libc::RTLD_DEFAULT, c"posix_spawn_file_actions_addchdir_np".as_ptr());
            if close_from.is_null() || chdir.is_null() {
                return None;
            }
            Some(GlibcActions { close_from: std::mem::transmute::<*mut libc::c_void, CloseFromFn>(close_from), chdir: std::mem::transmute::<*mut libc::c_void, ChdirFn>(chdir) })
        })
        .as_ref()
}

fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "this C library has no posix_spawn_file_actions_addclosefrom_np/addchdir_np (glibc before 2.34)")
}

/// Whether this system can start bodies here: glibc's file actions and pidfds.
pub fn supported() -> io::Result<()> {
    glibc_actions().map(|_| ()).ok_or_else(unsupported)
}

struct FileActions(Box<libc::posix_spawn_file_actions_t>);

impl FileActions {
    fn new() -> io::Result<Self> {
        let mut raw: Box<libc::posix_spawn_file_actions_t> = Box::new(unsafe { std::mem::zeroed() });
        rc(unsafe { libc::posix_spawn_file_actions_init(&mut *raw) })?;
        Ok(Self(raw))
    }

    fn ptr(&self) -> *const libc::posix_spawn_file_actions_t {
        &*self.0
    }

    fn mut_ptr(&self) -> *mut libc::posix_spawn_file_actions_t {
        self.ptr() as *mut _
    }

    fn open(&self, fd: RawFd, path: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<()> {
        rc(unsafe { libc::posix_spawn_file_actions_addopen(self.mut_ptr(), fd, path.as_ptr(), flags, mode) })
    }

    fn dup2(&self, from: RawFd, to: RawFd) -> io::Result<()> {
        rc(unsafe { libc::posix_spawn_file_actions_adddup2(self.mut_ptr(), from, to) })
    }

    fn close_from(&self, from: RawFd) -> io::Result<()> {
        let f = glibc_actions().ok_or_else(unsupported)?.close_from;
        rc(unsafe { f(self.mut_ptr(), from) })
    }

    fn chdir(&self, dir: &CStr) -> io::Result<()> {
        let f = glibc_actions().ok_or_else(unsupported)?.chdir;
        rc(unsafe { f(self.mut_ptr(), dir.as_ptr()) })
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        unsafe { libc::posix_spawn_file_actions_destroy(self.mut_ptr()) };
    }
}

struct Attrs(Box<libc::posix_spawnattr_t>);

impl Attrs {
    fn new() -> io::Result<Self> {
        let mut raw: Box<libc::posix_spawnattr_t> = Box::new(unsafe { std::mem::zeroed() });
        rc(unsafe { libc::posix_spawnattr_init(&mut *raw) })?;
        Ok(Self(raw))
    }

    fn ptr(&self) -> *mut libc::posix_spawnattr_t {
        &*self.0 as *const _ as *mut _
    }
}

impl Drop for Attrs {
    fn drop(&mut self) {
        unsafe { libc::posix_spawnattr_destroy(self.ptr()) };
    }
}

/// The errno's name (ENOENT, EACCES, …), as Node's spawn errors have it.
pub fn errno_name(n: i32) -> &'static str {
    match n {
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::ENOTDIR => "ENOTDIR",
        libc::ENOEXEC => "ENOEXEC",
        libc::EPERM => "EPERM",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::EBADF => "EBADF",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::E2BIG => "E2BIG",
        libc::ETXTBSY => "ETXTBSY",
        _ => "ERR_SPAWN",
    }
}
