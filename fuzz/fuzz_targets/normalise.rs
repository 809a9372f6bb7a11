//! Key normalisation with many keys: the first two bytes of the input say
//! how many times (up to 5,000) the rest, cut at commas, is repeated as
//! keys of `data` with a counter (each key also with the `data_` prefix,
//! and capitalised), so short inputs make frames of thousands of keys. No key may be lost or keep an upper-case letter, the
//! `data_` prefix goes only where the short key is free, and the content is
//! the one the parser it replaced (`decode_reference`) made.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use liveview::__fuzz::{decode, decode_reference, snake_case};
use serde_json::{Map, Value, json};

fuzz_target!(|input: &[u8]| {
    let (repeat, rest) = match input {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])) % 5_000 + 1, rest),
        _ => (1, input),
    };
    let text = String::from_utf8_lossy(rest);
    let fragments: Vec<&str> = text.split(',').collect();
    let keys = (0..repeat).flat_map(|r| {
        fragments
            .iter()
            .map(move |f| if r == 0 { (*f).to_owned() } else { format!("{f}{r}") })
    });
    let mut data = Map::new();
    for (i, key) in keys.enumerate().take(20_000) {
        let key = key.as_str();
        data.insert(key.to_owned(), Value::from(i));
        if i % 2 == 0 {
            data.insert(format!("data_{key}"), Value::from(i));
        }
        if i % 3 == 0 {
            data.insert(format!("data{}", key.to_uppercase()), Value::from(i));
        }
    }
    let frame = json!({"function": "f", "data": data}).to_string();
    let (content, _) = decode(&frame, "fuzz-room").expect("a valid call");
    // Exactly what the parser it replaced made of it.
    let (reference, _) = decode_reference(&frame, "fuzz-room").expect("a valid call");
    assert_eq!(content, reference, "{frame}");
    assert!(content.data.iter().eq(reference.data.iter()), "{frame}");

    // camelCase may merge two keys into one; the prefix never does.
    let snake: BTreeSet<String> = data.keys().map(|k| snake_case(k).into_owned()).collect();
    assert_eq!(content.data.len(), snake.len(), "keys lost: {frame}");
    for (key, _) in content.data.iter() {
        assert!(!key.bytes().any(|b| b.is_ascii_uppercase()), "{key}");
        let came_as_is = snake.contains(key);
        let lost_its_prefix = snake.contains(&format!("data_{key}")) && !snake.contains(key);
        assert!(came_as_is || lost_its_prefix, "{key} from nowhere: {frame}");
    }
});
