//! STIX adapter throughput, both directions, on the fixtures repeated to
//! about 10,000 events: encoding envelopes into bundles, decoding the
//! bridge's own bundles (extension path) and foreign bundles (patterns and
//! SCOs).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use intelmq_bridge::envelope::Envelope;
use intelmq_bridge::formats::stix::Stix;
use intelmq_bridge::formats::{DecodeContext, EncodeContext, Format};
use intelmq_bridge::harmonization::Harmonization;
use serde_json::Value;

const EVENTS: usize = 10_000;

fn read_dir_json(folder: &str) -> Vec<Value> {
    common::fixtures(&format!("fixtures/stix/{folder}"))
        .into_iter()
        .map(|(_, document)| document)
        .collect()
}

fn repeat<T: Clone>(items: &[T], count: usize) -> Vec<T> {
    items.iter().cycle().take(count).cloned().collect()
}

fn stix(c: &mut Criterion) {
    let encode_context = EncodeContext::new("bench");
    let decode_context = DecodeContext::new("bench");
    let envelopes: Vec<Envelope> = read_dir_json("from-intelmq")
        .into_iter()
        .map(|value| Envelope::from_value(value, Harmonization::intelmq()).unwrap())
        .collect();
    let envelopes = repeat(&envelopes, EVENTS);
    let own: Vec<Value> = envelopes
        .iter()
        .map(|envelope| {
            Stix.encode(std::slice::from_ref(envelope), &encode_context)
                .unwrap()
                .remove(0)
        })
        .collect();

    let foreign = read_dir_json("foreign");
    let per_round: usize = foreign
        .iter()
        .map(|bundle| Stix.decode(bundle.clone(), &decode_context).unwrap().len())
        .sum();
    let foreign = repeat(&foreign, foreign.len() * EVENTS.div_ceil(per_round));
    let foreign_events = foreign.len() / read_dir_json("foreign").len() * per_round;

    let mut group = c.benchmark_group("stix");
    group.throughput(Throughput::Elements(envelopes.len() as u64));
    group.bench_function("encode", |b| {
        b.iter(|| {
            for envelope in &envelopes {
                black_box(
                    Stix.encode(std::slice::from_ref(envelope), &encode_context)
                        .unwrap(),
                );
            }
        })
    });
    group.throughput(Throughput::Elements(own.len() as u64));
    group.bench_function("decode-own", |b| {
        b.iter(|| {
            for bundle in &own {
                black_box(Stix.decode(bundle.clone(), &decode_context).unwrap());
            }
        })
    });
    group.throughput(Throughput::Elements(foreign_events as u64));
    group.bench_function("decode-foreign", |b| {
        b.iter(|| {
            for bundle in &foreign {
                black_box(Stix.decode(bundle.clone(), &decode_context).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, stix);
criterion_main!(benches);
