//! The seen-store's cost per message: the translation benchmark's
//! per-event budget is a few microseconds, and this must not show in it.
//! Each message carries three ids (its own, an `idea:` and an `n6:` one).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use intelmq_bridge::identity::{FileStore, SeenStore};

const MESSAGES: usize = 100_000;

fn ids(round: usize, message: usize) -> Vec<String> {
    vec![
        format!("0192f3a4-{round:04x}-7000-8000-{message:012x}"),
        format!("idea:{round}-{message}"),
        format!("n6:{round:08x}{message:024x}"),
    ]
}

fn file_store(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("intelmq-bridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("seen.redb");
    let _ = std::fs::remove_file(&path);
    let mut store = FileStore::open(&path, Duration::from_secs(7 * 24 * 3600)).expect("store");
    let mut group = c.benchmark_group("seen-store");
    group.sample_size(10);
    group.throughput(Throughput::Elements(MESSAGES as u64));
    let mut round = 0;
    group.bench_function("file store: new messages, 3 ids each, flushed", |b| {
        b.iter(|| {
            round += 1;
            for message in 0..MESSAGES {
                store.seen_any(&ids(round, message)).expect("store works");
            }
            store.flush().expect("flush")
        })
    });
    group.bench_function("file store: duplicates, 3 ids each", |b| {
        b.iter(|| {
            for message in 0..MESSAGES {
                store.seen_any(&ids(1, message)).expect("store works");
            }
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, file_store);
criterion_main!(benches);
