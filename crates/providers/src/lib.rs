//! operonx model providers.
