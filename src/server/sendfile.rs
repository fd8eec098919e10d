//! Zero-copy sending of the prepared gzip pages (text and OpenMetrics) over
//! plain TCP.
//!
//! Serving the fleet's 170 KB gzip page, the exporter spent 40 % of its CPU
//! in the kernel copying the body from user space into socket buffers
//! (`perf`: `_copy_from_iter`), where nginx `sendfile`s a static file and
//! the kernel only references its pages. So each assembled gzip page also
//! gets a sealed in-kernel copy (a `memfd`), and the connection guard turns
//! a write of bytes of the current page into `sendfile(2)` from that copy.
//!
//! The body hyper hands to the guard is recognised by address: a slice that
//! lies within the current page's buffer *is* that buffer (the guard holds
//! the page, so no other live allocation can overlap it), and the sealed
//! copy holds the same bytes at the same offset. Anything else (response
//! headers, an older page still being sent after a newer one was published,
//! TLS records) is written as before. Linux only; elsewhere, or if the copy
//! cannot be made, every write is a plain write.

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::metrics::exposition::Exposition;

/// A connection that may be a plain TCP socket (the one kind `sendfile`
/// can write to).
pub(super) trait AsTcp {
    /// The socket, if this is one.
    fn as_tcp(&self) -> Option<&TcpStream>;
}

