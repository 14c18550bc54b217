//! MLLP transport: the frame codec, the listener that turns frames into
//! pipeline submissions and ACKs, the sender that delivers outbound messages and
//! validates their ACKs, and the TLS setup both sides share.
//!
//! The ordering rule everything here follows: an ACK is written only after the
//! pipeline's outcome is returned, and the pipeline returns only after the store
//! committed, so a positive ACK always means "durably stored" (DESIGN.md
//! invariant 1). Every frame gets an answer; connections stay open after errors.

pub mod ack_check;
pub mod codec;
pub mod config;
pub mod connection;
pub mod files;
pub mod listener;
pub mod metrics;
pub mod respond;
pub mod sender;
pub mod tls;
pub mod writeback;

pub use codec::{MllpCodec, MllpError, MllpFrame};
pub use config::{ListenerConfig, SenderConfig, TlsClientConfig, TlsServerConfig};
pub use listener::{ListenerError, MllpListener, serve};
pub use sender::{MllpSender, SendError};
pub use writeback::MllpWriteBack;
