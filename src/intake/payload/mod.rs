//! Reading webhook bodies into the few facts the intake acts on. Pure: the intake has
//! already checked the signature; a body that is not JSON is a `serde_json` error (Gitea's
//! is parsed here, into just the fields read), and one whose shape is wrong for its event an
//! error naming the missing field.

mod gitea;
mod plane;

pub use gitea::{GiteaDelivery, GiteaFields, gitea, gitea_fields};
pub use plane::{IssueSnapshot, PlaneDelivery, html_to_text, plane};
