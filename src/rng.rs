//! Reproducible randomness: one ChaCha20 stream per purpose.
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// What a stream of random numbers is for; each purpose has its own stream
/// so that, say, more data points do not change the initial weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RngStream {
    Data,
    Init,
}

/// The generator for `stream` from the spec's seed.
pub fn generator(seed: u64, stream: RngStream) -> ChaCha20Rng {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_stream(match stream {
        RngStream::Data => 0,
        RngStream::Init => 1,
    });
    rng
}
