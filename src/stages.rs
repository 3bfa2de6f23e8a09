//! Batches through four stages, on every core, in input order: read,
//! decode, admit, encode, write. Decoding and encoding a batch need
//! nothing but the batch, so long-lived workers do them side by side;
//! admitting (the seen-store, the group buffer) and writing depend on what
//! came before, so the calling thread does them, strictly in order, while
//! the workers go on with the next batches.
//!
//! A fork and a join per batch, as before, left one core waiting while the
//! other read, admitted and wrote; for the cheapest translations that cost
//! about what the second core saved.

use std::collections::BTreeMap;
use std::sync::{mpsc, Mutex};
use std::thread;

use crate::error::{Error, Result};

/// Work for a worker, numbered in input order.
enum Job<B, A> {
    Decode(u64, B),
    Encode(u64, A),
}

/// A worker's result, numbered as its job was.
enum Done<D, E> {
    Decoded(u64, D),
    Encoded(u64, E),
}

/// Batches read but not yet written, per worker: enough that no worker
/// waits for the calling thread, few enough that memory stays flat.
const IN_FLIGHT_PER_WORKER: u64 = 2;

/// Runs every batch `read` gives (until `None`) through `decode` and
/// `encode` on `workers` threads and through `admit` and `write` on this
/// one, each batch in turn. With one worker everything runs here, in
/// sequence, with no thread or channel. The first error of `read`, `admit`
/// or `write` stops the run and is returned.
pub fn run<B, D, A, E>(
    workers: usize,
    mut read: impl FnMut() -> Result<Option<B>>,
    decode: impl Fn(B) -> D + Sync,
    mut admit: impl FnMut(D) -> Result<A>,
    encode: impl Fn(A) -> E + Sync,
    mut write: impl FnMut(E) -> Result<()>,
) -> Result<()>
where
    B: Send,
    D: Send,
    A: Send,
    E: Send,
{
    if workers <= 1 {
        while let Some(batch) = read()? {
            write(encode(admit(decode(batch))?))?;
        }
        return Ok(());
    }
    let (jobs, job_queue) = mpsc::channel::<Job<B, A>>();
    let job_queue = Mutex::new(job_queue);
    let (results, finished) = mpsc::channel::<Done<D, E>>();
    let (decode, encode) = (&decode, &encode);
    thread::scope(|scope| {
        for _ in 0..workers {
            let (job_queue, results) = (&job_queue, results.clone());
            scope.spawn(move || loop {
                // The lock is held only while waiting for the next job.
                let job = match job_queue.lock() {
                    Ok(queue) => queue.recv(),
                    Err(_) => return,
                };
                let done = match job {
                    Ok(Job::Decode(number, batch)) => Done::Decoded(number, decode(batch)),
                    Ok(Job::Encode(number, batch)) => Done::Encoded(number, encode(batch)),
                    Err(_) => return,
                };
                if results.send(done).is_err() {
                    return;
                }
            });
        }
        drop(results);
        let limit = IN_FLIGHT_PER_WORKER * workers as u64;
        // `jobs` is moved in, so the workers stop when this returns.
        in_order(jobs, &finished, limit, &mut read, &mut admit, &mut write)
    })
}

/// The calling thread's part: reads while fewer than `limit` batches are in
/// flight, and admits and writes finished batches in their input order.
fn in_order<B, D, A, E>(
    jobs: mpsc::Sender<Job<B, A>>,
    finished: &mpsc::Receiver<Done<D, E>>,
    limit: u64,
    read: &mut impl FnMut() -> Result<Option<B>>,
    admit: &mut impl FnMut(D) -> Result<A>,
    write: &mut impl FnMut(E) -> Result<()>,
) -> Result<()> {
    let stopped = || Error::Io(std::io::Error::other("a translation worker stopped"));
    let (mut read_count, mut admitted, mut written) = (0u64, 0u64, 0u64);
    let mut all_read = false;
    let mut decoded: BTreeMap<u64, D> = BTreeMap::new();
    let mut encoded: BTreeMap<u64, E> = BTreeMap::new();
    loop {
        while !all_read && read_count - written < limit {
            match read()? {
                Some(batch) => {
                    jobs.send(Job::Decode(read_count, batch))
                        .map_err(|_| stopped())?;
                    read_count += 1;
                }
                None => all_read = true,
            }
        }
        if all_read && written == read_count {
            return Ok(());
        }
        match finished.recv().map_err(|_| stopped())? {
            Done::Decoded(number, batch) => {
                decoded.insert(number, batch);
                while let Some(batch) = decoded.remove(&admitted) {
                    jobs.send(Job::Encode(admitted, admit(batch)?))
                        .map_err(|_| stopped())?;
                    admitted += 1;
                }
            }
            Done::Encoded(number, batch) => {
                encoded.insert(number, batch);
                while let Some(batch) = encoded.remove(&written) {
                    write(batch)?;
                    written += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs batches `0..count` through stages that record what they saw.
    fn numbers(workers: usize, count: u32) -> (Vec<u32>, Vec<u32>) {
        let mut next = 0;
        let mut admitted = Vec::new();
        let mut written = Vec::new();
        let outcome = run(
            workers,
            || {
                next += 1;
                Ok((next <= count).then_some(next - 1))
            },
            |batch| {
                // Uneven work, so that batches finish out of order.
                thread::sleep(std::time::Duration::from_micros(u64::from(batch % 3) * 200));
                batch * 10
            },
            |batch| {
                admitted.push(batch);
                Ok(batch + 1)
            },
            |batch| batch * 2,
            |batch| {
                written.push(batch);
                Ok(())
            },
        );
        assert!(outcome.is_ok());
        (admitted, written)
    }

    #[test]
    fn every_batch_is_admitted_and_written_once_in_order() {
        for workers in [1, 2, 5] {
            let (admitted, written) = numbers(workers, 50);
            let expected: Vec<u32> = (0..50).map(|n| n * 10).collect();
            assert_eq!(admitted, expected, "{workers} workers");
            let expected: Vec<u32> = (0..50).map(|n| (n * 10 + 1) * 2).collect();
            assert_eq!(written, expected, "{workers} workers");
        }
    }

    #[test]
    fn no_batches_no_calls() {
        assert_eq!(numbers(2, 0), (vec![], vec![]));
    }

    #[test]
    fn an_error_stops_the_run_and_is_returned() {
        let mut next = 0;
        let mut written = 0;
        let outcome = run(
            2,
            || {
                next += 1;
                Ok(Some(next))
            },
            |batch| batch,
            |batch| {
                if batch == 7 {
                    return Err(Error::shape("seven"));
                }
                Ok(batch)
            },
            |batch| batch,
            |_| {
                written += 1;
                Ok(())
            },
        );
        assert!(matches!(outcome, Err(Error::Shape(message)) if message == "seven"));
        assert!(written < 7);
    }
}
