//! What every fuzz target does with its input: decode it to the end (bounded, so a
//! pathological input cannot hang the fuzzer) and touch every item.

use vigil_ingest::DecodeOptions;

pub fn drive(data: &[u8], opts: &DecodeOptions) {
    let reader = Box::new(std::io::Cursor::new(data.to_vec()));
    if let Ok(decoder) = vigil_ingest::open_reader(std::path::Path::new("fuzz-input"), reader, opts) {
        for item in decoder.take(1_000_000) {
            std::hint::black_box(&item);
        }
    }
}
