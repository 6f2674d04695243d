//! What logs may say of a customer: an id as it is, an e-mail address
//! never. A customer known only by an address is logged as a short keyed
//! hash of it (the same customer gives the same hash on every replica and
//! across restarts, and the hash cannot be turned back into the address
//! without the store's key), and addresses in text the relay did not write
//! (a receiver's answer that echoes a payload) are blanked. URLs are cut
//! to scheme, host and port: their paths and userinfo are secrets.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The name of the key, kept in the store, that hashes addresses for logs.
pub const LOG_KEY: &str = "log-customer-hash";

/// How a customer is named in logs: its id, or `email:` and 12 hex
/// digits of a keyed hash when the key is an address.
pub fn customer(key: &str, log_key: &[u8]) -> String {
    if !key.contains('@') {
        return key.to_owned();
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(log_key).expect("HMAC takes any key length");
    mac.update(key.trim().to_lowercase().as_bytes());
    let hash: String = mac.finalize().into_bytes().iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("email:{hash}")
}

/// A URL reduced to scheme, host and port: webhook paths (Slack's
/// `/services/...`, Discord's `/api/webhooks/{id}/{token}`) and userinfo
/// are secrets.
pub fn url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            match u.port() {
                Some(port) => format!("{}://{host}:{port}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        }
        Err(_) => "(invalid url)".to_owned(),
    }
}

/// `text` with every e-mail address in it replaced by `[e-mail]`.
pub fn emails(text: &str) -> String {
    let is_local = |c: char| c.is_alphanumeric() || "._%+-".contains(c);
    let is_domain = |c: char| c.is_alphanumeric() || c == '.' || c == '-';
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (i, &(at, c)) in chars.iter().enumerate() {
        if c != '@' || at < copied {
            continue;
        }
        let start = chars[..i].iter().rev().take_while(|(_, c)| is_local(*c)).last().map(|(p, _)| *p);
        let end = chars[i + 1..].iter().take_while(|(_, c)| is_domain(*c)).last().map(|(p, c)| p + c.len_utf8());
        let (Some(start), Some(end)) = (start, end) else { continue };
        let domain = text[at + 1..end].trim_end_matches(['.', '-']);
        if start < copied || !domain.contains('.') {
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str("[e-mail]");
        copied = at + 1 + domain.len();
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_only_scheme_host_and_port() {
        assert_eq!(url("https://hooks.slack.com/services/T0/B0/secret"), "https://hooks.slack.com");
        assert_eq!(url("https://discord.com/api/webhooks/123/tok"), "https://discord.com");
        assert_eq!(url("smtp://user:pw@smtp.example.com:587?tls=required"), "smtp://smtp.example.com:587");
        assert_eq!(url("not a url"), "(invalid url)");
    }

    #[test]
    fn ids_are_logged_as_they_are_and_addresses_as_a_keyed_hash() {
        assert_eq!(customer("cus_Q1w2E3r4", b"k"), "cus_Q1w2E3r4");
        let hashed = customer("ana@northwind.example", b"k");
        assert!(hashed.starts_with("email:") && hashed.len() == 18, "{hashed}");
        assert!(!hashed.contains("ana"));
        assert_eq!(customer("Ana@Northwind.example", b"k"), hashed, "the same customer, the same hash");
        assert_ne!(customer("ana@northwind.example", b"other key"), hashed);
    }

    #[test]
    fn addresses_in_text_are_blanked() {
        assert_eq!(emails("{\"email\":\"ana@northwind.example\"}"), "{\"email\":\"[e-mail]\"}");
        assert_eq!(emails("to ana.b+x@mail.co.uk, then bo@x.io."), "to [e-mail], then [e-mail].");
        assert_eq!(emails("café ü@ü.de"), "café [e-mail]");
        for kept in ["no address", "a @ b", "user@localhost", "@handle", "x@", "@", "a@@b.c"] {
            assert_eq!(emails(kept), kept);
        }
    }
}
