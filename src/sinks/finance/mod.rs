//! Vouchers to the finance system: built from the model's nightly deltas, stored in an outbox
//! before anything is sent, written as KMD Opus XML or CSV, delivered by folder, SFTP or HTTP.

pub mod build;
pub mod csv;
pub mod opus;
pub mod reply;
pub mod transport;
pub mod voucher;

pub use voucher::{DebitCredit, Voucher, VoucherLine, VoucherNumber, VoucherState};
