//! gzip in fixed-size blocks, compressed on every core and joined in order:
//! the same bytes whatever the number of threads.
//!
//! The input is cut every [`BLOCK`] bytes (by offset in the stream, never by
//! timing). Each block is deflated on its own, primed with the 32 KiB before
//! it as a preset dictionary (as pigz does), and ends in a sync flush (an
//! empty stored block), so the blocks concatenate into one deflate stream;
//! the last ends the stream. The gzip header is fixed (no name, mtime 0) and
//! the trailer holds the CRC-32 and length of the whole input. A block's
//! output depends only on its bytes, the 32 KiB before and the level, so one
//! thread and sixteen write identical files, and layer digests stay
//! reproducible across machines.
//!
//! A [`Pool`] of compressing threads is shared by every layer of a build, so
//! a single-platform build uses all cores and three platforms do not leave
//! one core idle at the end. Each [`BlockGzip`] keeps at most
//! [`Pool::depth`] blocks in flight: memory stays flat whatever the layer size.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Bytes of input per block: large enough that the blocks cost nothing in
/// ratio (each is primed with the 32 KiB before it), small enough to spread a
/// 20 MB layer over every core.
pub const BLOCK: usize = 1 << 20;
/// Deflate's window: the preset dictionary of each block.
const WINDOW: usize = 32 * 1024;
/// gzip member header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// One block to compress.
struct Job {
    input: Vec<u8>,
    dictionary: Vec<u8>,
    last: bool,
    level: u32,
    reply: mpsc::SyncSender<io::Result<Vec<u8>>>,
}

/// Compressing threads, shared by all the streams of a build.
pub struct Pool {
    jobs: Option<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// `threads` compressing threads (0: one per core).
    pub fn new(threads: usize) -> io::Result<Self> {
        let n = if threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            threads
        };
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let rx = Arc::clone(&rx);
            let handle = std::thread::Builder::new()
                .name(format!("gzip-{i}"))
                .spawn(move || work(&rx))?;
            handles.push(handle);
        }
        Ok(Pool {
            jobs: Some(tx),
            threads: handles,
        })
    }

    /// The compressing threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Blocks one stream keeps in flight: enough to keep every thread busy.
    fn depth(&self) -> usize {
        2 * self.threads.len().max(1)
    }

    fn submit(&self, job: Job) -> io::Result<()> {
        self.jobs
            .as_ref()
            .and_then(|tx| tx.send(job).ok())
            .ok_or_else(|| io::Error::other("the gzip threads stopped"))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends the threads once they finish what they hold.
        self.jobs.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads.len())
            .finish()
    }
}

fn work(jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // A fresh compressor per block: a reset one carries state from the
        // block it did before (zlib-rs 0.6: the same bytes decompressed, other
        // bytes compressed), which would make the output depend on which thread
        // took which block. Its set-up costs little beside deflating 1 MiB.
        let mut c = Compress::new(Compression::new(job.level), false);
        let out = compress_block(&mut c, &job.input, &job.dictionary, job.last);
        // The stream may have failed and gone: nobody to tell.
        let _ = job.reply.send(out);
    }
}

