//! The sealed in-kernel copy (`memfd`) of a published gzip page, which the
//! server sends with `sendfile(2)` (see `server::sendfile`). It belongs to
//! the page: assembly makes it, the server only reads it.

use std::fs::File;
use std::sync::Arc;

/// A sealed in-kernel copy of `bytes` to `sendfile` from; `None` where that
/// is not supported or the copy fails (the page is then sent by copying).
pub fn kernel_copy(bytes: &[u8]) -> Option<Arc<File>> {
    #[cfg(target_os = "linux")]
    {
        match linux::sealed_memfd(bytes) {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                tracing::debug!(error = %e, "no in-kernel copy of the page; it is sent by copying");
                None
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = bytes;
        None
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs::File;
    use std::io::{self, Write as _};

    use rustix::fs::{MemfdFlags, SealFlags};

    /// A memfd holding `bytes`, sealed against any change: data the kernel
    /// is still sending from it can never change under the client.
    pub(super) fn sealed_memfd(bytes: &[u8]) -> io::Result<File> {
        let fd = rustix::fs::memfd_create(
            "upload_session_exporter-page",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = File::from(fd);
        file.write_all(bytes)?;
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
        )?;
        Ok(file)
    }
}
