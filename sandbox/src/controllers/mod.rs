//! The controllers that make objects move: jobs, cronjobs, garbage
//! collection, and the event recorder they share.

pub mod cronjob;
pub mod events;
pub mod gc;
pub mod job;
