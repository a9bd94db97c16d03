//! Server-generated row ids: a prefix and random lowercase hex, never derived from anything a
//! client or an upstream sent. Ids the server owns cannot collide across tenants, cannot be
//! guessed, and cannot be chosen by an upstream that repeats its own ids.

/// `prefix` followed by `hex_len` random lowercase hex digits (4 random bits each).
///
/// The randomness is the operating system's (through UUID v4); the two fixed nibbles of each
/// UUID (its version and variant) are skipped, so every digit is uniform.
pub fn random_id(prefix: &str, hex_len: usize) -> String {
    let mut id = String::with_capacity(prefix.len() + hex_len);
    id.push_str(prefix);
    let mut left = hex_len;
    while left > 0 {
        let uuid = uuid::Uuid::new_v4();
        let mut buf = uuid::Uuid::encode_buffer();
        let hex = uuid.simple().encode_lower(&mut buf);
        for (i, c) in hex.chars().enumerate() {
            // Position 12 is the version nibble, 16 the variant's (two fixed bits).
            if i == 12 || i == 16 || left == 0 {
                continue;
            }
            id.push(c);
            left -= 1;
        }
    }
    id
}
