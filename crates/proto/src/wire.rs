//! The version of the cluster port's wire format.
//!
//! Every call to the cluster port (`Raft`, `Blobs`, `Admin`) carries
//! [`WIRE_HEADER`]` = `[`WIRE_VERSION`] in its gRPC metadata. A node refuses
//! a call of a version it does not speak with `FAILED_PRECONDITION` and a
//! message that names both versions, before the request body is read. A
//! call without the header is version 1 (nodes from before the header), so
//! a cluster upgrades node by node while the version stays the same.
//!
//! The version changes only when a node could not read what an older one
//! sends (a raft entry or message it cannot decode): such an upgrade is not
//! rolling (README, "Upgrades").

use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::{Code, Status};

/// The metadata key.
pub const WIRE_HEADER: &str = "flotilla-wire";
/// The wire version this build speaks.
pub const WIRE_VERSION: u32 = 1;
/// What a call without the header speaks.
const UNMARKED: u32 = 1;
/// How a refusal for the wire version starts (see [`is_wire_refusal`]).
const REFUSAL: &str = "cluster wire version mismatch";

/// Marks an outgoing call with this build's wire version.
pub fn stamp(metadata: &mut MetadataMap) {
    metadata.insert(WIRE_HEADER, AsciiMetadataValue::from(WIRE_VERSION));
}

/// Refuses a call whose wire version this build does not speak.
pub fn check(metadata: &MetadataMap) -> Result<(), Status> {
    let Some(value) = metadata.get(WIRE_HEADER) else { return check_version(UNMARKED) };
    let text = value.to_str().unwrap_or_default().trim();
    match text.parse::<u32>() {
        Ok(version) => check_version(version),
        Err(_) => Err(Status::failed_precondition(format!(
            "{REFUSAL}: the caller sent {WIRE_HEADER}: {text:?}, which is not a version number; this node speaks version {WIRE_VERSION}"
        ))),
    }
}

fn check_version(version: u32) -> Result<(), Status> {
    if version == WIRE_VERSION {
        return Ok(());
    }
    let fix = if version > WIRE_VERSION { "upgrade this node" } else { "upgrade the caller" };
    Err(Status::failed_precondition(format!(
        "{REFUSAL}: the caller speaks cluster wire version {version}, this node speaks version {WIRE_VERSION}; \
         members of one cluster must speak the same version: {fix} (see README, Upgrades)"
    )))
}

/// Whether `status` is a node refusing the caller's wire version.
pub fn is_wire_refusal(status: &Status) -> bool {
    status.code() == Code::FailedPrecondition && status.message().starts_with(REFUSAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: Option<&str>) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        if let Some(value) = value {
            metadata.insert(WIRE_HEADER, value.parse().unwrap());
        }
        metadata
    }

    #[test]
    fn the_own_version_and_an_unmarked_call_pass() {
        let mut stamped = MetadataMap::new();
        stamp(&mut stamped);
        assert_eq!(stamped.get(WIRE_HEADER).unwrap(), "1");
        check(&stamped).unwrap();
        check(&with(None)).expect("a node from before the header speaks version 1");
        check(&with(Some("1"))).unwrap();
    }

    #[test]
    fn another_version_is_refused_with_both_versions_and_the_fix() {
        let refused = check(&with(Some("99"))).unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert!(refused.message().contains("version 99") && refused.message().contains("speaks version 1"), "{}", refused.message());
        assert!(refused.message().contains("upgrade this node"), "{}", refused.message());
        assert!(is_wire_refusal(&refused));
        let older = check(&with(Some("0"))).unwrap_err();
        assert!(older.message().contains("upgrade the caller"), "{}", older.message());
        let garbage = check(&with(Some("two"))).unwrap_err();
        assert!(is_wire_refusal(&garbage) && garbage.message().contains("\"two\""), "{}", garbage.message());
        assert!(!is_wire_refusal(&Status::failed_precondition("wrong cluster")));
    }
}
