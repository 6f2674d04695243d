//! How the store names what it keeps.

/// Deliveries, events and attempts are named by lowercase ULIDs: unique
/// across replicas and sorted by creation time.
pub type DeliveryId = String;

/// A fresh identifier.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string().to_ascii_lowercase()
}
