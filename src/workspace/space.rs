//! Free space on the file system that holds the work root.

use std::io;
use std::path::Path;

/// Bytes free for an unprivileged user on the file system holding `path` (or, while `path`
/// does not exist yet, its nearest existing parent).
pub fn free_space(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let absolute = std::path::absolute(path)?;
    let existing = absolute
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let c_path = std::ffi::CString::new(existing.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `statvfs` writes into the struct we own and reads the NUL-terminated path,
    // which outlives the call; a zeroed `statvfs` is a valid value of that plain C struct.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_measured_even_before_the_work_root_exists() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_space(&dir.path().join("not/yet")).unwrap();
        assert!(free > 0);
    }
}
