//! Authorization with Kafka's ACLs, as Kafka's StandardAuthorizer does it (docs/SECURITY.md).
//!
//! - `types`: Kafka's resource types, pattern types, operations and permissions, an ACL, a filter;
//! - `matcher`: the decision for one principal, host, operation and resource;
//! - `store`: the broker's ACLs, durable in the data directory, with a change generation;
//! - `session`: the authorizer and one connection's cached decisions, what handlers ask;
//! - `admin`: CreateAcls, DescribeAcls, DeleteAcls.

pub mod admin;
pub mod matcher;
pub mod session;
pub mod store;
pub mod types;

pub use matcher::Rules;
pub use session::{Authorizer, Session};
pub use types::{Operation, ResourceType};
