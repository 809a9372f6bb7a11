//! Any bytes a client could send, through the server's frame decoder: it
//! must answer (a call or "Invalid message"), never panic, and decide
//! exactly as the parser it replaced (kept as `decode_reference`): the same
//! content, the same `ref`, a refusal for the same frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liveview::__fuzz::{decode, decode_reference};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let decoded = decode(text, "fuzz-room");
        if let Some((content, _reference)) = &decoded {
            // Normalised keys never keep an upper-case letter.
            for (key, _) in content.form.iter().chain(content.data.iter()) {
                assert!(!key.bytes().any(|b| b.is_ascii_uppercase()), "{key}");
            }
        }
        let reference = decode_reference(text, "fuzz-room");
        assert_eq!(decoded, reference, "{text}");
        if let (Some((new, _)), Some((old, _))) = (&decoded, &reference) {
            // And in the same order.
            assert!(new.form.iter().eq(old.form.iter()), "{text}");
            assert!(new.data.iter().eq(old.data.iter()), "{text}");
        }
    }
});
