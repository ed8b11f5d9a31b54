//! DSSE envelopes (secure-systems-lab/dsse, v1) and the ECDSA P-256 keys that
//! sign and verify them, through `ring`. Pure except for nothing: keys come in
//! as PEM bytes, envelopes go out as JSON values.
//!
//! Signatures are what cosign writes: ASN.1 DER ECDSA (SHA-256) over the PAE
//! bytes, standard base64 in `signatures[].sig`, `keyid` empty.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use serde::{Deserialize, Serialize};

use crate::image::Digest;

/// The payload type of an in-toto statement inside an envelope.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1,
/// a 66-byte BIT STRING): followed by the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// DSSE's pre-authentication encoding: `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope as JSON (`payload` and `sig` base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub payload_type: String,
    pub payload: String,
    pub signatures: Vec<Signature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

impl Envelope {
    /// The payload bytes (base64-decoded); `Err` names what is wrong.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, String> {
        STANDARD
            .decode(&self.payload)
            .map_err(|e| format!("the envelope's payload is not base64: {e}"))
    }

    /// Whether some signature verifies under `key` over this envelope's PAE.
    pub fn verified_by(&self, key: &PublicKey) -> bool {
        let Ok(payload) = self.payload_bytes() else {
            return false;
        };
        let message = pae(&self.payload_type, &payload);
        self.signatures.iter().any(|s| {
            STANDARD
                .decode(&s.sig)
                .is_ok_and(|sig| key.verify(&message, &sig))
        })
    }
}

/// An ECDSA P-256 private key. Its `Debug` prints nothing of the key.
pub struct Signer {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer(key {})", self.public().fingerprint())
    }
}

impl Signer {
    /// Parses a PKCS#8 PEM P-256 private key. The error never repeats the bytes.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|_| {
            "not a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`); convert one with `openssl pkcs8 -topk8 -nocrypt`".to_string()
        })?;
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            der.secret_pkcs8_der(),
            &rng,
        )
        .map_err(|_| {
            "not an ECDSA P-256 key (make one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)".to_string()
        })?;
        Ok(Signer { pair, rng })
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            point: self.pair.public_key().as_ref().to_vec(),
        }
    }

    /// Signs `payload` of `payload_type` into an envelope (DER signature, empty keyid).
    pub fn envelope(&self, payload_type: &str, payload: &[u8]) -> Result<Envelope, String> {
        let sig = self
            .pair
            .sign(&self.rng, &pae(payload_type, payload))
            .map_err(|_| "signing failed".to_string())?;
        Ok(Envelope {
            payload_type: payload_type.into(),
            payload: STANDARD.encode(payload),
            signatures: vec![Signature {
                keyid: String::new(),
                sig: STANDARD.encode(sig.as_ref()),
            }],
        })
    }
}

/// An ECDSA P-256 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The uncompressed point (65 bytes).
    point: Vec<u8>,
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of a P-256 key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|_| {
            "not a PEM public key (`-----BEGIN PUBLIC KEY-----`); make one with `openssl pkey -in KEY.pem -pubout`".to_string()
        })?;
        match der.as_ref().strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) if point.len() == 65 && point[0] == 4 => Ok(PublicKey {
                point: point.to_vec(),
            }),
            _ => Err("not an ECDSA P-256 public key".into()),
        }
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> Vec<u8> {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.point);
        der
    }

    /// `sha256:…` of the SubjectPublicKeyInfo DER: how messages name a key.
    pub fn fingerprint(&self) -> Digest {
        Digest::of(&self.spki_der())
    }

    /// Whether `sig` (ASN.1 DER) is this key's ECDSA P-256 SHA-256 signature of `message`.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(message, sig)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_the_spec_example() {
        // The DSSE spec's own example (protocol.md, "Test vector").
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    /// A PKCS#8 PEM key made by ring itself.
    fn generated() -> Vec<u8> {
        let der = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &SystemRandom::new(),
        )
        .unwrap();
        let b64 = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
        .into_bytes()
    }

    #[test]
    fn an_envelope_verifies_under_its_key_only_and_not_once_changed() {
        let signer = Signer::from_pem(&generated()).unwrap();
        let other = Signer::from_pem(&generated()).unwrap();
        let env = signer.envelope(PAYLOAD_TYPE, b"{\"a\":1}").unwrap();
        assert!(env.verified_by(&signer.public()));
        assert!(!env.verified_by(&other.public()));
        let mut changed = env.clone();
        changed.payload = STANDARD.encode(b"{\"a\":2}");
        assert!(!changed.verified_by(&signer.public()));
        let mut retyped = env.clone();
        retyped.payload_type = "text/plain".into();
        assert!(!retyped.verified_by(&signer.public()));
        // The public key survives a round trip through its DER.
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(signer.public().spki_der())
        );
        assert_eq!(
            PublicKey::from_pem(pem.as_bytes()).unwrap(),
            signer.public()
        );
        assert!(!format!("{signer:?}").contains("PRIVATE"));
    }

    #[test]
    fn key_errors_do_not_repeat_the_input() {
        let junk = b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n";
        let e = Signer::from_pem(junk).unwrap_err();
        assert!(!e.contains("c2VjcmV0") && e.contains("P-256"), "{e}");
        let e = Signer::from_pem(b"hunter2").unwrap_err();
        assert!(!e.contains("hunter2") && e.contains("PKCS#8"), "{e}");
        let e = PublicKey::from_pem(b"nothing").unwrap_err();
        assert!(e.contains("PUBLIC KEY"), "{e}");
    }
}
