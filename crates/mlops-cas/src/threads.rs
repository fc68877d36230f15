//! The threads that walk, hash and link workspace files.
//!
//! That work is mostly system calls, and any of them may wait on the disk: a folder block or an
//! inode-table block that was evicted must be read back before a `stat` or a `link` returns. With
//! one thread per core such a wait leaves the core idle, so `add`, `status` and `checkout` run on
//! a pool of two threads per core, where another thread uses the core meanwhile. (On a 2-core VM
//! whose page cache is trimmed in the background, `add` of 20,000 files read 1-6 MB of metadata
//! back from the disk and took 0.38-0.48 s with 2 threads, 0.33-0.35 s with 4; with everything
//! cached both took 0.31-0.34 s.) `RAYON_NUM_THREADS`, when set, is the pool's size instead.

use std::sync::OnceLock;

/// Runs `work` on the file pool: its parallel iterators, and those of everything it calls, use
/// that pool's threads. Without a pool (threads could not be started) `work` runs where it is.
pub(crate) fn on_file_threads<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(file_threads(
                std::env::var("RAYON_NUM_THREADS").ok().as_deref(),
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            ))
            .thread_name(|i| format!("mlops-files-{i}"))
            .build()
            .ok()
    });
    match pool {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

/// The pool's size: `RAYON_NUM_THREADS` when it is a positive number, else two per core.
fn file_threads(env: Option<&str>, cores: usize) -> usize {
    env.and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(cores.max(1) * 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_threads_per_core_unless_the_environment_says_otherwise() {
        assert_eq!(file_threads(None, 2), 4);
        assert_eq!(file_threads(None, 0), 2);
        assert_eq!(file_threads(Some("3"), 2), 3);
        assert_eq!(file_threads(Some(" 1 "), 8), 1);
        // Not a usable number: the default.
        for bad in ["0", "", "many", "-2"] {
            assert_eq!(file_threads(Some(bad), 2), 4, "{bad:?}");
        }
    }

    #[test]
    fn work_runs_on_the_file_threads() {
        let name = on_file_threads(|| {
            rayon::current_thread_index().map(|_| std::thread::current().name().map(str::to_owned))
        });
        assert!(
            matches!(&name, Some(Some(n)) if n.starts_with("mlops-files-")),
            "{name:?}"
        );
    }
}
