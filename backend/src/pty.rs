//! A PTY's master side, non-blocking and driven by the runtime: the page's
//! shells and `docker exec -it` read and write their terminals this one way,
//! on the async workers, without a blocking thread per terminal. (A
//! container's own output, PTY or pipes, is copied by its log pump.)

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// A PTY master.
#[derive(Debug)]
pub struct Pty {
    fd: AsyncFd<std::fs::File>,
}

impl Pty {
    /// Takes `master` (made non-blocking: a flag of the open file, so every
    /// descriptor of it is non-blocking from now on).
    pub fn new(master: OwnedFd) -> std::io::Result<Self> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags = OFlag::from_bits_truncate(fcntl(&master, FcntlArg::F_GETFL).map_err(std::io::Error::from)?);
        fcntl(&master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(std::io::Error::from)?;
        Ok(Pty { fd: crate::sys::async_file(std::fs::File::from(master))? })
    }

    /// Reads what the terminal's programs wrote; `Ok(0)` once every one of
    /// them has closed it (EIO on Linux).
    pub async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|f| (&*f.get_ref()).read(buf)) {
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes as much of `data` as the terminal takes now.
    pub async fn write_some(&self, data: &[u8]) -> std::io::Result<usize> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|f| (&*f.get_ref()).write(data)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `data`, as fast as the terminal takes it.
    pub async fn write_all(&self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            match self.write_some(data).await? {
                0 => return Err(std::io::ErrorKind::WriteZero.into()),
                n => data = &data[n..],
            }
        }
        Ok(())
    }

    /// The master itself (for its window size).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}
