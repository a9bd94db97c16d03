//! Memory returned to the system after a burst of large request bodies.
//!
//! glibc's malloc serves an allocation of 128 KiB or more with its own mapping, given back to
//! the system when freed, but it raises that threshold to the size of the largest block freed so
//! far (up to 32 MiB): after the first 15 MB body is freed, later ones come from the heap arenas
//! and their memory stays with the process. Measured with 30 concurrent 15 MB chat bodies, twice:
//! about 2 GB resident 10 s after the second burst, against 0.7 GB with the threshold fixed (and
//! falling further as the write queue drains). mimalloc, tried instead, kept the memory too (it
//! marks freed pages reusable rather than unmapping them).
//!
//! The threshold can only be fixed before malloc starts: `ferrostack` re-executes itself once,
//! at start-up, with `glibc.malloc.mmap_threshold` added to `GLIBC_TUNABLES`, unless that
//! tunable (or `MALLOC_MMAP_THRESHOLD_`) is already set, which the operator's value then wins.

use std::ffi::OsString;

/// The tunable: allocations from 128 KiB on get their own mapping, always.
const TUNABLE: &str = "glibc.malloc.mmap_threshold=131072";

/// The value of `GLIBC_TUNABLES` to re-execute with, or `None` when nothing needs to change.
pub fn tunables(current: Option<OsString>, legacy_set: bool) -> Option<OsString> {
    if legacy_set {
        return None;
    }
    match current {
        Some(c) if c.to_string_lossy().contains("glibc.malloc.mmap_threshold") => None,
        Some(c) if !c.is_empty() => {
            let mut v = c;
            v.push(":");
            v.push(TUNABLE);
            Some(v)
        }
        _ => Some(OsString::from(TUNABLE)),
    }
}

/// On Linux with glibc: re-execute this process with the tunable set, when it is not. Returns only
/// when nothing needed to change, or when the re-execution failed (then the process goes on
/// with glibc's defaults; the error is returned for the caller to report).
pub fn fix_mmap_threshold() -> Option<std::io::Error> {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return None;
    }
    let value = tunables(std::env::var_os("GLIBC_TUNABLES"), std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some())?;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Some(e),
    };
    exec(std::process::Command::new(exe).args(std::env::args_os().skip(1)).env("GLIBC_TUNABLES", value))
}

#[cfg(unix)]
fn exec(command: &mut std::process::Command) -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt as _;
    // Replaces this process (same pid, same signals and descriptors); returns only on failure.
    Some(command.exec())
}

#[cfg(not(unix))]
fn exec(_: &mut std::process::Command) -> Option<std::io::Error> {
    None
}
