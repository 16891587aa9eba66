//! Small text helpers shared by messages across the layers.

/// The first `chars` characters of a text, with `…` when it was longer: for quoting values
/// and programs in messages without quoting whole payloads.
pub fn shorten(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn cuts_on_characters_not_bytes() {
        assert_eq!(shorten("héllo wörld", 4), "héll…");
        assert_eq!(shorten("short", 10), "short");
    }
}
