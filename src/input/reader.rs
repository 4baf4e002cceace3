//! A partition's input and its line reader. A regular file is read in place
//! on the worker that owns it; anything else (stdin, a pipe, a terminal) is
//! read on a thread of its own, so that a worker never waits for a writer:
//! while no bytes arrive, the worker goes on with the rest of the dataflow,
//! and the reading thread wakes the source operator when they do.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::{Arc, OnceLock};

use crate::model::event;

/// Bytes asked of a pipe per read.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks a reading thread may hold ahead of its source operator.
const CHUNKS_AHEAD: usize = 32;

/// Called by a reading thread when it has sent a chunk or reached the end.
type Wake = Box<dyn Fn() + Send + Sync>;

/// The input of one partition.
pub enum Reader {
    /// A regular file: a read never waits on a writer.
    File(BufReader<File>),
    /// Bytes read on a thread of their own.
    Stream(Streamed),
}

impl Reader {
    /// Opens `path`: regular files are read in place, other files (named
    /// pipes, devices) on a thread of their own. Also gives the file's size
    /// when it is a regular file.
    pub fn open(path: &Path) -> io::Result<(Reader, Option<u64>)> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_file() {
            let reader = BufReader::with_capacity(1 << 20, file);
            Ok((Reader::File(reader), Some(meta.len())))
        } else {
            Ok((Reader::Stream(Streamed::spawn(path.display(), file)), None))
        }
    }

    /// Standard input, read on a thread of its own.
    pub fn stdin() -> Reader {
        Reader::Stream(Streamed::spawn("stdin", io::stdin()))
    }

    /// Has `wake` called whenever more input (or its end) is ready after
    /// [`read_line_capped`] said [`Got::Pending`].
    pub fn on_ready(&self, wake: impl Fn() + Send + Sync + 'static) {
        if let Reader::Stream(s) = self {
            let _ = s.wake.set(Box::new(wake));
        }
    }

    fn buf_read(&mut self) -> &mut dyn BufRead {
        match self {
            Reader::File(f) => f,
            Reader::Stream(s) => s,
        }
    }
}

/// The receiving end of a reading thread. `fill_buf` never waits: with no
/// chunk at hand it fails with [`io::ErrorKind::WouldBlock`].
pub struct Streamed {
    chunks: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
    ended: bool,
    wake: Arc<OnceLock<Wake>>,
}

impl Streamed {
    fn spawn(name: impl std::fmt::Display, mut input: impl Read + Send + 'static) -> Streamed {
        let (send, chunks) = sync_channel(CHUNKS_AHEAD);
        let wake: Arc<OnceLock<Wake>> = Arc::new(OnceLock::new());
        let woken = wake.clone();
        let ready = move || {
            if let Some(w) = woken.get() {
                w()
            }
        };
        std::thread::Builder::new()
            .name(format!("read {name}"))
            .spawn(move || {
                loop {
                    let mut chunk = vec![0; CHUNK_BYTES];
                    let sent = match input.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => {
                            chunk.truncate(n);
                            send.send(Ok(chunk))
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            let _ = send.send(Err(e));
                            break;
                        }
                    };
                    if sent.is_err() {
                        return;
                    }
                    ready();
                }
                drop(send);
                ready();
            })
            .expect("spawn an input thread");
        Streamed {
            chunks,
            chunk: Vec::new(),
            at: 0,
            ended: false,
            wake,
        }
    }
}

impl Read for Streamed {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Streamed {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.at == self.chunk.len() && !self.ended {
            match self.chunks.try_recv() {
                Ok(chunk) => {
                    self.chunk = chunk?;
                    self.at = 0;
                }
                Err(TryRecvError::Empty) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(TryRecvError::Disconnected) => self.ended = true,
            }
        }
        Ok(&self.chunk[self.at..])
    }

    fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.chunk.len());
    }
}

/// A line being read by [`read_line_capped`]; it may take several calls.
/// It has started once it consumed a byte.
#[derive(Debug)]
pub struct Line {
    /// Bytes consumed from the input, newline included.
    pub consumed: usize,
    /// The line's length without its newline.
    pub len: usize,
    /// Whether the bytes past the kept prefix were all JSON white space.
    pub rest_blank: bool,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            consumed: 0,
            len: 0,
            rest_blank: true,
        }
    }
}

