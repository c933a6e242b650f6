//! What customers say: surveys ([`surveys`]), submitted feedback ([`submit`]) and the
//! topics managers define to tag it and inbound interactions ([`topics`]).

pub mod submit;
pub mod surveys;
pub mod topics;
