//! Per-connection deadlines: slow or silent clients lose their connection,
//! busy ones keep it.
//!
//! hyper's own `header_read_timeout` starts counting as soon as a response
//! has been handed to the kernel, so a client still draining a 2 MB page
//! (1000 connections on 2 cores can take more than 10 s) had its keep-alive
//! connection cut before it could send the next request. Go's `net/http`
//! separates the two, and so does this wrapper:
//!
//! - **header deadline**: a request's head must be complete within
//!   `header_read_timeout` of its first byte (slowloris); for the first
//!   request of a connection the clock starts at accept, so a connection
//!   that never says anything is closed as quickly;
//! - **idle deadline**: between requests, and while a response is being
//!   written, the connection may go `idle_timeout` without any byte moving
//!   in either direction (keep-alive pauses, clients that stop reading).
//!
//! The service marks the end of each request head by calling
//! [`HeadSeen::mark`]; the wrapper then stops the header clock.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::sendfile::{AsTcp, ZeroCopy};

/// Set by the service when hyper has parsed a request head.
#[derive(Debug, Default)]
pub(super) struct HeadSeen(AtomicBool);

impl HeadSeen {
    /// A request head has been parsed.
    pub(super) fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// An IO object that fails with `TimedOut` when a deadline passes while it
/// waits for the peer.
pub(super) struct Guarded<I> {
    inner: I,
    header_timeout: Duration,
    idle_timeout: Duration,
    head: Arc<HeadSeen>,
    /// When the request head being read began; `None` between requests.
    head_started: Option<Instant>,
    /// Last byte read or written.
    last_activity: Instant,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
    /// Sends the current gzip page by `sendfile` (plain TCP only).
    zero_copy: Option<ZeroCopy>,
}

impl<I> Guarded<I> {
    /// Wraps a freshly accepted connection; its first request's head is due
    /// within `header_timeout` from now.
    pub(super) fn new(
        inner: I,
        header_timeout: Duration,
        idle_timeout: Duration,
        head: Arc<HeadSeen>,
    ) -> Self {
        let now = Instant::now();
        Guarded {
            inner,
            header_timeout,
            idle_timeout,
            head,
            head_started: Some(now),
            last_activity: now,
            read_timer: None,
            write_timer: None,
            zero_copy: None,
        }
    }

    /// Sends the current gzip page without copying it (see
    /// [`super::sendfile`]).
    pub(super) fn with_zero_copy(mut self, z: ZeroCopy) -> Self {
        self.zero_copy = Some(z);
        self
    }

    fn read_deadline(&self) -> Instant {
        match self.head_started {
            Some(t) => t + self.header_timeout,
            None => self.last_activity + self.idle_timeout,
        }
    }
}

/// Reports whether `deadline` has passed; if not, makes sure `timer` wakes
/// the task by then. The timer is moved only when the deadline comes
/// earlier than it is set for, or when it fires before a deadline that
/// moved later: a busy keep-alive connection pushes its idle deadline on
/// every request, and touching the timer wheel each time would cost the
/// serving path more than the request itself.
fn expired(timer: &mut Option<Pin<Box<Sleep>>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    if Instant::now() >= deadline {
        return true;
    }
    let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if t.deadline() > deadline {
        t.as_mut().reset(deadline);
    }
    if t.as_mut().poll(cx).is_pending() {
        return false;
    }
    // Fired early: the deadline moved on since it was set.
    if Instant::now() >= deadline {
        return true;
    }
    t.as_mut().reset(deadline);
    t.as_mut().poll(cx).is_ready()
}

fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

impl<I: AsyncRead + Unpin> AsyncRead for Guarded<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.head.take() {
            this.head_started = None;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let now = Instant::now();
                    this.last_activity = now;
                    // The first bytes after a request head start the next
                    // one (or are the current request's body: bounded too).
                    if this.head_started.is_none() {
                        this.head_started = Some(now);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let deadline = this.read_deadline();
                if expired(&mut this.read_timer, deadline, cx) {
                    let what = if this.head_started.is_some() {
                        "request head not received in time"
                    } else {
                        "idle connection"
                    };
                    return Poll::Ready(Err(timed_out(what)));
                }
                Poll::Pending
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> Guarded<I> {
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.last_activity = Instant::now();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                // The client stopped reading its response.
                let deadline = self.last_activity + self.idle_timeout;
                if expired(&mut self.write_timer, deadline, cx) {
                    return Poll::Ready(Err(timed_out("client stopped reading")));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<I: AsTcp> Guarded<I> {
    /// The write done by `sendfile`, if `bufs` start with the current page.
    fn zero_copy_write(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Option<Poll<io::Result<usize>>> {
        let z = self.zero_copy.as_ref()?;
        z.poll_write(self.inner.as_tcp()?, cx, bufs)
    }
}

impl<I: AsyncWrite + AsTcp + Unpin> AsyncWrite for Guarded<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = match this.zero_copy_write(cx, &[io::IoSlice::new(buf)]) {
            Some(r) => r,
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        };
        this.after_write(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = match this.zero_copy_write(cx, bufs) {
            Some(r) => r,
            None => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
        };
        this.after_write(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
