//! The system calls of the exec hand-off (`crate::exec`): identifying an inherited descriptor, its
//! close-on-exec flag, the process state a program should start with, and `execve` itself.

use std::ffi::CString;

/// The device and inode of the file open on descriptor `fd`; `None` when it is not open.
pub fn fd_identity(fd: i32) -> Option<(u64, u64)> {
  // SAFETY: fstat on any integer is safe: a closed descriptor gives EBADF.
  let mut st: libc::stat = unsafe { std::mem::zeroed() };
  // SAFETY: `st` is a valid out-pointer.
  if unsafe { libc::fstat(fd, &mut st) } != 0 {
    return None;
  }
  Some((st.st_dev as u64, st.st_ino as u64))
}

/// Sets or clears the close-on-exec flag of descriptor `fd` (one this process owns).
pub fn set_close_on_exec(fd: i32, on: bool) {
  // SAFETY: fcntl(F_SETFD) on a descriptor this process owns; a failure leaves the flag as it was.
  unsafe { libc::fcntl(fd, libc::F_SETFD, if on { libc::FD_CLOEXEC } else { 0 }) };
}

/// The state a program should start with: an empty signal mask, `SIGPIPE` at its default, and
/// inheritable, blocking standard descriptors (Node.js may mark them close-on-exec and makes pipes
/// non-blocking; the latter flag belongs to the open file, which the program shares).
pub fn prepare_for_exec() {
  // SAFETY: plain fcntl/sigprocmask/signal calls on descriptors and state this process owns.
  unsafe {
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    for std_fd in 0..3 {
      // Node.js's standard streams may be close-on-exec: the program needs them.
      let fd_flags = libc::fcntl(std_fd, libc::F_GETFD);
      if fd_flags != -1 && fd_flags & libc::FD_CLOEXEC != 0 {
        libc::fcntl(std_fd, libc::F_SETFD, fd_flags & !libc::FD_CLOEXEC);
      }
      let flags = libc::fcntl(std_fd, libc::F_GETFL);
      if flags != -1 && flags & libc::O_NONBLOCK != 0 {
        libc::fcntl(std_fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
      }
    }
  }
}

/// `execve(path, argv, envp)`: returns only its failure.
pub fn execve(path: &CString, argv: &[CString], envp: &[CString]) -> std::io::Error {
  let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
  argv_ptrs.push(std::ptr::null());
  let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
  envp_ptrs.push(std::ptr::null());
  // SAFETY: every pointer is a NUL-terminated string that outlives the call, and both arrays end
  // with a null pointer. On success this call does not return.
  unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
  std::io::Error::last_os_error()
}