/// What [`read_line_capped`] got.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    /// A whole line (or the last one, without a newline).
    Line,
    /// The end of the input.
    End,
    /// No more bytes yet; call again when the reader is ready.
    Pending,
}

/// Reads one line into `buf` (without its `\n`), keeping at most `keep + 1`
/// bytes of it so that an endless line cannot exhaust memory. A line that is
/// only partly there gives [`Got::Pending`] and goes on at the next call;
/// after [`Got::Line`], reset `line` (to its default) before the next.
pub fn read_line_capped(
    reader: &mut Reader,
    buf: &mut Vec<u8>,
    line: &mut Line,
    keep: usize,
) -> io::Result<Got> {
    if line.consumed == 0 {
        buf.clear();
    }
    let r = reader.buf_read();
    loop {
        let available = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Got::Pending),
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if line.consumed > 0 {
                Got::Line
            } else {
                Got::End
            });
        }
        let newline = available.iter().position(|&b| b == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        let room = (keep + 1).saturating_sub(buf.len()).min(chunk.len());
        buf.extend_from_slice(&chunk[..room]);
        line.rest_blank &= event::is_blank(&chunk[room..]);
        line.len += chunk.len();
        let used = chunk.len() + usize::from(newline.is_some());
        line.consumed += used;
        r.consume(used);
        if newline.is_some() {
            return Ok(Got::Line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::channel;
    use std::time::Duration;

    /// A pipe written in pieces that split lines: each piece is read as it
    /// arrives, a split line waits for its end, and nothing ever blocks.
    #[test]
    fn a_pipe_is_read_as_it_arrives_without_waiting() {
        let (feed, pieces) = channel::<Vec<u8>>();
        struct Pieces(std::sync::mpsc::Receiver<Vec<u8>>);
        impl io::Read for Pieces {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                match self.0.recv() {
                    Ok(p) => {
                        out[..p.len()].copy_from_slice(&p);
                        Ok(p.len())
                    }
                    Err(_) => Ok(0),
                }
            }
        }
        let mut reader = Reader::Stream(Streamed::spawn("test", Pieces(pieces)));
        let woken = Arc::new(AtomicUsize::new(0));
        let count = woken.clone();
        reader.on_ready(move || {
            count.fetch_add(1, Ordering::SeqCst);
        });
        let (mut buf, mut line) = (Vec::new(), Line::default());
        let next = |reader: &mut Reader, buf: &mut Vec<u8>, line: &mut Line| {
            let r = read_line_capped(reader, buf, line, 100).expect("read");
            if r == Got::Line {
                let got = (String::from_utf8(buf.clone()).expect("utf8"), line.len);
                buf.clear();
                *line = Line::default();
                return Some(got);
            }
            assert_eq!(r, Got::Pending);
            None
        };
        let settle = |n: usize| {
            for _ in 0..500 {
                if woken.load(Ordering::SeqCst) >= n {
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            panic!("no wake-up");
        };
        assert_eq!(next(&mut reader, &mut buf, &mut line), None);
        feed.send(b"first\nsec".to_vec()).expect("feed");
        settle(1);
        assert_eq!(
            next(&mut reader, &mut buf, &mut line),
            Some(("first".into(), 5))
        );
        assert_eq!(next(&mut reader, &mut buf, &mut line), None);
        feed.send(b"ond\nlast".to_vec()).expect("feed");
        settle(2);
        assert_eq!(
            next(&mut reader, &mut buf, &mut line),
            Some(("second".into(), 6))
        );
        drop(feed);
        settle(3);
        assert_eq!(
            read_line_capped(&mut reader, &mut buf, &mut line, 100).expect("read"),
            Got::Line
        );
        assert_eq!(buf, b"last");
        buf.clear();
        line = Line::default();
        assert_eq!(
            read_line_capped(&mut reader, &mut buf, &mut line, 100).expect("read"),
            Got::End
        );
    }
}
