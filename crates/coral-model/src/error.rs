//! The error type of the data model.

/// Errors of sketch, statistics and bucket operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Two sketches with different relative accuracies cannot be merged.
    #[error("incompatible sketches: relative accuracy {left} vs {right}")]
    IncompatibleSketches {
        /// Relative accuracy of the sketch merged into.
        left: f64,
        /// Relative accuracy of the sketch merged from.
        right: f64,
    },
    /// A serialized sketch failed validation.
    #[error("invalid sketch: {0}")]
    InvalidSketch(String),
    /// A serialized bucket or operation summary failed validation.
    #[error("invalid bucket: {0}")]
    InvalidBucket(String),
    /// Two buckets with different keys cannot be merged.
    #[error("bucket key mismatch: {left} vs {right}")]
    KeyMismatch {
        /// Key of the bucket merged into, as `minute/service/kind`.
        left: String,
        /// Key of the bucket merged from, as `minute/service/kind`.
        right: String,
    },
    /// A histogram failed validation.
    #[error("invalid histogram: {0}")]
    InvalidHistogram(String),
    /// A span kind string is none of the known kinds.
    #[error("unknown span kind {0:?}")]
    UnknownSpanKind(String),
    /// Protobuf decoding failed.
    #[error("protobuf decode error: {0}")]
    Decode(#[from] prost::DecodeError),
}
