//! Reading webhook bodies into the few facts the intake acts on. Pure: the HTTP layer has
//! already checked the signature and that the body is JSON; a body whose shape is wrong for
//! its event is an error naming the missing field.

mod gitea;
mod plane;

pub use gitea::{GiteaDelivery, GiteaFields, gitea, gitea_fields};
pub use plane::{IssueSnapshot, PlaneDelivery, html_to_text, plane};
