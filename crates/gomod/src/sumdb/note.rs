//! Signed notes: a text, a blank line, then `— <name> <base64(keyhash‖sig)>`
//! lines. A verifier key is `<name>+<8 hex digits of key hash>+<base64 of
//! 0x01‖Ed25519 public key>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

const ALG_ED25519: u8 = 1;
const SIG_PREFIX: &str = "\u{2014} ";
const MAX_SIGNATURES: usize = 100;

/// A parsed verifier key (`sum.golang.org+033de0ae+Ac4z…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    hash: u32,
    key: VerifyingKey,
    text: String,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::Sumdb(reason.into())
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(char::is_whitespace) && !name.contains('+')
}

fn key_hash(name: &str, key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(key);
    let sum = h.finalize();
    u32::from_be_bytes([sum[0], sum[1], sum[2], sum[3]])
}

impl Verifier {
    /// Parses `name+hash+key`, checking the key hash against the key.
    pub fn parse(vkey: &str) -> Result<Verifier> {
        let malformed = || bad(format!("verifier key {vkey:?} is not of the form <name>+<8 hex digits>+<base64 key>"));
        let (name, rest) = vkey.split_once('+').ok_or_else(malformed)?;
        let (hash16, key64) = rest.split_once('+').ok_or_else(malformed)?;
        if hash16.len() != 8 || !is_valid_name(name) {
            return Err(malformed());
        }
        let hash = u32::from_str_radix(hash16, 16).map_err(|_| malformed())?;
        let key = STANDARD.decode(key64).map_err(|_| malformed())?;
        if key.is_empty() {
            return Err(malformed());
        }
        if key_hash(name, &key) != hash {
            return Err(bad(format!("verifier key {vkey:?}: key hash {hash16} does not match the key")));
        }
        if key[0] != ALG_ED25519 {
            return Err(bad(format!("verifier key {vkey:?}: unknown algorithm {}", key[0])));
        }
        let bytes: [u8; 32] = key[1..].try_into().map_err(|_| malformed())?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|e| bad(format!("verifier key {vkey:?}: {e}")))?;
        Ok(Verifier { name: name.to_string(), hash, key, text: vkey.to_string() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_hash(&self) -> u32 {
        self.hash
    }

    /// The key as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Checks that `msg` is a signed note carrying a valid signature by
/// `verifier` and returns its text (ending in a newline). Signatures by
/// other keys are ignored; a bad signature by this key is an error.
pub fn open_note<'a>(msg: &'a [u8], verifier: &Verifier) -> Result<&'a str> {
    let msg = std::str::from_utf8(msg).map_err(|_| bad("signed note is not UTF-8"))?;
    if msg.chars().any(|c| c < '\u{20}' && c != '\n') {
        return Err(bad("signed note contains control characters"));
    }
    let split = msg.rfind("\n\n").ok_or_else(|| bad("signed note has no signature block"))?;
    let (text, sigs) = (&msg[..split + 1], &msg[split + 2..]);
    if !sigs.ends_with('\n') {
        return Err(bad("signed note's signature block does not end in a newline"));
    }
    let mut verified = false;
    for (count, line) in sigs.lines().enumerate() {
        if count >= MAX_SIGNATURES {
            return Err(bad("signed note has too many signatures"));
        }
        let line = line.strip_prefix(SIG_PREFIX).ok_or_else(|| bad("signed note has a malformed signature line"))?;
        let (name, b64) = line.split_once(' ').unwrap_or((line, ""));
        let sig = STANDARD.decode(b64).map_err(|_| bad("signed note has a malformed signature"))?;
        if !is_valid_name(name) || sig.len() < 5 {
            return Err(bad("signed note has a malformed signature"));
        }
        let hash = u32::from_be_bytes([sig[0], sig[1], sig[2], sig[3]]);
        if name != verifier.name || hash != verifier.hash {
            continue;
        }
        let sig = Signature::from_slice(&sig[4..]).map_err(|_| bad(format!("signature by {name} has the wrong length")))?;
        if verifier.key.verify_strict(text.as_bytes(), &sig).is_err() {
            return Err(bad(format!("invalid signature by {name}+{hash:08x}")));
        }
        verified = true;
    }
    if !verified {
        return Err(bad(format!("signed note carries no signature by {}+{:08x}", verifier.name, verifier.hash)));
    }
    Ok(text)
}
