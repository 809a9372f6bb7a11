//! Any bytes a client could send, through the server's frame decoder: it
//! must answer (a call or "Invalid message") and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some((content, _reference)) = liveview::__fuzz::decode(text, "fuzz-room") {
            // Normalised keys never keep an upper-case letter.
            for (key, _) in content.form.iter().chain(content.data.iter()) {
                assert!(!key.bytes().any(|b| b.is_ascii_uppercase()), "{key}");
            }
        }
    }
});
