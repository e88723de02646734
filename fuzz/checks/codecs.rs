//! Bytes read back from disk or a peer: row values, key values, change
//! feed records and sync batches decode or fail cleanly; what decodes
//! encodes back to the same values.
//!
//! Shared by the cargo-fuzz target of the same name and by
//! tests/it/fuzz_replay.rs, which `cargo test` runs.

use chronos::storage::{keycode, rowcodec};

pub fn check(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            if let Ok((row, version)) = rowcodec::decode_row(bytes) {
                let again = rowcodec::encode_row(&row, version, 0);
                let (back, _) = rowcodec::decode_row(&again).expect("re-encoded row decodes");
                assert_eq!(format!("{row:?}"), format!("{back:?}"));
            }
            let _ = rowcodec::decode_meta(bytes);
        }
        1 => {
            if let Ok(values) = keycode::decode_values(bytes) {
                let again = keycode::encode_values(values.iter());
                let back = keycode::decode_values(&again).expect("re-encoded key decodes");
                assert_eq!(format!("{values:?}"), format!("{back:?}"));
            }
            let _ = keycode::prefix_len(bytes, 2);
        }
        2 => {
            let _ = chronos::changes::record::decode(7, bytes);
        }
        3 => {
            let _ = chronos::sync::batch::decode_changes("t", bytes);
        }
        _ => {
            let _ = keycode::decode_value(bytes);
        }
    }
}
