//! The seeded random streams (SPEC §4): every random draw of a run comes from
//! a ChaCha20 generator keyed by the spec's seed, one stream per purpose, so
//! that a spec reproduces bit for bit on any machine and changing how many
//! numbers one purpose draws never shifts the others.
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// What a generator is for; each purpose has its own ChaCha stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RngStream {
    /// Synthetic data (stream 0).
    Data,
    /// Initial parameters w0 (stream 1).
    Init,
    /// The order of a built-in data set's rows (stream 2), before its split
    /// into training and query rows (`crate::data::builtin`).
    DatasetShuffle,
    /// The batches of an sgd/adam run (stream 3, `crate::batches`).
    Batches,
}

impl RngStream {
    fn id(self) -> u64 {
        match self {
            RngStream::Data => 0,
            RngStream::Init => 1,
            RngStream::DatasetShuffle => 2,
            RngStream::Batches => 3,
        }
    }
}

/// The generator for `stream` under `seed`: `seed_from_u64(seed)`, then
/// `set_stream(0)` for data, `set_stream(1)` for init, `set_stream(2)` for a
/// built-in data set's shuffle, `set_stream(3)` for an optimizer's batches. Streams of one seed never overlap, so the
/// draws of different purposes are independent.
pub fn generator(seed: u64, stream: RngStream) -> ChaCha20Rng {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_stream(stream.id());
    rng
}
