//! Signed policies: an operator's Ed25519 key signs a version's digest and description, a
//! tenant's state names the public keys it trusts ([`TrustedKey`]), and the hosts load a
//! tenant's version only if one of them signed it ([`verify`]) — the upload and activation
//! check it too, but the hosts are the last word: a version written into the registry by other
//! means is refused where it would run.
//!
//! Key files: the signing key is the 32-byte Ed25519 seed in hex on one line (keep it secret:
//! it is written with mode 0600); the public key the same for the 32-byte public key. A key's
//! id is the first 16 hex digits of the SHA-256 of its public key: what a version records as
//! who uploaded it.
//!
//! Ed25519 through `ed25519-dalek` (RustCrypto's, widely used, constant-time): small keys and
//! signatures that fit in a registry record. `wasmsign2` embeds signatures in the module, but
//! the registry already pins the bytes by digest and keeps the metadata beside them, so a
//! signature over the digest and the description is all the chain needs.

use std::path::Path;

use ed25519_dalek::{Signature, Signer, Verifier};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use policy_types::Description;
use sha2::{Digest, Sha256};

use crate::registry::{PolicySignature, TrustedKey};

/// What is signed: the component's digest and the description it gives of itself.
pub fn message(digest: &str, description: &Description) -> Vec<u8> {
    let description = serde_json::to_string(description).unwrap_or_default();
    format!("tmf632-policy-signature/1\n{digest}\n{description}").into_bytes()
}

/// A public key's id: the first 16 hex digits of its SHA-256.
pub fn key_id(public: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(public.as_bytes()))[..16].to_owned()
}

/// Signs a version.
pub fn sign(key: &SigningKey, digest: &str, description: &Description) -> PolicySignature {
    let signature = key.sign(&message(digest, description));
    PolicySignature {
        key_id: key_id(&key.verifying_key()),
        signature: hex::encode(signature.to_bytes()),
    }
}

/// Why a version's signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "the version is not signed, and tenant {tenant} accepts only versions signed by one of its trusted keys ({keys})"
    )]
    Unsigned { tenant: String, keys: String },
    #[error(
        "the version is signed by key {key_id}, which tenant {tenant} does not trust (trusted: {keys})"
    )]
    UntrustedKey {
        tenant: String,
        key_id: String,
        keys: String,
    },
    #[error(
        "the signature by key {key_id} does not match the version's digest and description: the bytes, the record or the signature was altered"
    )]
    Invalid { key_id: String },
    #[error("trusted key {key_id} of tenant {tenant} is not a valid Ed25519 public key")]
    BadTrustedKey { tenant: String, key_id: String },
}

/// Checks a version's signature against the tenant's trusted keys: `Ok` when the tenant trusts
/// no key (no signature required), or when one of its keys signed this digest and description.
pub fn verify(
    tenant: &str,
    trusted: &[TrustedKey],
    digest: &str,
    description: &Description,
    signature: Option<&PolicySignature>,
) -> Result<(), SignatureError> {
    if trusted.is_empty() {
        return Ok(());
    }
    let keys = || {
        trusted
            .iter()
            .map(|k| k.key_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(signature) = signature else {
        return Err(SignatureError::Unsigned {
            tenant: tenant.to_owned(),
            keys: keys(),
        });
    };
    let Some(key) = trusted.iter().find(|k| k.key_id == signature.key_id) else {
        return Err(SignatureError::UntrustedKey {
            tenant: tenant.to_owned(),
            key_id: signature.key_id.clone(),
            keys: keys(),
        });
    };
    let public = parse_public(&key.public_key).ok_or_else(|| SignatureError::BadTrustedKey {
        tenant: tenant.to_owned(),
        key_id: key.key_id.clone(),
    })?;
    let invalid = || SignatureError::Invalid {
        key_id: signature.key_id.clone(),
    };
    let bytes: [u8; 64] = hex::decode(&signature.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(invalid)?;
    public
        .verify(
            &message(digest, description),
            &Signature::from_bytes(&bytes),
        )
        .map_err(|_| invalid())
}

/// A public key from its hex form.
pub fn parse_public(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(text.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// A signing key from a 32-byte seed.
pub fn signing_key(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&seed)
}

/// Reads a signing key file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading the signing key {}: {e}", path.display()))?;
    let seed: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            format!(
                "{} is not a signing key (64 hex digits, as `host-cli policy keygen` writes)",
                path.display()
            )
        })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The record a tenant's state keeps of a public key it trusts.
pub fn trusted_key(public: &VerifyingKey, at_ms: u64, by: &str) -> TrustedKey {
    TrustedKey {
        key_id: key_id(public),
        public_key: hex::encode(public.as_bytes()),
        added_at_ms: at_ms,
        added_by: by.to_owned(),
    }
}

/// Reads a public key file.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading the public key {}: {e}", path.display()))?;
    parse_public(&text).ok_or_else(|| {
        format!(
            "{} is not an Ed25519 public key (64 hex digits, as `host-cli policy keygen` writes to KEY.pub)",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn description() -> Description {
        Description {
            name: "p".into(),
            version: "1.0.0".into(),
            contract_version: "1.1".into(),
        }
    }

    fn trusted(key: &SigningKey) -> TrustedKey {
        TrustedKey {
            key_id: key_id(&key.verifying_key()),
            public_key: hex::encode(key.verifying_key().as_bytes()),
            added_at_ms: 0,
            added_by: "test".into(),
        }
    }

    #[test]
    fn a_trusted_signature_is_accepted_and_anything_else_refused() {
        let key = signing_key([7; 32]);
        let other = signing_key([8; 32]);
        let d = description();
        let signed = sign(&key, "abc", &d);
        let keys = [trusted(&key)];
        assert_eq!(verify("acme", &keys, "abc", &d, Some(&signed)), Ok(()));
        assert_eq!(
            verify("acme", &[], "abc", &d, None),
            Ok(()),
            "no key trusted: none needed"
        );
        assert!(matches!(
            verify("acme", &keys, "abc", &d, None),
            Err(SignatureError::Unsigned { .. })
        ));
        assert!(matches!(
            verify("acme", &keys, "abd", &d, Some(&signed)),
            Err(SignatureError::Invalid { .. })
        ));
        let mut renamed = d.clone();
        renamed.version = "1.0.1".into();
        assert!(matches!(
            verify("acme", &keys, "abc", &renamed, Some(&signed)),
            Err(SignatureError::Invalid { .. })
        ));
        let mut tampered = signed.clone();
        tampered.signature.replace_range(
            0..2,
            if &signed.signature[0..2] == "00" {
                "01"
            } else {
                "00"
            },
        );
        assert!(matches!(
            verify("acme", &keys, "abc", &d, Some(&tampered)),
            Err(SignatureError::Invalid { .. })
        ));
        let by_other = sign(&other, "abc", &d);
        assert!(matches!(
            verify("acme", &keys, "abc", &d, Some(&by_other)),
            Err(SignatureError::UntrustedKey { .. })
        ));
    }
}