impl AsTcp for TcpStream {
    fn as_tcp(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

/// Where the guard of a plain TCP connection finds the current page.
pub(super) struct ZeroCopy {
    pages: watch::Receiver<Arc<Exposition>>,
    /// Bytes sent by `sendfile`, for tests.
    sent: Arc<std::sync::atomic::AtomicU64>,
}

impl ZeroCopy {
    pub(super) fn new(
        pages: watch::Receiver<Arc<Exposition>>,
        sent: Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        ZeroCopy { pages, sent }
    }

    /// Sends the start of `bufs` without copying if it is part of the
    /// current gzip page: the slices before the page's bytes (the response
    /// head) first, then the page's bytes by `sendfile`. `None`: nothing of
    /// the page here, write as usual.
    pub(super) fn poll_write(
        &self,
        stream: &TcpStream,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Option<Poll<io::Result<usize>>> {
        let page = Arc::clone(&*self.pages.borrow());
        // Either format's gzip body: the text one, or the OpenMetrics one.
        let (i, base, file) = [
            (&page.gzip, page.gzip_file.as_ref()),
            (&page.openmetrics_gzip, page.openmetrics_gzip_file.as_ref()),
        ]
        .into_iter()
        .find_map(|(body, file)| {
            let file = file?;
            let base = body.as_ptr() as usize;
            let end = base + body.len();
            let i = bufs.iter().position(|b| {
                let p = b.as_ptr() as usize;
                !b.is_empty() && p >= base && p + b.len() <= end
            })?;
            Some((i, base, file))
        })?;
        Some(if i == 0 {
            let offset = (bufs[0].as_ptr() as usize - base) as u64;
            let r = poll_sendfile(stream, cx, file, offset, bufs[0].len());
            if let Poll::Ready(Ok(n)) = &r {
                self.sent
                    .fetch_add(*n as u64, std::sync::atomic::Ordering::Relaxed);
            }
            r
        } else {
            // The head, marked as more to come so that it leaves in one
            // segment with the start of the body.
            poll_send_more(stream, cx, &bufs[..i])
        })
    }
}

/// Runs the non-blocking socket call `f` when the socket is writable, again
/// after each spurious readiness.
#[cfg(target_os = "linux")]
fn poll_io(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    mut f: impl FnMut() -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        if let Err(e) = std::task::ready!(stream.poll_write_ready(cx)) {
            return Poll::Ready(Err(e));
        }
        match stream.try_io(tokio::io::Interest::WRITABLE, &mut f) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return Poll::Ready(other),
        }
    }
}

#[cfg(target_os = "linux")]
fn poll_sendfile(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    file: &File,
    offset: u64,
    len: usize,
) -> Poll<io::Result<usize>> {
    poll_io(stream, cx, || {
        let mut off = offset;
        rustix::fs::sendfile(stream, file, Some(&mut off), len).map_err(io::Error::from)
    })
}

#[cfg(target_os = "linux")]
fn poll_send_more(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    poll_io(stream, cx, || {
        rustix::net::sendmsg(
            stream,
            bufs,
            &mut rustix::net::SendAncillaryBuffer::default(),
            rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL,
        )
        .map_err(io::Error::from)
    })
}

#[cfg(not(target_os = "linux"))]
fn poll_sendfile(
    _: &TcpStream,
    _: &mut Context<'_>,
    _: &File,
    _: u64,
    _: usize,
) -> Poll<io::Result<usize>> {
    // Never reached: there is no in-kernel copy to send from.
    Poll::Ready(Err(io::Error::from(io::ErrorKind::Unsupported)))
}

#[cfg(not(target_os = "linux"))]
fn poll_send_more(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    let _ = (stream, cx, bufs);
    Poll::Ready(Err(io::Error::from(io::ErrorKind::Unsupported)))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::{Read as _, Seek as _, Write as _};
    use std::sync::atomic::Ordering;

    use bytes::Bytes;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_util::sync::CancellationToken;

    use crate::metrics::memfd::kernel_copy;
    use crate::readiness::Readiness;
    use crate::server::{serve, Limits, ServerState};

    /// Bytes that do not compress, like a gzip body.
    fn noise(len: usize, seed: u64) -> Bytes {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>()
            .into()
    }

    fn page(gzip: Bytes) -> Arc<Exposition> {
        Arc::new(Exposition {
            plain: Bytes::from_static(b"plain page\n"),
            gzip_file: kernel_copy(&gzip),
            gzip,
            ..Exposition::default()
        })
    }

    async fn server(
        first: Arc<Exposition>,
    ) -> (
        std::net::SocketAddr,
        watch::Sender<Arc<Exposition>>,
        Arc<ServerState>,
        CancellationToken,
    ) {
        let (tx, rx) = watch::channel(first);
        let state = Arc::new(ServerState {
            exposition: rx,
            readiness: Readiness::new(std::iter::empty()),
            telemetry_path: "/metrics".into(),
            reload: None,
            web: None,
            limits: Limits::default(),
            zero_copy_bytes: Default::default(),
            sessions: None,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, Arc::clone(&state), stop.clone()));
        (addr, tx, state, stop)
    }

    /// Sends a request and reads the response head; returns the
    /// Content-Length and whether the body is gzip.
    async fn request(c: &mut tokio::net::TcpStream, gzip: bool) -> (usize, bool) {
        let enc = if gzip {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        };
        c.write_all(format!("GET /metrics HTTP/1.1\r\nHost: t\r\n{enc}\r\n").as_bytes())
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(c.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        (len, head.contains("content-encoding: gzip"))
    }

    async fn body(c: &mut tokio::net::TcpStream, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        c.read_exact(&mut b).await.unwrap();
        b
    }

    #[tokio::test]
    async fn gzip_pages_go_out_by_sendfile_and_arrive_whole() {
        // 32 MB: more than the socket buffers take at once, so sendfile is
        // called again and again at moving offsets.
        let gzip = noise(32 << 20, 7);
        let (addr, _tx, state, stop) = server(page(gzip.clone())).await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        for round in 1..=2u64 {
            let (len, gz) = request(&mut c, true).await;
            assert!(gz);
            assert_eq!(len, gzip.len());
            assert!(
                body(&mut c, len).await == gzip[..],
                "round {round}: body differs"
            );
            assert_eq!(
                state.zero_copy_bytes.load(Ordering::Relaxed),
                round * gzip.len() as u64,
                "the whole body went by sendfile"
            );
        }
        // Identity is written as before, on the same connection.
        let (len, gz) = request(&mut c, false).await;
        assert!(!gz);
        assert_eq!(body(&mut c, len).await, b"plain page\n");
        assert_eq!(
            state.zero_copy_bytes.load(Ordering::Relaxed),
            2 * gzip.len() as u64
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn a_page_replaced_while_being_sent_still_arrives_whole() {
        // 32 MB, more than the socket buffers on both ends hold: the server
        // is still sending when the new page is published.
        let old = noise(32 << 20, 11);
        let (addr, tx, state, stop) = server(page(old.clone())).await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (len, _) = request(&mut c, true).await;
        assert_eq!(len, old.len());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let new = noise(1 << 20, 13);
        tx.send_replace(page(new.clone()));
        assert!(
            body(&mut c, len).await == old[..],
            "the old page, byte for byte"
        );
        let by_sendfile = state.zero_copy_bytes.load(Ordering::Relaxed);
        assert!(
            by_sendfile > 0 && by_sendfile < old.len() as u64,
            "part by sendfile, the rest copied after the switch: {by_sendfile}"
        );
        // The next scrape gets the new page, by sendfile.
        let (len, _) = request(&mut c, true).await;
        assert!(body(&mut c, len).await == new[..]);
        assert_eq!(
            state.zero_copy_bytes.load(Ordering::Relaxed),
            by_sendfile + new.len() as u64
        );
        stop.cancel();
    }

    #[test]
    fn the_copy_holds_the_bytes_and_cannot_change() {
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let file = kernel_copy(&bytes).expect("memfd");
        let mut f = file.try_clone().expect("dup");
        f.rewind().expect("seek");
        let mut back = Vec::new();
        f.read_to_end(&mut back).expect("read");
        assert_eq!(back, bytes);
        assert!(f.write_all(b"x").is_err(), "sealed against writes");
        assert!(f.set_len(10).is_err(), "sealed against shrinking");
    }
}
