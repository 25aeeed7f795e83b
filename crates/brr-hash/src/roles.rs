//! Newtypes for the roles a digest plays, so a build key can never be passed
//! where an artifact hash is expected.

use serde::{Deserialize, Serialize};

use crate::Digest;

macro_rules! role {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Digest);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = crate::DigestError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
        impl From<Digest> for $name {
            fn from(d: Digest) -> Self {
                Self(d)
            }
        }
        impl $name {
            pub fn digest(&self) -> Digest {
                self.0
            }
            pub fn short(&self) -> String {
                self.0.short()
            }
        }
    };
}

role!(
    /// BLAKE3 of a file's bytes.
    BlobHash
);
role!(
    /// Hash of a [`crate::Tree`] object.
    TreeHash
);
role!(
    /// Hash of a [`crate::ActionKey`] object: what a build depends on.
    BuildKey
);
role!(
    /// Hash of an [`crate::Artifact`] object: what a build produced (the build hash).
    ArtifactHash
);
role!(
    /// Digest of a host tool's closure ([`crate::ToolClosure::digest`]).
    ToolDigest
);
role!(
    /// Hash of a [`crate::Config`] object: a service's config in one environment.
    ConfigHash
);
role!(
    /// Hash of a [`crate::Release`] object: a build hash with a config hash.
    ReleaseHash
);
role!(
    /// Hash of a [`crate::LedgerEntry`]: one link of an environment's ledger chain.
    EntryHash
);
