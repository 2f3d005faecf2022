//! The batches B_0 .. B_{K-1} of an sgd/adam run (SPEC §9), drawn before
//! the run from the seed's own ChaCha stream (`RngStream::Batches`, stream
//! 3), and reported so that any outside tool can replay them.
use crate::rng::{RngStream, generator};
use crate::spec::{FlowSpec, Shuffle};
use rand::Rng;

/// The K batches of a validated sgd/adam flow over N training points.
///
/// - "epoch": per epoch, one `next_u64()` key per index 0..N-1 in order;
///   the indices sorted by (key, index) are cut into consecutive batches of
///   batch_size (the epoch's last may be smaller);
/// - "none": the same cut of 0..N-1 in order;
/// - "replacement": each index of each batch is ⌊u · N / 2⁶⁴⌋ for the next
///   u = `next_u64()` (uniform up to a bias below N / 2⁶⁴);
/// - explicit `batches`: as given.
pub fn draw(flow: &FlowSpec, n: usize, seed: u64) -> Vec<Vec<usize>> {
    if let Some(batches) = &flow.batches {
        return batches.clone();
    }
    let k_total = flow.optimizer_steps();
    let size = flow.batch_size.unwrap_or(n).clamp(1, n.max(1));
    let mut rng = generator(seed, RngStream::Batches);
    let mut batches = Vec::with_capacity(k_total);
    match flow.shuffle.unwrap_or_default() {
        Shuffle::Replacement => {
            for _ in 0..k_total {
                let batch = (0..size)
                    .map(|_| ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize)
                    .collect();
                batches.push(batch);
            }
        }
        shuffle => {
            let mut order: Vec<usize> = (0..n).collect();
            while batches.len() < k_total {
                if shuffle == Shuffle::Epoch {
                    let keys: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
                    order = (0..n).collect();
                    order.sort_by_key(|&i| (keys[i], i));
                }
                for chunk in order.chunks(size) {
                    if batches.len() == k_total {
                        break;
                    }
                    batches.push(chunk.to_vec());
                }
            }
        }
    }
    batches
}
