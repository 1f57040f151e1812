//! Recurring-issue detection (issue 5).
//!
//! The text clusters these fingerprints use are placed by the projection with
//! [`crate::clustering`].
//!
//! - [`view`]: fingerprints and their recurrence over a window, computed from a snapshot:
//!   the recurring issues, problem and knowledge-base candidates, and the top calls;
//! - [`request`]: the API's and the CLI's parameters.
//!
//! [`crate::quality`] measures the clusters on labelled real tickets.

pub mod request;
pub mod view;