/// Deflates one block, primed with `dictionary`; a sync flush ends it unless
/// it is the `last`, which ends the stream.
fn compress_block(
    c: &mut Compress,
    input: &[u8],
    dictionary: &[u8],
    last: bool,
) -> io::Result<Vec<u8>> {
    if !dictionary.is_empty() {
        c.set_dictionary(dictionary).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(input.len() / 2 + 4096);
    let start = c.total_in();
    loop {
        let done = (c.total_in() - start) as usize;
        let status = c
            .compress_vec(&input[done..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = (c.total_in() - start) as usize == input.len();
        match status {
            Status::StreamEnd => break,
            // A flush is complete when it returns with room left over.
            _ if !last && all_in && out.len() < out.capacity() => break,
            _ => out.reserve(out.capacity().max(4096)),
        }
    }
    Ok(out)
}

/// A gzip writer that compresses on a [`Pool`]; [`BlockGzip::finish`] ends the
/// stream and gives back the inner writer.
pub struct BlockGzip<'p, W: Write> {
    pool: &'p Pool,
    level: u32,
    out: W,
    block: Vec<u8>,
    /// The 32 KiB of input before `block`.
    window: Vec<u8>,
    crc: Crc,
    in_flight: VecDeque<mpsc::Receiver<io::Result<Vec<u8>>>>,
}

impl<'p, W: Write> BlockGzip<'p, W> {
    /// Writes the header into `out` at once.
    pub fn new(pool: &'p Pool, level: u32, mut out: W) -> io::Result<Self> {
        out.write_all(&HEADER)?;
        Ok(BlockGzip {
            pool,
            level,
            out,
            block: Vec::with_capacity(BLOCK),
            window: Vec::with_capacity(WINDOW),
            crc: Crc::new(),
            in_flight: VecDeque::new(),
        })
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let input = std::mem::replace(
            &mut self.block,
            Vec::with_capacity(if last { 0 } else { BLOCK }),
        );
        self.crc.update(&input);
        let dictionary = self.window.clone();
        // The next block's dictionary: the last 32 KiB of input so far.
        if input.len() >= WINDOW {
            self.window.clear();
            self.window
                .extend_from_slice(&input[input.len() - WINDOW..]);
        } else {
            self.window.extend_from_slice(&input);
            let extra = self.window.len().saturating_sub(WINDOW);
            self.window.drain(..extra);
        }
        let (reply, answer) = mpsc::sync_channel(1);
        self.pool.submit(Job {
            input,
            dictionary,
            last,
            level: self.level,
            reply,
        })?;
        self.in_flight.push_back(answer);
        while self.in_flight.len() > self.pool.depth() {
            self.settle_one()?;
        }
        Ok(())
    }

    /// Writes the oldest block in flight once it is compressed.
    fn settle_one(&mut self) -> io::Result<()> {
        if let Some(answer) = self.in_flight.pop_front() {
            let bytes = answer
                .recv()
                .map_err(|_| io::Error::other("a gzip thread stopped"))??;
            self.out.write_all(&bytes)?;
        }
        Ok(())
    }

    /// Ends the stream (last block, CRC-32 and length) and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.in_flight.is_empty() {
            self.settle_one()?;
        }
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        // ISIZE: the input's length modulo 2^32 (RFC 1952).
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for BlockGzip<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.submit(false)?;
        }
        Ok(n)
    }

    /// Blocks are cut by offset only: a flush does not end one early.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Mixed input: compressible runs, random bytes, repeats across block edges.
    fn sample(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 4 {
                0 => v.extend_from_slice(b"the same line again and again\n"),
                1 => v.extend_from_slice(&x.to_le_bytes()),
                _ => {
                    let back = v.len().min((x % 40_000) as usize);
                    let from = v.len() - back;
                    let take = back.min(300);
                    let copy = v[from..from + take].to_vec();
                    v.extend_from_slice(&copy);
                }
            }
        }
        v.truncate(len);
        v
    }

    fn gzip(pool: &Pool, data: &[u8], chunk: usize) -> Vec<u8> {
        let mut g = BlockGzip::new(pool, 6, Vec::new()).unwrap();
        for c in data.chunks(chunk.max(1)) {
            g.write_all(c).unwrap();
        }
        g.finish().unwrap()
    }

    #[test]
    fn any_thread_count_and_any_write_size_give_the_same_bytes_gunzip_reads() {
        let one = Pool::new(1).unwrap();
        let three = Pool::new(3).unwrap();
        for len in [
            0,
            1,
            WINDOW - 1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            3 * BLOCK + 12_345,
        ] {
            let data = sample(len, len as u64 + 1);
            let a = gzip(&one, &data, 4096);
            let b = gzip(&three, &data, 65_537);
            let c = gzip(&three, &data, 7);
            assert_eq!(a, b, "{len} bytes: 1 thread vs 3");
            assert_eq!(a, c, "{len} bytes: write sizes");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&a[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "{len} bytes round trip");
        }
    }

    #[test]
    fn gzip_itself_reads_it_and_the_ratio_matches_one_stream() {
        let pool = Pool::new(2).unwrap();
        let data = sample(5 * BLOCK, 7);
        let ours = gzip(&pool, &data, 1 << 16);
        // The real gzip(1), not our decoder.
        let mut child = std::process::Command::new("gzip")
            .args(["-dc"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip(1) runs");
        let mut stdin = child.stdin.take().unwrap();
        let feed = ours.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&feed));
        let mut back = Vec::new();
        child.stdout.take().unwrap().read_to_end(&mut back).unwrap();
        writer.join().unwrap().unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(back, data);
        let mut serial = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
        serial.write_all(&data).unwrap();
        let serial = serial.finish().unwrap();
        // Primed blocks cost well under 1% against one serial stream.
        assert!(
            (ours.len() as f64) < serial.len() as f64 * 1.01,
            "blocked {} vs serial {}",
            ours.len(),
            serial.len()
        );
    }
}
