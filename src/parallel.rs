//! Work spread over every core: an ordered map over indices, which every stage that runs
//! one piece of work per file, cluster or part uses.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `work(i)` for every `i` below `count`, on all cores, its results in index order. Each
/// worker takes the next index when it is done with one, so the lowest indices start first
/// and a slow index does not hold up the others.
///
/// # Errors
/// When `work` panicked on some index (the panic hook has printed it): the payload of the
/// first panicking worker's panic.
pub fn map<T: Send>(count: usize, work: impl Fn(usize) -> T + Sync) -> std::thread::Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(count.max(1));
    let mut results = Vec::with_capacity(count);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            break done;
                        }
                        done.push((i, work(i)));
                    }
                })
            })
            .collect();
        // Every worker is joined, so that a second panic is not raised again by `scope`.
        let mut panicked = None;
        for worker in workers {
            match worker.join() {
                Ok(done) => results.extend(done),
                Err(payload) => {
                    panicked.get_or_insert(payload);
                }
            }
        }
        panicked.map_or(Ok(()), Err)
    })?;
    results.sort_unstable_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, result)| result).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_in_index_order_whatever_finishes_first() {
        let squares = super::map(100, |i| {
            // Early indices take longest.
            std::thread::sleep(std::time::Duration::from_micros((100 - i as u64) * 20));
            i * i
        })
        .unwrap();
        assert_eq!(squares, (0..100).map(|i| i * i).collect::<Vec<_>>());
        assert!(super::map(0, |i| i).unwrap().is_empty());
    }

    #[test]
    fn a_panic_is_returned_not_raised_even_when_every_worker_panics() {
        assert!(super::map(8, |i| assert!(i != 5, "index five")).is_err());
        assert!(super::map(8, |i| assert!(i > 100, "every index")).is_err());
    }
}
