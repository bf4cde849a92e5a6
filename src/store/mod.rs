//! The store: placeholder, replaced by the store work.
