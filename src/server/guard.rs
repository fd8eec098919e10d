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
//! [`ConnState::mark`]; the wrapper then stops the header clock.
//!
//! The wrapper also notes when the connection is idle between requests
//! (waiting for the next one with nothing received), so that the server
//! can close the longest idle ones when every slot is taken.

use std::collections::HashMap;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use super::sendfile::{AsTcp, ZeroCopy};

/// What the service, the IO wrapper and the accept loop share about one
/// connection.
#[derive(Debug)]
pub(super) struct ConnState {
    /// Set by the service when hyper has parsed a request head.
    head: AtomicBool,
    /// When the connection went idle between requests, as microseconds
    /// since `epoch` plus one; 0 while not idle.
    idle_since: AtomicU64,
    epoch: std::time::Instant,
    /// Asks the connection to close (gracefully: a request in progress is
    /// answered first).
    pub(super) evict: Notify,
}

impl ConnState {
    fn new(epoch: std::time::Instant) -> Self {
        ConnState {
            head: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            epoch,
            evict: Notify::new(),
        }
    }

    /// A request head has been parsed.
    pub(super) fn mark(&self) {
        self.head.store(true, Ordering::Relaxed);
        self.busy();
    }

    fn take(&self) -> bool {
        self.head.swap(false, Ordering::Relaxed)
    }

    fn busy(&self) {
        if self.idle_since.load(Ordering::Relaxed) != 0 {
            self.idle_since.store(0, Ordering::Relaxed);
        }
    }

    fn idle(&self) {
        if self.idle_since.load(Ordering::Relaxed) == 0 {
            let t = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX - 1);
            self.idle_since.store(t + 1, Ordering::Relaxed);
        }
    }
}

/// The open connections, to find idle ones when every slot is taken.
#[derive(Debug)]
pub(super) struct Connections {
    epoch: std::time::Instant,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            epoch: std::time::Instant::now(),
            next: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }
}

/// Removes its connection from [`Connections`] when dropped.
pub(super) struct Registered {
    id: u64,
    all: Arc<Connections>,
    /// The connection's shared state.
    pub(super) state: Arc<ConnState>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut open) = self.all.open.lock() {
            open.remove(&self.id);
        }
    }
}

impl Connections {
    /// Tracks a new connection until the returned value is dropped.
    pub(super) fn register(self: &Arc<Self>) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new(self.epoch));
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, Arc::clone(&state));
        }
        Registered {
            id,
            all: Arc::clone(self),
            state,
        }
    }

    /// Asks the connection idle the longest to close; false if none is
    /// idle. A scan, but only when every slot is taken and a client waits.
    pub(super) fn evict_oldest_idle(&self) -> bool {
        let Ok(open) = self.open.lock() else {
            return false;
        };
        let oldest = open
            .values()
            .filter_map(|c| {
                let t = c.idle_since.load(Ordering::Relaxed);
                (t != 0).then_some((t, c))
            })
            .min_by_key(|(t, _)| *t);
        match oldest {
            Some((_, c)) => {
                // Not picked again while it closes.
                c.idle_since.store(0, Ordering::Relaxed);
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// An IO object that fails with `TimedOut` when a deadline passes while it
/// waits for the peer.
pub(super) struct Guarded<I> {
    inner: I,
    header_timeout: Duration,
    idle_timeout: Duration,
    head: Arc<ConnState>,
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
    /// Wraps a connection accepted at `accepted`; its first request's head
    /// is due within `header_timeout` from then.
    pub(super) fn new(
        inner: I,
        accepted: Instant,
        header_timeout: Duration,
        idle_timeout: Duration,
        head: Arc<ConnState>,
    ) -> Self {
        let now = accepted;
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
                    this.head.busy();
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
                if this.head_started.is_none() {
                    // Waiting for the next request: idle keep-alive.
                    this.head.idle();
                }
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
