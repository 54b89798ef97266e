//! The control router and its handlers, with in-memory fakes of the host's other parts.

mod fakes;
mod host_requests;
mod state_requests;
