//! AWS messaging (feature `aws`).
