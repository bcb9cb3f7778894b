//! A download's byte stream: the data connection (kept with its control connection),
//! failing when the server goes silent or the transfer ends short.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use suppaftp::tokio::AsyncFtpStream;
use tokio::io::{AsyncRead, ReadBuf};

use super::{IDLE_TIMEOUT, Transfer};

/// The data connection of a download, with the control connection it belongs to; a
/// transfer that ends before `remaining` bytes came fails.
pub(super) struct FtpBody {
    transfer: Transfer,
    _connection: AsyncFtpStream,
    remaining: u64,
    key: String,
    /// Fails the read when the server sends nothing for [`IDLE_TIMEOUT`] while we wait.
    idle: Pin<Box<tokio::time::Sleep>>,
    /// Whether the last poll found nothing to read (the idle clock runs only then, so
    /// that a slow reader is never taken for a silent server).
    waiting: bool,
}

impl FtpBody {
    /// The download of `remaining` bytes of `key` on `transfer`, the data connection of
    /// `connection`.
    pub(super) fn new(transfer: Transfer, connection: AsyncFtpStream, remaining: u64, key: &str) -> Self {
        FtpBody {
            transfer,
            _connection: connection,
            remaining,
            key: key.to_owned(),
            idle: Box::pin(tokio::time::sleep(IDLE_TIMEOUT)),
            waiting: false,
        }
    }
}

impl AsyncRead for FtpBody {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.transfer).poll_read(cx, buf) {
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    this.idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
                }
                if this.idle.as_mut().poll(cx).is_ready() {
                    let message =
                        format!("the server sent nothing of {} for {} s", this.key, IDLE_TIMEOUT.as_secs());
                    return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, message)));
                }
                Poll::Pending
            }
            Poll::Ready(Ok(())) => {
                this.waiting = false;
                let count = (buf.filled().len() - before) as u64;
                if count == 0 && this.remaining > 0 {
                    let message =
                        format!("the download of {} broke off {} bytes short", this.key, this.remaining);
                    return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, message)));
                }
                this.remaining = this.remaining.saturating_sub(count);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}
